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

/// One word for [`wait_any`]: its address and the value to sleep on.
///
/// It holds the address only, not a borrow: the kernel reads the word when
/// the wait begins and after that only compares keys, so a word that was
/// unmapped in the meantime makes the wait fail (`EFAULT`, reported as
/// [`WaitAny::Changed`]) or sleep on whatever is mapped there now until
/// woken; neither touches memory from user space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    addr: usize,
    expected: u32,
}

impl Watched {
    /// Sleep while `*word == expected`.
    pub fn new(word: &AtomicU32, expected: u32) -> Watched {
        Watched {
            addr: word as *const AtomicU32 as usize,
            expected,
        }
    }

    /// The word's address (a key, never dereferenced here).
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// The value slept on.
    pub fn expected(&self) -> u32 {
        self.expected
    }
}

/// How a [`wait_any`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitAny {
    /// The word at this index was woken.
    Woken(usize),
    /// A word did not hold its value when the wait began (or could not be
    /// read), or a signal interrupted the wait: look at every word again.
    Changed,
    /// The deadline passed.
    TimedOut,
    /// The kernel has no `futex_waitv` (Linux before 5.16).
    Unsupported,
}

/// `futex_waitv(2)`: sleep until any of `words` is woken, or one of them
/// does not hold its expected value, or `deadline`. At most 128 words
/// (more: `Changed` at once, with nothing waited for). Shared futexes, as
/// [`wait`].
pub fn wait_any(words: &[Watched], deadline: Option<Instant>) -> WaitAny {
    use futex::{Wait, WaitFlags, WaitPtr, WaitvFlags};
    const MAX: usize = 128;
    if words.is_empty() || words.len() > MAX {
        return WaitAny::Changed;
    }
    let mut waits = [Wait::new(); MAX];
    for (w, x) in waits.iter_mut().zip(words) {
        w.val = u64::from(x.expected);
        w.uaddr = WaitPtr::new(x.addr as *mut std::ffi::c_void);
        w.flags = WaitFlags::SIZE_U32;
    }
    // futex_waitv takes an absolute time on the clock it is given: the
    // monotonic clock now, plus what is left until the deadline (Instant is
    // that clock on Linux, so the sum is the deadline itself).
    let timeout = match deadline {
        None => None,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return WaitAny::TimedOut;
            }
            let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
            let now = Duration::new(
                u64::try_from(now.tv_sec).unwrap_or(0),
                u32::try_from(now.tv_nsec).unwrap_or(0),
            );
            Some(timespec(now.saturating_add(left)))
        }
    };
    match futex::waitv(
        &waits[..words.len()],
        WaitvFlags::empty(),
        timeout.as_ref(),
        rustix::time::ClockId::Monotonic,
    ) {
        Ok(i) => WaitAny::Woken(i),
        Err(Errno::TIMEDOUT) => WaitAny::TimedOut,
        Err(Errno::NOSYS) => WaitAny::Unsupported,
        Err(_) => WaitAny::Changed,
    }
}

/// `FUTEX_WAKE` on a word known only by its address (a [`Watched`] whose
/// word may be gone): wakes up to `n` waiters there. An address that is no
/// longer mapped is an error the kernel reports, ignored here; one mapped
/// to something else gets a spurious wake-up, which every futex user
/// tolerates.
pub fn wake_watched(w: Watched, n: u32) {
    let n = n.min(i32::MAX as u32);
    // SAFETY: FUTEX_WAKE only hands the address to the kernel, which looks
    // it up in this process's mappings and fails with EFAULT if there is
    // none; no user-space access happens, so a dangling address is not a
    // memory-safety problem. The arguments other than op, flags and count
    // are ignored by FUTEX_WAKE.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            w.addr as *const u32,
            libc::FUTEX_WAKE,
            n as libc::c_int,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    let _ = r;
}
