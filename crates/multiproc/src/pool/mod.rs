//! Process pools: [`Pool`], Python's `multiprocessing.Pool` without its
//! hangs. A task is a plain `fn(A) -> R` with serde argument and result
//! (handles included), run in a spawned worker process. Python's
//! `starmap` is [`Pool::map`] over tuples: `fn add((a, b): (i64, i64))`.
//!
//! # What happens when a worker dies
//!
//! Each worker records the id of the task it runs in a shared-memory slot.
//! A supervisor thread waits on the workers' pidfds; when one ends, it
//! queues the worker's exit behind the worker's own results, and the
//! collector thread then fails exactly the task the slot names
//! ([`TaskError::WorkerDied`], or as [`OnWorkerDeath`] says), sends the
//! rest of the worker's chunk again, and starts a replacement. A task over
//! the pool's `task_timeout` has its worker killed
//! ([`TaskError::TimedOut`]); a panicking task fails alone
//! ([`TaskError::Panicked`]) and the worker lives on. More abnormal deaths
//! than `restart_limit` allows break the pool ([`TaskError::Broken`] for
//! every pending task) instead of forking for ever. Workers are daemons:
//! they die with the parent, even when it is killed with `SIGKILL`.
//!
//! # Layout
//!
//! - `handle`: the [`Pool`] API; `builder`: [`PoolBuilder`] and its
//!   policies; `error`: [`TaskError`], [`PoolError`], [`Exit`].
//! - `task`: the messages to and from workers, and the [`Task`] handle;
//!   `iter`: [`Imap`] and [`ImapUnordered`].
//! - `state`: the parent's bookkeeping and the collector; `supervisor`:
//!   death and timeout watch; `worker`: the worker's task loop.
//!
//! What may not live here: process spawning and the function-pointer
//! machinery (that is [`crate::process`]), and queues (that is
//! [`crate::queue`]): the pool only uses them.

mod builder;
mod error;
mod handle;
mod iter;
mod state;
mod supervisor;
mod task;
mod worker;

pub use builder::{OnWorkerDeath, PoolBuilder};
pub use error::{Exit, PoolError, TaskError};
pub use handle::Pool;
pub use iter::{Imap, ImapUnordered};
pub use task::Task;
#[cfg(feature = "redis")]
pub(crate) use task::{Cancel, Cell, Raw};
