//! The [`Env`] that connects the shared-memory algorithms to the OS: shared
//! futexes, this process's identity (cached, and reset in forked children),
//! and `/proc`-based liveness.

use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use multiproc_shm::{Env, Me};

/// This process's identity, cached as one word: pid in the low half, the low
/// 32 bits of its start time in the high half (0: unknown), or 0 when not
/// yet known. One word, so that no thread can pair this pid with another
/// process's start time (a forked child's reset, a racing first fill).
static IDENTITY: AtomicU64 = AtomicU64::new(0);
static AT_FORK: Once = Once::new();
/// The pid that registered for `membarrier` global barriers (a forked child
/// has a new pid and registers again), or `!pid` if registering failed.
static MEMBARRIER_PID: AtomicU32 = AtomicU32::new(0);

thread_local! {
    static TID: Cell<u32> = const { Cell::new(0) };
}

extern "C" fn reset_after_fork() {
    // Runs in the child, single-threaded, right after fork: only stores.
    IDENTITY.store(0, Ordering::Relaxed);
    TID.with(|t| t.set(0));
}

/// This process's pid and start time, cached (getpid is a real system call,
/// the start time a read of `/proc`).
#[inline]
fn identity() -> (u32, u32) {
    // Ordering::Relaxed: the word is self-contained; whichever thread filled
    // it wrote the same value.
    let id = IDENTITY.load(Ordering::Relaxed);
    if id != 0 {
        return (id as u32, (id >> 32) as u32);
    }
    identity_slow()
}

#[cold]
fn identity_slow() -> (u32, u32) {
    AT_FORK.call_once(|| {
        let _ = multiproc_sys::process::at_fork_child(reset_after_fork);
    });
    let pid = multiproc_sys::process::pid();
    // A failed read (at the descriptor limit, say) is retried; if it still
    // fails the start time stays 0, "unknown", and liveness checks of this
    // process fall back to its pid alone (a start time of 0 would otherwise
    // make every other process think this live one's pid was reused).
    let start = (0..3)
        .find_map(|_| multiproc_sys::process::start_time(pid))
        .map_or(0, |t| t as u32);
    IDENTITY.store(u64::from(pid) | (u64::from(start) << 32), Ordering::Relaxed);
    (pid, start)
}

/// The OS-backed environment (zero-sized).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcessEnv;

/// This process's pid, cached.
#[inline]
pub(crate) fn my_pid() -> u32 {
    identity().0
}

#[inline]
fn my_tid() -> u32 {
    TID.with(|t| {
        let tid = t.get();
        if tid != 0 {
            return tid;
        }
        let tid = multiproc_sys::process::tid();
        t.set(tid);
        tid
    })
}

impl Env for ProcessEnv {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, d: std::time::Duration) {
        std::thread::sleep(d);
    }
    fn yield_now(&self) {
        std::thread::yield_now();
    }
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
        multiproc_sys::futex::wait(word, expected, deadline) == multiproc_sys::futex::Wake::Woken
    }

    fn wake(&self, word: &AtomicU32, n: u32) {
        multiproc_sys::futex::wake(word, n);
    }

    fn is_dead(&self, pid: u32, start: Option<u32>) -> bool {
        if pid == my_pid() {
            return false;
        }
        multiproc_sys::process::liveness(pid, start) == multiproc_sys::process::Liveness::Dead
    }

    #[inline]
    fn failpoint(&self, name: &'static str) {
        crate::failpoint::hit(name);
    }

    #[inline]
    fn failpoints_armed(&self) -> bool {
        crate::failpoint::armed()
    }

    #[inline]
    fn light_barriers(&self) -> bool {
        let pid = my_pid();
        // Ordering::Relaxed: only this process writes it for its pid; the
        // registration itself is ordered by the system call.
        let v = MEMBARRIER_PID.load(Ordering::Relaxed);
        if v == pid {
            return true;
        }
        if v == !pid {
            return false;
        }
        let ok = multiproc_sys::membarrier::register();
        MEMBARRIER_PID.store(if ok { pid } else { !pid }, Ordering::Relaxed);
        ok
    }

    fn heavy_barrier(&self) -> bool {
        if multiproc_sys::membarrier::global() {
            return true;
        }
        std::sync::atomic::fence(Ordering::SeqCst);
        false
    }

    #[inline]
    fn me(&self) -> Me {
        let (pid, start) = identity();
        Me {
            pid,
            tid: my_tid(),
            start,
        }
    }
}
