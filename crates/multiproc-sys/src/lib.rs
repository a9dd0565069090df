//! The OS layer of multiproc: the only crate that makes system calls.
//!
//! Built on [`rustix`]; `libc` is used only where rustix has no wrapper
//! (`fork`, `_exit`, POSIX message queues, System V IPC, the benchmark's
//! baselines), and signal handlers are registered through `signal-hook`. The functions here carry no policy: they open, move and
//! wait on file descriptors and processes, and report every failure as an
//! [`std::io::Error`]. The `multiproc` crate decides what the calls mean.
//!
//! What this crate does:
//! - fds: close-on-exec and non-blocking flags, pipes, stream socketpairs;
//! - messages with file descriptors attached (`SCM_RIGHTS`);
//! - readiness waits on one or many fds with monotonic deadlines, retried on `EINTR`;
//! - processes: pidfds, signals through pidfds, `waitid(P_PIDFD)`, `fork`,
//!   liveness (zombies and reused pids count as dead);
//! - shared memory: memfd, POSIX shm, seals, mappings (bytes by
//!   bounds-checked copy, shared state by typed atomic views); shared futexes;
//! - FIFOs (`mkfifo`, opens that refuse symlinks and non-FIFOs);
//! - POSIX message queues (`mq_*`) with monotonic deadlines;
//! - System V message queues, semaphore sets and shared memory;
//! - Unix and TCP sockets (bind, listen, accept, connect, `flock`);
//! - signals: sending, and handlers that write to a self-pipe;
//! - with the `baseline` feature, the OS baselines the benchmark compares
//!   with (POSIX semaphores, robust pthread mutexes).
//!
//! What it does not do: framing, serialization, any decision about what a
//! failure means for the caller.

#[cfg(feature = "baseline")]
pub mod baseline;
pub mod fd;
pub mod fifo;
pub mod futex;
pub mod io;
mod mapped;
pub mod membarrier;
pub mod mq;
pub mod net;
pub mod poll;
pub mod process;
#[cfg(feature = "tokio")]
pub mod ready;
pub mod shm;
pub mod signal;
pub mod sysv;

pub use rustix;
