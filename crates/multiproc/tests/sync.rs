//! Cross-process tests of locks, semaphores, events, conditions, barriers,
//! shared values and shared memory, including owner death (kill -9).

mod common;

use std::time::{Duration, Instant};

use common::{sleep_forever, watchdog};
use multiproc::{
    AcquireError, Array, Barrier, BoundedSemaphore, BrokenBarrierError, Builder, Condition,
    Connection, Event, Lock, Process, RLock, RawArray, RawValue, ReleaseError, Semaphore,
    SharedMemory, Value, duplex, pipe,
};
use multiproc::{TimeoutError, TryError};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(120);

// ----- Lock ---------------------------------------------------------------------

#[test]
fn lock_basics_and_python_release_rules() {
    let lock = Lock::new().unwrap();
    assert!(!lock.is_locked());
    {
        let _g = lock.lock().unwrap();
        assert!(lock.is_locked());
        assert_eq!(lock.owner(), Some(std::process::id()));
        assert!(matches!(lock.try_lock(), Err(TryError::WouldBlock)));
        assert!(matches!(
            lock.lock_timeout(Duration::from_millis(30)),
            Err(TimeoutError::Timeout)
        ));
    }
    assert!(!lock.is_locked());
    assert_eq!(lock.release(), Err(ReleaseError::NotLocked));
    lock.acquire().unwrap();
    lock.release().unwrap();
}

/// Acquire in the child, release in the parent (allowed for Lock).
fn acquire_only(arg: (Lock, Connection<()>)) {
    let (lock, mut done) = arg;
    lock.acquire().unwrap();
    done.send(&()).unwrap();
}

#[test]
fn lock_released_by_another_process() {
    let _w = watchdog("lock_released_by_another_process", LIMIT);
    let lock = Lock::new().unwrap();
    let (mut rx, tx) = pipe().unwrap();
    let mut p = Process::spawn(acquire_only, (lock.clone(), tx)).unwrap();
    rx.recv().unwrap();
    p.join().unwrap();
    // The child exited holding it: the lock is taken over, not hung.
    match lock.lock_timeout(Duration::from_secs(5)) {
        Err(TimeoutError::Failed(AcquireError::OwnerDied(g))) => g.mark_consistent(),
        r => panic!("expected OwnerDied, got {r:?}"),
    }
    assert!(!lock.is_locked());
}

#[test]
fn short_timed_acquires_take_over_a_dead_owners_lock() {
    let _w = watchdog("short_timed_acquires_take_over_a_dead_owners_lock", LIMIT);
    let lock = Lock::new().unwrap();
    let (mut rx, tx) = pipe().unwrap();
    let mut p = Process::spawn(acquire_only, (lock.clone(), tx)).unwrap();
    rx.recv().unwrap();
    p.join().unwrap();
    // Each attempt is shorter than the liveness check interval; together
    // they must still notice the dead owner.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match lock.lock_timeout(Duration::from_millis(10)) {
            Err(TimeoutError::Failed(AcquireError::OwnerDied(g))) => {
                g.mark_consistent();
                break;
            }
            Err(TimeoutError::Timeout) => assert!(Instant::now() < deadline, "never taken over"),
            r => panic!("{r:?}"),
        }
    }
}

/// Increment a non-atomic counter under the lock, many times.
fn hammer(arg: (Lock, RawValue<u64>, RawValue<u32>, u32)) {
    let (lock, counter, inside, n) = arg;
    for _ in 0..n {
        let _g = lock.lock().unwrap();
        assert_eq!(inside.get(), 0, "two owners at once");
        inside.set(1);
        counter.set(counter.get() + 1);
        inside.set(0);
    }
}

#[test]
fn lock_excludes_across_processes() {
    let _w = watchdog("lock_excludes_across_processes", LIMIT);
    let lock = Lock::new().unwrap();
    let counter = RawValue::new(0u64).unwrap();
    let inside = RawValue::new(0u32).unwrap();
    let mut ps: Vec<Process> = (0..4)
        .map(|_| {
            Process::spawn(
                hammer,
                (lock.clone(), counter.clone(), inside.clone(), 2_000),
            )
            .unwrap()
        })
        .collect();
    for p in &mut ps {
        p.join().unwrap();
    }
    assert_eq!(counter.get(), 8_000);
}

/// Take `lock` in the `i`th of four ways: blocking, a `try_lock` spin, short
/// timed attempts (each failed `try_` and each expired slice checks whether
/// the holder is alive), or a blocking call after a failed try. Nobody
/// dies in these tests, so `OwnerDied` means a live holder was taken for a
/// dead one.
macro_rules! take_mixed {
    ($lock:expr, $i:expr) => {{
        let name = "a live holder was taken for dead";
        // A try is a timeout of zero.
        let ok = |r: Result<_, TimeoutError<AcquireError<_>>>| match r {
            Ok(g) => Some(g),
            Err(TimeoutError::Timeout) => None,
            Err(e) => panic!("{name}: {e:?}"),
        };
        match $i % 4 {
            0 => ok($lock.lock().map_err(TimeoutError::Failed)).expect("blocking lock"),
            1 => loop {
                if let Some(g) = ok($lock.try_lock().map_err(TimeoutError::from)) {
                    break g;
                }
                std::thread::yield_now();
            },
            2 => loop {
                if let Some(g) = ok($lock.lock_timeout(Duration::from_micros(200))) {
                    break g;
                }
            },
            _ => match ok($lock.try_lock().map_err(TimeoutError::from)) {
                Some(g) => g,
                None => ok($lock.lock().map_err(TimeoutError::Failed)).expect("blocking lock"),
            },
        }
    }};
}

/// A read-modify-write of a plain counter and an "inside" flag under the
/// lock, with a yield inside now and then so holders are preempted there.
fn critical_section(counter: &RawValue<u64>, inside: &RawValue<u32>, i: u32) {
    assert_eq!(inside.get(), 0, "two holders at once");
    inside.set(1);
    let c = counter.get();
    if i % 16 == 0 {
        std::thread::yield_now();
    }
    counter.set(c + 1);
    inside.set(0);
}

fn contend_lock(arg: (Lock, RawValue<u64>, RawValue<u32>, u32, Barrier)) {
    let (lock, counter, inside, n, start) = arg;
    // Now and then a yield or a short sleep at the lock's failpoints
    // (taken, released): holders preempted at the worst moments.
    multiproc::failpoint::chaos(1, u64::from(std::process::id()));
    start.wait().unwrap();
    for i in 0..n {
        let _g = take_mixed!(lock, i);
        critical_section(&counter, &inside, i);
    }
}

fn contend_rlock(arg: (RLock, RawValue<u64>, RawValue<u32>, u32, Barrier)) {
    let (lock, counter, inside, n, start) = arg;
    // Now and then a yield or a short sleep at the lock's failpoints
    // (taken, released): holders preempted at the worst moments.
    multiproc::failpoint::chaos(1, u64::from(std::process::id()));
    start.wait().unwrap();
    for i in 0..n {
        let _g = take_mixed!(lock, i);
        // Re-entered while held: the depth goes up and down, never to
        // another holder.
        let _again = lock.try_lock().expect("re-entry");
        critical_section(&counter, &inside, i);
    }
}

/// Regression test: more processes than cores take one lock in every way
/// at once, nobody is killed. A holder's identity used to be two atomics
/// (pid, start time), so a taker checking liveness while the lock changed
/// hands could pair the new pid with the old start time and take the lock
/// over from a live holder: `OwnerDied`, two holders, lost increments.
#[test]
fn contended_locks_never_take_a_live_holder_for_dead() {
    let _w = watchdog("contended_locks_never_take_a_live_holder_for_dead", LIMIT);
    // Two processes on each of three locks, six in all on two cores; each
    // lock guards its own counter and "inside" flag.
    const N: u32 = 100_000;
    let start = Barrier::new(6).unwrap();
    let cells = || (RawValue::new(0u64).unwrap(), RawValue::new(0u32).unwrap());
    let (lock, rlock, value) = (
        Lock::new().unwrap(),
        RLock::new().unwrap(),
        Value::new(0i64).unwrap(),
    );
    let guarded = [cells(), cells(), cells()];
    let mut ps: Vec<Process> = Vec::new();
    for _ in 0..2 {
        let [(c0, i0), (c1, i1), (c2, i2)] = guarded.clone();
        let b = || start.clone();
        ps.push(Process::spawn(contend_lock, (lock.clone(), c0, i0, N, b())).unwrap());
        ps.push(Process::spawn(contend_rlock, (rlock.clone(), c1, i1, N, b())).unwrap());
        ps.push(Process::spawn(contend_lock, (value.get_lock(), c2, i2, N, b())).unwrap());
    }
    for p in &mut ps {
        p.join().unwrap();
    }
    for (counter, _) in &guarded {
        assert_eq!(counter.get(), u64::from(2 * N));
    }
}

/// Take the lock, say so, and wait to be killed.
fn hold_until_killed(arg: (Lock, Connection<u32>)) {
    let (lock, mut ready) = arg;
    let g = lock.lock().unwrap();
    ready.send(&std::process::id()).unwrap();
    std::mem::forget(g);
    sleep_forever();
}

#[test]
fn lock_holder_killed_gives_owner_died_to_a_blocked_waiter() {
    let _w = watchdog(
        "lock_holder_killed_gives_owner_died_to_a_blocked_waiter",
        LIMIT,
    );
    let mut worst = Duration::ZERO;
    for round in 0..100 {
        let lock = Lock::new().unwrap();
        let (mut rx, tx) = pipe().unwrap();
        let mut holder = Process::spawn(hold_until_killed, (lock.clone(), tx)).unwrap();
        let pid = rx.recv().unwrap();
        assert_eq!(lock.owner(), Some(pid));
        // A waiter blocked in lock() before the kill.
        let waiter_lock = lock.clone();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            started_tx.send(()).unwrap();
            let r = waiter_lock.lock_timeout(Duration::from_secs(1));
            let took = Instant::now();
            match r {
                Err(TimeoutError::Failed(AcquireError::OwnerDied(g))) => {
                    assert_eq!(waiter_lock.owner(), Some(std::process::id()));
                    if round % 2 == 0 {
                        g.mark_consistent();
                    }
                    drop(g);
                    (true, took)
                }
                other => panic!("round {round}: expected OwnerDied, got {other:?}"),
            }
        });
        started_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let killed = Instant::now();
        holder.kill().unwrap();
        assert_eq!(holder.wait().unwrap(), -9);
        let (_, took) = waiter.join().unwrap();
        worst = worst.max(took.saturating_duration_since(killed));
        if round % 2 == 0 {
            // Repaired: usable again.
            drop(lock.try_lock().unwrap());
        } else {
            // Dropped without repair: not recoverable, and quickly so.
            assert!(matches!(lock.lock(), Err(AcquireError::NotRecoverable)));
            assert!(matches!(
                lock.try_lock(),
                Err(TryError::Failed(AcquireError::NotRecoverable))
            ));
        }
    }
    eprintln!("owner death noticed within {worst:?} (worst of 100)");
}

#[test]
fn lock_holder_killed_before_anyone_waits() {
    let _w = watchdog("lock_holder_killed_before_anyone_waits", LIMIT);
    let lock = Lock::new().unwrap();
    let (mut rx, tx) = pipe().unwrap();
    let mut holder = Process::spawn(hold_until_killed, (lock.clone(), tx)).unwrap();
    rx.recv().unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    // try_lock notices at once.
    let g = lock
        .try_lock()
        .unwrap_err()
        .failed()
        .and_then(AcquireError::into_guard)
        .expect("OwnerDied");
    g.mark_consistent();
}

// ----- RLock --------------------------------------------------------------------

#[test]
fn rlock_is_reentrant_and_owned() {
    let l = RLock::new().unwrap();
    let a = l.lock().unwrap();
    let b = l.lock().unwrap();
    assert!(l.is_owned());
    drop(b);
    assert!(l.is_locked());
    drop(a);
    assert!(!l.is_locked());
    assert_eq!(l.release(), Err(ReleaseError::NotOwner));
    // Another thread cannot release or enter.
    let g = l.lock().unwrap();
    let l2 = l.clone();
    std::thread::spawn(move || {
        assert_eq!(l2.release(), Err(ReleaseError::NotOwner));
        assert!(matches!(l2.try_lock(), Err(TryError::WouldBlock)));
    })
    .join()
    .unwrap();
    drop(g);
}

fn try_rlock_elsewhere(l: RLock) -> (bool, bool) {
    let blocked = matches!(l.try_lock(), Err(TryError::WouldBlock));
    let refused = l.release() == Err(ReleaseError::NotOwner);
    (blocked, refused)
}

#[test]
fn rlock_refuses_another_process() {
    let _w = watchdog("rlock_refuses_another_process", LIMIT);
    let l = RLock::new().unwrap();
    let _g = l.lock().unwrap();
    let mut p = Process::spawn(try_rlock_elsewhere, l.clone()).unwrap();
    assert_eq!(p.join().unwrap(), (true, true));
}

// ----- Semaphore ----------------------------------------------------------------

#[test]
fn semaphore_counts_and_bounded_refuses_over_release() {
    let s = Semaphore::new(2).unwrap();
    assert!(s.try_acquire());
    assert!(s.try_acquire());
    assert!(!s.try_acquire());
    assert!(!s.acquire_timeout(Duration::from_millis(20)));
    s.release_n(2).unwrap();
    assert_eq!(s.get_value(), 2);
    s.release().unwrap(); // an unbounded semaphore may grow
    assert_eq!(s.get_value(), 3);

    let b = BoundedSemaphore::new(1).unwrap();
    assert_eq!(b.release(), Err(ReleaseError::OverRelease));
    b.acquire();
    b.release().unwrap();
    assert_eq!(b.release(), Err(ReleaseError::OverRelease));
}

fn release_later(s: Semaphore) {
    std::thread::sleep(Duration::from_millis(100));
    s.release().unwrap();
}

#[test]
fn semaphore_wakes_a_waiter_in_another_process() {
    let _w = watchdog("semaphore_wakes_a_waiter_in_another_process", LIMIT);
    let s = Semaphore::new(0).unwrap();
    let mut p = Process::spawn(release_later, s.clone()).unwrap();
    s.acquire();
    p.join().unwrap();
}

// ----- Event --------------------------------------------------------------------

fn wait_event(arg: (Event, u64)) -> bool {
    let (e, ms) = arg;
    if ms == 0 {
        e.wait();
        true
    } else {
        e.wait_timeout(Duration::from_millis(ms))
    }
}

#[test]
fn event_set_clear_wait_across_processes() {
    let _w = watchdog("event_set_clear_wait_across_processes", LIMIT);
    let e = Event::new().unwrap();
    assert!(!e.is_set());
    assert!(!e.wait_timeout(Duration::from_millis(20)));
    let mut timed = Process::spawn(wait_event, (e.clone(), 50)).unwrap();
    assert!(!timed.join().unwrap());
    let mut p = Process::spawn(wait_event, (e.clone(), 0)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // set then clear at once: the sleeper still returns (Python semantics).
    e.set();
    e.clear();
    assert!(p.join().unwrap());
    assert!(!e.is_set());
    e.set();
    assert!(e.is_set());
    assert!(e.wait_timeout(Duration::ZERO));
}

// ----- Condition ----------------------------------------------------------------

/// Wait for `flag` to become 1 under the condition, then set it to 2.
fn cond_waiter(arg: (Condition, RawValue<u32>)) -> bool {
    let (c, flag) = arg;
    let mut g = c.lock().unwrap();
    let ok = g
        .wait_for(|| flag.get() == 1, Some(Duration::from_secs(30)))
        .unwrap();
    flag.set(2);
    g.notify_all();
    ok
}

#[test]
fn condition_wait_for_and_notify_across_processes() {
    let _w = watchdog("condition_wait_for_and_notify_across_processes", LIMIT);
    for c in [
        Condition::new().unwrap(),
        Condition::with_lock(Lock::new().unwrap()).unwrap(),
    ] {
        let flag = RawValue::new(0u32).unwrap();
        let mut p = Process::spawn(cond_waiter, (c.clone(), flag.clone())).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        {
            let g = c.lock().unwrap();
            flag.set(1);
            g.notify(1);
        }
        let mut g = c.lock().unwrap();
        assert!(
            g.wait_for(|| flag.get() == 2, Some(Duration::from_secs(30)))
                .unwrap()
        );
        drop(g);
        assert!(p.join().unwrap());
    }
}

#[test]
fn condition_wait_timeout_and_rlock_depth() {
    let c = Condition::new().unwrap();
    let mut g = c.lock().unwrap();
    let t = Instant::now();
    assert!(!g.wait_timeout(Duration::from_millis(50)).unwrap());
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert!(
        !g.wait_for(|| false, Some(Duration::from_millis(20)))
            .unwrap()
    );
    drop(g);

    // Over an RLock held twice: wait releases both levels and restores them.
    let rl = RLock::new().unwrap();
    let c = Condition::with_rlock(rl.clone()).unwrap();
    let outer = rl.lock().unwrap();
    let mut g = c.lock().unwrap();
    let rl2 = rl.clone();
    let c2 = c.clone();
    let t = std::thread::spawn(move || {
        // Gets the lock only if the waiter released every level.
        let g2 = c2.lock().unwrap();
        g2.notify_all();
        drop(g2);
        assert!(!rl2.is_owned());
    });
    g.wait_timeout(Duration::from_secs(30)).unwrap();
    assert!(rl.is_owned());
    drop(g);
    assert!(rl.is_locked(), "outer level restored");
    drop(outer);
    assert!(!rl.is_locked());
    t.join().unwrap();
}

// ----- Barrier ------------------------------------------------------------------

fn barrier_party(b: Barrier) -> Result<u32, BrokenBarrierError> {
    b.wait_timeout(Duration::from_secs(30))
}

#[test]
fn barrier_releases_every_party_with_distinct_indices() {
    let _w = watchdog("barrier_releases_every_party_with_distinct_indices", LIMIT);
    let b = Barrier::new(4).unwrap();
    assert_eq!(b.parties(), 4);
    let mut ps: Vec<Process<Result<u32, BrokenBarrierError>>> = (0..3)
        .map(|_| Process::spawn(barrier_party, b.clone()).unwrap())
        .collect();
    assert!(common::wait_until(Duration::from_secs(30), || b
        .n_waiting()
        == 3));
    let mine = b.wait().unwrap();
    let mut idx: Vec<u32> = ps.iter_mut().map(|p| p.join().unwrap().unwrap()).collect();
    idx.push(mine);
    idx.sort();
    assert_eq!(idx, vec![0, 1, 2, 3]);
    // Reusable for the next cycle.
    let mut ps: Vec<_> = (0..3)
        .map(|_| Process::spawn(barrier_party, b.clone()).unwrap())
        .collect();
    b.wait().unwrap();
    for p in &mut ps {
        p.join().unwrap().unwrap();
    }
}

#[test]
fn barrier_abort_reset_and_timeout() {
    let _w = watchdog("barrier_abort_reset_and_timeout", LIMIT);
    let b = Barrier::new(2).unwrap();
    let mut p = Process::spawn(barrier_party, b.clone()).unwrap();
    assert!(common::wait_until(Duration::from_secs(30), || b
        .n_waiting()
        == 1));
    b.abort();
    assert_eq!(p.join().unwrap(), Err(BrokenBarrierError));
    assert!(b.broken());
    assert_eq!(b.wait(), Err(BrokenBarrierError));
    b.reset();
    assert!(!b.broken());
    // A timeout breaks it, as in Python.
    assert_eq!(
        b.wait_timeout(Duration::from_millis(30)),
        Err(BrokenBarrierError)
    );
    assert!(b.broken());
    b.reset();
    // reset while a party waits: it gets BrokenBarrierError.
    let mut p = Process::spawn(barrier_party, b.clone()).unwrap();
    assert!(common::wait_until(Duration::from_secs(30), || b
        .n_waiting()
        == 1));
    b.reset();
    assert_eq!(p.join().unwrap(), Err(BrokenBarrierError));
    assert!(!b.broken());
    let mut p = Process::spawn(barrier_party, b.clone()).unwrap();
    b.wait().unwrap();
    p.join().unwrap().unwrap();
}

fn barrier_party_reporting(arg: (Barrier, Connection<u32>)) {
    let (b, mut tx) = arg;
    tx.send(&std::process::id()).unwrap();
    let _ = b.wait();
}

#[test]
fn a_barrier_party_killed_breaks_the_barrier() {
    let _w = watchdog("a_barrier_party_killed_breaks_the_barrier", LIMIT);
    let b = Barrier::new(3).unwrap();
    let (mut rx, tx) = pipe().unwrap();
    let mut victim = Process::spawn(barrier_party_reporting, (b.clone(), tx)).unwrap();
    rx.recv().unwrap();
    assert!(common::wait_until(Duration::from_secs(30), || b
        .n_waiting()
        == 1));
    let mut other = Process::spawn(barrier_party, b.clone()).unwrap();
    assert!(common::wait_until(Duration::from_secs(30), || b
        .n_waiting()
        == 2));
    victim.kill().unwrap();
    victim.wait().unwrap();
    assert_eq!(other.join().unwrap(), Err(BrokenBarrierError));
    assert!(b.broken());
}

// ----- Value / Array ------------------------------------------------------------

fn decrement(arg: (Value<i64>, u32)) {
    let (v, n) = arg;
    for _ in 0..n {
        v.lock().unwrap().update(|x| x - 1);
    }
}

#[test]
fn value_under_its_lock_across_processes() {
    let _w = watchdog("value_under_its_lock_across_processes", LIMIT);
    let v = Value::new(4_000i64).unwrap();
    let mut ps: Vec<Process> = (0..4)
        .map(|_| Process::spawn(decrement, (v.clone(), 1_000)).unwrap())
        .collect();
    for p in &mut ps {
        p.join().unwrap();
    }
    assert_eq!(v.get().unwrap(), 0);
    v.set(7).unwrap();
    assert_eq!(v.get().unwrap(), 7);
    // get_lock() is the same lock.
    let l = v.get_lock();
    let g = l.lock().unwrap();
    assert!(v.get_lock().is_locked());
    drop(g);
    assert!(!v.get_lock().is_locked());
}

fn fill_array(a: Array<f64>) -> f64 {
    let g = a.lock().unwrap();
    for i in 0..g.to_vec().len() {
        g.set(i, i as f64 * 1.5).unwrap();
    }
    g.to_vec().iter().sum()
}

#[test]
fn arrays_share_elements() {
    let _w = watchdog("arrays_share_elements", LIMIT);
    let a = Array::<f64>::zeroed(10).unwrap();
    assert_eq!(a.len(), 10);
    let mut p = Process::spawn(fill_array, a.clone()).unwrap();
    let sum = p.join().unwrap();
    assert_eq!(a.to_vec().unwrap().iter().sum::<f64>(), sum);
    assert_eq!(a.get(2).unwrap(), 3.0);
    assert!(a.get(10).is_err());
    a.write(8, &[1.0, 2.0]).unwrap();
    assert!(a.write(9, &[1.0, 2.0]).is_err());

    let r = RawArray::from_slice(&[1u8, 2, 3]).unwrap();
    r.set(0, 9).unwrap();
    let mut out = [0u8; 2];
    r.read(1, &mut out).unwrap();
    assert_eq!(out, [2, 3]);
    assert_eq!(r.to_vec(), vec![9, 2, 3]);
    let rv = RawValue::new([1u16, 2]).unwrap();
    rv.set([3, 4]);
    assert_eq!(rv.get(), [3, 4]);
}

#[test]
fn objects_travel_inside_messages() {
    let (mut a, mut b) = duplex::<(Lock, Event, Value<u32>)>().unwrap();
    let objs = (
        Lock::new().unwrap(),
        Event::new().unwrap(),
        Value::new(5u32).unwrap(),
    );
    a.send(&objs).unwrap();
    let (l, e, v) = b.recv().unwrap();
    let _g = l.lock().unwrap();
    assert!(objs.0.is_locked());
    e.set();
    assert!(objs.1.is_set());
    v.set(6).unwrap();
    assert_eq!(objs.2.get().unwrap(), 6);
}

// ----- SharedMemory -------------------------------------------------------------

fn unique(tag: &str) -> String {
    format!("test-{tag}-{}-{:?}", std::process::id(), Instant::now()).replace([' ', ':', '.'], "_")
}

fn write_in_child(arg: (SharedMemory, Vec<u8>)) {
    let (m, data) = arg;
    m.write(10, &data).unwrap();
}

#[test]
fn anonymous_shared_memory_is_shared_and_sealed() {
    let _w = watchdog("anonymous_shared_memory_is_shared_and_sealed", LIMIT);
    let m = SharedMemory::new(4096).unwrap();
    assert_eq!(m.size(), 4096);
    assert!(m.is_size_sealed());
    assert_eq!(m.name(), None);
    let mut p = Process::spawn(write_in_child, (m.clone(), b"hello".to_vec())).unwrap();
    p.join().unwrap();
    assert_eq!(m.read_vec(10, 5).unwrap(), b"hello");
    assert!(m.write(4094, b"abc").is_err());
    assert!(m.read_vec(usize::MAX, 2).is_err());
}

fn open_named_and_write(name: String) {
    let m = SharedMemory::open(&name).unwrap();
    m.write(0, b"from child").unwrap();
}

#[test]
fn named_shared_memory_create_open_unlink() {
    let _w = watchdog("named_shared_memory_create_open_unlink", LIMIT);
    let name = unique("named");
    let m = SharedMemory::create(&name, 100).unwrap();
    assert_eq!(m.name(), Some(name.as_str()));
    // The object is private to this user.
    let path = format!("/dev/shm/multiproc.{name}");
    let mode = std::fs::metadata(&path).map(|md| {
        use std::os::unix::fs::PermissionsExt;
        md.permissions().mode() & 0o777
    });
    assert_eq!(mode.unwrap(), 0o600);
    // A second create of the same name fails and does not attach.
    let e = SharedMemory::create(&name, 100).unwrap_err();
    assert!(
        matches!(&e, multiproc::SegmentError::Io(io) if io.kind() == std::io::ErrorKind::AlreadyExists),
        "{e}"
    );
    let mut p = Process::spawn(open_named_and_write, name.clone()).unwrap();
    p.join().unwrap();
    assert_eq!(m.read_vec(0, 10).unwrap(), b"from child");
    m.unlink().unwrap();
    assert!(std::fs::metadata(&path).is_err());
    assert!(SharedMemory::open(&name).is_err());
    // The mapping outlives the name.
    assert_eq!(m.read_vec(0, 4).unwrap(), b"from");
}

/// Child: make a POSIX shm object as another library would (raw
/// `shm_open`, mode `mode`, 4096 bytes) and write `from child` at 0.
fn create_foreign_in_child(arg: (String, u32)) {
    let (name, mode) = arg;
    let c = std::ffi::CString::new(format!("/{name}")).unwrap();
    // SAFETY: a valid NUL-terminated name; plain system calls on the
    // descriptor this call returns.
    unsafe {
        let fd = libc::shm_open(
            c.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            0o600,
        );
        assert!(fd >= 0, "shm_open: {}", std::io::Error::last_os_error());
        assert_eq!(libc::fchmod(fd, mode as libc::mode_t), 0);
        assert_eq!(libc::ftruncate(fd, 4096), 0);
        let msg = b"from child";
        assert_eq!(libc::pwrite(fd, msg.as_ptr().cast(), msg.len(), 0), 10);
        libc::close(fd);
    }
}

#[test]
fn foreign_shared_memory_is_opened_raw_and_unlinked() {
    let _w = watchdog("foreign_shared_memory_is_opened_raw_and_unlinked", LIMIT);
    let name = unique("foreign");
    let mut p = Process::spawn(create_foreign_in_child, (name.clone(), 0o600)).unwrap();
    p.join().unwrap();
    // Python's names carry a leading slash; both spellings open it.
    let m = SharedMemory::open_foreign(&format!("/{name}")).unwrap();
    assert!(m.is_foreign());
    assert_eq!(m.name(), Some(name.as_str()));
    assert_eq!(m.size(), 4096);
    assert_eq!(m.read_vec(0, 10).unwrap(), b"from child");
    // Not a multiproc segment: `open` refuses the name (it is not ours).
    assert!(SharedMemory::open(&name).is_err());
    // Our writes are in the object itself (raw, no header), for any opener,
    // and for a child that got the block in a message.
    m.write(100, b"from parent").unwrap();
    let path = format!("/dev/shm/{name}");
    assert_eq!(&std::fs::read(&path).unwrap()[100..111], b"from parent");
    let other = SharedMemory::open_foreign(&name).unwrap();
    assert_eq!(other.read_vec(100, 11).unwrap(), b"from parent");
    let mut p = Process::spawn(write_in_child, (m.clone(), b"hello".to_vec())).unwrap();
    p.join().unwrap();
    assert_eq!(other.read_vec(10, 5).unwrap(), b"hello");
    m.unlink().unwrap();
    assert!(std::fs::metadata(&path).is_err());
    let e = SharedMemory::open_foreign(&name).unwrap_err();
    assert!(
        matches!(&e, multiproc::SegmentError::Io(io) if io.kind() == std::io::ErrorKind::NotFound),
        "{e}"
    );
    // The mappings outlive the name.
    assert_eq!(other.read_vec(0, 4).unwrap(), b"from");
}

fn open_foreign_and_write(arg: (String, Vec<u8>)) {
    let m = SharedMemory::open_foreign(&arg.0).unwrap();
    m.write(0, &arg.1).unwrap();
}

/// `create_foreign` makes what the standard library makes: the object at
/// `/dev/shm/NAME`, mode 0600, its bytes at offset 0, no header; a taken
/// name is refused, never attached; others open it by name.
#[test]
fn create_foreign_makes_a_plain_posix_object() {
    use std::os::unix::fs::PermissionsExt;
    let _w = watchdog("create_foreign_makes_a_plain_posix_object", LIMIT);
    let name = unique("plain");
    let m = SharedMemory::create_foreign(&format!("//{name}"), 100).unwrap();
    let path = format!("/dev/shm/{name}");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (meta.len(), meta.permissions().mode() & 0o777),
        (100, 0o600)
    );
    assert!(m.is_foreign() && m.size() == 100);
    m.write(0, b"offset zero").unwrap();
    assert_eq!(&std::fs::read(&path).unwrap()[..11], b"offset zero");
    let e = SharedMemory::create_foreign(&name, 10).unwrap_err();
    assert!(
        matches!(&e, multiproc::SegmentError::Io(io) if io.kind() == std::io::ErrorKind::AlreadyExists),
        "{e}"
    );
    let mut p = Process::spawn(open_foreign_and_write, (name.clone(), b"child".to_vec())).unwrap();
    p.join().unwrap();
    assert_eq!(m.read_vec(0, 5).unwrap(), b"child");
    assert!(SharedMemory::create_foreign("a/b", 10).is_err());
    assert!(SharedMemory::create_foreign(&unique("zero"), 0).is_err());
    m.unlink().unwrap();
    assert!(std::fs::metadata(&path).is_err());
}

#[test]
fn foreign_shared_memory_others_may_write_is_refused() {
    let name = unique("foreign-gw");
    let mut p = Process::spawn(create_foreign_in_child, (name.clone(), 0o620)).unwrap();
    p.join().unwrap();
    let r = SharedMemory::open_foreign(&name);
    // Removed before any assertion, so a failure leaves nothing behind.
    SharedMemory::unlink_foreign_name(&name).unwrap();
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            multiproc::SegmentError::PermissionMismatch { mode: 0o620, .. }
        ),
        "{e}"
    );
    // Group-readable only is fine (no one else can write).
    let name = unique("foreign-gr");
    let mut p = Process::spawn(create_foreign_in_child, (name.clone(), 0o640)).unwrap();
    p.join().unwrap();
    let m = SharedMemory::open_foreign(&name);
    SharedMemory::unlink_foreign_name(&name).unwrap();
    assert_eq!(m.unwrap().read_vec(0, 10).unwrap(), b"from child");
}

#[test]
fn foreign_open_refuses_symlinks_our_names_and_bad_names() {
    let name = unique("foreign-link");
    let target = std::env::temp_dir().join(format!("{name}.target"));
    std::fs::write(&target, vec![0u8; 64]).unwrap();
    let link = format!("/dev/shm/{name}");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let e = SharedMemory::open_foreign(&name);
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_file(&target).unwrap();
    assert!(e.is_err(), "a symlink was followed");
    // A multiproc segment's OS name is not opened raw.
    let ours = unique("foreign-ours");
    let m = SharedMemory::create(&ours, 64).unwrap();
    assert!(matches!(
        SharedMemory::open_foreign(&format!("multiproc.{ours}")),
        Err(multiproc::SegmentError::InvalidName(_))
    ));
    m.unlink().unwrap();
    for bad in ["", "/", "a/b", "..", "x\0y"] {
        assert!(
            matches!(
                SharedMemory::open_foreign(bad),
                Err(multiproc::SegmentError::InvalidName(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn a_name_precreated_by_someone_else_is_never_attached() {
    let name = unique("squat");
    let path = format!("/dev/shm/multiproc.{name}");
    std::fs::write(&path, vec![0xEE; 4096]).unwrap();
    let e = SharedMemory::create(&name, 64).unwrap_err();
    assert!(
        matches!(&e, multiproc::SegmentError::Io(io) if io.kind() == std::io::ErrorKind::AlreadyExists),
        "{e}"
    );
    // And the squatter's bytes are untouched.
    assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 0xEE));
    // Opening it is refused: its mode lets others in, or its header is not ours.
    assert!(SharedMemory::open(&name).is_err());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_segment_with_another_layout_is_incompatible() {
    let name = unique("layout");
    let path = format!("/dev/shm/multiproc.{name}");
    // A published header (magic, ABI, ready) of some other layout, private
    // to this user, as another build or type would leave it.
    let mut bytes = vec![0u8; 4096];
    bytes[0..8].copy_from_slice(b"MPROCSEG");
    bytes[8..16].copy_from_slice(&0xDEAD_BEEF_u64.to_le_bytes());
    bytes[16..20].copy_from_slice(&1u32.to_le_bytes());
    bytes[20..24].copy_from_slice(&2u32.to_le_bytes());
    bytes[24..32].copy_from_slice(&4096u64.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    match SharedMemory::open(&name) {
        Err(multiproc::SegmentError::Incompatible(_)) => {}
        r => panic!("expected Incompatible, got {r:?}"),
    }
    // Garbage is incompatible too, and a group-readable object is refused
    // before anything is read.
    std::fs::write(&path, vec![0x55; 4096]).unwrap();
    assert!(matches!(
        SharedMemory::open(&name),
        Err(multiproc::SegmentError::Incompatible(_))
    ));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(matches!(
        SharedMemory::open(&name),
        Err(multiproc::SegmentError::PermissionMismatch { .. })
    ));
    std::fs::remove_file(&path).unwrap();
}

fn make_everything(mut tx: Connection<u32>) {
    let _objs = (
        Lock::new().unwrap(),
        RLock::new().unwrap(),
        Semaphore::new(1).unwrap(),
        Event::new().unwrap(),
        Condition::new().unwrap(),
        Barrier::new(2).unwrap(),
        Value::new(1u64).unwrap(),
        Array::<u8>::zeroed(1 << 20).unwrap(),
        SharedMemory::new(1 << 20).unwrap(),
    );
    let g = _objs.0.lock().unwrap();
    std::mem::forget(g);
    tx.send(&std::process::id()).unwrap();
    sleep_forever();
}

fn dev_shm() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn nothing_is_left_in_dev_shm_after_sigkill() {
    let _w = watchdog("nothing_is_left_in_dev_shm_after_sigkill", LIMIT);
    let before = dev_shm();
    let (mut rx, tx) = pipe().unwrap();
    let mut p = Builder::new().spawn(make_everything, tx).unwrap();
    rx.recv().unwrap();
    p.kill().unwrap();
    assert_eq!(p.wait().unwrap(), -9);
    let after = dev_shm();
    let new: Vec<&String> = after
        .iter()
        .filter(|n| !before.contains(n) && !n.starts_with("multiproc.test-"))
        .collect();
    assert!(new.is_empty(), "left behind: {new:?}");
}

// ----- hostile handles --------------------------------------------------------------

/// A `Lock`'s wire form, to forge one.
#[derive(serde::Serialize, serde::Deserialize)]
struct HandleWire {
    fd: multiproc::Fd,
    off: u32,
    layout: u64,
}

/// Receive a `Lock` handle; if it is accepted, truncate its file (as the
/// hostile sender could) and use the lock. `Err`: refused, with the error.
fn receive_forged_lock(mut conn: Connection<Lock>) -> Result<(), String> {
    let lock = conn.recv().map_err(|e| e.to_string())?;
    // Accepted: now the sender shrinks the memory under our mapping.
    let mut back: Connection<u8> = conn.cast();
    back.send(&1).unwrap();
    let _ = back.recv();
    let _ = lock.lock();
    Ok(())
}

/// Regression test (6d): a peer sends a `Lock` handle backed by a memfd
/// whose size is not sealed, then truncates it; the receiver died with
/// SIGBUS at its next access. Received handles to mapped objects are
/// accepted only with their size sealed.
#[test]
fn a_received_handle_whose_size_is_not_sealed_is_refused() {
    use std::io::{Read as _, Write as _};
    let _w = watchdog(
        "a_received_handle_whose_size_is_not_sealed_is_refused",
        LIMIT,
    );
    // The real lock's bytes, copied into a memfd that is not sealed.
    let lock = Lock::new().unwrap();
    let (mut a, b) = duplex::<Lock>().unwrap();
    a.send(&lock).unwrap();
    let mut b: Connection<HandleWire> = b.cast();
    let wire = b.recv().unwrap();
    let mut bytes = Vec::new();
    std::fs::File::from(wire.fd.0)
        .read_to_end(&mut bytes)
        .unwrap();
    let forged = multiproc_sys::shm::memfd("forged", bytes.len() as u64).unwrap();
    let mut f = std::fs::File::from(forged);
    f.write_all(&bytes).unwrap();
    // Send it as a Lock to a child.
    let (mine, theirs) = duplex::<HandleWire>().unwrap();
    let mut mine = mine;
    let mut child = Process::spawn(receive_forged_lock, theirs.cast()).unwrap();
    mine.send(&HandleWire {
        fd: multiproc::Fd(f.try_clone().unwrap().into()),
        off: wire.off,
        layout: wire.layout,
    })
    .unwrap();
    let mut mine: Connection<u8> = mine.cast();
    // If the child accepted it, shrink the file under it.
    if mine.recv_timeout(Duration::from_secs(10)).is_ok() {
        f.set_len(0).unwrap();
        mine.send(&1).unwrap();
    }
    match child.join() {
        Err(e) => panic!("the receiver died: {e}"),
        Ok(Ok(())) => panic!("an unsealed handle was accepted"),
        Ok(Err(msg)) => assert!(msg.contains("not sealed"), "{msg}"),
    }
    drop((a, lock));
}
