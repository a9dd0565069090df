//! The operating system's own IPC objects, with multiproc's safety rules:
//! private by default, recorded in the [owner registry](crate::names) when
//! named, every blocking call with a timeout form.
//!
//! - [`fifo`]: named pipes (`mkfifo`).
//! - [`posix`]: POSIX message queues (`mq_overview(7)`).
//! - [`sysv`]: System V message queues, semaphore sets and shared memory.
//! - [`signal`]: sending signals, and receiving them as values.
//!
//! What may not live here: objects multiproc builds itself in shared memory
//! (those are [`crate::sync`], [`crate::shared`], [`crate::queue`]).

pub mod fifo;
pub mod posix;
pub mod signal;
pub mod sysv;
