//! The `async` waits of the locks, semaphores, events, conditions and
//! barriers (see
//! [`crate::aio`] for how they wait). Each takes or looks in one step
//! inside a poll, so a dropped future took nothing (a dropped lock future
//! holds no lock, a dropped acquire no permit).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use multiproc_shm::{
    Acquired, BarrierStep, Broken, CondWaiter, LockError, Party, RawBarrier, RawEvent, RawLock,
    RawSemaphore,
};

use crate::aio::{Attempt, ENV, wait_until};

/// Lock `raw`, awaiting its release (and noticing a dead owner within a
/// liveness check, as the blocking lock does). `WouldBlock` only when
/// `deadline` passed.
pub(super) async fn lock(raw: &RawLock, deadline: Option<Instant>) -> Result<Acquired, LockError> {
    let attempt = |watched: bool| {
        let r = if watched {
            raw.try_lock_watched(&ENV)
        } else {
            raw.try_lock(&ENV)
        };
        match r {
            Err(LockError::WouldBlock) => Attempt::Again,
            r => Attempt::Done(r),
        }
    };
    wait_until(deadline, attempt, || raw.watch())
        .await
        .unwrap_or(Err(LockError::WouldBlock))
}

/// Take a permit of `raw`, awaiting one; `false` when `deadline` passed.
pub(super) async fn acquire(raw: &RawSemaphore, deadline: Option<Instant>) -> bool {
    let attempt = |_| {
        if raw.try_acquire() {
            Attempt::Done(())
        } else {
            Attempt::Again
        }
    };
    wait_until(deadline, attempt, || Some(raw.watch()))
        .await
        .is_some()
}

/// Await `raw`'s flag (or a `set` while waiting, as the blocking wait);
/// `false` when `deadline` passed first.
pub(super) async fn wait(raw: &RawEvent, deadline: Option<Instant>) -> bool {
    // The word seen at the last registration: a set after it counts even if
    // a clear followed.
    // (An atomic, not a `Cell`, so the future stays `Send`; `NONE`: no
    // registration yet.)
    const NONE: u64 = u64::MAX;
    let seen = AtomicU64::new(NONE);
    let attempt = |_| {
        // Ordering::Relaxed: written and read by this future only.
        let set = match seen.load(Ordering::Relaxed) {
            NONE => raw.is_set(),
            s => raw.set_since(s as u32),
        };
        if set {
            Attempt::Done(())
        } else {
            Attempt::Again
        }
    };
    let watch = || {
        let w = raw.watch()?;
        seen.store(u64::from(w.seen()), Ordering::Relaxed);
        Some(w)
    };
    wait_until(deadline, attempt, watch).await.is_some()
}

/// Await a notification for `waiter` (a condition registration made with
/// the lock held, the lock since released), claiming it; `false` when
/// `deadline` passed first. The claim is made inside one poll: a dropped
/// future claimed nothing.
pub(super) async fn notified(waiter: &CondWaiter<'_>, deadline: Option<Instant>) -> bool {
    let attempt = |_| {
        if waiter.claim() {
            Attempt::Done(())
        } else {
            Attempt::Again
        }
    };
    wait_until(deadline, attempt, || Some(waiter.watch()))
        .await
        .is_some()
}

/// A party of an async barrier wait; dropped before the wait is over (the
/// future cancelled), it leaves the barrier as if it had never arrived.
struct Withdraw<'a> {
    raw: &'a RawBarrier,
    slots: &'a [AtomicU32],
    party: Party,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        // A no-op unless the party arrived and has not left; it then takes
        // the internal lock, held by anyone only for a few instructions.
        self.raw.withdraw(&ENV, self.slots, &mut self.party);
    }
}

/// [`RawBarrier::wait`], awaiting instead of blocking: the internal lock is
/// taken by [`lock`] (never held across an `.await`), the sleeps are
/// [`notified`]'s.
pub(super) async fn barrier_wait(
    raw: &RawBarrier,
    slots: &[AtomicU32],
    deadline: Option<Instant>,
) -> Result<u32, Broken> {
    let mut me = Withdraw {
        raw,
        slots,
        party: Party::new(&ENV),
    };
    let mut slept_out = false;
    loop {
        let entered = raw.entered(lock(raw.internal_lock(), None).await);
        match raw.step(&ENV, slots, &mut me.party, deadline, entered, slept_out) {
            BarrierStep::Done(r) => return r,
            BarrierStep::Sleep { waiter, until } => {
                slept_out = !notified(&waiter, until).await;
            }
        }
    }
}
