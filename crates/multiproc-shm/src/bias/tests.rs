//! Unit tests of the biased lock: hand-offs, revocation, owner death,
//! and the counters that show which path each acquire took.

use super::*;
use std::sync::atomic::{AtomicU64 as StdU64, Ordering as O};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// A futex modelled by one mutex and condition variable (as in the
/// protocol models), with deadlines.
#[derive(Default)]
struct Futex {
    m: Mutex<()>,
    cv: Condvar,
}

/// Threads standing in for processes. `dead` is a bit set of pids
/// (< 64) that `is_dead` reports dead.
#[derive(Clone)]
struct TestEnv {
    futex: Arc<Futex>,
    dead: Arc<StdU64>,
    pid: u32,
    light: bool,
    covered: bool,
}

impl TestEnv {
    /// Process `pid` (its one thread has tid `pid`), full fences.
    fn new(pid: u32) -> Self {
        TestEnv {
            futex: Arc::default(),
            dead: Arc::default(),
            pid,
            light: false,
            covered: true,
        }
    }
    /// Another process sharing the futex and the death records.
    fn other(&self, pid: u32) -> Self {
        TestEnv {
            pid,
            ..self.clone()
        }
    }
    fn kill(&self, pid: u32) {
        self.dead.fetch_or(1 << pid, O::SeqCst);
    }
}

// The one place these tests read the real clock, sleep or yield: the
// env, as `multiproc`'s production env does. The lock only calls these
// methods.
impl Env for TestEnv {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
        let g = self.futex.m.lock().unwrap();
        if word.load(O::SeqCst) != expected {
            return true;
        }
        match deadline {
            None => drop(self.futex.cv.wait(g).unwrap()),
            Some(d) => {
                let now = self.now();
                if now >= d {
                    return false;
                }
                let (_g, r) = self.futex.cv.wait_timeout(g, d - now).unwrap();
                return !r.timed_out();
            }
        }
        true
    }
    fn wake(&self, _word: &AtomicU32, _n: u32) {
        let _g = self.futex.m.lock().unwrap();
        self.futex.cv.notify_all();
    }
    fn is_dead(&self, pid: u32, _start: Option<u32>) -> bool {
        pid < 64 && self.dead.load(O::SeqCst) & (1 << pid) != 0
    }
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, d: Duration) {
        thread::sleep(d);
    }
    fn yield_now(&self) {
        thread::yield_now();
    }
    fn me(&self) -> Me {
        Me {
            pid: self.pid,
            tid: self.pid,
            start: 7,
        }
    }
    fn light_barriers(&self) -> bool {
        self.light
    }
    fn heavy_barrier(&self) -> bool {
        fence(Ordering::SeqCst);
        self.covered
    }
}

fn id_of(e: &TestEnv) -> u64 {
    thread_id(e.me())
}

/// Lock and unlock `n` times.
fn rounds(l: &BiasLock, e: &TestEnv, n: u32) {
    for _ in 0..n {
        assert_eq!(l.lock(e, None), Ok(Acquired::Clean));
        l.unlock(e).unwrap();
    }
}

#[test]
fn fresh_lock_is_unlocked_and_unbiased() {
    let l = BiasLock::new();
    assert_eq!(core::mem::size_of::<BiasLock>(), 64);
    assert!(!l.is_locked());
    assert_eq!(l.owner(), None);
    assert_eq!(l.bias(), None);
    assert!(!l.is_inconsistent() && !l.is_not_recoverable());
}

#[test]
fn streak_grants_the_bias_and_the_fast_path_skips_the_fallback_word() {
    for light in [false, true] {
        let e = TestEnv {
            light,
            ..TestEnv::new(3)
        };
        let l = BiasLock::new();
        COUNTS.with(|c| c.set([0; 5]));
        rounds(&l, &e, BIAS_AFTER - 1);
        assert_eq!(l.bias(), None, "granted too early");
        rounds(&l, &e, 1);
        assert_eq!(l.bias(), Some(id_of(&e)));
        assert_eq!(l.bias_pid.load(O::Relaxed) & LIGHT != 0, light);
        for _ in 0..10 {
            assert_eq!(l.lock(&e, None), Ok(Acquired::Clean));
            assert!(!l.lock.is_locked(), "the fast path took the fallback lock");
            assert!(l.is_locked());
            assert_eq!(l.owner(), Some(3));
            l.unlock(&e).unwrap();
            assert!(!l.is_locked());
        }
        assert_eq!(COUNTS.with(|c| c.get()), [1, 0, 10, 0, 0]);
    }
}

#[test]
fn another_thread_revokes_and_waits_for_the_acknowledgement_to_rebias() {
    let a = TestEnv::new(3);
    let b = a.other(4);
    let l = BiasLock::new();
    rounds(&l, &a, BIAS_AFTER);
    assert_eq!(l.bias(), Some(id_of(&a)));
    COUNTS.with(|c| c.set([0; 5]));
    // B revokes A's bias, and is not biased itself while A has not
    // acknowledged it.
    rounds(&l, &b, 3 * BIAS_AFTER);
    assert_eq!(l.bias(), Some(id_of(&a) | REVOKED));
    assert_eq!(COUNTS.with(|c| c.get()), [0, 1, 0, 0, 0]);
    // A acknowledges on its next (slow) acquisition.
    assert_eq!(l.lock(&a, None), Ok(Acquired::Clean));
    assert!(l.lock.is_locked());
    assert_eq!(l.bias(), None);
    l.unlock(&a).unwrap();
    assert!(!l.is_locked());
    // Now B can be biased (after twice as many: one revocation).
    assert_eq!(l.grant_needs(), 2 * BIAS_AFTER);
    rounds(&l, &b, l.grant_needs() - 1);
    assert_eq!(l.bias(), None, "granted before the backoff");
    rounds(&l, &b, 1);
    assert_eq!(l.bias(), Some(id_of(&b)));
    assert_eq!(COUNTS.with(|c| c.get()), [1, 1, 0, 0, 0]);
}

#[test]
fn revocations_back_off_grants_but_aside_takers_do_not() {
    let a = TestEnv::new(3);
    let b = a.other(4);
    let l = BiasLock::new();
    rounds(&l, &a, BIAS_AFTER);
    assert_eq!(l.bias(), Some(id_of(&a)));
    // An occasional taker revokes, but neither backs off nor is biased.
    for _ in 0..3 * BIAS_AFTER {
        assert_eq!(l.lock_aside(&b, None), Ok(Acquired::Clean));
        l.unlock(&b).unwrap();
    }
    assert_eq!(l.grant_needs(), BIAS_AFTER);
    assert_eq!(l.bias(), Some(id_of(&a) | REVOKED));
    // A acknowledges, and is biased again after BIAS_AFTER more.
    rounds(&l, &a, BIAS_AFTER + 1);
    assert_eq!(l.bias(), Some(id_of(&a)));
    // Regular takers in turn: every revocation doubles what a grant
    // needs, up to BIAS_AFTER << BACKOFF_MAX.
    for k in 1..=BACKOFF_MAX + 2 {
        rounds(&l, &b, 1);
        assert_eq!(l.grant_needs(), BIAS_AFTER << k.min(BACKOFF_MAX));
        rounds(&l, &a, l.grant_needs() + 1);
        assert_eq!(l.bias(), Some(id_of(&a)), "round {k}");
    }
}

#[test]
fn a_dead_unacknowledged_owner_does_not_block_a_new_bias() {
    let a = TestEnv::new(3);
    let b = a.other(4);
    let l = BiasLock::new();
    rounds(&l, &a, BIAS_AFTER);
    rounds(&l, &b, 1);
    assert_eq!(l.bias(), Some(id_of(&a) | REVOKED));
    a.kill(3);
    rounds(&l, &b, l.grant_needs());
    assert_eq!(l.bias(), Some(id_of(&b)));
    assert_eq!(l.lock(&b, None), Ok(Acquired::Clean));
    assert!(!l.lock.is_locked());
    l.unlock(&b).unwrap();
}

#[test]
fn a_revoked_owner_takes_and_releases_the_fallback_lock() {
    // A's bias is revoked while A is outside: A's next lock fails the
    // first check and goes through the fallback lock, then unlock must
    // release that lock (held is 0 although the bias names A).
    let a = TestEnv::new(3);
    let b = a.other(4);
    let l = BiasLock::new();
    rounds(&l, &a, BIAS_AFTER);
    assert_eq!(l.lock(&b, None), Ok(Acquired::Clean));
    let l = Arc::new(l);
    let (l2, a2) = (l.clone(), a.clone());
    let t = thread::spawn(move || {
        assert_eq!(l2.lock(&a2, None), Ok(Acquired::Clean));
        assert!(l2.lock.is_locked());
        l2.unlock(&a2).unwrap();
    });
    // Wait until A sleeps on the fallback lock.
    let until = b.now() + Duration::from_secs(10);
    while !l.lock.has_waiters() {
        assert!(b.now() < until, "A never waited");
        b.yield_now();
    }
    l.unlock(&b).unwrap();
    t.join().unwrap();
    assert!(!l.is_locked());
}

#[test]
fn revoker_sleeps_until_the_owner_leaves() {
    let a = TestEnv::new(3);
    let b = a.other(4);
    let l = Arc::new(BiasLock::new());
    rounds(&l, &a, BIAS_AFTER);
    assert_eq!(l.lock(&a, None), Ok(Acquired::Clean));
    let left = Arc::new(StdU64::new(0));
    let (l2, left2) = (l.clone(), left.clone());
    let t = thread::spawn(move || {
        assert_eq!(l2.lock(&b, None), Ok(Acquired::Clean));
        assert_eq!(
            left2.load(O::SeqCst),
            1,
            "entered while the owner was inside"
        );
        l2.unlock(&b).unwrap();
    });
    // Wait for the revocation (the revoker then waits for us to leave).
    let until = a.now() + Duration::from_secs(10);
    while l.bias() != Some(id_of(&a) | REVOKED) {
        assert!(a.now() < until, "never revoked");
        a.yield_now();
    }
    left.store(1, O::SeqCst);
    l.unlock(&a).unwrap();
    t.join().unwrap();
    assert!(!l.is_locked());
}

#[test]
fn dead_fast_path_owner_is_reported_and_the_lock_recovers() {
    let a = TestEnv::new(7);
    let b = a.other(8);
    let l = BiasLock::new();
    rounds(&l, &a, BIAS_AFTER);
    // A enters via the fast path and dies inside.
    assert_eq!(l.lock(&a, None), Ok(Acquired::Clean));
    assert!(!l.lock.is_locked());
    a.kill(7);
    let t0 = b.now();
    assert_eq!(l.lock(&b, None), Ok(Acquired::OwnerDied));
    assert!(b.now() - t0 >= LIVENESS_CHECK_MIN);
    assert!(l.is_inconsistent());
    assert_eq!(l.bias(), None);
    l.mark_consistent();
    assert!(!l.is_inconsistent());
    l.unlock(&b).unwrap();
    assert!(!l.is_locked());
    rounds(&l, &b, l.grant_needs() + 3);
    assert_eq!(l.bias(), Some(id_of(&b)));
}

/// A dead owner is noticed after one liveness slice at least.
const LIVENESS_CHECK_MIN: Duration = Duration::from_millis(50);

#[test]
fn unrepaired_release_after_a_dead_owner_is_not_recoverable() {
    let a = TestEnv::new(7);
    let b = a.other(8);
    let l = BiasLock::new();
    rounds(&l, &a, BIAS_AFTER);
    assert_eq!(l.lock(&a, None), Ok(Acquired::Clean));
    a.kill(7);
    assert_eq!(l.lock(&b, None), Ok(Acquired::OwnerDied));
    l.unlock(&b).unwrap();
    assert!(l.is_not_recoverable());
    assert_eq!(l.lock(&b, None), Err(LockError::NotRecoverable));
    assert!(!l.is_locked());
}

#[test]
fn deadline_passes_while_a_live_owner_is_inside() {
    let a = TestEnv::new(3);
    let b = a.other(4);
    let l = BiasLock::new();
    rounds(&l, &a, BIAS_AFTER);
    assert_eq!(l.lock(&a, None), Ok(Acquired::Clean));
    let t0 = b.now();
    let d = t0 + Duration::from_millis(50);
    assert_eq!(l.lock(&b, Some(d)), Err(LockError::WouldBlock));
    assert!(b.now() >= d);
    assert!(!l.lock.is_locked(), "the fallback lock was kept");
    assert_eq!(l.bias(), Some(id_of(&a) | REVOKED));
    // The owner leaves normally; both can use the lock again.
    l.unlock(&a).unwrap();
    assert!(!l.is_locked());
    assert_eq!(l.lock(&b, Some(b.now())), Ok(Acquired::Clean));
    l.unlock(&b).unwrap();
    rounds(&l, &a, l.grant_needs());
    assert_eq!(l.bias(), Some(id_of(&a)));
}

#[test]
fn owner_death_survives_a_taker_whose_deadline_passes() {
    // C dies holding the fallback lock in the middle of a revocation
    // while A is inside its fast path. B takes the fallback lock over,
    // but its deadline passes before A leaves: the next taker must
    // still hear about C.
    let a = TestEnv::new(3);
    let b = a.other(4);
    let c = a.other(5);
    let l = BiasLock::new();
    rounds(&l, &a, BIAS_AFTER);
    assert_eq!(l.lock(&a, None), Ok(Acquired::Clean));
    assert_eq!(l.lock.lock(&c, None), Ok(Acquired::Clean));
    l.bias.store(id_of(&a) | REVOKED, O::Relaxed);
    c.kill(5);
    let d = b.now() + Duration::from_millis(50);
    assert_eq!(l.lock(&b, Some(d)), Err(LockError::WouldBlock));
    assert!(!l.lock.is_locked());
    assert!(!l.is_not_recoverable());
    l.unlock(&a).unwrap();
    assert_eq!(l.lock(&b, None), Ok(Acquired::OwnerDied));
    l.mark_consistent();
    l.unlock(&b).unwrap();
    rounds(&l, &b, 2);
    assert!(!l.is_locked());
}

#[test]
fn uncovered_heavy_barrier_still_revokes() {
    let a = TestEnv {
        light: true,
        covered: false,
        ..TestEnv::new(3)
    };
    let b = a.other(4);
    let l = BiasLock::new();
    rounds(&l, &a, BIAS_AFTER);
    assert_eq!(l.bias_pid.load(O::Relaxed) & LIGHT, LIGHT);
    assert_eq!(l.lock(&b, None), Ok(Acquired::Clean));
    assert_eq!(l.bias(), Some(id_of(&a) | REVOKED));
    l.unlock(&b).unwrap();
}

#[test]
fn threads_without_a_usable_id_are_never_biased() {
    struct NoTid(TestEnv);
    impl Env for NoTid {
        fn wait(&self, w: &AtomicU32, v: u32, d: Option<Instant>) -> bool {
            self.0.wait(w, v, d)
        }
        fn wake(&self, w: &AtomicU32, n: u32) {
            self.0.wake(w, n)
        }
        fn is_dead(&self, pid: u32, start: Option<u32>) -> bool {
            self.0.is_dead(pid, start)
        }
        fn now(&self) -> Instant {
            self.0.now()
        }
        fn sleep(&self, d: Duration) {
            self.0.sleep(d)
        }
        fn yield_now(&self) {
            self.0.yield_now()
        }
        fn me(&self) -> Me {
            Me {
                tid: 0,
                ..self.0.me()
            }
        }
    }
    let e = NoTid(TestEnv::new(3));
    let l = BiasLock::new();
    for _ in 0..3 * BIAS_AFTER {
        assert_eq!(l.lock(&e, None), Ok(Acquired::Clean));
        assert!(l.lock.is_locked());
        l.unlock(&e).unwrap();
    }
    assert_eq!(l.bias(), None);
}

#[test]
fn four_threads_in_bursts_exclude_each_other() {
    // Full fences on both sides (light barriers need membarrier).
    // Threads alternate bursts of locks with short sleeps, so that one
    // of them often runs alone long enough to be biased, and the others
    // revoke it, sometimes while it is inside.
    const THREADS: u32 = 4;
    const ROUNDS: u32 = 20_000;
    const BURST: u32 = 250;
    let first = TestEnv::new(1);
    let l = Arc::new(BiasLock::new());
    // Read and written with a Relaxed load and store: without mutual
    // exclusion (and the lock's ordering), increments get lost.
    let counter = Arc::new(StdU64::new(0));
    let inside = Arc::new(StdU64::new(0));
    let overlaps = Arc::new(StdU64::new(0));
    let ts: Vec<_> = (1..=THREADS)
        .map(|pid| {
            let (e, l) = (first.other(pid), l.clone());
            let (counter, inside, overlaps) = (counter.clone(), inside.clone(), overlaps.clone());
            thread::spawn(move || {
                COUNTS.with(|c| c.set([0; 5]));
                for r in 0..ROUNDS {
                    assert_eq!(l.lock(&e, None), Ok(Acquired::Clean));
                    // Counted, not asserted: a panic here would leave
                    // the lock held and the other threads hanging.
                    if inside.fetch_add(1, O::Relaxed) != 0 {
                        overlaps.fetch_add(1, O::Relaxed);
                    }
                    let v = counter.load(O::Relaxed);
                    // Stay inside a while, so that revokers find the
                    // owner there.
                    for _ in 0..32 {
                        std::hint::spin_loop();
                    }
                    counter.store(v + 1, O::Relaxed);
                    inside.fetch_sub(1, O::Relaxed);
                    l.unlock(&e).unwrap();
                    if r % BURST == BURST - 1 {
                        e.sleep(Duration::from_micros(200 * u64::from(pid)));
                    }
                }
                COUNTS.with(|c| c.get())
            })
        })
        .collect();
    let mut total = [0; 5];
    for t in ts {
        let c = t.join().unwrap();
        for i in 0..5 {
            total[i] += c[i];
        }
    }
    assert_eq!(overlaps.load(O::SeqCst), 0, "two owners at once");
    assert_eq!(counter.load(O::SeqCst), u64::from(THREADS * ROUNDS));
    assert!(!l.is_locked());
    let [grants, revokes, fast, backoffs, waited] = total;
    eprintln!(
        "grants {grants} revocations {revokes} fast paths {fast} \
         back-offs {backoffs} revokers that waited {waited}"
    );
    assert!(grants > 0 && revokes > 0 && fast > 0, "{total:?}");
}
