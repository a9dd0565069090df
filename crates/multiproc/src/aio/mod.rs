//! Waiting without blocking a thread: the bridge from multiproc's futex
//! waits to `async` tasks.
//!
//! multiproc's objects wait on futex words in shared memory, which an async
//! runtime cannot poll. An async operation here runs the same protocol as
//! its blocking form, with the sleep moved to a helper thread:
//!
//! 1. try the operation (a `try_` call: it never waits for the condition,
//!    only, as every `try_` call does, up to 20 ms for a queue's internal
//!    lock that a stopped process holds);
//! 2. register as a waiter with the object ([`Watch`]): the sleeper count
//!    or waiters bit that notifiers look at before they wake;
//! 3. try again (the re-check of the Dekker pair: a change after this try
//!    finds the registration and changes the word);
//! 4. hand (word, value, deadline) to this process's waiter thread and
//!    return `Pending`. The thread sleeps in one `futex_waitv(2)` on every
//!    such (word, value) (up to 127, then it also polls every millisecond)
//!    and a control word of its own, and wakes the tasks on a word that was
//!    woken, or all of them when a word had changed before it slept (the
//!    kernel does not say which), or those whose deadline passed; each
//!    task goes back to 1. The helper never reads a word itself: the
//!    kernel compares, so a word unmapped meanwhile is never touched.
//!
//! # Why a helper thread
//!
//! The alternative was an eventfd per waiter in a table beside each
//! eventcount, written by the notifier. It needs a new shared layout for
//! every object, a notifier that reaches another process's eventfd
//! (`pidfd_getfd`, which needs ptrace rights), and a cost on every
//! notifier. With the helper, nothing in shared memory changes, notifiers
//! are exactly as before (a task counts as one more futex sleeper, so a
//! queue with no async waiter pays nothing), and a waiter's death is the
//! same as a blocking waiter's. The price is a thread hop on each wake-up
//! of a sleeping task; a task that finds its item without sleeping (a
//! stream) never pays it.
//!
//! # Wake-ups passed on
//!
//! A notifier may wake only some sleepers (a put wakes one getter, an
//! unlock one locker). A task woken and then dropped before it tries again
//! (its future cancelled) would swallow that wake-up, so it wakes one more
//! sleeper on the word instead; the helper does the same when it was woken
//! on a word no task waits on any more. (A loom model with a futex that
//! wakes only as many sleepers as asked checks this.) A condition's
//! notification is a token as well as a wake-up: a waiter dropped after
//! claiming one, while it re-takes the lock, gives it back
//! (`RawCondition::give_back`).
//!
//! # Cancel safety
//!
//! Each operation takes or puts in one step inside `poll`, never across an
//! `.await`: dropping a future either did the whole operation (it returned
//! `Ready`) or none of it.

mod helper;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use multiproc_shm::Watch;

use crate::env::ProcessEnv;
use helper::{Helper, Polled};

/// Tries before registering, each yielding to the runtime in between (the
/// async counterpart of the blocking waits' short spin): an item that
/// arrives within a few µs costs no thread hop.
const YIELDS: u32 = 64;

/// Sleep on a [`Watch`] until its word changes or `until` passes.
struct Sleep<'a> {
    watch: Watch<'a>,
    until: Option<Instant>,
    /// The helper and the entry's id, once registered.
    entry: Option<(&'static Helper, u64)>,
    done: bool,
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(());
        }
        match this.entry {
            None => {
                if this.watch.changed() || expired(this.until) {
                    this.done = true;
                    return Poll::Ready(());
                }
                match Helper::get().and_then(|h| {
                    let id =
                        h.register(this.watch.word(), this.watch.seen(), this.until, cx.waker())?;
                    Some((h, id))
                }) {
                    Some(entry) => this.entry = Some(entry),
                    None => {
                        // No helper to be had: yield to the runtime once,
                        // then the caller tries again (busy, never stuck,
                        // and never spinning inside one poll).
                        this.done = true;
                        cx.waker().wake_by_ref();
                    }
                }
                Poll::Pending
            }
            Some((helper, id)) => match helper.poll(id, cx.waker()) {
                Polled::Waiting => Poll::Pending,
                Polled::Fired => {
                    this.entry = None;
                    this.done = true;
                    Poll::Ready(())
                }
            },
        }
    }
}

impl Drop for Sleep<'_> {
    fn drop(&mut self) {
        // Before the watch (a field, dropped after this) deregisters.
        if let Some((helper, id)) = self.entry.take() {
            if let Some(w) = helper.cancel(id) {
                multiproc_sys::futex::wake_watched(w, 1);
            }
        }
    }
}

/// Give the runtime a turn once.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Whether `deadline` has passed.
fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// The environment the async operations register with.
pub(crate) const ENV: ProcessEnv = ProcessEnv;

/// What an attempt at an operation says.
pub(crate) enum Attempt<R> {
    /// Done (successfully or not): the result.
    Done(R),
    /// Not possible now: wait and try again.
    Again,
}

/// The loop every async operation runs (see the [module docs](self)):
/// `attempt` until it is done, sleeping on what `watch` registers in
/// between, until `deadline` (`None` when it passes first). `attempt` is
/// told whether it runs with a registration in place. `watch` returning
/// `None` means "try again at once" (the object changed while
/// registering).
pub(crate) async fn wait_until<'a, R>(
    deadline: Option<Instant>,
    mut attempt: impl FnMut(bool) -> Attempt<R>,
    mut watch: impl FnMut() -> Option<Watch<'a>>,
) -> Option<R> {
    let mut tries = 0u32;
    // After a sleep others may be asleep too: the attempt says so (a lock
    // then keeps its waiters bit, or they would wait for their liveness
    // check).
    let mut slept = false;
    loop {
        if let Attempt::Done(r) = attempt(slept) {
            return Some(r);
        }
        if expired(deadline) {
            return None;
        }
        if tries < YIELDS {
            tries += 1;
            YieldNow(false).await;
            continue;
        }
        let Some(w) = watch() else {
            YieldNow(false).await;
            continue;
        };
        // The re-check: after registering, before sleeping.
        if let Attempt::Done(r) = attempt(true) {
            return Some(r);
        }
        let until = w.until(&ENV, deadline);
        Sleep {
            watch: w,
            until,
            entry: None,
            done: false,
        }
        .await;
        slept = true;
    }
}
