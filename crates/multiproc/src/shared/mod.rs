//! Memory shared between processes: the segments everything else is built
//! on, raw shared memory, and typed values and arrays.
//!
//! - [`segment`]: a mapping with a publication header and an owner record;
//!   the one place that creates, opens, maps and unlinks segments. Named
//!   segments are listed and removed through [`crate::names`].
//! - [`shared_memory`]: Python's `SharedMemory`, bytes by copy.
//! - [`Value`], [`Array`], [`RawValue`], [`RawArray`]: plain-old-data in a
//!   segment, with or without a robust lock.
//!
//! What may not live here: waiting and waking (that is [`crate::sync`] and
//! `multiproc-shm`), and message passing (that is [`crate::queue`]).

pub mod segment;
pub mod shared_memory;
mod value;

pub use value::{Array, ArrayGuard, RawArray, RawValue, SharedError, Value, ValueGuard};
