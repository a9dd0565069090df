//! Waits registered here and slept on elsewhere: the bridge for waiters
//! that cannot block their thread (an async task, whose sleep is a helper
//! thread's futex wait).
//!
//! Every blocking wait in this crate has the same three steps: *register*
//! (so that notifiers know to wake), *re-check* the condition, and *sleep*
//! on a word while it holds the value read at registration. A [`Watch`] is
//! the first step done and the third left to the caller: it names the word
//! and the value, keeps the registration while it lives, and ends it when
//! dropped. The caller re-checks by trying its operation once more after
//! [`watch`](crate::RawQueue::watch)ing; if that fails, a notifier that
//! changes the condition afterwards sees the registration and changes the
//! word, so a sleep on ([`word`](Watch::word), [`seen`](Watch::seen))
//! cannot miss it: the Dekker pair of the blocking waits, unchanged.
//!
//! One thing is the caller's: a notifier may wake only some waiters (a put
//! wakes one consumer). A watcher that was woken and then gives up without
//! trying again (a cancelled future) must pass the wake-up on, by waking one
//! more sleeper on the word, or that sleeper waits for its next liveness
//! check instead.

use std::time::Instant;

use crate::env::{self, Env};
use crate::sync::{AtomicU32, Ordering};

/// A registered wait (see the [module docs](self)): sleep on
/// [`word`](Self::word) while it holds [`seen`](Self::seen). Dropping it
/// deregisters.
#[derive(Debug)]
#[must_use = "dropping a watch deregisters it"]
pub struct Watch<'a> {
    word: &'a AtomicU32,
    seen: u32,
    covered: bool,
    /// The sleeper count to give back when dropped (`None`: the object keeps
    /// no count, e.g. a lock's waiters bit).
    count: Option<&'a AtomicU32>,
}

impl<'a> Watch<'a> {
    pub(crate) fn new(
        word: &'a AtomicU32,
        seen: u32,
        covered: bool,
        count: Option<&'a AtomicU32>,
    ) -> Self {
        Watch {
            word,
            seen,
            covered,
            count,
        }
    }

    /// The futex word to sleep on.
    pub fn word(&self) -> &'a AtomicU32 {
        self.word
    }

    /// The value to sleep while the word holds.
    pub fn seen(&self) -> u32 {
        self.seen
    }

    /// Whether the word has changed since registration (the wait is over,
    /// perhaps spuriously: try the operation again).
    pub fn changed(&self) -> bool {
        // SYNC POINT: read. Acquire pairs with the notifiers' Release
        // change of the word, as in the blocking waits.
        self.word.load(Ordering::Acquire) != self.seen
    }

    /// Until when to sleep before looking again, given the caller's
    /// `deadline`: never past a liveness check (a notifier can die between
    /// its change and its wake-up), nor past an uncovered waiter's re-check
    /// ([`Env::heavy_barrier`]).
    pub fn until<E: Env + ?Sized>(&self, env: &E, deadline: Option<Instant>) -> Option<Instant> {
        let slice = env::slice(env, deadline);
        if self.covered {
            slice
        } else {
            let recheck = env.now() + env::UNCOVERED_RECHECK;
            slice.map(|s| s.min(recheck))
        }
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if let Some(count) = self.count {
            // Ordering::Relaxed: a count, as in `EventCount::cancel`; a stale
            // count costs a needless wake, never a lost one.
            count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
