//! Locks, semaphores, events, conditions and barriers that work across
//! processes: Python's `multiprocessing.Lock`, `RLock`, `Semaphore`,
//! `BoundedSemaphore`, `Event`, `Condition` and `Barrier`.
//!
//! Each object lives in a shared segment (a sealed memfd) whose descriptor is
//! its handle: clone it within a process, move it into a spawned child's
//! argument, or send it in a message over a duplex connection. Waiting spins
//! briefly, then sleeps on a shared futex; a release wakes only when someone
//! sleeps.
//!
//! # Owner death
//!
//! A [`Lock`] or [`RLock`] records its owner's pid in the lock word. When the
//! owner dies holding it, the next acquirer (a waiter already asleep notices
//! within about [`LIVENESS_CHECK`](multiproc_shm::LIVENESS_CHECK)) gets
//! [`AcquireError::OwnerDied`] carrying the guard: it now holds the lock, may
//! repair the data, and calls `mark_consistent()`. Dropping that guard
//! without doing so makes the lock [`AcquireError::NotRecoverable`] for
//! everyone, as with POSIX robust mutexes: the data may be half-updated,
//! and nobody vouched for it. Because that is easy to do by accident (an
//! `if let Ok(guard) = lock.lock()` drops the `OwnerDied` guard unseen), the
//! release that does it prints one line on stderr naming the lock kind, and
//! [`AcquireError`] is `#[must_use]`. Python's binding repairs instead
//! (with an `OwnerDiedWarning`), as Python code has no guard to call
//! `mark_consistent()` on. A [`Barrier`] party that dies
//! while waiting breaks the barrier for the others. Semaphore permits are
//! not owned (any process may release what another acquired, as in Python),
//! so a permit held by a dead process is not given back: see
//! [`Semaphore`].

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::env::ProcessEnv;

#[macro_use]
mod handle;
mod barrier;
mod condition;
mod event;
mod lock;
mod semaphore;

pub use barrier::Barrier;
pub use condition::{Condition, ConditionGuard, WaitError};
pub use event::Event;
pub(crate) use lock::embedded_lock;
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore};

const ENV: ProcessEnv = ProcessEnv;

/// Why an acquire did not simply succeed. `G` is the guard handed over when
/// the lock was taken from a dead owner.
#[non_exhaustive]
#[must_use = "an OwnerDied error holds the lock: dropping it unhandled makes the lock NotRecoverable"]
pub enum AcquireError<G> {
    /// `try_` form: the object is held (or has no permit) right now.
    WouldBlock,
    /// `_timeout` form: the time ran out.
    Timeout,
    /// The previous owner died holding the lock. The caller now holds it
    /// (the guard is inside); repair the data and call `mark_consistent()`.
    OwnerDied(G),
    /// An owner died and its successor released the lock without marking it
    /// consistent: the lock is unusable for good.
    NotRecoverable,
}

impl<G> AcquireError<G> {
    /// The guard, if the lock was acquired from a dead owner.
    pub fn into_guard(self) -> Option<G> {
        match self {
            AcquireError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }

    fn map<H>(self, f: impl FnOnce(G) -> H) -> AcquireError<H> {
        match self {
            AcquireError::WouldBlock => AcquireError::WouldBlock,
            AcquireError::Timeout => AcquireError::Timeout,
            AcquireError::OwnerDied(g) => AcquireError::OwnerDied(f(g)),
            AcquireError::NotRecoverable => AcquireError::NotRecoverable,
        }
    }
}

impl<G> fmt::Debug for AcquireError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AcquireError::WouldBlock => "WouldBlock",
            AcquireError::Timeout => "Timeout",
            AcquireError::OwnerDied(_) => "OwnerDied(..)",
            AcquireError::NotRecoverable => "NotRecoverable",
        })
    }
}

impl<G> fmt::Display for AcquireError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AcquireError::WouldBlock => "the lock is held",
            AcquireError::Timeout => "timed out acquiring the lock",
            AcquireError::OwnerDied(_) => "the previous owner died holding the lock",
            AcquireError::NotRecoverable => "the lock is not recoverable after its owner died",
        })
    }
}

impl<G> std::error::Error for AcquireError<G> {}

/// The heir of a dead owner releases the lock. If it did not call
/// `mark_consistent()`, the lock is now [`AcquireError::NotRecoverable`] for
/// every process (the POSIX robust-mutex rule): say so on stderr, once, so
/// that a program learns it from the release that caused it rather than
/// from the next acquirer's error.
pub(crate) fn warn_if_abandoned(raw: &multiproc_shm::RawLock, what: &str) {
    if raw.is_inconsistent() {
        eprintln!(
            "multiproc: {what} taken over from a dead owner was released without \
             mark_consistent(): it is now NotRecoverable for every process \
             (see multiproc::AcquireError::OwnerDied)"
        );
    }
}

/// Why a release was refused (Python raises `ValueError` or `RuntimeError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The lock is not locked.
    #[error("release of an unlocked lock")]
    NotLocked,
    /// An `RLock` released by a thread that does not own it.
    #[error("cannot release an RLock owned by another thread or process")]
    NotOwner,
    /// A `BoundedSemaphore` released more times than acquired.
    #[error("semaphore released too many times")]
    OverRelease,
}

/// Why [`Barrier::wait_interruptible`] returned without passing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BarrierWaitError {
    /// The barrier is broken.
    #[error("the barrier is broken")]
    Broken,
    /// The interrupt check stopped the wait; this party left the barrier.
    #[error("the wait was interrupted")]
    Interrupted,
}

/// A barrier is broken (Python's `threading.BrokenBarrierError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("the barrier is broken")]
pub struct BrokenBarrierError;

pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    crate::deadline::after(timeout)
}
