//! A condition variable for a [`RawLock`](crate::RawLock).
//!
//! The futex `seq` counts notifications. A waiter reads it while holding the
//! lock ([`prepare`](RawCondition::prepare)), releases the lock, and sleeps
//! while `seq` is unchanged ([`park`](RawCondition::park)). A notifier, which
//! must hold the lock, bumps `seq` and wakes. Since the waiter read `seq`
//! under the lock, any notification after that read changes `seq`, and the
//! kernel's check in the futex wait sees it: no wake-up is lost. A waiter may
//! wake spuriously (for example `notify(1)` racing a waiter on its way to
//! sleep wakes that one and a sleeping one), as with POSIX condition
//! variables; `wait_for` loops on its predicate.

use std::time::Instant;

use crate::env::Env;
use crate::sync::{AtomicU32, Ordering, fence};

/// A condition's shared state (8 bytes, zero when fresh).
#[derive(Debug)]
#[repr(C)]
pub struct RawCondition {
    seq: AtomicU32,
    sleepers: AtomicU32,
}

impl Default for RawCondition {
    fn default() -> Self {
        Self::new()
    }
}

/// What a waiter saw when it prepared to wait.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u32);

impl RawCondition {
    /// A fresh condition.
    pub fn new() -> Self {
        RawCondition {
            seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        }
    }

    /// Call with the lock held, before releasing it to wait.
    pub fn prepare(&self) -> Ticket {
        // Dekker with `notify`: store `sleepers`, fence, load `seq`.
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Ticket(self.seq.load(Ordering::Relaxed))
    }

    /// Call after releasing the lock: sleep until notified or `deadline`.
    /// Returns whether a notification arrived.
    pub fn park<E: Env + ?Sized>(&self, env: &E, t: Ticket, deadline: Option<Instant>) -> bool {
        let notified = loop {
            // SYNC POINT: read. Acquire pairs with the notifier's Release.
            if self.seq.load(Ordering::Acquire) != t.0 {
                break true;
            }
            if !env.wait(&self.seq, t.0, deadline) || crate::env::expired(deadline) {
                break self.seq.load(Ordering::Acquire) != t.0;
            }
        };
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
        notified
    }

    /// Wake up to `n` waiters. Call with the lock held.
    pub fn notify<E: Env + ?Sized>(&self, env: &E, n: u32) {
        // SYNC POINT: write. Release pairs with the Acquire load in `park`.
        self.seq.fetch_add(1, Ordering::Release);
        // Dekker with `prepare`: store `seq`, fence, load `sleepers`.
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            env.wake(&self.seq, n);
        }
    }

    /// Waiters currently inside `prepare`..`park` (a snapshot).
    pub fn sleepers(&self) -> u32 {
        self.sleepers.load(Ordering::Relaxed)
    }
}
