//! `async` condition and barrier waits across processes: notifications are
//! neither lost nor swallowed by cancelled waiters, barrier parties meet
//! blocking ones, a cancelled party leaves the barrier unbroken, a dead one
//! breaks it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{sleep_forever, wait_until, watchdog};
use multiproc::{AsyncConditionGuard, Barrier, Condition, Lock, Process, Queue, RawValue};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(120);

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// Make `n` items available one at a time under the condition's lock
/// (blocking), each with `notify(1)`, and the next only once this one was
/// taken: every item needs its notification delivered to a sleeping
/// waiter. The lock is kept a moment after the notify, so that woken
/// waiters queue for it (and a cancel lands between a waiter's claim and
/// its re-lock).
fn produce_items(arg: (Condition, RawValue<u64>, u64)) {
    let (cond, avail, n) = arg;
    for i in 0..n {
        let g = cond.lock().unwrap();
        avail.set(1);
        g.notify(1);
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_micros(30) {
            std::hint::spin_loop();
        }
        drop(g);
        // A hang detector, not a timing check: the steady waiters take an
        // item within microseconds unless its notification was lost.
        let t = std::time::Instant::now();
        while avail.get() != 0 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "item {i} was never taken: its notification was lost"
            );
            std::thread::yield_now();
        }
    }
}

/// Take one item under the lock, waiting for one with `notify(1)`
/// wake-ups only; `false` when told to stop.
async fn take_one(cond: &Condition, avail: &RawValue<u64>, stop: &AtomicBool) -> bool {
    let g = cond.lock_async().await.unwrap();
    let pred = || avail.get() > 0 || stop.load(Ordering::SeqCst);
    let (g, _) = g.wait_for_async(pred, None).await.unwrap();
    if avail.get() == 0 {
        return false;
    }
    avail.set(avail.get() - 1);
    drop(g);
    true
}

/// Wait on the condition and be cancelled at random points (some after
/// claiming a notification, before re-taking the lock: those must give it
/// back); a wait that completes passes its notification on, as a waiter
/// that does not act on it must. Never takes an item.
async fn wait_and_cancel(cond: Condition, stop: Arc<AtomicBool>, cancels: Arc<AtomicU64>, k: u64) {
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let t = Duration::from_micros((i * 7919 + k * 104_729) % 200);
        let g = cond.lock_async().await.unwrap();
        match tokio::time::timeout(t, g.wait_async()).await {
            Ok(g) => g.unwrap().notify(1),
            Err(_) => {
                cancels.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// `notify(1)` per item from another process reaches the async waiters
/// that take items, while other async waiters are cancelled at random
/// points of their waits. Every item is taken once; a notification
/// swallowed by a cancelled waiter leaves its item untaken, which the
/// producer reports.
#[test]
fn notify_one_reaches_async_waiters_while_others_are_cancelled() {
    let _w = watchdog("cond_notify_one", LIMIT);
    // Over an RLock (the default), which the async guard takes plainly
    // while the producer takes it re-entrantly.
    let cond = Condition::new().unwrap();
    let avail = RawValue::<u64>::new(0).unwrap();
    let n = 5000u64;
    let mut p = Process::spawn(produce_items, (cond.clone(), avail.clone(), n)).unwrap();
    let taken = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let cancels = Arc::new(AtomicU64::new(0));
    let rt = multi_thread();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for k in 0..3u64 {
            tasks.push(tokio::spawn(wait_and_cancel(
                cond.clone(),
                stop.clone(),
                cancels.clone(),
                k,
            )));
            let (cond, avail, taken, stop) =
                (cond.clone(), avail.clone(), taken.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while take_one(&cond, &avail, &stop).await {
                    taken.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        tokio::task::spawn_blocking(move || p.join().unwrap())
            .await
            .unwrap();
        let g = cond.lock_async().await.unwrap();
        stop.store(true, Ordering::SeqCst);
        g.notify_all();
        drop(g);
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(taken.load(Ordering::SeqCst), n, "items lost or duplicated");
    assert_eq!(avail.get(), 0);
    assert!(
        cancels.load(Ordering::SeqCst) >= 100,
        "too few cancels to mean anything: {}",
        cancels.load(Ordering::SeqCst)
    );
}

#[test]
fn a_cancelled_or_timed_out_condition_wait_leaves_the_lock_as_documented() {
    let _w = watchdog("cond_cancel", LIMIT);
    let lock = Lock::new().unwrap();
    let cond = Condition::with_lock(lock.clone()).unwrap();
    let rt = multi_thread();
    rt.block_on(async {
        let g = cond.lock_async().await.unwrap();
        assert!(lock.is_locked());
        // Timed out: the guard comes back, holding the lock again.
        let (g, notified) = g
            .wait_timeout_async(Duration::from_millis(20))
            .await
            .unwrap();
        assert!(!notified);
        assert!(lock.is_locked());
        // Cancelled: the lock stays released.
        assert!(
            tokio::time::timeout(Duration::from_millis(20), g.wait_async())
                .await
                .is_err()
        );
        assert!(!lock.is_locked(), "a cancelled wait left the lock held");
        // Another locker (a blocking one) is not shut out.
        assert!(cond.try_lock().is_ok());
        // lock_timeout_async times out on a held lock.
        let held = lock.lock().unwrap();
        assert!(
            cond.lock_timeout_async(Duration::from_millis(20))
                .await
                .is_err()
        );
        drop(held);
    });
}

/// Meet `rounds` times, reporting each arrival index.
fn meet(arg: (Barrier, Queue<(u32, u32)>, u32)) {
    let (b, out, rounds) = arg;
    for r in 0..rounds {
        let i = b.wait().unwrap();
        out.put((r, i)).unwrap();
    }
}

#[test]
fn async_barrier_parties_meet_blocking_ones_in_other_processes() {
    let _w = watchdog("barrier_meet", LIMIT);
    let b = Barrier::new(4).unwrap();
    let out = Queue::<(u32, u32)>::new().unwrap();
    let rounds = 100;
    let mut ps: Vec<_> = (0..2)
        .map(|_| Process::spawn(meet, (b.clone(), out.clone(), rounds)).unwrap())
        .collect();
    let rt = multi_thread();
    rt.block_on(async {
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let (b, out) = (b.clone(), out.clone());
                tokio::spawn(async move {
                    for r in 0..rounds {
                        let i = b.wait_async().await.unwrap();
                        out.put_async((r, i)).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    for p in &mut ps {
        p.join().unwrap();
    }
    let mut seen = vec![Vec::new(); rounds as usize];
    for _ in 0..4 * rounds {
        let (r, i) = out.get().unwrap();
        seen[r as usize].push(i);
    }
    for (r, mut idx) in seen.into_iter().enumerate() {
        idx.sort_unstable();
        assert_eq!(idx, [0, 1, 2, 3], "round {r}");
    }
    assert!(!b.broken());
}

fn wait_once(b: Barrier) {
    b.wait().unwrap();
}

#[test]
fn a_cancelled_async_barrier_wait_leaves_it_unbroken() {
    let _w = watchdog("barrier_cancel", LIMIT);
    let b = Barrier::new(2).unwrap();
    let rt = multi_thread();
    rt.block_on(async {
        for _ in 0..20 {
            assert!(
                tokio::time::timeout(Duration::from_millis(5), b.wait_async())
                    .await
                    .is_err()
            );
            assert_eq!(b.n_waiting(), 0, "a cancelled party stayed");
            assert!(!b.broken());
        }
        // Two real parties still meet.
        let mut p = Process::spawn(wait_once, b.clone()).unwrap();
        b.wait_async().await.unwrap();
        tokio::task::spawn_blocking(move || p.join().unwrap())
            .await
            .unwrap();
    });
}

fn arrive_and_hang(b: Barrier) {
    let _ = b.wait();
    sleep_forever();
}

#[test]
fn a_dead_party_breaks_an_async_barrier_wait() {
    let _w = watchdog("barrier_death", LIMIT);
    let b = Barrier::new(3).unwrap();
    let mut p = Process::spawn(arrive_and_hang, b.clone()).unwrap();
    assert!(wait_until(Duration::from_secs(10), || b.n_waiting() == 1));
    let rt = multi_thread();
    rt.block_on(async {
        let b2 = b.clone();
        let t = tokio::spawn(async move { b2.wait_async().await });
        assert!(
            tokio::time::timeout(Duration::from_secs(10), async {
                while b.n_waiting() < 2 {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .is_ok()
        );
        p.kill().unwrap();
        assert!(t.await.unwrap().is_err(), "a dead party did not break it");
    });
    assert!(b.broken());
}

/// The futures can move between the threads of a multi-threaded runtime.
#[test]
fn the_condition_and_barrier_futures_are_send() {
    fn send<T: Send>(_: T) {}
    fn waits_are_send(g: AsyncConditionGuard<'_>) {
        send(g.wait_async());
    }
    let _ = waits_are_send;
    let cond = Condition::new().unwrap();
    let b = Barrier::new(1).unwrap();
    send(cond.lock_async());
    send(b.wait_async());
}
