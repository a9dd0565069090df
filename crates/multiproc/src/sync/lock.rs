//! [`Lock`] and [`RLock`]: robust locks whose owner's death is detected.

use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use multiproc_shm::{Acquired, Env, LockError, RawLock};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::shared::segment::{self, Segment};

use super::handle::Handle;
use super::{
    AcquireError, ENV, LockTimeoutError, ReleaseError, TryLockError, lock_forms, warn_if_abandoned,
};

const LOCK_LAYOUT: u64 = segment::layout_hash("multiproc::Lock/2", 32, 8);
const RLOCK_LAYOUT: u64 = segment::layout_hash("multiproc::RLock/2", 32, 8);

// ----- Lock --------------------------------------------------------------------

/// A lock shared by processes (Python's `multiprocessing.Lock`).
///
/// Not re-entrant: the owner acquiring again waits (or, with `try_lock`,
/// fails). As in Python, any process may [`release`](Lock::release) it.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let lock = multiproc::Lock::new()?;
/// {
///     let _guard = lock.lock().map_err(|e| e.to_string())?; // released at scope end
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Lock {
    h: Handle<RawLock>,
}
handle_object!(Lock);

/// Holds a [`Lock`]; releases it when dropped.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    /// Taken over from a dead owner (handed out in `OwnerDied`).
    heir: bool,
}

impl LockGuard<'_> {
    /// After [`AcquireError::OwnerDied`]: the data is repaired.
    pub fn mark_consistent(&self) {
        self.lock.raw().mark_consistent();
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if self.heir {
            warn_if_abandoned(self.lock.raw(), "a Lock");
        }
        // Python allows another process to release first; nothing to do then.
        let _ = self.lock.raw().unlock(&ENV);
    }
}

impl Lock {
    /// A new, unlocked lock.
    pub fn new() -> io::Result<Lock> {
        Ok(Lock {
            h: Handle::create("lock", LOCK_LAYOUT, 0, |_: &RawLock| {})?,
        })
    }

    /// A lock at `off` in another object's segment (`Value::get_lock`).
    fn within(seg: Arc<Segment>, off: usize, layout: u64) -> Lock {
        Lock {
            h: Handle::at(seg, off, layout),
        }
    }

    pub(super) fn raw(&self) -> &RawLock {
        self.h.get()
    }

    fn take(&self, deadline: Option<Instant>) -> Result<Acquired, LockError> {
        self.raw().lock(&ENV, deadline)
    }

    fn try_take(&self) -> Result<Acquired, LockError> {
        self.raw().try_lock(&ENV)
    }

    fn guard(&self, heir: bool) -> LockGuard<'_> {
        LockGuard { lock: self, heir }
    }

    lock_forms!(LockGuard<'_>);

    /// Python's `acquire()` without a guard: pair it with
    /// [`release`](Lock::release), possibly in another process.
    pub fn acquire(&self) -> Result<(), AcquireError<()>> {
        self.lock()
            .map(std::mem::forget)
            .map_err(|e| e.map(std::mem::forget))
    }

    /// Python's `acquire(timeout=...)` without a guard.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), LockTimeoutError<()>> {
        self.lock_timeout(timeout)
            .map(std::mem::forget)
            .map_err(|e| e.map(|e| e.map(std::mem::forget)))
    }

    /// Python's `acquire(block=False)` without a guard.
    pub fn try_acquire(&self) -> Result<(), TryLockError<()>> {
        self.try_lock()
            .map(std::mem::forget)
            .map_err(|e| e.map(|e| e.map(std::mem::forget)))
    }

    /// [`acquire`](Lock::acquire) until `deadline`, without a guard.
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<(), LockTimeoutError<()>> {
        self.lock_deadline(deadline)
            .map(std::mem::forget)
            .map_err(|e| e.map(|e| e.map(std::mem::forget)))
    }

    /// [`lock`](Lock::lock), awaiting the lock instead of blocking the
    /// thread. A dead owner is noticed within about
    /// [`LIVENESS_CHECK`](multiproc_shm::LIVENESS_CHECK), as by the
    /// blocking form: [`AcquireError::OwnerDied`] then holds the guard.
    /// Cancel safe: a dropped future holds no lock.
    pub async fn lock_async(&self) -> Result<LockGuard<'_>, AcquireError<LockGuard<'_>>> {
        let r = super::aio::lock(self.raw(), None).await;
        super::acquired(r, |heir| self.guard(heir)).map_err(crate::error::Waited::into_blocking)
    }

    /// [`lock_timeout`](Lock::lock_timeout), awaiting instead of blocking.
    /// Cancel safe.
    pub async fn lock_timeout_async(
        &self,
        timeout: Duration,
    ) -> Result<LockGuard<'_>, LockTimeoutError<LockGuard<'_>>> {
        let r = super::aio::lock(self.raw(), crate::deadline::after(timeout)).await;
        super::acquired(r, |heir| self.guard(heir)).map_err(crate::error::Waited::into_timeout)
    }

    /// Python's `release()`: any process may release; an unlocked lock is
    /// an error.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.raw().unlock(&ENV).map_err(|_| ReleaseError::NotLocked)
    }

    /// After acquiring with [`acquire`](Lock::acquire) from a dead owner:
    /// the data is repaired.
    pub fn mark_consistent(&self) {
        self.raw().mark_consistent();
    }

    /// Whether some process holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }

    /// The pid of the process holding the lock (a snapshot).
    pub fn owner(&self) -> Option<u32> {
        self.raw().owner()
    }
}

// ----- RLock -------------------------------------------------------------------

/// A re-entrant lock shared by processes (Python's `multiprocessing.RLock`):
/// the owning thread may acquire it again, and must release it as many
/// times; only the owner may release.
#[derive(Clone, Debug)]
pub struct RLock {
    h: Handle<RawLock>,
}
handle_object!(RLock);

/// Holds one level of an [`RLock`].
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    /// Taken over from a dead owner (the outermost level, handed out in
    /// `OwnerDied`).
    heir: bool,
    // The owner is a thread: the guard must stay on it.
    _not_send: PhantomData<*const ()>,
}

impl RLockGuard<'_> {
    /// After [`AcquireError::OwnerDied`]: the data is repaired.
    pub fn mark_consistent(&self) {
        self.lock.raw().mark_consistent();
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        if self.heir {
            warn_if_abandoned(self.lock.raw(), "an RLock");
        }
        let _ = self.lock.raw().runlock(&ENV);
    }
}

impl RLock {
    /// A new, unlocked re-entrant lock.
    pub fn new() -> io::Result<RLock> {
        Ok(RLock {
            h: Handle::create("rlock", RLOCK_LAYOUT, 0, |_: &RawLock| {})?,
        })
    }

    pub(super) fn raw(&self) -> &RawLock {
        self.h.get()
    }

    fn guard(&self, heir: bool) -> RLockGuard<'_> {
        RLockGuard {
            lock: self,
            heir,
            _not_send: PhantomData,
        }
    }

    fn take(&self, deadline: Option<Instant>) -> Result<Acquired, LockError> {
        self.raw().rlock(&ENV, deadline)
    }

    fn try_take(&self) -> Result<Acquired, LockError> {
        self.raw().try_rlock(&ENV)
    }

    lock_forms!(RLockGuard<'_>);

    /// Python's `acquire()` without a guard.
    pub fn acquire(&self) -> Result<(), AcquireError<()>> {
        self.lock()
            .map(std::mem::forget)
            .map_err(|e| e.map(std::mem::forget))
    }

    /// Python's `release()`: only the owning thread may release.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.raw().runlock(&ENV).map_err(|e| match e {
            multiproc_shm::UnlockError::NotOwner => ReleaseError::NotOwner,
            multiproc_shm::UnlockError::NotLocked => ReleaseError::NotLocked,
        })
    }

    /// Whether this thread owns the lock.
    pub fn is_owned(&self) -> bool {
        self.raw().is_owned_by(ENV.me())
    }

    /// Whether some process holds the lock.
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }
}

/// Make a [`Lock`] view of a lock embedded in another object's segment.
pub(crate) fn embedded_lock(seg: Arc<Segment>, off: usize, layout: u64) -> Lock {
    Lock::within(seg, off, layout)
}
