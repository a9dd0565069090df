//! The eventcount both the queue's waits ([`Signal`](crate::queue::Signal))
//! and the condition variable ([`RawCondition`](crate::RawCondition)) are
//! built on: a sequence number to sleep on and a count of sleepers.
//!
//! # Layout (a wire format: other processes read these words)
//!
//! | offset | word | meaning |
//! |--------|------|---------|
//! | 0 | `seq` | the futex word; every notification that counts bumps it |
//! | 4 | `sleepers` | waiters between [`prepare`](EventCount::prepare) and the end of their park or [`cancel`](EventCount::cancel) |
//!
//! Eight bytes, zero when fresh. The embedding type decides alignment and
//! what follows (the queue pads each eventcount to a cache line; the
//! condition puts its token count right after it).
//!
//! # Protocol
//!
//! A waiter *registers* (`sleepers + 1`, barrier) and reads `seq` into a
//! [`Ticket`]; it then re-checks its condition and either
//! [cancels](EventCount::cancel) or sleeps on `seq` while it still holds the
//! ticket's value. A notifier changes the condition, barrier, loads
//! `sleepers`, and bumps `seq` and wakes. The two barriers form a Dekker
//! pair: either the waiter sees the change or the notifier sees the waiter,
//! and the futex compare on `seq` catches a bump that falls between the
//! waiter's read and its sleep. So no wake-up is lost.
//!
//! Two notifier forms exist, one per user:
//!
//! - [`notify_if`](EventCount::notify_if) (the queue): bumps and wakes only
//!   when someone is registered, so a put or get with nobody asleep makes no
//!   system call and writes no shared line; its barrier may be the light
//!   one ([`Env::light_barriers`]), paired with the waiter's
//!   [`Env::heavy_barrier`].
//! - [`advance`](EventCount::advance) (the condition): always bumps, with
//!   full fences on both sides, because a condition's waiter compares `seq`
//!   with the value it read under the lock long after it registered, and
//!   the condition grants wake-up tokens against the registered count first.
//!
//! Nothing here reads a clock or sleeps on its own: deadlines are checked
//! with [`Env::now`] and sleeping is [`Env::wait`].

use std::time::Instant;

use crate::env::{self, Env};
use crate::sync::{AtomicU32, Ordering, compiler_fence, fence};
use crate::watch::Watch;

/// An eventcount (8 bytes, zero when fresh; see the [module docs](self)).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct EventCount {
    seq: AtomicU32,
    sleepers: AtomicU32,
}

#[cfg(not(multiproc_loom))]
const _: () = {
    assert!(core::mem::size_of::<EventCount>() == 8);
    assert!(core::mem::offset_of!(EventCount, seq) == 0);
    assert!(core::mem::offset_of!(EventCount, sleepers) == 4);
};

/// What a waiter saw when it registered: the sequence number, and whether
/// its barrier covers notifiers that use light barriers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(crate) seen: u32,
    pub(crate) covered: bool,
}

impl EventCount {
    /// A fresh eventcount (both words zero).
    pub(crate) fn new() -> Self {
        EventCount {
            seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        }
    }

    /// Register as a sleeper with the environment's heavy barrier (the
    /// waiter's half of an asymmetric Dekker pair); then re-check the
    /// condition, and either [`cancel`](Self::cancel) or
    /// [`park`](Self::park).
    #[inline]
    pub(crate) fn prepare<E: Env + ?Sized>(&self, env: &E) -> Ticket {
        self.register(|| env.heavy_barrier())
    }

    /// [`prepare`](Self::prepare), for a waiter that sleeps elsewhere: the
    /// registration lives as long as the [`Watch`].
    pub(crate) fn watch<E: Env + ?Sized>(&self, env: &E) -> Watch<'_> {
        let t = self.prepare(env);
        Watch::new(&self.seq, t.seen, t.covered, Some(&self.sleepers))
    }

    /// A [`Watch`] on `seq` as it is now, registering nothing (the caller
    /// registered before, with [`prepare_fenced`](Self::prepare_fenced)).
    pub(crate) fn watch_seq(&self) -> Watch<'_> {
        Watch::new(&self.seq, self.seq(), true, None)
    }

    /// Register as a sleeper with a full fence, for notifiers that always
    /// run one ([`advance`](Self::advance)); the ticket is always covered.
    #[inline]
    pub(crate) fn prepare_fenced(&self) -> Ticket {
        self.register(|| {
            fence(Ordering::SeqCst);
            true
        })
    }

    #[inline]
    fn register(&self, barrier: impl FnOnce() -> bool) -> Ticket {
        // Ordering::Relaxed: ordered by the barrier, which is the waiter's
        // half of the Dekker pair with the notifiers (store sleepers,
        // barrier, load the condition or `seq`).
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        let covered = barrier();
        Ticket {
            // SYNC POINT: read. Acquire pairs with the Release bump of a
            // notifier: a waiter that sees the bump sees the condition
            // change before it.
            seen: self.seq.load(Ordering::Acquire),
            covered,
        }
    }

    /// Deregister: a waiter that found its condition true after
    /// [`prepare`](Self::prepare), or that is done waiting.
    #[inline]
    pub(crate) fn cancel(&self) {
        // Ordering::Relaxed: a count, read by notifiers only after their
        // barrier, as the other half of the Dekker pair; a stale count
        // costs a needless wake, never a lost one.
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// The sequence number now.
    #[inline]
    pub(crate) fn seq(&self) -> u32 {
        // SYNC POINT: read. Acquire pairs with the notifiers' Release bump.
        self.seq.load(Ordering::Acquire)
    }

    /// Waiters registered now (a snapshot, for notifiers' hints and
    /// diagnostics).
    #[inline]
    pub(crate) fn sleepers(&self) -> u32 {
        // Ordering::Relaxed: a snapshot; the callers that act on it run a
        // barrier first.
        self.sleepers.load(Ordering::Relaxed)
    }

    /// Sleep while `seq == seen`, until woken or `until` ([`Env::wait`]'s
    /// contract: `false` only when `until` passed; may return `true`
    /// spuriously). For waiters with a loop of their own; most use
    /// [`park`](Self::park).
    #[inline]
    pub(crate) fn wait<E: Env + ?Sized>(&self, env: &E, seen: u32, until: Option<Instant>) -> bool {
        env.wait(&self.seq, seen, until)
    }

    /// Sleep until notified after `ticket` or `deadline`, then deregister;
    /// returns whether notified. An uncovered waiter (see
    /// [`Env::heavy_barrier`]) returns after
    /// [`UNCOVERED_RECHECK`](env::UNCOVERED_RECHECK) at most, so that its
    /// caller re-checks its condition.
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
            if self.seq() != seen {
                break true;
            }
            if !self.wait(env, seen, deadline) || env::expired(env, deadline) {
                break self.seq() != seen;
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
        // The notifier's half of the Dekker pair: store condition, barrier,
        // load sleepers. The light form is only a compiler barrier: the
        // waiters' heavy barrier (membarrier) orders this side for them.
        if env.light_barriers() {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
        if self.sleepers() > 0 && worth() {
            // SYNC POINT: write. Pairs with the Acquire loads in `register`
            // and `seq`.
            self.seq.fetch_add(1, Ordering::Release);
            env.wake(&self.seq, n);
        }
    }

    /// A notification that always bumps `seq`, for waiters that compare it
    /// with a value read long before ([`prepare_fenced`](Self::prepare_fenced)
    /// under a lock). `before` runs first with the number of waiters
    /// registered (the condition grants its tokens against it, before the
    /// bump that lets waiters claim them); then `seq` is bumped, a full
    /// fence, and up to `n` sleepers woken if any are or were registered.
    pub(crate) fn advance<E: Env + ?Sized>(&self, env: &E, n: u32, before: impl FnOnce(u32)) {
        let sleepers = self.sleepers();
        before(sleepers);
        // SYNC POINT: write. Release pairs with the Acquire loads in
        // `register` and `seq`: a waiter that sees the bump sees what
        // `before` and the notifier's caller stored.
        self.seq.fetch_add(1, Ordering::Release);
        // Dekker with `prepare_fenced`: store `seq`, fence, load `sleepers`.
        fence(Ordering::SeqCst);
        if sleepers > 0 || self.sleepers() > 0 {
            env.wake(&self.seq, n);
        }
    }
}
