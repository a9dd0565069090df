//! The queue's eventcount: a sequence number to sleep on and a count of
//! sleepers, so a notifier wakes only when someone sleeps.

use std::time::Instant;

use crate::env::{self, Env};
use crate::sync::{AtomicU32, Ordering, compiler_fence, fence};

/// An eventcount: a sequence number to sleep on and a count of sleepers.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct Signal {
    pub(crate) seq: AtomicU32,
    pub(crate) sleepers: AtomicU32,
}

impl Signal {
    pub(crate) fn new() -> Self {
        Signal {
            seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        }
    }

    /// Register as a sleeper; then re-check the condition, and either
    /// [`cancel`](Self::cancel) or [`park`](Self::park).
    #[inline]
    pub(crate) fn prepare<E: Env + ?Sized>(&self, env: &E) -> Ticket {
        // Ordering::Relaxed: ordered by the barrier, which is one half of the
        // Dekker pair with `notify` (store sleepers, barrier, load
        // condition). The waiter's half is the heavy one (Env docs).
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        let covered = env.heavy_barrier();
        Ticket {
            // SYNC POINT: read. Acquire pairs with the Release bump in
            // `notify`: a waiter that sees the bump sees the condition
            // change before it.
            seen: self.seq.load(Ordering::Acquire),
            covered,
        }
    }

    #[inline]
    pub(crate) fn cancel(&self) {
        // Ordering::Relaxed: a count, read only as a hint by notifiers.
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sleep until notified after `ticket` or `deadline`; whether notified.
    /// An uncovered waiter (see [`Env::heavy_barrier`]) returns after
    /// [`UNCOVERED_RECHECK`] at most, so that its caller re-checks.
    pub(crate) fn park<E: Env + ?Sized>(
        &self,
        env: &E,
        ticket: Ticket,
        deadline: Option<Instant>,
    ) -> bool {
        let deadline = if ticket.covered {
            deadline
        } else {
            let recheck = env.now() + env::UNCOVERED_RECHECK;
            Some(deadline.map_or(recheck, |d| d.min(recheck)))
        };
        let seen = ticket.seen;
        let notified = loop {
            if self.seq.load(Ordering::Acquire) != seen {
                break true;
            }
            if !env.wait(&self.seq, seen, deadline) || env::expired(env, deadline) {
                break self.seq.load(Ordering::Acquire) != seen;
            }
        };
        self.cancel();
        notified
    }

    /// Call after changing the condition: wake up to `n` sleepers, making no
    /// system call when there are none.
    #[inline]
    pub(crate) fn notify<E: Env + ?Sized>(&self, env: &E, n: u32) {
        self.notify_if(env, n, || true);
    }

    /// [`notify`](Self::notify), but with sleepers, wake them only if
    /// `worth` says the change is worth a wake-up. A `worth` that says no
    /// must say yes to some later change before the sleepers' condition can
    /// hold, or a wake-up is lost.
    #[inline]
    pub(crate) fn notify_if<E: Env + ?Sized>(&self, env: &E, n: u32, worth: impl FnOnce() -> bool) {
        // The other half of the Dekker pair: store condition, barrier, load
        // sleepers. The light form is only a compiler barrier: the waiters'
        // heavy barrier (membarrier) orders this side for them.
        if env.light_barriers() {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
        if self.sleepers.load(Ordering::Relaxed) > 0 && worth() {
            // SYNC POINT: write. Pairs with the Acquire loads in `prepare`
            // and `park`.
            self.seq.fetch_add(1, Ordering::Release);
            env.wake(&self.seq, n);
        }
    }
}

/// What [`Signal::prepare`] saw: the sequence number, and whether the
/// waiter's barrier covers light notifiers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(crate) seen: u32,
    pub(crate) covered: bool,
}
