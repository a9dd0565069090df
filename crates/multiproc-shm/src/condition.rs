//! A condition variable for a [`RawLock`](crate::RawLock).
//!
//! The state is the crate's eventcount (`eventcount.rs`, shared with the
//! queue) and a token count. The eventcount's futex word `seq` counts
//! notifications; `tokens` counts the wake-ups that notifications granted
//! and no waiter has claimed yet. A waiter reads `seq` while holding the
//! lock ([`prepare`](RawCondition::prepare)), releases the lock, and sleeps
//! ([`park`](RawCondition::park)) until `seq` differs from what it read
//! *and* it claims a token. A notifier, which must hold the lock, grants up
//! to `n` tokens (never more than there are waiters), bumps `seq`, and
//! wakes. Since the waiter read `seq` under the lock, any
//! notification after that read changes `seq`, and the kernel's check in the
//! futex wait sees it: no wake-up is lost.
//!
//! The tokens make `notify(n)` wake at most `n` waiters even when waiters
//! wake on their own: a waiter that sleeps in slices (to check for signals,
//! or for dead processes) and finds `seq` changed goes back to sleep unless
//! it claims a token, and a waiter that gives up (a timeout, an interrupt)
//! claims none. A waiter that prepared after a notification cannot claim
//! that notification's token (its `seq` has not changed yet). A token
//! granted for a waiter that gave up at the same moment can wake a later
//! waiter spuriously, as POSIX condition variables may; `wait_for` loops on
//! its predicate.

use std::time::{Duration, Instant};

use crate::env::Env;
use crate::eventcount::EventCount;
use crate::sync::{AtomicU32, Ordering};
use crate::watch::Watch;

/// A condition's shared state (12 bytes, zero when fresh): the crate's
/// eventcount (`seq` at offset 0, `sleepers` at 4) and `tokens` at 8.
#[derive(Debug)]
#[repr(C)]
pub struct RawCondition {
    ec: EventCount,
    tokens: AtomicU32,
}

#[cfg(not(multiproc_loom))]
const _: () = {
    assert!(core::mem::size_of::<RawCondition>() == 12);
    assert!(core::mem::offset_of!(RawCondition, ec) == 0);
    assert!(core::mem::offset_of!(RawCondition, tokens) == 8);
};

impl Default for RawCondition {
    fn default() -> Self {
        Self::new()
    }
}

/// What a waiter saw when it prepared to wait.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u32);

/// How a [`park_interruptible`](RawCondition::park_interruptible) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parked {
    /// A notification woke this waiter (it claimed a token).
    Notified,
    /// The deadline passed first.
    TimedOut,
    /// The interrupt check said stop; no notification was consumed.
    Interrupted,
}

impl RawCondition {
    /// A fresh condition.
    pub fn new() -> Self {
        RawCondition {
            ec: EventCount::new(),
            tokens: AtomicU32::new(0),
        }
    }

    /// Call with the lock held, before releasing it to wait.
    pub fn prepare(&self) -> Ticket {
        // Dekker with `notify`: store `sleepers`, fence, load `seq`.
        Ticket(self.ec.prepare_fenced().seen)
    }

    /// Call after releasing the lock: sleep until notified or `deadline`.
    /// Returns whether a notification arrived.
    pub fn park<E: Env + ?Sized>(&self, env: &E, t: Ticket, deadline: Option<Instant>) -> bool {
        self.park_interruptible(env, t, deadline, Duration::MAX, || false) == Parked::Notified
    }

    /// [`park`](Self::park), sleeping at most `every` at a time and calling
    /// `interrupted` after each such slice that brought no notification;
    /// when it returns `true` the wait ends with [`Parked::Interrupted`]
    /// and claims nothing, so no notification is lost to it.
    pub fn park_interruptible<E: Env + ?Sized>(
        &self,
        env: &E,
        t: Ticket,
        deadline: Option<Instant>,
        every: Duration,
        mut interrupted: impl FnMut() -> bool,
    ) -> Parked {
        let outcome = loop {
            // Acquire (in `seq`) pairs with the notifier's Release bump.
            let seen = self.ec.seq();
            if seen != t.0 && self.claim_token() {
                break Parked::Notified;
            }
            if crate::env::expired(env, deadline) {
                break Parked::TimedOut;
            }
            let slice = crate::env::after(env, every);
            let until = match (deadline, slice) {
                (Some(d), Some(s)) => Some(d.min(s)),
                (d, s) => d.or(s),
            };
            // Sleep while `seq` is what we just saw: a notification that
            // came since is caught by the kernel's compare.
            let woken = self.ec.wait(env, seen, until);
            if !woken && slice.is_some_and(|s| until == Some(s)) && interrupted() {
                // One more look: a notification that raced the interrupt
                // is taken rather than left for nobody.
                if self.ec.seq() != t.0 && self.claim_token() {
                    break Parked::Notified;
                }
                break Parked::Interrupted;
            }
        };
        self.ec.cancel();
        outcome
    }

    /// Claim one granted wake-up, if any is left.
    fn claim_token(&self) -> bool {
        // Ordering::Relaxed: the data the notification is about is ordered
        // by the lock the waiter re-acquires; `seq`'s Acquire orders the rest.
        self.tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Wake up to `n` waiters. Call with the lock held.
    pub fn notify<E: Env + ?Sized>(&self, env: &E, n: u32) {
        self.ec.advance(env, n, |sleepers| {
            // Every waiter counted here prepared before this call (both run
            // with the lock held), so each may claim one of the tokens
            // granted now; more tokens than waiters would only wake later
            // ones spuriously. The tokens come before the bump of `seq`
            // (`advance` bumps after this): a waiter that sees the new `seq`
            // and finds no token goes to sleep on the new value, and the
            // wake may already have passed it by.
            // Ordering::Relaxed: the lock orders `sleepers`; `seq`'s Release
            // bump publishes the tokens; see `claim_token`.
            if sleepers > 0 {
                let _ = self
                    .tokens
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tok| {
                        Some(tok.saturating_add(n).min(sleepers))
                    });
            }
        });
    }

    /// [`prepare`](Self::prepare) for a waiter that sleeps elsewhere (an
    /// async task): call with the lock held, then release it. The waiter
    /// [claims](CondWaiter::claim) a notification, or sleeps on a
    /// [`watch`](CondWaiter::watch) of the sequence word and tries again;
    /// dropping it deregisters. A waiter that claimed a notification and
    /// then gives up before it re-takes the lock (a cancelled future) calls
    /// [`give_back`](Self::give_back), or that notification is lost.
    pub fn register(&self) -> CondWaiter<'_> {
        CondWaiter {
            cond: self,
            ticket: self.prepare(),
        }
    }

    /// Return a notification a waiter claimed but will not act on (it has
    /// deregistered), so that another waiter takes it (at worst a later
    /// waiter wakes spuriously, which every condition waiter allows).
    /// Needs no lock: the token is added before the bump of `seq` that lets
    /// waiters claim it, as in [`notify`](Self::notify), and never beyond
    /// the waiters registered (those owed a notification registered before
    /// it was made and are still counted, so the cap drops only surplus;
    /// with nobody registered there is nobody to give it to).
    pub fn give_back<E: Env + ?Sized>(&self, env: &E) {
        self.ec.advance(env, 1, |sleepers| {
            if sleepers > 0 {
                // Ordering::Relaxed: published by `advance`'s Release bump.
                let _ = self
                    .tokens
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                        Some(t.saturating_add(1).min(sleepers))
                    });
            }
        });
    }

    /// Waiters currently inside `prepare`..`park` (a snapshot).
    pub fn sleepers(&self) -> u32 {
        self.ec.sleepers()
    }
}

/// A condition waiter that sleeps elsewhere (see
/// [`RawCondition::register`]); dropping it deregisters.
#[derive(Debug)]
#[must_use = "dropping a waiter deregisters it"]
pub struct CondWaiter<'a> {
    cond: &'a RawCondition,
    ticket: Ticket,
}

impl<'a> CondWaiter<'a> {
    /// Claim a notification that came after registration, if one is left
    /// (the test [`park`](RawCondition::park) makes after each sleep).
    pub fn claim(&self) -> bool {
        // Acquire (in `seq`) pairs with the notifier's Release bump.
        self.cond.ec.seq() != self.ticket.0 && self.cond.claim_token()
    }

    /// The word to sleep on and its value now: sleep on it after a failed
    /// [`claim`](Self::claim), then claim again. (A notification between
    /// this read and the sleep changes the word, so the sleep ends.)
    pub fn watch(&self) -> Watch<'a> {
        self.cond.ec.watch_seq()
    }

    /// Sleep here instead, as [`RawCondition::park_interruptible`] does
    /// (which deregisters).
    pub fn park_interruptible<E: Env + ?Sized>(
        self,
        env: &E,
        deadline: Option<Instant>,
        every: Duration,
        interrupted: impl FnMut() -> bool,
    ) -> Parked {
        let (cond, ticket) = (self.cond, self.ticket);
        // The park deregisters; this waiter must not do it again.
        std::mem::forget(self);
        cond.park_interruptible(env, ticket, deadline, every, interrupted)
    }
}

impl Drop for CondWaiter<'_> {
    fn drop(&mut self) {
        self.cond.ec.cancel();
    }
}
