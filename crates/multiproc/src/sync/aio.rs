//! The `async` waits of the locks, semaphores and events (see
//! [`crate::aio`] for how they wait). Each takes or looks in one step
//! inside a poll, so a dropped future took nothing (a dropped lock future
//! holds no lock, a dropped acquire no permit).

use std::cell::Cell;
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
    let seen: Cell<Option<u32>> = Cell::new(None);
    let attempt = |_| {
        let set = match seen.get() {
            Some(s) => raw.set_since(s),
            None => raw.is_set(),
        };
        if set {
            Attempt::Done(())
        } else {
            Attempt::Again
        }
    };
    let watch = || {
        let w = raw.watch()?;
        seen.set(Some(w.seen()));
        Some(w)
    };
    wait_until(deadline, attempt, watch).await.is_some()
}
