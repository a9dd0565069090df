//! A counting semaphore, optionally bounded.
//!
//! | field     | meaning |
//! |-----------|---------|
//! | `value`   | permits available (the futex word) |
//! | `sleepers`| processes inside `acquire`'s slow path; `release` skips the wake syscall when 0 |
//! | `max`     | bound for `BoundedSemaphore` (0: unbounded) |
//!
//! The sleeper count and the value form a Dekker pair: an acquirer
//! increments `sleepers`, then a `SeqCst` fence, then reads `value`; a
//! releaser increments `value`, then a `SeqCst` fence, then reads
//! `sleepers`. The fences order the two, so at least one side sees the other
//! and no wake-up is lost. The kernel re-checks `value == 0` inside
//! the futex wait, closing the remaining window.
//!
//! Permits are not owned: as in Python, one process may acquire and another
//! release, so a permit held by a process that dies is not given back (there
//! is no way to know which permit was "its"). This is the documented
//! difference from System V's `SEM_UNDO`.

use std::time::Instant;

use crate::env::{self, Env};
use crate::sync::{AtomicU32, Ordering, fence};
use crate::watch::Watch;

/// A semaphore's shared state (16 bytes).
#[derive(Debug)]
#[repr(C)]
pub struct RawSemaphore {
    value: AtomicU32,
    sleepers: AtomicU32,
    max: AtomicU32,
    _reserved: AtomicU32,
}

/// A release would exceed a bounded semaphore's initial value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverRelease;

impl RawSemaphore {
    /// A semaphore with `value` permits; `bounded` caps releases at `value`.
    pub fn new(value: u32, bounded: bool) -> Self {
        let s = RawSemaphore {
            value: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            max: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
        };
        s.init(value, bounded);
        s
    }

    /// Initialize zeroed shared memory (before the segment is published).
    pub fn init(&self, value: u32, bounded: bool) {
        // Ordering::Relaxed: published by the segment header's Release.
        self.value.store(value, Ordering::Relaxed);
        self.max
            .store(if bounded { value } else { 0 }, Ordering::Relaxed);
    }

    /// Take a permit if one is available.
    pub fn try_acquire(&self) -> bool {
        let mut v = self.value.load(Ordering::Relaxed);
        while v > 0 {
            // SYNC POINT: read. Acquire pairs with the Release half of the
            // SeqCst add in `release`.
            match self
                .value
                .compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    /// Take a permit, sleeping until `deadline`. `false` on timeout.
    pub fn acquire<E: Env + ?Sized>(&self, env: &E, deadline: Option<Instant>) -> bool {
        if self.try_acquire() || env::spin_until(env, || self.try_acquire()) {
            return true;
        }
        // Dekker: announce, fence, then look (see module docs).
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let got = loop {
            if self.value.load(Ordering::Relaxed) > 0 && self.try_acquire() {
                break true;
            }
            if !env.wait(&self.value, 0, deadline) || env::expired(env, deadline) {
                break self.try_acquire();
            }
        };
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
        got
    }

    /// Register an acquirer that sleeps elsewhere ([`Watch`], on the value
    /// while it is 0); then [`try_acquire`](Self::try_acquire) once more
    /// before sleeping. An acquirer woken that does not try again passes
    /// the wake-up on (see [`watch`](crate::watch)): `release` wakes only
    /// `n` sleepers.
    pub fn watch(&self) -> Watch<'_> {
        // Dekker with `release`, as in `acquire`: announce, fence, look.
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Watch::new(&self.value, 0, true, Some(&self.sleepers))
    }

    /// Give back `n` permits.
    pub fn release<E: Env + ?Sized>(&self, env: &E, n: u32) -> Result<(), OverRelease> {
        let max = self.max.load(Ordering::Relaxed);
        let mut v = self.value.load(Ordering::Relaxed);
        loop {
            let next = v.checked_add(n).ok_or(OverRelease)?;
            if max != 0 && next > max {
                return Err(OverRelease);
            }
            // SYNC POINT: write. Release pairs with the Acquire CAS in
            // `try_acquire`.
            match self
                .value
                .compare_exchange_weak(v, next, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        // Dekker: the fence orders our store to `value` before the load of
        // `sleepers`, against the acquirer's fence in the other order.
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            env.wake(&self.value, n);
        }
        Ok(())
    }

    /// Permits available now (a snapshot; Python's `get_value()`).
    pub fn value(&self) -> u32 {
        self.value.load(Ordering::Relaxed)
    }

    /// The bound of a bounded semaphore.
    pub fn max(&self) -> Option<u32> {
        match self.max.load(Ordering::Relaxed) {
            0 => None,
            m => Some(m),
        }
    }
}
