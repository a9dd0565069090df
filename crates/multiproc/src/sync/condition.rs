//! [`Condition`]: wait for a change under a lock.

use std::io;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use multiproc_shm::{Acquired, LockError, Parked, RawCondition, RawLock};
use serde::{Deserialize, Serialize};

use crate::shared::segment::{self};

use super::handle::Handle;
use super::{AcquireError, ENV, LockTimeoutError, deadline, lock_forms, warn_if_abandoned};
use super::{Lock, RLock};
use crate::error::Waited;

// ----- Condition ---------------------------------------------------------------

const COND_LAYOUT: u64 = segment::layout_hash(
    "multiproc::Condition/2",
    std::mem::size_of::<RawCondition>(),
    std::mem::align_of::<RawCondition>(),
);

/// The lock under a [`Condition`].
#[derive(Clone, Debug, Serialize, Deserialize)]
enum CondLock {
    Lock(Lock),
    RLock(RLock),
}

/// A condition variable shared by processes (Python's
/// `multiprocessing.Condition`), over a [`Lock`] or an [`RLock`] (the
/// default, as in Python).
///
/// Waiting and notifying happen through the guard, so the lock is always
/// held, as Python requires. A waiter may return spuriously (like any
/// condition variable); [`ConditionGuard::wait_for`] loops on a predicate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Condition {
    cond: Handle<RawCondition>,
    lock: CondLock,
}

/// Holds a [`Condition`]'s lock.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct ConditionGuard<'a> {
    cond: &'a Condition,
    held: bool,
    /// Took the lock over from a dead owner (handed out in `OwnerDied`).
    heir: bool,
    _not_send: PhantomData<*const ()>,
}

/// Why a condition wait failed; the guard still holds the lock unless it
/// says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WaitError {
    /// While re-acquiring after the wait, the lock was found held by a dead
    /// process. The guard holds it now; repair, then `mark_consistent()`.
    #[error("the lock's previous owner died; the lock is held and inconsistent")]
    OwnerDied,
    /// The lock is not recoverable; the guard no longer holds it.
    #[error("the lock is not recoverable")]
    NotRecoverable,
    /// The interrupt check of an interruptible wait stopped it before a
    /// notification came; the lock is held again and no notification was
    /// consumed.
    #[error("the wait was interrupted")]
    Interrupted,
}

impl Condition {
    /// A condition over a new [`RLock`].
    pub fn new() -> io::Result<Condition> {
        Self::with(CondLock::RLock(RLock::new()?))
    }

    /// A condition over `lock`.
    pub fn with_lock(lock: Lock) -> io::Result<Condition> {
        Self::with(CondLock::Lock(lock))
    }

    /// A condition over `lock`.
    pub fn with_rlock(lock: RLock) -> io::Result<Condition> {
        Self::with(CondLock::RLock(lock))
    }

    fn with(lock: CondLock) -> io::Result<Condition> {
        Ok(Condition {
            cond: Handle::create("condition", COND_LAYOUT, 0, |_: &RawCondition| {})?,
            lock,
        })
    }

    fn raw_lock(&self) -> &RawLock {
        match &self.lock {
            CondLock::Lock(l) => l.raw(),
            CondLock::RLock(l) => l.raw(),
        }
    }

    fn guard(&self, heir: bool) -> ConditionGuard<'_> {
        ConditionGuard {
            cond: self,
            held: true,
            heir,
            _not_send: PhantomData,
        }
    }

    fn take(&self, d: Option<Instant>) -> Result<Acquired, LockError> {
        match &self.lock {
            CondLock::Lock(l) => l.raw().lock(&ENV, d),
            CondLock::RLock(l) => l.raw().rlock(&ENV, d),
        }
    }

    fn try_take(&self) -> Result<Acquired, LockError> {
        match &self.lock {
            CondLock::Lock(l) => l.raw().try_lock(&ENV),
            CondLock::RLock(l) => l.raw().try_rlock(&ENV),
        }
    }

    lock_forms!(ConditionGuard<'_>);
}

impl Condition {
    /// Wait for a notification with the lock already held by the caller (who
    /// took it through its own `Lock`/`RLock` handle and keeps holding it
    /// after): for bindings whose callers pair acquire and release
    /// themselves, as Python's `with cond: cond.wait()` does. `Ok(false)`
    /// when `timeout` passed without a notification.
    pub fn wait_held(&self, timeout: Option<Duration>) -> Result<bool, WaitError> {
        let mut g = self.guard(false);
        let r = g.wait_by(timeout.and_then(deadline));
        // The caller still holds the lock (or lost it for good with
        // `NotRecoverable`): the guard must not release it.
        std::mem::forget(g);
        r
    }

    /// [`wait_held`](Self::wait_held), calling `interrupted` between sleeps
    /// of at most `every` (a binding checks for signals this way, so that
    /// Ctrl-C works); when it returns `true` the wait ends with
    /// [`WaitError::Interrupted`], the lock held again.
    pub fn wait_held_interruptible(
        &self,
        timeout: Option<Duration>,
        every: Duration,
        interrupted: impl FnMut() -> bool,
    ) -> Result<bool, WaitError> {
        let mut g = self.guard(false);
        let r = g.wait_until(timeout.and_then(deadline), every, interrupted);
        // As in `wait_held`: the caller keeps the lock.
        std::mem::forget(g);
        r
    }

    /// Wake up to `n` waiters; the caller holds the lock.
    pub fn notify_held(&self, n: u32) {
        self.cond.get().notify(&ENV, n);
    }
}

/// What a holder of the condition's lock may do besides waiting, the same
/// for [`ConditionGuard`] and [`AsyncConditionGuard`] (each has `cond`).
macro_rules! holder_methods {
    () => {
        /// Wake up to `n` waiters (blocking or async).
        pub fn notify(&self, n: u32) {
            self.cond.notify_held(n);
        }

        /// Wake every waiter.
        pub fn notify_all(&self) {
            self.cond.notify_held(u32::MAX);
        }

        /// After an owner died: the data is repaired.
        pub fn mark_consistent(&self) {
            self.cond.raw_lock().mark_consistent();
        }
    };
}

impl ConditionGuard<'_> {
    fn release_for_wait(&self) -> u32 {
        let raw = self.cond.raw_lock();
        match &self.cond.lock {
            CondLock::Lock(_) => {
                let _ = raw.unlock(&ENV);
                1
            }
            CondLock::RLock(_) => raw.runlock_all(&ENV).unwrap_or(1),
        }
    }

    fn wait_by(&mut self, d: Option<Instant>) -> Result<bool, WaitError> {
        self.wait_until(d, Duration::MAX, || false)
    }

    fn wait_until(
        &mut self,
        d: Option<Instant>,
        every: Duration,
        interrupted: impl FnMut() -> bool,
    ) -> Result<bool, WaitError> {
        let raw_cond = self.cond.cond.get();
        let ticket = raw_cond.prepare();
        let depth = self.release_for_wait();
        let parked = raw_cond.park_interruptible(&ENV, ticket, d, every, interrupted);
        let notified = parked == Parked::Notified;
        let raw = self.cond.raw_lock();
        match raw.lock(&ENV, None) {
            Ok(how) => {
                if matches!(self.cond.lock, CondLock::RLock(_)) {
                    raw.restore(&ENV, depth);
                }
                if how == Acquired::OwnerDied {
                    return Err(WaitError::OwnerDied);
                }
                if parked == Parked::Interrupted {
                    return Err(WaitError::Interrupted);
                }
                Ok(notified)
            }
            Err(_) => {
                self.held = false;
                Err(WaitError::NotRecoverable)
            }
        }
    }

    /// Release the lock, sleep until notified, re-acquire.
    pub fn wait(&mut self) -> Result<(), WaitError> {
        self.wait_by(None).map(|_| ())
    }

    /// [`wait`](Self::wait) at most `timeout`; `false` if it timed out.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<bool, WaitError> {
        self.wait_by(deadline(timeout))
    }

    /// [`wait`](Self::wait) until notified or `deadline`; `Ok(false)` when
    /// the deadline passed first.
    pub fn wait_deadline(&mut self, deadline: Instant) -> Result<bool, WaitError> {
        self.wait_by(Some(deadline))
    }

    /// Wait until `pred()` holds (checked with the lock held), at most
    /// `timeout` if given; returns the last value of `pred()`.
    pub fn wait_for(
        &mut self,
        mut pred: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool, WaitError> {
        let d = timeout.and_then(crate::deadline::after);
        loop {
            if pred() {
                return Ok(true);
            }
            if d.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            self.wait_by(d)?;
        }
    }

    holder_methods!();
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let raw = self.cond.raw_lock();
        if self.heir {
            warn_if_abandoned(raw, "a Condition's lock");
        }
        let _ = match &self.cond.lock {
            CondLock::Lock(_) => raw.unlock(&ENV),
            CondLock::RLock(_) => raw.runlock(&ENV),
        };
    }
}

// ----- async ---------------------------------------------------------------------

/// Holds a [`Condition`]'s lock in async code ([`Condition::lock_async`]);
/// releases it when dropped.
///
/// Unlike [`ConditionGuard`] it is `Send`, so futures holding it run on a
/// multi-threaded runtime: it holds the lock for the process, never as a
/// re-entrant owner (an `RLock` under the condition is taken as a plain
/// lock, so two tasks of one thread exclude each other, and this guard
/// never re-enters). The waits consume the guard and give it back, so a
/// wait dropped half-way (its future cancelled) leaves the lock released,
/// never a guard that thinks it holds a lock it gave up.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct AsyncConditionGuard<'a> {
    cond: &'a Condition,
    /// Took the lock over from a dead owner (handed out in `OwnerDied`).
    heir: bool,
}

/// A notification claimed by a waiter that has not re-taken the lock yet:
/// given back if its future is dropped meanwhile, so that another waiter
/// takes it.
struct Claimed<'a>(Option<&'a RawCondition>);

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            c.give_back(&ENV);
        }
    }
}

impl Condition {
    fn async_guard(&self, heir: bool) -> AsyncConditionGuard<'_> {
        // Held for the process, not a thread (see the guard's docs).
        self.raw_lock().disown();
        AsyncConditionGuard { cond: self, heir }
    }

    /// Take the lock, awaiting it instead of blocking the thread (any
    /// executor). A dead owner is noticed as by [`lock`](Self::lock):
    /// [`AcquireError::OwnerDied`] then holds the guard. Cancel safe: a
    /// dropped future holds no lock.
    pub async fn lock_async(
        &self,
    ) -> Result<AsyncConditionGuard<'_>, AcquireError<AsyncConditionGuard<'_>>> {
        let r = super::aio::lock(self.raw_lock(), None).await;
        super::acquired(r, |heir| self.async_guard(heir)).map_err(Waited::into_blocking)
    }

    /// [`lock_async`](Self::lock_async), waiting at most `timeout`.
    pub async fn lock_timeout_async(
        &self,
        timeout: Duration,
    ) -> Result<AsyncConditionGuard<'_>, LockTimeoutError<AsyncConditionGuard<'_>>> {
        let r = super::aio::lock(self.raw_lock(), crate::deadline::after(timeout)).await;
        super::acquired(r, |heir| self.async_guard(heir)).map_err(Waited::into_timeout)
    }
}

impl<'a> AsyncConditionGuard<'a> {
    /// Release the lock, await a notification, re-take the lock: the guard
    /// comes back (may return spuriously, as every condition wait may).
    /// Taking the lock back from a dead owner gives
    /// [`AcquireError::OwnerDied`] with the guard.
    ///
    /// Cancel safe: a dropped future leaves the lock released and consumed
    /// no notification (one it had claimed goes to another waiter).
    pub async fn wait_async(self) -> Result<Self, AcquireError<Self>> {
        self.wait_by(None).await.map(|(g, _)| g)
    }

    /// [`wait_async`](Self::wait_async), awaiting a notification at most
    /// `timeout`; the `bool` says whether one came.
    pub async fn wait_timeout_async(
        self,
        timeout: Duration,
    ) -> Result<(Self, bool), AcquireError<Self>> {
        self.wait_by(deadline(timeout)).await
    }

    /// Wait until `pred()` holds (checked with the lock held), at most
    /// `timeout` if given; the `bool` is the last value of `pred()`.
    pub async fn wait_for_async(
        self,
        mut pred: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<(Self, bool), AcquireError<Self>> {
        let d = timeout.and_then(crate::deadline::after);
        let mut g = self;
        loop {
            if pred() {
                return Ok((g, true));
            }
            if d.is_some_and(|d| Instant::now() >= d) {
                return Ok((g, false));
            }
            g = g.wait_by(d).await?.0;
        }
    }

    async fn wait_by(self, d: Option<Instant>) -> Result<(Self, bool), AcquireError<Self>> {
        let cond = self.cond;
        let raw_cond = cond.cond.get();
        // Registered with the lock held, so a notification after this
        // cannot be missed; then the lock is released (the guard's drop).
        let waiter = raw_cond.register();
        drop(self);
        let notified = super::aio::notified(&waiter, d).await;
        drop(waiter);
        let mut claimed = Claimed(notified.then_some(raw_cond));
        let r = super::aio::lock(cond.raw_lock(), None).await;
        claimed.0 = None;
        let g = super::acquired(r, |heir| cond.async_guard(heir)).map_err(Waited::into_blocking)?;
        Ok((g, notified))
    }

    holder_methods!();
}

impl Drop for AsyncConditionGuard<'_> {
    fn drop(&mut self) {
        let raw = self.cond.raw_lock();
        if self.heir {
            warn_if_abandoned(raw, "a Condition's lock");
        }
        let _ = raw.unlock(&ENV);
    }
}
