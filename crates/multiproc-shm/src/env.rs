//! What the algorithms need from the outside world, as parameters: waiting
//! and waking on a word, the caller's identity, and whether a process is
//! dead. `multiproc` supplies shared futexes and `/proc`; the loom models
//! supply a condition variable and threads that stand in for processes.

use std::time::Instant;

use crate::sync::AtomicU32;

/// The caller: process and thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Me {
    /// Process id (1..2³⁰).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// The low 32 bits of the process's start time, to tell it apart from a
    /// later process with the same pid; 0 when unknown.
    pub start: u32,
}

/// Wait/wake and liveness, supplied by the caller.
pub trait Env {
    /// Sleep while `word == expected`, until woken or `deadline`. Returns
    /// `false` only when the deadline passed. May return `true` spuriously.
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool;
    /// Wake up to `n` sleepers on `word`.
    fn wake(&self, word: &AtomicU32, n: u32);
    /// Whether process `pid` is certainly dead. `start` is its recorded
    /// start time, when known (`Some(0)` is a recorded "unknown" and must be
    /// treated like `None`). Must never report a live process dead.
    fn is_dead(&self, pid: u32, start: Option<u32>) -> bool;
    /// The caller's identity.
    fn me(&self) -> Me;
    /// The current instant, on the clock deadlines are measured with. The
    /// algorithms never read a clock themselves, so a model can supply a
    /// clock of its own and check what a deadline does.
    fn now(&self) -> Instant;
    /// Sleep for `d` (short settles only; waiting is [`wait`](Self::wait)).
    fn sleep(&self, d: std::time::Duration);
    /// Give the CPU to another thread (the back-off of a short spin).
    fn yield_now(&self);
    /// A named point inside an operation where fault-injection tests stop
    /// or kill the process (`put.half`, `get.committed`, …). Does nothing
    /// by default.
    fn failpoint(&self, _name: &'static str) {}
    /// Whether any failpoint is armed (lets hot paths skip work that only
    /// matters to a failpoint). `false` by default.
    fn failpoints_armed(&self) -> bool {
        false
    }
    /// The hot side of a Dekker pair (a notifier: store the condition,
    /// barrier, load the sleeper count). `true`: a compiler barrier is
    /// enough, because every waiter's [`heavy_barrier`](Self::heavy_barrier)
    /// runs a full barrier on this process's CPUs (`membarrier(2)`).
    /// `false` by default: notifiers run a full fence.
    fn light_barriers(&self) -> bool {
        false
    }
    /// The rare side of a Dekker pair (a waiter: store the sleeper count,
    /// barrier, load the condition). Returns whether it also covers
    /// notifiers that use [light barriers](Self::light_barriers); a waiter
    /// that is not covered re-checks its condition every
    /// [`UNCOVERED_RECHECK`] while it sleeps. By default a full fence, which
    /// covers every notifier when no environment uses light barriers.
    fn heavy_barrier(&self) -> bool {
        crate::sync::fence(crate::sync::Ordering::SeqCst);
        true
    }
}

/// How often a waiter whose [`Env::heavy_barrier`] could not cover light
/// notifiers wakes to re-check its condition (a missed wake-up costs at
/// most this long).
pub const UNCOVERED_RECHECK: std::time::Duration = std::time::Duration::from_millis(10);

/// How long a waiter sleeps before it checks whether the process it waits
/// for is still alive. Owner death is noticed within about this long.
pub const LIVENESS_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// The end of the next sleep: the deadline, or the next liveness check if
/// sooner.
pub(crate) fn slice<E: Env + ?Sized>(env: &E, deadline: Option<Instant>) -> Option<Instant> {
    let check = env.now() + LIVENESS_CHECK;
    Some(deadline.map_or(check, |d| d.min(check)))
}

/// The instant `d` from now; `None` when that overflows (`Duration::MAX`
/// means "never").
pub(crate) fn after<E: Env + ?Sized>(env: &E, d: std::time::Duration) -> Option<Instant> {
    env.now().checked_add(d)
}

/// Whether `deadline` has passed.
pub(crate) fn expired<E: Env + ?Sized>(env: &E, deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| env.now() >= d)
}

/// Spin a little before parking: a hand-off between cores takes well under
/// a microsecond, a futex sleep and wake several. Bounded, so a spinner never
/// burns a time slice on a 2-vCPU machine.
/// Iterations of the spin before parking.
const SPIN_LIMIT: u32 = 96;
/// The first iterations are a `pause` (tens of ns); the rest yield the CPU
/// (a `sched_yield`, a fraction of a µs), which also keeps a vCPU from
/// halting: waking a halted vCPU costs several µs.
const PAUSES: u32 = 32;

pub(crate) fn spin_until<E: Env + ?Sized>(env: &E, mut done: impl FnMut() -> bool) -> bool {
    // Under loom a spin only multiplies the schedules to explore.
    if cfg!(multiproc_loom) {
        return done();
    }
    for i in 0..SPIN_LIMIT {
        if done() {
            return true;
        }
        if i < PAUSES {
            core::hint::spin_loop();
        } else {
            env.yield_now();
        }
    }
    done()
}
