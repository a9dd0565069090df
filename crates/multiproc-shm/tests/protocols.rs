//! Models of every wait/wake protocol, with threads standing in for
//! processes and a condition variable standing in for the futex.
//!
//! Under loom (`RUSTFLAGS="--cfg multiproc_loom" cargo test -p multiproc-shm
//! --test protocols --release`) every interleaving is explored and a lost
//! wake-up shows as a deadlock; without loom the same models run many times
//! on real threads.

use std::time::{Duration, Instant};

use multiproc_shm::sync::{AtomicU32, AtomicU64, Ordering};
use multiproc_shm::{
    Acquired, Env, Me, Parked, RawBarrier, RawCondition, RawEvent, RawLock, RawSemaphore, Ticket,
};

#[cfg(multiproc_loom)]
use loom::sync::{Arc, Condvar, Mutex};
#[cfg(multiproc_loom)]
use loom::thread;
#[cfg(not(multiproc_loom))]
use std::sync::{Arc, Condvar, Mutex};
#[cfg(not(multiproc_loom))]
use std::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    model_bounded(3, f);
}

/// Explore every interleaving with at most `preemptions` forced preemptions
/// (unless `LOOM_MAX_PREEMPTIONS` says otherwise); long models use fewer.
#[cfg(multiproc_loom)]
fn model_bounded(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(preemptions);
    }
    b.check(f);
}

#[cfg(not(multiproc_loom))]
fn model_bounded(_preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    for _ in 0..200 {
        f();
    }
}

/// A futex modelled by one mutex and condition variable: `wait` checks the
/// word under the mutex, `wake` notifies under it, so a wake that follows a
/// change of the word can never slip between a waiter's check and its sleep.
///
/// By default a wake wakes every sleeper (on any word): sleepers that had
/// no business waking look again and sleep on, so this explores spurious
/// wake-ups, not lost ones. With `counted` envs ([`counting_envs`]) a
/// `wake(word, n)` wakes at most `n` sleepers on `word`, as the kernel's
/// does, so a wake-up swallowed by a waiter that gives up shows as a
/// deadlock.
#[derive(Default)]
struct Futex {
    m: Mutex<Sleepers>,
    cv: Condvar,
}

/// The counted futex's sleepers: (word address, id) in arrival order, and
/// the ids a wake picked.
#[derive(Default)]
struct Sleepers {
    next: u64,
    asleep: Vec<(usize, u64)>,
    woken: Vec<u64>,
}

/// A process of the model: the shared futex, a pid, and the model's clock
/// (nanoseconds since `base`, moved only by sleeps and timed-out waits, so
/// deadlines are part of what the model explores).
struct ThreadEnv {
    futex: Arc<Futex>,
    pid: u32,
    base: Instant,
    clock: Arc<AtomicU64>,
    /// Waits whose deadline is at or before this instant time out (at
    /// once, when the word still holds the expected value) instead of
    /// sleeping: the operation's own deadline. Later deadlines (liveness
    /// slices) sleep as usual. `None`: no wait times out.
    timeouts_by: Option<Instant>,
    /// Wakes wake only as many sleepers as asked (see [`Futex`]).
    counted: bool,
}

impl ThreadEnv {
    /// This env, whose waits with a deadline at or before `by` time out.
    fn timing_out_by(mut self, by: Instant) -> Self {
        self.timeouts_by = Some(by);
        self
    }
}

impl Env for ThreadEnv {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
        let g = self.futex.m.lock().unwrap();
        if word.load(Ordering::SeqCst) != expected {
            return true;
        }
        if let (Some(d), Some(by)) = (deadline, self.timeouts_by)
            && d <= by
        {
            // Time passes to the deadline, and the wait times out.
            let ns = u64::try_from(d.saturating_duration_since(self.base).as_nanos()).unwrap();
            self.clock.fetch_max(ns, Ordering::SeqCst);
            return false;
        }
        if !self.counted {
            drop(self.futex.cv.wait(g).unwrap());
            return true;
        }
        let mut g = g;
        let id = g.next;
        g.next += 1;
        g.asleep.push((addr(word), id));
        loop {
            g = self.futex.cv.wait(g).unwrap();
            if let Some(i) = g.woken.iter().position(|&w| w == id) {
                g.woken.swap_remove(i);
                return true;
            }
        }
    }
    fn now(&self) -> Instant {
        self.base + Duration::from_nanos(self.clock.load(Ordering::SeqCst))
    }
    fn sleep(&self, d: Duration) {
        self.clock
            .fetch_add(u64::try_from(d.as_nanos()).unwrap(), Ordering::SeqCst);
        thread::yield_now();
    }
    fn yield_now(&self) {
        thread::yield_now();
    }
    fn wake(&self, word: &AtomicU32, n: u32) {
        let mut g = self.futex.m.lock().unwrap();
        if self.counted {
            let mut left = n;
            let mut i = 0;
            while left > 0 && i < g.asleep.len() {
                if g.asleep[i].0 == addr(word) {
                    let (_, id) = g.asleep.remove(i);
                    g.woken.push(id);
                    left -= 1;
                } else {
                    i += 1;
                }
            }
        }
        self.futex.cv.notify_all();
    }
    fn is_dead(&self, _pid: u32, _start: Option<u32>) -> bool {
        false
    }
    fn me(&self) -> Me {
        Me {
            pid: self.pid,
            tid: self.pid,
            start: 0,
        }
    }
}

/// Two processes (pids 1 and 2) sharing one futex.
fn two_envs() -> (ThreadEnv, ThreadEnv) {
    let mut es = envs(2);
    let e2 = es.pop().unwrap();
    (es.pop().unwrap(), e2)
}

/// A futex word's identity in the counted futex.
fn addr(word: &AtomicU32) -> usize {
    std::ptr::from_ref(word) as usize
}

/// [`envs`] whose futex wakes only as many sleepers as asked.
fn counting_envs(n: u32) -> Vec<ThreadEnv> {
    envs(n)
        .into_iter()
        .map(|mut e| {
            e.counted = true;
            e
        })
        .collect()
}

fn envs(n: u32) -> Vec<ThreadEnv> {
    let futex = Arc::new(Futex::default());
    let base = Instant::now();
    let clock = Arc::new(AtomicU64::new(0));
    (1..=n)
        .map(|pid| ThreadEnv {
            futex: futex.clone(),
            pid,
            base,
            clock: clock.clone(),
            timeouts_by: None,
            counted: false,
        })
        .collect()
}

/// The outcomes (bits) that a model's runs reached. Under loom a model
/// with a deadline checks afterwards that it explored each outcome it
/// names, so the timeout path is covered, not only allowed (real threads
/// may miss a rare one in their 200 runs, so there it is not checked).
#[derive(Clone, Default)]
struct Outcomes(std::sync::Arc<std::sync::atomic::AtomicU32>);

impl Outcomes {
    /// The run reached `outcome` (a bit).
    fn reached(&self, outcome: u32) {
        self.0
            .fetch_or(outcome, std::sync::atomic::Ordering::SeqCst);
    }
    /// Under loom: every bit of `all` was reached by some run.
    fn assert_explored(&self, all: u32) {
        if cfg!(multiproc_loom) {
            let seen = self.0.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(
                seen & all,
                all,
                "outcomes explored {seen:#b}, wanted {all:#b}"
            );
        }
    }
}

/// Outcome bits of the timed models.
const TOOK: u32 = 1;
const TIMED_OUT: u32 = 2;

#[test]
fn lock_excludes_and_hands_over() {
    model(|| {
        let lock = Arc::new(RawLock::new());
        let inside = Arc::new(AtomicU32::new(0));
        let (e1, e2) = two_envs();
        let (l2, i2) = (lock.clone(), inside.clone());
        let t = thread::spawn(move || {
            assert_eq!(l2.lock(&e2, None), Ok(Acquired::Clean));
            assert_eq!(i2.fetch_add(1, Ordering::SeqCst), 0, "two owners");
            i2.fetch_sub(1, Ordering::SeqCst);
            l2.unlock(&e2).unwrap();
        });
        assert_eq!(lock.lock(&e1, None), Ok(Acquired::Clean));
        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two owners");
        inside.fetch_sub(1, Ordering::SeqCst);
        lock.unlock(&e1).unwrap();
        t.join().unwrap();
        assert!(!lock.is_locked());
    });
}

/// A timed acquire while another process holds the lock: it either gets
/// the lock after the holder lets go, or times out, and then only once the
/// model's clock has reached its deadline; never two owners.
#[test]
fn a_timed_lock_acquire_takes_the_lock_or_times_out_at_its_deadline() {
    let outcomes = Outcomes::default();
    let seen = outcomes.clone();
    model(move || {
        let lock = Arc::new(RawLock::new());
        let inside = Arc::new(AtomicU32::new(0));
        let (e1, e2) = two_envs();
        let deadline = e1.now() + Duration::from_millis(5);
        let e1 = e1.timing_out_by(deadline);
        let (l2, i2) = (lock.clone(), inside.clone());
        let t = thread::spawn(move || {
            assert_eq!(l2.lock(&e2, None), Ok(Acquired::Clean));
            assert_eq!(i2.fetch_add(1, Ordering::SeqCst), 0, "two owners");
            i2.fetch_sub(1, Ordering::SeqCst);
            l2.unlock(&e2).unwrap();
        });
        match lock.lock(&e1, Some(deadline)) {
            Ok(acquired) => {
                assert_eq!(acquired, Acquired::Clean);
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two owners");
                inside.fetch_sub(1, Ordering::SeqCst);
                lock.unlock(&e1).unwrap();
                seen.reached(TOOK);
            }
            Err(e) => {
                assert_eq!(e, multiproc_shm::LockError::WouldBlock);
                assert!(e1.now() >= deadline, "timed out before its deadline");
                seen.reached(TIMED_OUT);
            }
        }
        t.join().unwrap();
        assert!(!lock.is_locked());
    });
    outcomes.assert_explored(TOOK | TIMED_OUT);
}

/// A timed acquire while another process holds the lock throughout: in
/// every interleaving it times out, at its deadline on the model's clock,
/// leaves the holder's lock alone, and the holder's unlock still works.
#[test]
fn a_timed_lock_acquire_times_out_while_the_holder_stays() {
    model(|| {
        let lock = Arc::new(RawLock::new());
        let (e1, e2) = two_envs();
        assert_eq!(lock.lock(&e1, None), Ok(Acquired::Clean));
        let deadline = e2.now() + Duration::from_millis(5);
        let e2 = e2.timing_out_by(deadline);
        let l2 = lock.clone();
        let t = thread::spawn(move || {
            let r = l2.lock(&e2, Some(deadline));
            (r, e2.now())
        });
        let (r, at) = t.join().unwrap();
        assert_eq!(r, Err(multiproc_shm::LockError::WouldBlock));
        assert!(at >= deadline, "timed out before its deadline");
        assert_eq!(lock.owner(), Some(1), "the holder lost the lock");
        lock.unlock(&e1).unwrap();
        assert!(!lock.is_locked());
    });
}

/// A timed semaphore acquire racing a release: it takes the permit or
/// times out at its deadline, and no permit is lost or made up.
#[test]
fn a_timed_semaphore_acquire_takes_the_permit_or_times_out_and_keeps_count() {
    let outcomes = Outcomes::default();
    let seen = outcomes.clone();
    model(move || {
        let sem = Arc::new(RawSemaphore::new(0, false));
        let (e1, e2) = two_envs();
        let deadline = e1.now() + Duration::from_millis(5);
        let e1 = e1.timing_out_by(deadline);
        let s2 = sem.clone();
        let t = thread::spawn(move || s2.release(&e2, 1).unwrap());
        let got = sem.acquire(&e1, Some(deadline));
        if got {
            seen.reached(TOOK);
        } else {
            assert!(e1.now() >= deadline, "timed out before its deadline");
            seen.reached(TIMED_OUT);
        }
        t.join().unwrap();
        assert_eq!(
            sem.value(),
            if got { 0 } else { 1 },
            "a permit lost or made up"
        );
    });
    outcomes.assert_explored(TOOK | TIMED_OUT);
}

/// Processes that are all alive, each with its own start time (pid `p`
/// started at `10 + p`): a liveness check that pairs one owner's pid with
/// another owner's start time takes a live process for a dead one.
struct LiveEnv(ThreadEnv);

impl Env for LiveEnv {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
        self.0.wait(word, expected, deadline)
    }
    fn wake(&self, word: &AtomicU32, n: u32) {
        self.0.wake(word, n)
    }
    fn is_dead(&self, pid: u32, start: Option<u32>) -> bool {
        // Alive, unless the start time says a later process reused the pid.
        start.is_some_and(|s| s != 10 + pid)
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
            start: 10 + self.0.pid,
            ..self.0.me()
        }
    }
}

/// Regression model: the lock changes hands while a taker checks whether
/// the holder is alive. Nobody dies, so nobody may take the lock over, and
/// no two threads are ever inside at once. (The owner record used to be
/// two atomics, pid and start time: a `try_lock` between the new owner's
/// two stores read the new pid with the old start time and took the lock
/// over from a live owner.)
#[test]
fn lock_changing_hands_is_never_taken_for_a_dead_owner() {
    model(|| {
        let lock = Arc::new(RawLock::new());
        let inside = Arc::new(AtomicU32::new(0));
        let mut es = envs(3).into_iter().map(LiveEnv);
        let (e1, e2, e3) = (es.next().unwrap(), es.next().unwrap(), es.next().unwrap());
        let section = |lock: &RawLock, inside: &AtomicU32, e: &LiveEnv, how: Acquired| {
            assert_eq!(how, Acquired::Clean, "a live owner was taken for dead");
            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two owners");
            inside.fetch_sub(1, Ordering::SeqCst);
            lock.unlock(e).unwrap();
        };
        let ts: Vec<_> = [e1, e2]
            .into_iter()
            .map(|e| {
                let (l, i) = (lock.clone(), inside.clone());
                thread::spawn(move || {
                    let how = l.lock(&e, None).unwrap();
                    section(&l, &i, &e, how);
                })
            })
            .collect();
        if let Ok(how) = lock.try_lock(&e3) {
            section(&lock, &inside, &e3, how);
        }
        for t in ts {
            t.join().unwrap();
        }
        assert!(!lock.is_locked());
    });
}

#[test]
fn rlock_reenters_and_refuses_strangers() {
    model(|| {
        let lock = Arc::new(RawLock::new());
        let (e1, e2) = two_envs();
        assert_eq!(lock.rlock(&e1, None), Ok(Acquired::Clean));
        assert_eq!(lock.rlock(&e1, None), Ok(Acquired::Reentered));
        let l2 = lock.clone();
        let t = thread::spawn(move || {
            assert!(l2.runlock(&e2).is_err());
            assert_eq!(l2.rlock(&e2, None), Ok(Acquired::Clean));
            l2.runlock(&e2).unwrap();
        });
        lock.runlock(&e1).unwrap();
        lock.runlock(&e1).unwrap();
        t.join().unwrap();
    });
}

#[test]
fn semaphore_wakes_a_sleeper() {
    model(|| {
        let sem = Arc::new(RawSemaphore::new(0, false));
        let (e1, e2) = two_envs();
        let s2 = sem.clone();
        let t = thread::spawn(move || assert!(s2.acquire(&e2, None)));
        sem.release(&e1, 1).unwrap();
        t.join().unwrap();
        assert_eq!(sem.value(), 0);
    });
}

#[test]
fn bounded_semaphore_refuses_over_release() {
    model(|| {
        let e = envs(1).pop().unwrap();
        let sem = RawSemaphore::new(1, true);
        assert!(sem.release(&e, 1).is_err());
        assert!(sem.try_acquire());
        assert!(!sem.try_acquire());
        sem.release(&e, 1).unwrap();
        assert!(sem.release(&e, 1).is_err());
    });
}

#[test]
fn event_set_wakes_the_waiter() {
    model(|| {
        let ev = Arc::new(RawEvent::new());
        let (e1, e2) = two_envs();
        let v2 = ev.clone();
        let t = thread::spawn(move || assert!(v2.wait(&e2, None)));
        ev.set(&e1);
        t.join().unwrap();
    });
}

#[test]
fn event_set_then_clear_still_releases_a_sleeper() {
    // The seeds' breakfast program: set() and clear() at once. A waiter
    // asleep before the set must return; one that starts after the clear
    // waits for the next set, which comes.
    model(|| {
        let ev = Arc::new(RawEvent::new());
        let (e1, e2) = two_envs();
        let v2 = ev.clone();
        let t = thread::spawn(move || assert!(v2.wait(&e2, None)));
        ev.set(&e1);
        ev.clear();
        ev.set(&e1);
        t.join().unwrap();
    });
}

#[test]
fn condition_notify_is_not_lost() {
    model(|| {
        let lock = Arc::new(RawLock::new());
        let cond = Arc::new(RawCondition::new());
        let flag = Arc::new(AtomicU32::new(0));
        let (e1, e2) = two_envs();
        let (l2, c2, f2) = (lock.clone(), cond.clone(), flag.clone());
        let t = thread::spawn(move || {
            l2.lock(&e2, None).unwrap();
            while f2.load(Ordering::Relaxed) == 0 {
                let ticket = c2.prepare();
                l2.unlock(&e2).unwrap();
                c2.park(&e2, ticket, None);
                l2.lock(&e2, None).unwrap();
            }
            l2.unlock(&e2).unwrap();
        });
        lock.lock(&e1, None).unwrap();
        flag.store(1, Ordering::Relaxed);
        cond.notify(&e1, 1);
        lock.unlock(&e1).unwrap();
        t.join().unwrap();
    });
}

/// A timed condition wait racing a notification: the waiter is notified
/// (and then sees the flag set before it), or times out at its deadline on
/// the model's clock; either way it leaves the eventcount with no sleeper
/// registered.
#[test]
fn a_timed_condition_wait_is_notified_or_times_out_at_its_deadline() {
    let outcomes = Outcomes::default();
    let seen = outcomes.clone();
    model(move || {
        let shared = Arc::new((RawLock::new(), RawCondition::new(), AtomicU32::new(0)));
        let (e1, e2) = two_envs();
        let deadline = e2.now() + Duration::from_millis(5);
        let e2 = e2.timing_out_by(deadline);
        let sh = shared.clone();
        let t = thread::spawn(move || {
            let (lock, cond, flag) = &*sh;
            lock.lock(&e2, None).unwrap();
            let mut notified = None;
            if flag.load(Ordering::Relaxed) == 0 {
                let ticket = cond.prepare();
                lock.unlock(&e2).unwrap();
                notified = Some(cond.park(&e2, ticket, Some(deadline)));
                lock.lock(&e2, None).unwrap();
            }
            let set = flag.load(Ordering::Relaxed) == 1;
            lock.unlock(&e2).unwrap();
            (notified, set, e2.now())
        });
        let (lock, cond, flag) = &*shared;
        lock.lock(&e1, None).unwrap();
        flag.store(1, Ordering::Relaxed);
        cond.notify(&e1, 1);
        lock.unlock(&e1).unwrap();
        match t.join().unwrap() {
            (None, set, _) => assert!(set, "did not wait, yet saw no flag"),
            (Some(true), set, _) => {
                assert!(set, "notified without the flag");
                seen.reached(TOOK);
            }
            (Some(false), _, at) => {
                assert!(at >= deadline, "timed out before its deadline");
                seen.reached(TIMED_OUT);
            }
        }
        assert_eq!(cond.sleepers(), 0, "a sleeper left registered");
    });
    outcomes.assert_explored(TOOK | TIMED_OUT);
}

/// Two waiters' tickets, prepared with the lock held before either parks
/// (so both are owed every notification that follows, with no spinning).
fn two_tickets(lock: &RawLock, cond: &RawCondition, e: &impl Env) -> (Ticket, Ticket) {
    lock.lock(e, None).unwrap();
    let t = (cond.prepare(), cond.prepare());
    lock.unlock(e).unwrap();
    t
}

/// `notify(n)` with the lock held.
fn notify_locked(lock: &RawLock, cond: &RawCondition, e: &impl Env, n: u32) {
    lock.lock(e, None).unwrap();
    cond.notify(e, n);
    lock.unlock(e).unwrap();
}

/// `notify(1)` wakes one waiter of two, although the model's futex wakes
/// every sleeper on any wake (waiters that wake without a notification of
/// their own, as sliced waits do, go back to sleep); the second
/// `notify(1)` wakes the other, and nothing is lost.
#[test]
fn condition_notify_one_wakes_exactly_one() {
    model(|| {
        let shared = Arc::new((RawLock::new(), RawCondition::new(), AtomicU32::new(0)));
        let (e1, e2) = two_envs();
        let (lock, cond, woken) = &*shared;
        let (t1, t2) = two_tickets(lock, cond, &e1);
        let e2 = Arc::new(e2);
        let waiters: Vec<_> = [t1, t2]
            .into_iter()
            .map(|t| {
                let (sh, e) = (shared.clone(), e2.clone());
                thread::spawn(move || {
                    assert!(sh.1.park(&*e, t, None));
                    sh.2.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        notify_locked(lock, cond, &e1, 1);
        assert!(woken.load(Ordering::SeqCst) <= 1, "notify(1) woke both");
        notify_locked(lock, cond, &e1, 1);
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(woken.load(Ordering::SeqCst), 2);
    });
}

/// A futex whose timed waits time out at once (a slice that ends before
/// anything happens), so the interrupt check runs in every interleaving.
struct SlicedEnv(ThreadEnv);

impl Env for SlicedEnv {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
        if deadline.is_some() {
            thread::yield_now();
            return false;
        }
        self.0.wait(word, expected, deadline)
    }
    fn wake(&self, word: &AtomicU32, n: u32) {
        self.0.wake(word, n)
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
        self.0.me()
    }
}

/// A waiter interrupted (Ctrl-C) while a `notify(1)` arrives either takes
/// the notification or leaves it to the other waiter: it is never lost.
#[test]
fn condition_interrupted_waiter_loses_no_notification() {
    model(|| {
        let shared = Arc::new((RawLock::new(), RawCondition::new()));
        let mut es = envs(3);
        let (e3, e2, e1) = (es.pop().unwrap(), es.pop().unwrap(), es.pop().unwrap());
        let (lock, cond) = &*shared;
        let (t1, t2) = two_tickets(lock, cond, &e1);
        let sh = shared.clone();
        let sliced = SlicedEnv(e2);
        let interrupted = thread::spawn(move || {
            sh.1.park_interruptible(&sliced, t1, None, Duration::from_millis(50), || true)
        });
        let sh = shared.clone();
        let plain = thread::spawn(move || sh.1.park(&e3, t2, None));
        notify_locked(lock, cond, &e1, 1);
        if interrupted.join().unwrap() == Parked::Notified {
            // It took the notification: the other waiter needs its own.
            notify_locked(lock, cond, &e1, 1);
        }
        assert!(plain.join().unwrap(), "the plain waiter was not notified");
    });
}

#[test]
fn barrier_releases_both_parties_with_distinct_indices() {
    model(|| {
        let b = Arc::new((RawBarrier::new(2), [AtomicU32::new(0), AtomicU32::new(0)]));
        let (e1, e2) = two_envs();
        let b2 = b.clone();
        let t = thread::spawn(move || b2.0.wait(&e2, &b2.1, None).unwrap());
        let mine = b.0.wait(&e1, &b.1, None).unwrap();
        let theirs = t.join().unwrap();
        assert_eq!(mine + theirs, 1, "indices {mine} and {theirs}");
        assert_eq!(b.0.n_waiting(), 0);
    });
}

#[test]
fn barrier_abort_breaks_a_waiter() {
    model(|| {
        let b = Arc::new((RawBarrier::new(2), [AtomicU32::new(0), AtomicU32::new(0)]));
        let (e1, e2) = two_envs();
        let b2 = b.clone();
        let t = thread::spawn(move || b2.0.wait(&e2, &b2.1, None));
        b.0.abort(&e1);
        assert!(t.join().unwrap().is_err());
        assert!(b.0.broken());
    });
}

// ----- the queue ring --------------------------------------------------------------

use multiproc_shm::queue::KIND_INLINE;
use multiproc_shm::{QueueError, RawQueue, Rec, Region, Taken};

#[cfg(multiproc_loom)]
use loom::cell::UnsafeCell;
#[cfg(not(multiproc_loom))]
use std::cell::UnsafeCell;

/// A ring of heap bytes. Under loom each byte is a tracked cell, so a read
/// that does not happen after the write it sees is reported as a data race:
/// the model checks the ring's publication, not only its wake-ups.
struct Cells {
    bytes: Vec<UnsafeCell<u8>>,
    /// The 8-byte header slots, accessed only atomically.
    headers: Vec<AtomicU64>,
}

// SAFETY: the cells are only accessed through `read`/`write` below, by the
// queue algorithm, which orders conflicting accesses with its commit words
// (and loom verifies exactly that).
unsafe impl Sync for Cells {}

impl Cells {
    fn new(cap: usize) -> Self {
        Cells {
            bytes: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
            headers: (0..cap / 8).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

// SAFETY: 64 bytes, a power of two ≥ MIN_RING; accesses are bounds-checked
// by indexing.
unsafe impl Region for Cells {
    fn capacity(&self) -> u32 {
        self.bytes.len() as u32
    }
    fn read(&self, at: u32, out: &mut [u8]) {
        for (i, o) in out.iter_mut().enumerate() {
            let c = &self.bytes[at as usize + i];
            #[cfg(multiproc_loom)]
            // SAFETY: the queue reads a byte only after the Acquire load of
            // the header whose Release store followed the byte's write, and
            // no producer writes it again before the consumer's `head`
            // store says it is free; so no write is concurrent with this
            // read (loom reports a race if one ever were).
            c.with(|p| *o = unsafe { *p });
            #[cfg(not(multiproc_loom))]
            {
                // SAFETY: the same ordering as under loom: no write to this
                // byte runs concurrently with the read.
                *o = unsafe { *c.get() };
            }
        }
    }
    fn load_header(&self, at: u32) -> u64 {
        self.headers[at as usize / 8].load(Ordering::Acquire)
    }
    fn store_header(&self, at: u32, header: u64) {
        self.headers[at as usize / 8].store(header, Ordering::Release);
    }
    fn write(&self, at: u32, src: &[u8]) {
        for (i, v) in src.iter().enumerate() {
            let c = &self.bytes[at as usize + i];
            #[cfg(multiproc_loom)]
            // SAFETY: a producer writes bytes only past `tail` under the P
            // lock, where no consumer reads (the header there is still 0)
            // and the Acquire load of `head` says earlier readers are done;
            // so this write is exclusive (loom reports a race otherwise).
            c.with_mut(|p| unsafe { *p = *v });
            #[cfg(not(multiproc_loom))]
            // SAFETY: the same ordering as under loom makes the write
            // exclusive.
            unsafe {
                *c.get() = *v;
            }
        }
    }
}

/// A queue with a 64-byte ring: records with an 8-byte body take 16 bytes,
/// and a lap holds four.
fn small_queue(maxsize: u32, joinable: bool) -> Arc<(RawQueue, Cells)> {
    Arc::new((RawQueue::new(maxsize, 1 << 20, joinable), Cells::new(64)))
}

fn put8(q: &(RawQueue, Cells), e: &ThreadEnv, v: u8) {
    q.0.put(e, &q.1, Rec::Inline(&[v; 8]), None, None).unwrap();
}

fn get8(q: &(RawQueue, Cells), e: &ThreadEnv) -> Result<u8, QueueError> {
    get8_by(q, e, None)
}

fn get8_by(
    q: &(RawQueue, Cells),
    e: &ThreadEnv,
    deadline: Option<Instant>,
) -> Result<u8, QueueError> {
    let mut buf = Vec::new();
    let mut sink = |t: Taken, _b: &mut Vec<u8>, _s: usize| {
        assert_eq!(t.kind, KIND_INLINE);
        true
    };
    q.0.get(e, &q.1, 1, deadline, &mut buf, &mut sink)?;
    assert_eq!(buf.len(), 8);
    assert!(buf.iter().all(|&b| b == buf[0]), "torn record {buf:?}");
    Ok(buf[0])
}

#[test]
fn queue_publishes_records_and_wakes_both_sides() {
    // Item limit 1: the second put waits for the first get (not_full), and
    // a get may wait for a put (not_empty). Both wake-ups must arrive and
    // every byte read must happen after it was written.
    model(|| {
        let q = small_queue(1, false);
        let (e1, e2) = two_envs();
        let q2 = q.clone();
        let t = thread::spawn(move || {
            put8(&q2, &e2, 1);
            put8(&q2, &e2, 2);
        });
        assert_eq!(get8(&q, &e1), Ok(1));
        assert_eq!(get8(&q, &e1), Ok(2));
        t.join().unwrap();
        assert!(q.0.is_empty());
    });
}

#[test]
fn queue_two_producers_lose_and_duplicate_nothing() {
    model(|| {
        let q = small_queue(0, false);
        let mut es = envs(3);
        let e3 = es.pop().unwrap();
        let e2 = es.pop().unwrap();
        let e1 = es.pop().unwrap();
        let (qa, qb) = (q.clone(), q.clone());
        let a = thread::spawn(move || put8(&qa, &e2, 1));
        let b = thread::spawn(move || put8(&qb, &e3, 2));
        let x = get8(&q, &e1).unwrap();
        let y = get8(&q, &e1).unwrap();
        assert_eq!(x + y, 3, "got {x} and {y}");
        a.join().unwrap();
        b.join().unwrap();
    });
}

#[test]
fn queue_laps_around_the_ring_in_order() {
    // Five records through a ring of four: the producer wraps (and restarts
    // laps when it finds the queue empty) while the consumer drains. The
    // longest model: two preemptions take seconds, three take minutes.
    model_bounded(2, || {
        let q = small_queue(0, false);
        let (e1, e2) = two_envs();
        let q2 = q.clone();
        let t = thread::spawn(move || {
            for v in 1..=5 {
                put8(&q2, &e2, v);
            }
        });
        for v in 1..=5 {
            assert_eq!(get8(&q, &e1), Ok(v));
        }
        t.join().unwrap();
    });
}

/// A timed get racing a put: it takes the record, or times out at its
/// deadline on the model's clock and leaves the record in the queue for
/// the next get (nothing lost to a timed-out waiter, whose registration
/// on `not_empty` is undone).
#[test]
fn a_timed_queue_get_takes_the_record_or_times_out_and_leaves_it() {
    let outcomes = Outcomes::default();
    let seen = outcomes.clone();
    model(move || {
        let q = small_queue(0, false);
        let (e1, e2) = two_envs();
        let deadline = e1.now() + Duration::from_millis(5);
        let e1 = e1.timing_out_by(deadline);
        let q2 = q.clone();
        let t = thread::spawn(move || put8(&q2, &e2, 7));
        match get8_by(&q, &e1, Some(deadline)) {
            Ok(v) => {
                assert_eq!(v, 7);
                seen.reached(TOOK);
            }
            Err(e) => {
                assert_eq!(e, QueueError::Timeout);
                assert!(e1.now() >= deadline, "timed out before its deadline");
                seen.reached(TIMED_OUT);
                t.join().unwrap();
                assert_eq!(q.0.len(), 1, "the record was lost");
                assert_eq!(get8(&q, &e1), Ok(7));
                assert_eq!(q.0.sleepers(), (0, 0), "a sleeper left registered");
                return;
            }
        }
        t.join().unwrap();
        assert!(q.0.is_empty());
        assert_eq!(q.0.sleepers(), (0, 0), "a sleeper left registered");
    });
    outcomes.assert_explored(TOOK | TIMED_OUT);
}

#[test]
fn queue_close_wakes_a_waiting_consumer() {
    model(|| {
        let q = small_queue(0, false);
        let (e1, e2) = two_envs();
        let q2 = q.clone();
        let t = thread::spawn(move || get8(&q2, &e2));
        q.0.close(&e1);
        assert_eq!(t.join().unwrap(), Err(QueueError::Closed));
    });
}

#[test]
fn queue_join_waits_for_task_done() {
    model(|| {
        let q = small_queue(0, true);
        let (e1, e2) = two_envs();
        put8(&q, &e1, 7);
        let q2 = q.clone();
        let t = thread::spawn(move || {
            assert_eq!(get8(&q2, &e2), Ok(7));
            q2.0.task_done(&e2).unwrap();
        });
        q.0.join(&e1, None, &mut Default::default()).unwrap();
        assert_eq!(q.0.task_done(&e1), Err(QueueError::TooManyTaskDone));
        t.join().unwrap();
    });
}

// ----- the biased lock --------------------------------------------------------------

use multiproc_shm::BiasLock;

/// Data only the lock orders: under loom, an access that does not happen
/// after the previous one is reported as a data race, so the models check
/// that the fast path, the revocation and the grant publish the protected
/// data, not only that they exclude each other.
struct Guarded(UnsafeCell<u32>);

// SAFETY: accessed only by the holder of the lock (and, at the end, after
// every thread joined); loom checks exactly that ordering.
unsafe impl Sync for Guarded {}

impl Guarded {
    fn new() -> Self {
        Guarded(UnsafeCell::new(0))
    }
    fn bump(&self) {
        #[cfg(multiproc_loom)]
        // SAFETY: callers hold the lock under test, which excludes every
        // other access (loom reports a race if it does not).
        self.0.with_mut(|p| unsafe { *p += 1 });
        #[cfg(not(multiproc_loom))]
        // SAFETY: callers hold the lock, which excludes every other access.
        unsafe {
            *self.0.get() += 1;
        }
    }
    fn get(&self) -> u32 {
        #[cfg(multiproc_loom)]
        // SAFETY: called after every thread joined (the joins order all
        // writes before it), so nothing writes concurrently.
        return self.0.with(|p| unsafe { *p });
        #[cfg(not(multiproc_loom))]
        // SAFETY: called after every thread joined: no concurrent writer.
        unsafe {
            *self.0.get()
        }
    }
}

type Biased = (BiasLock, AtomicU32, Guarded);

fn biased() -> Arc<Biased> {
    Arc::new((BiasLock::new(), AtomicU32::new(0), Guarded::new()))
}

/// One critical section: lock, check that nobody else is inside, touch the
/// data, unlock.
fn biased_section(s: &Biased, e: &ThreadEnv) {
    assert_eq!(s.0.lock(e, None), Ok(Acquired::Clean));
    // Ordering::Relaxed: read-modify-writes see the latest value, so the
    // count still catches two owners, but do not order anything, so they
    // cannot hide a missing happens-before from the data check.
    assert_eq!(s.1.fetch_add(1, Ordering::Relaxed), 0, "two owners");
    s.2.bump();
    s.1.fetch_sub(1, Ordering::Relaxed);
    s.0.unlock(e).unwrap();
}

#[test]
fn bias_lock_excludes_across_grants_and_revocations() {
    // Under loom BIAS_AFTER is 1: each thread's first (fallback) section
    // biases the lock to it if it is free, the other thread revokes it,
    // and a revoked thread acknowledges on its way back. Two sections
    // each: grant, fast path, revocation (racing the fast path),
    // acknowledgement and re-grant all interleave. A thread that read its
    // bias just before a revocation and stores `held` late must not
    // disturb a later owner (the acknowledgement rule; without it, this
    // model finds two owners within two preemptions).
    model(|| {
        let s = biased();
        let (e1, e2) = two_envs();
        let s2 = s.clone();
        let t = thread::spawn(move || {
            biased_section(&s2, &e2);
            biased_section(&s2, &e2);
        });
        biased_section(&s, &e1);
        biased_section(&s, &e1);
        t.join().unwrap();
        assert_eq!(s.2.get(), 4);
        assert!(!s.0.is_locked());
    });
}

#[test]
fn bias_lock_revocation_races_the_fast_path() {
    // Start biased to thread 1 (where the fast path begins), then let a
    // second thread revoke while thread 1 keeps entering: either the owner
    // backs off, or the revoker waits for it to leave (and is woken).
    model(|| {
        let s = biased();
        let (e1, e2) = two_envs();
        biased_section(&s, &e1);
        if cfg!(multiproc_loom) {
            assert!(s.0.bias().is_some(), "not biased after BIAS_AFTER sections");
        }
        let s2 = s.clone();
        let t = thread::spawn(move || biased_section(&s2, &e2));
        biased_section(&s, &e1);
        biased_section(&s, &e1);
        t.join().unwrap();
        assert_eq!(s.2.get(), 4);
        assert!(!s.0.is_locked());
    });
}

#[test]
fn bias_lock_passes_the_bias_to_another_thread() {
    // Thread 1 starts biased. Thread 2 revokes it; thread 1 acknowledges on
    // its way back (or reads its bias just before the revocation and stores
    // `held` late); only then can thread 2 be granted, enter through its
    // own fast path, and be revoked by thread 1 in turn.
    model(|| {
        let s = biased();
        let (e1, e2) = two_envs();
        biased_section(&s, &e1);
        let s2 = s.clone();
        let t = thread::spawn(move || {
            for _ in 0..3 {
                biased_section(&s2, &e2);
            }
        });
        biased_section(&s, &e1);
        biased_section(&s, &e1);
        t.join().unwrap();
        assert_eq!(s.2.get(), 6);
        assert!(!s.0.is_locked());
    });
}

#[test]
fn bias_lock_three_threads_revoke_and_rebias() {
    // Thread 1 starts biased; threads 2 and 3 each take the lock once while
    // it keeps entering, so a revocation, a revoked bias waiting for its
    // acknowledgement, and a bias granted to another thread meet.
    model_bounded(2, || {
        let s = biased();
        let mut es = envs(3);
        let e3 = es.pop().unwrap();
        let e2 = es.pop().unwrap();
        let e1 = es.pop().unwrap();
        biased_section(&s, &e1);
        let (s2, s3) = (s.clone(), s.clone());
        let t2 = thread::spawn(move || biased_section(&s2, &e2));
        let t3 = thread::spawn(move || biased_section(&s3, &e3));
        biased_section(&s, &e1);
        biased_section(&s, &e1);
        t2.join().unwrap();
        t3.join().unwrap();
        assert_eq!(s.2.get(), 5);
        assert!(!s.0.is_locked());
    });
}

// ----- async waiters (Watch) ------------------------------------------------------

use multiproc_shm::{QueueWait, Watch};

/// The protocol of `multiproc::aio::wait_until`, with the helper thread's
/// futex sleep as this thread's wait on the watched word: attempt; register
/// ([`Watch`]); attempt again; sleep while the word holds the value seen at
/// registration; deregister (drop) and start over. A wake-up lost between
/// a notifier and the registration shows as a deadlock under loom.
fn await_like<'a, R>(
    e: &ThreadEnv,
    mut attempt: impl FnMut(bool) -> Option<R>,
    mut watch: impl FnMut() -> Option<Watch<'a>>,
) -> R {
    loop {
        if let Some(r) = attempt(false) {
            return r;
        }
        let Some(w) = watch() else {
            thread::yield_now();
            continue;
        };
        if let Some(r) = attempt(true) {
            return r;
        }
        e.wait(w.word(), w.seen(), None);
    }
}

/// A `try_` get, as the async get makes it (deadline: now).
fn try_get8(q: &(RawQueue, Cells), e: &ThreadEnv) -> Option<u8> {
    match get8_by(q, e, Some(e.now())) {
        Ok(v) => Some(v),
        Err(QueueError::Timeout) => None,
        Err(err) => panic!("{err:?}"),
    }
}

#[test]
fn an_async_get_is_woken_by_a_put() {
    model(|| {
        let q = small_queue(0, false);
        let (e1, e2) = two_envs();
        let q2 = q.clone();
        let t = thread::spawn(move || {
            await_like(
                &e2,
                |_| try_get8(&q2, &e2),
                || Some(q2.0.watch(&e2, QueueWait::Items)),
            )
        });
        put8(&q, &e1, 7);
        assert_eq!(t.join().unwrap(), 7);
        assert_eq!(q.0.sleepers(), (0, 0), "a registration outlived its wait");
    });
}

#[test]
fn an_async_put_is_woken_by_a_get() {
    model(|| {
        // Item limit 1: the second put waits for room.
        let q = small_queue(1, false);
        let (e1, e2) = two_envs();
        put8(&q, &e1, 1);
        let q2 = q.clone();
        let t = thread::spawn(move || {
            await_like(
                &e2,
                |_| match q2
                    .0
                    .put(&e2, &q2.1, Rec::Inline(&[2; 8]), Some(e2.now()), None)
                {
                    Ok(()) => Some(()),
                    Err(QueueError::Timeout) => None,
                    Err(err) => panic!("{err:?}"),
                },
                || Some(q2.0.watch(&e2, QueueWait::Room)),
            )
        });
        assert_eq!(get8(&q, &e1).unwrap(), 1);
        t.join().unwrap();
        assert_eq!(get8(&q, &e1).unwrap(), 2);
    });
}

#[test]
fn an_async_locker_is_woken_by_the_unlock_and_excludes() {
    model(|| {
        let lock = Arc::new(RawLock::new());
        let inside = Arc::new(AtomicU32::new(0));
        let (e1, e2) = two_envs();
        assert_eq!(lock.lock(&e1, None), Ok(Acquired::Clean));
        let (l2, in2) = (lock.clone(), inside.clone());
        let t = thread::spawn(move || {
            let got = await_like(
                &e2,
                |watched| {
                    let r = if watched {
                        l2.try_lock_watched(&e2)
                    } else {
                        l2.try_lock(&e2)
                    };
                    r.ok()
                },
                || l2.watch(),
            );
            assert_eq!(got, Acquired::Clean);
            assert_eq!(in2.swap(2, Ordering::SeqCst), 0, "both inside");
            in2.store(0, Ordering::SeqCst);
            l2.unlock(&e2).unwrap();
        });
        inside.store(1, Ordering::SeqCst);
        inside.store(0, Ordering::SeqCst);
        lock.unlock(&e1).unwrap();
        t.join().unwrap();
        assert!(!lock.is_locked());
    });
}

#[test]
fn an_async_acquire_is_woken_by_a_release() {
    model(|| {
        let sem = Arc::new(RawSemaphore::new(0, false));
        let (e1, e2) = two_envs();
        let s2 = sem.clone();
        let t = thread::spawn(move || {
            await_like(&e2, |_| s2.try_acquire().then_some(()), || Some(s2.watch()));
        });
        sem.release(&e1, 1).unwrap();
        t.join().unwrap();
        assert_eq!(sem.value(), 0);
    });
}

#[test]
fn an_async_event_wait_sees_a_set_even_if_cleared_at_once() {
    model(|| {
        let ev = Arc::new(RawEvent::new());
        let (e1, e2) = two_envs();
        let v2 = ev.clone();
        let t = thread::spawn(move || {
            let seen = std::cell::Cell::new(None);
            await_like(
                &e2,
                |_| {
                    let set = match seen.get() {
                        Some(s) => v2.set_since(s),
                        None => v2.is_set(),
                    };
                    set.then_some(())
                },
                || {
                    let w = v2.watch()?;
                    seen.set(Some(w.seen()));
                    Some(w)
                },
            );
        });
        // A waiter registered before the set returns although the clear
        // follows at once; one that starts after the clear waits for the
        // next set, which comes.
        ev.set(&e1);
        ev.clear();
        ev.set(&e1);
        t.join().unwrap();
    });
}

/// A lock, a condition, and a flag set once the async waiter registered.
type CondShared = Arc<(RawLock, RawCondition, AtomicU32)>;

/// An async condition waiter on its own thread: registers under the lock
/// (then sets the flag), awaits a notification as `await_like` does, and
/// is cancelled right after claiming it: it deregisters and gives the
/// notification back.
fn cancelled_condition_waiter(shared: &CondShared, e: ThreadEnv) -> thread::JoinHandle<()> {
    let sh = shared.clone();
    thread::spawn(move || {
        let (lock, cond, registered) = &*sh;
        lock.lock(&e, None).unwrap();
        let w = cond.register();
        registered.store(1, Ordering::SeqCst);
        lock.unlock(&e).unwrap();
        await_like(&e, |_| w.claim().then_some(()), || Some(w.watch()));
        // Deregistered, then dropped before re-taking the lock.
        drop(w);
        cond.give_back(&e);
    })
}

/// An async condition waiter (registered under the lock, then the
/// attempt/watch/sleep loop of `await_like` claiming a notification)
/// cancelled after its claim gives the notification back: the blocking
/// waiter registered beside it is woken by the one `notify(1)` either way.
#[test]
fn an_async_condition_waiter_cancelled_after_its_claim_gives_it_back() {
    model(|| {
        let shared = Arc::new((RawLock::new(), RawCondition::new(), AtomicU32::new(0)));
        let mut es = counting_envs(3);
        let (e3, e2, e1) = (es.pop().unwrap(), es.pop().unwrap(), es.pop().unwrap());
        let (lock, cond, registered) = &*shared;
        lock.lock(&e1, None).unwrap();
        let tb = cond.prepare();
        lock.unlock(&e1).unwrap();
        let cancelled = cancelled_condition_waiter(&shared, e2);
        let sh = shared.clone();
        let plain = thread::spawn(move || sh.1.park(&e3, tb, None));
        notify_locked(lock, cond, &e1, 1);
        assert!(
            plain.join().unwrap(),
            "the blocking waiter was not notified"
        );
        // The async waiter may still wait (the blocking one took the
        // first notification): a second one, once it is registered,
        // releases it.
        while registered.load(Ordering::SeqCst) == 0 {
            thread::yield_now();
        }
        notify_locked(lock, cond, &e1, 1);
        cancelled.join().unwrap();
        assert_eq!(cond.sleepers(), 0, "a registration outlived its wait");
    });
}

/// A woken async waiter that gives up before trying again (a cancelled
/// future) passes the wake-up on, as `multiproc::aio`'s `Sleep` does when
/// dropped: with a futex that wakes only as many sleepers as asked, a put's
/// one wake-up that went to the async waiter still reaches the blocking
/// getter. (Remove the pass-on and this model deadlocks.)
#[test]
fn a_cancelled_async_waiter_passes_its_wake_up_on() {
    model(|| {
        let q = small_queue(0, false);
        let registered = Arc::new(AtomicU32::new(0));
        let mut es = counting_envs(3);
        let (e3, e2, e1) = (es.pop().unwrap(), es.pop().unwrap(), es.pop().unwrap());
        let (q2, r2) = (q.clone(), registered.clone());
        let cancelled = thread::spawn(move || {
            let w = q2.0.watch(&e2, QueueWait::Items);
            r2.store(1, Ordering::SeqCst);
            // Asleep (the item comes after its re-check), woken, and then
            // dropped without trying again.
            e2.wait(w.word(), w.seen(), None);
            e2.wake(w.word(), 1);
            drop(w);
        });
        // The async waiter is registered before the put (else the put owes
        // it nothing and it would sleep for ever).
        while registered.load(Ordering::SeqCst) == 0 {
            thread::yield_now();
        }
        let q3 = q.clone();
        let blocking = thread::spawn(move || get8(&q3, &e3).unwrap());
        put8(&q, &e1, 7);
        assert_eq!(blocking.join().unwrap(), 7);
        // Release the async waiter if the put's wake-up went to the
        // blocking getter.
        put8(&q, &e1, 8);
        cancelled.join().unwrap();
    });
}

/// A give-back (no lock) racing a second `notify(1)` (under the lock), with
/// the counted futex: both blocking waiters registered before the two
/// notifications get one each, whether or not the async waiter took one
/// first and gave it back.
#[test]
fn a_give_back_racing_a_notify_loses_no_notification() {
    model_bounded(2, || {
        let shared = Arc::new((RawLock::new(), RawCondition::new(), AtomicU32::new(0)));
        let mut es = counting_envs(4);
        let (e4, e3, e2, e1) = (
            es.pop().unwrap(),
            es.pop().unwrap(),
            es.pop().unwrap(),
            es.pop().unwrap(),
        );
        let (lock, cond, registered) = &*shared;
        lock.lock(&e1, None).unwrap();
        let (tb, tc) = (cond.prepare(), cond.prepare());
        lock.unlock(&e1).unwrap();
        let cancelled = cancelled_condition_waiter(&shared, e2);
        let sh = shared.clone();
        let b = thread::spawn(move || sh.1.park(&e3, tb, None));
        while registered.load(Ordering::SeqCst) == 0 {
            thread::yield_now();
        }
        notify_locked(lock, cond, &e1, 1);
        notify_locked(lock, cond, &e1, 1);
        // The second blocking waiter parks here, on its ticket from before
        // both notifications.
        assert!(cond.park(&e4, tc, None), "a notification was lost");
        assert!(b.join().unwrap(), "a notification was lost");
        // Release the async waiter if both went to the blocking ones.
        notify_locked(lock, cond, &e1, 1);
        cancelled.join().unwrap();
    });
}

/// A party interrupted (Ctrl-C) while the other arrives is either counted
/// in the barrier's passing (it gets `Ok` too) or leaves before the other
/// arrives (the other then waits, here until the barrier is aborted): never
/// both "interrupted" for one and "passed" for the other.
#[test]
fn an_interrupted_party_is_never_counted_in_a_passing_cycle() {
    model(|| {
        let b = Arc::new((RawBarrier::new(2), [AtomicU32::new(0), AtomicU32::new(0)]));
        let mut es = envs(2);
        let e2 = es.pop().unwrap();
        let e1 = es.pop().unwrap();
        let base = e1.base;
        // Its liveness slices end at once, so the interrupt check runs.
        let e1 = e1.timing_out_by(base + Duration::from_millis(5));
        let b2 = b.clone();
        let other = thread::spawn(move || b2.0.wait(&e2, &b2.1, None));
        let mine =
            b.0.wait_interruptible(&e1, &b.1, None, Duration::from_millis(1), || true);
        if mine.is_err() {
            // Release the other party if it arrived after this one left.
            b.0.abort(&e1);
        }
        let theirs = other.join().unwrap();
        assert!(
            !(theirs.is_ok() && mine.is_err()),
            "the other party passed ({theirs:?}) counting this one, which reported {mine:?}"
        );
    });
}
