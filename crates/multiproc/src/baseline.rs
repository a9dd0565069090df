//! The operating system's own mechanisms, as `multiproc bench` measures
//! multiproc against them (feature `baseline`): raw pipes and socketpairs
//! with plain reads and writes, a bare futex, a POSIX named semaphore and a
//! robust pthread mutex.
//!
//! These are measuring sticks, not part of multiproc's API: they have none
//! of its guarantees (no owner-death recovery for the semaphore, no
//! framing, no timeouts), and the feature is off by default.

pub use multiproc_sys::baseline::{PosixSemaphore, RobustMutex};
pub use multiproc_sys::fd::{dup, pipe, set_nonblocking, socketpair};
pub use multiproc_sys::futex::{wait as futex_wait, wake as futex_wake};
pub use multiproc_sys::io::{read, write_all};
