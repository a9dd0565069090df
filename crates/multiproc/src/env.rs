//! The [`Env`] that connects the shared-memory algorithms to the OS: shared
//! futexes, this process's identity (cached, and reset in forked children),
//! and `/proc`-based liveness.

use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use multiproc_shm::{Env, Me};

static PID: AtomicU32 = AtomicU32::new(0);
static START: AtomicU32 = AtomicU32::new(0);
static AT_FORK: Once = Once::new();
/// The pid that registered for `membarrier` global barriers (a forked child
/// has a new pid and registers again), or `!pid` if registering failed.
static MEMBARRIER_PID: AtomicU32 = AtomicU32::new(0);

thread_local! {
    static TID: Cell<u32> = const { Cell::new(0) };
}

extern "C" fn reset_after_fork() {
    // Runs in the child, single-threaded, right after fork: only stores.
    PID.store(0, Ordering::Relaxed);
    START.store(0, Ordering::Relaxed);
    TID.with(|t| t.set(0));
}

/// The OS-backed environment (zero-sized).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcessEnv;

/// This process's pid, cached (getpid is a real system call).
pub(crate) fn my_pid() -> u32 {
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    AT_FORK.call_once(|| {
        let _ = multiproc_sys::process::at_fork_child(reset_after_fork);
    });
    let pid = multiproc_sys::process::pid();
    let start = multiproc_sys::process::start_time(pid).unwrap_or(0);
    START.store(start as u32, Ordering::Relaxed);
    PID.store(pid, Ordering::Relaxed);
    pid
}

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
        let pid = my_pid();
        Me {
            pid,
            tid: my_tid(),
            start: START.load(Ordering::Relaxed),
        }
    }
}
