//! An event: a flag processes wait for.
//!
//! The futex `word` holds `generation << 1 | flag`:
//!
//! | change | by |
//! |--------|----|
//! | flag 0 → 1, generation + 1 | `set` |
//! | flag 1 → 0, generation kept | `clear` |
//!
//! A waiter that saw the flag clear returns `true` as soon as the word
//! changes at all: only a `set` can change a word whose flag is clear. So a
//! waiter asleep at the moment of a `set` returns `true` even if `clear`
//! follows at once, as Python's `Event.wait` does (the seeds' breakfast
//! program depends on it). `sleepers` lets `set` skip the wake syscall.

use std::time::Instant;

use crate::env::{self, Env};
use crate::sync::{AtomicU32, Ordering, fence};
use crate::watch::Watch;

const FLAG: u32 = 1;

/// An event's shared state (8 bytes, zero = clear).
#[derive(Debug)]
#[repr(C)]
pub struct RawEvent {
    word: AtomicU32,
    sleepers: AtomicU32,
}

impl Default for RawEvent {
    fn default() -> Self {
        Self::new()
    }
}

impl RawEvent {
    /// A clear event.
    pub fn new() -> Self {
        RawEvent {
            word: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        }
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        // SYNC POINT: read. Acquire pairs with the SeqCst swap in `set`, so
        // what the setter wrote before `set` is visible after `is_set`.
        self.word.load(Ordering::Acquire) & FLAG != 0
    }

    /// Set the flag and wake every waiter.
    pub fn set<E: Env + ?Sized>(&self, env: &E) {
        let mut v = self.word.load(Ordering::Relaxed);
        loop {
            if v & FLAG != 0 {
                return; // already set: nobody is asleep on a set flag
            }
            let next = (v | FLAG).wrapping_add(2);
            // SYNC POINT: write. Release pairs with the Acquire loads in
            // `wait` and `is_set`.
            match self
                .word
                .compare_exchange_weak(v, next, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        // Dekker with `wait`: store `word`, fence, load `sleepers`.
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            env.wake(&self.word, u32::MAX);
        }
    }

    /// Clear the flag.
    pub fn clear(&self) {
        // Ordering::Relaxed: clearing publishes nothing.
        self.word.fetch_and(!FLAG, Ordering::Relaxed);
    }

    /// Register a waiter that sleeps elsewhere ([`Watch`]); `None` when the
    /// flag is set. When the watch's word changes, ask
    /// [`set_since`](Self::set_since) with its [`seen`](Watch::seen).
    pub fn watch(&self) -> Option<Watch<'_>> {
        // Dekker with `set`, as in `wait`: store `sleepers`, fence, load.
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let w = Watch::new(
            &self.word,
            self.word.load(Ordering::Acquire),
            true,
            Some(&self.sleepers),
        );
        (w.seen() & FLAG == 0).then_some(w)
    }

    /// Whether the flag is set now, or was set after the word held `seen`
    /// (a `set` followed by a `clear` counts, as in [`wait`](Self::wait)).
    pub fn set_since(&self, seen: u32) -> bool {
        // SYNC POINT: read, pairs with `set`. Each set adds 2 to the bits
        // above the flag; a clear changes only the flag.
        let now = self.word.load(Ordering::Acquire);
        now & FLAG != 0 || (now ^ seen) & !FLAG != 0
    }

    /// Wait until the flag is set (or was set while waiting), or `deadline`.
    pub fn wait<E: Env + ?Sized>(&self, env: &E, deadline: Option<Instant>) -> bool {
        // SYNC POINT: read, pairs with `set`.
        let seen = self.word.load(Ordering::Acquire);
        if seen & FLAG != 0 {
            return true;
        }
        if env::spin_until(env, || self.word.load(Ordering::Acquire) != seen) {
            return true;
        }
        // Dekker with `set`: store `sleepers`, fence, load `word`.
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let result = loop {
            if self.word.load(Ordering::Acquire) != seen {
                break true;
            }
            if !env.wait(&self.word, seen, deadline) || env::expired(env, deadline) {
                break self.word.load(Ordering::Acquire) != seen;
            }
        };
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
        result
    }
}
