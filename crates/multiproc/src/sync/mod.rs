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

use multiproc_shm::{Acquired, LockError};

use crate::env::ProcessEnv;
use crate::error::{TimeoutError, TryError, Waited};

#[macro_use]
mod handle;

mod aio;
mod barrier;
mod condition;
mod event;
mod lock;
mod semaphore;

pub use barrier::Barrier;
pub use condition::{AsyncConditionGuard, Condition, ConditionGuard, WaitError};
pub use event::Event;
pub(crate) use lock::embedded_lock;
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore};

const ENV: ProcessEnv = ProcessEnv;

/// Why a blocking acquire did not simply succeed. `G` is the guard handed
/// over when the lock was taken from a dead owner. The `try_` form adds
/// `WouldBlock` ([`TryLockError`]), the `_timeout`/`_deadline` forms add
/// `Timeout` ([`LockTimeoutError`]).
#[non_exhaustive]
#[must_use = "an OwnerDied error holds the lock: dropping it unhandled makes the lock NotRecoverable"]
pub enum AcquireError<G> {
    /// The previous owner died holding the lock. The caller now holds it
    /// (the guard is inside); repair the data and call `mark_consistent()`.
    OwnerDied(G),
    /// An owner died and its successor released the lock without marking it
    /// consistent: the lock is unusable for good.
    NotRecoverable,
}

/// What `try_lock`/`try_acquire` report: [`TryError::WouldBlock`] when the
/// lock is held now.
pub type TryLockError<G> = TryError<AcquireError<G>>;

/// What `lock_timeout`/`lock_deadline` (and the `acquire_` forms) report:
/// [`TimeoutError::Timeout`] when the time ran out.
pub type LockTimeoutError<G> = TimeoutError<AcquireError<G>>;

impl<G> AcquireError<G> {
    /// The guard, if the lock was acquired from a dead owner.
    pub fn into_guard(self) -> Option<G> {
        match self {
            AcquireError::OwnerDied(g) => Some(g),
            AcquireError::NotRecoverable => None,
        }
    }

    /// The same error with the guard mapped.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> AcquireError<H> {
        match self {
            AcquireError::OwnerDied(g) => AcquireError::OwnerDied(f(g)),
            AcquireError::NotRecoverable => AcquireError::NotRecoverable,
        }
    }
}

impl<G> fmt::Debug for AcquireError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AcquireError::OwnerDied(_) => "OwnerDied(..)",
            AcquireError::NotRecoverable => "NotRecoverable",
        })
    }
}

impl<G> fmt::Display for AcquireError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AcquireError::OwnerDied(_) => "the previous owner died holding the lock",
            AcquireError::NotRecoverable => "the lock is not recoverable after its owner died",
        })
    }
}

impl<G> std::error::Error for AcquireError<G> {}

/// The outcome of a raw lock operation as an acquire: the guard, or why
/// not (the form that called turns "would block" into its own error).
pub(crate) fn acquired<G>(
    r: Result<Acquired, LockError>,
    guard: impl FnOnce(bool) -> G,
) -> Result<G, Waited<AcquireError<G>>> {
    match r {
        Ok(Acquired::OwnerDied) => Err(Waited::Failed(AcquireError::OwnerDied(guard(true)))),
        Ok(_) => Ok(guard(false)),
        Err(LockError::NotRecoverable) => Err(Waited::Failed(AcquireError::NotRecoverable)),
        Err(LockError::WouldBlock) => Err(Waited::GaveUp),
    }
}

/// The four lock forms of a lock-like type, over its private
/// `take(Option<Instant>)` and `try_take()` (raw outcomes) and
/// `guard(heir)`.
macro_rules! lock_forms {
    ($guard:ty) => {
        /// Acquire, blocking.
        pub fn lock(&self) -> Result<$guard, $crate::sync::AcquireError<$guard>> {
            $crate::sync::acquired(self.take(None), |heir| self.guard(heir))
                .map_err($crate::error::Waited::into_blocking)
        }

        /// Acquire if that needs no wait (a lock held by a dead process is
        /// taken over).
        pub fn try_lock(&self) -> Result<$guard, $crate::sync::TryLockError<$guard>> {
            $crate::sync::acquired(self.try_take(), |heir| self.guard(heir))
                .map_err($crate::error::Waited::into_try)
        }

        /// Acquire, waiting at most `timeout`.
        pub fn lock_timeout(
            &self,
            timeout: std::time::Duration,
        ) -> Result<$guard, $crate::sync::LockTimeoutError<$guard>> {
            $crate::sync::acquired(self.take($crate::deadline::after(timeout)), |heir| {
                self.guard(heir)
            })
            .map_err($crate::error::Waited::into_timeout)
        }

        /// Acquire, waiting until `deadline`.
        pub fn lock_deadline(
            &self,
            deadline: std::time::Instant,
        ) -> Result<$guard, $crate::sync::LockTimeoutError<$guard>> {
            $crate::sync::acquired(self.take(Some(deadline)), |heir| self.guard(heir))
                .map_err($crate::error::Waited::into_timeout)
        }
    };
}
pub(crate) use lock_forms;

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
