//! The `async` waits of the locks, semaphores and events (see
//! [`crate::aio`] for how they wait). Each takes or looks in one step
//! inside a poll, so a dropped future took nothing (a dropped lock future
//! holds no lock, a dropped acquire no permit).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use multiproc_shm::{Acquired, LockError, RawEvent, RawLock, RawSemaphore};

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
