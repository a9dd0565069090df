//! Data structures that live in shared memory, free of system calls.
//!
//! Everything here works on memory it is handed (a mapped segment in
//! production, heap memory under loom and miri) and takes waiting, waking
//! and liveness as parameters ([`Env`]), so the same algorithms are
//! model-checked with threads standing in for processes. All state is made
//! of fixed-width atomics, zero means "fresh", and no pointer or `usize` is
//! ever stored.
//!
//! - [`Header`]: the publication header every segment starts with.
//! - [`RawLock`]: robust lock (owner death is detected and recoverable),
//!   also re-entrant.
//! - [`RawSemaphore`], [`RawEvent`], [`RawCondition`], [`RawBarrier`].
//! - [`RawQueue`]: the MPMC record ring behind the queues.
//! - [`SharedState`]: the types that may live in shared memory at all.
//! - [`Watch`]: a wait registered here and slept on elsewhere (async).

pub mod barrier;
pub mod bias;
pub mod condition;
pub mod env;
pub mod event;
mod eventcount;
pub mod header;
pub mod lock;
pub mod queue;
pub mod semaphore;
pub mod shared;
pub mod sync;
pub mod watch;

pub use barrier::{BarrierError, BarrierStep, Broken, Party, RawBarrier};
pub use bias::BiasLock;
pub use condition::{CondWaiter, Parked, RawCondition, Ticket};
pub use env::{Env, LIVENESS_CHECK, Me};
pub use event::RawEvent;
pub use header::{Header, HeaderError, InitState};
pub use lock::{Acquired, LockError, RawLock, UnlockError};
pub use queue::{ABANDON_AFTER, JoinProgress, QueueError, QueueWait, RawQueue, Rec, Region, Taken};
pub use semaphore::{OverRelease, RawSemaphore};
pub use shared::SharedState;
pub use watch::Watch;
