//! Shared futexes: wait and wake on a 32-bit word in shared memory.
//!
//! Always without `FUTEX_PRIVATE_FLAG`: a private futex is keyed by the
//! process's address space, so a waiter in another process would never be
//! woken. Timeouts are relative and measured on `CLOCK_MONOTONIC`.

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex;

/// How a [`wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Woken (possibly spuriously), or the word did not hold the expected
    /// value when the wait began.
    Woken,
    /// The deadline passed.
    TimedOut,
}

/// `FUTEX_WAIT`: sleep while `*word == expected`, until woken or `deadline`.
///
/// Signals (`EINTR`) are absorbed by returning [`Wake::Woken`]: every caller
/// re-checks its condition and the deadline in a loop.
pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake {
    let timeout = match deadline {
        None => None,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Wake::TimedOut;
            }
            Some(timespec(left))
        }
    };
    match futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref()) {
        Ok(()) | Err(Errno::AGAIN) | Err(Errno::INTR) => Wake::Woken,
        Err(Errno::TIMEDOUT) => Wake::TimedOut,
        // EFAULT/EINVAL cannot happen for a valid aligned word; treat as a
        // spurious wake-up so callers re-check rather than hang.
        Err(_) => Wake::Woken,
    }
}

/// `FUTEX_WAKE`: wake up to `n` waiters on `word`; returns how many woke.
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32);
    futex::wake(word, futex::Flags::empty(), n).unwrap_or(0)
}

fn timespec(d: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}
