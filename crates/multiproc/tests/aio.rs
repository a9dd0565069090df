//! `async` operations across processes: many tasks on one runtime thread,
//! cancellation at every await point with no item lost, owner death while
//! a task awaits a lock.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{sleep_forever, watchdog};
use multiproc::{AcquireError, Event, JoinableQueue, Lock, Process, Queue, Semaphore};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(120);

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// A small xorshift, so a failure's history can be replayed from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Put `n` tagged items, pausing now and then so that getters sleep.
fn produce(arg: (Queue<(u32, u32)>, u32, u32)) {
    let (q, tag, n) = arg;
    let mut rng = Rng(u64::from(tag) * 7919 + 1);
    for i in 0..n {
        q.put((tag, i)).unwrap();
        if rng.next() % 64 == 0 {
            std::thread::sleep(Duration::from_micros(rng.next() % 2000));
        }
    }
}

fn set_later(arg: (Event, Semaphore)) {
    let (ev, sem) = arg;
    std::thread::sleep(Duration::from_millis(50));
    ev.set();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(10));
        sem.release().unwrap();
    }
}

#[test]
fn many_tasks_on_one_thread_wait_on_objects_fed_by_other_processes() {
    let _w = watchdog("many_tasks", LIMIT);
    let queues: Vec<Queue<(u32, u32)>> = (0..3).map(|_| Queue::bounded(16).unwrap()).collect();
    let ev = Event::new().unwrap();
    let sem = Semaphore::new(0).unwrap();
    let n = 3000u32;
    let kids: Vec<Process<()>> = queues
        .iter()
        .enumerate()
        .map(|(i, q)| Process::spawn(produce, (q.clone(), i as u32, n)).unwrap())
        .collect();
    let mut setter = Process::spawn(set_later, (ev.clone(), sem.clone())).unwrap();
    let rt = current_thread();
    let (got, waited) = rt.block_on(async {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                // Three getters per queue, each taking until a sentinel.
                let mut getters = Vec::new();
                for q in &queues {
                    for _ in 0..3 {
                        let q = q.clone();
                        getters.push(tokio::task::spawn_local(async move {
                            let mut mine = Vec::new();
                            loop {
                                let (tag, i) = q.get_async().await.unwrap();
                                if i == u32::MAX {
                                    return mine;
                                }
                                mine.push((tag, i));
                            }
                        }));
                    }
                }
                let ev2 = ev.clone();
                let waiter = tokio::task::spawn_local(async move { ev2.wait_async().await });
                let sem2 = sem.clone();
                let permits = tokio::task::spawn_local(async move {
                    for _ in 0..3 {
                        sem2.acquire_async().await;
                    }
                });
                waiter.await.unwrap();
                permits.await.unwrap();
                // Once the producers are done (joined off the runtime
                // thread, which the getters need), one sentinel per getter.
                tokio::task::spawn_blocking(move || {
                    for mut k in kids {
                        k.join().unwrap();
                    }
                })
                .await
                .unwrap();
                for q in &queues {
                    for _ in 0..3 {
                        q.put_async((0, u32::MAX)).await.unwrap();
                    }
                }
                let mut got = Vec::new();
                for g in getters {
                    got.extend(g.await.unwrap());
                }
                (got, true)
            })
            .await
    });
    setter.join().unwrap();
    assert!(waited);
    let set: HashSet<(u32, u32)> = got.iter().copied().collect();
    assert_eq!(got.len(), 3 * n as usize, "items lost or duplicated");
    assert_eq!(set.len(), got.len(), "duplicates");
}

/// Put 0..n, one producer, so the getter side can check order too.
fn produce_plain(arg: (Queue<u32>, u32)) {
    let (q, n) = arg;
    let mut rng = Rng(99);
    for i in 0..n {
        q.put(i).unwrap();
        if rng.next() % 8 == 0 {
            std::thread::sleep(Duration::from_micros(rng.next() % 3000));
        }
    }
}

/// Poll `fut` up to `k` times (with a no-op waker, a short pause between
/// polls so that items arrive while it is registered), then drop it unless
/// it finished: a cancel at the k-th await point.
fn poll_then_drop<F: std::future::Future>(fut: F, k: u64) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for i in 0..k {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        if i >= 8 {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    None
}

#[test]
fn a_thousand_random_cancels_lose_no_item() {
    let _w = watchdog("random_cancels", LIMIT);
    let q = Queue::<u32>::bounded(8).unwrap();
    let n = 20_000u32;
    let mut p = Process::spawn(produce_plain, (q.clone(), n)).unwrap();
    let rt = current_thread();
    let (got, cancels) = rt.block_on(async {
        let mut rng = Rng(12345);
        let mut got = Vec::with_capacity(n as usize);
        let mut cancels = [0u32; 2];
        while got.len() < n as usize {
            if rng.next() % 2 == 0 {
                // Dropped after 1 to 12 polls: every await point (the
                // yields, the registration, the sleep, and a sleep whose
                // wake-up came but was never seen).
                match poll_then_drop(q.get_async(), 1 + rng.next() % 12) {
                    Some(r) => got.push(r.unwrap()),
                    None => cancels[0] += 1,
                }
            } else {
                // Dropped by a timer of 0 to 2 ms in a select.
                let t = Duration::from_micros(rng.next() % 2000);
                tokio::select! {
                    r = q.get_async() => got.push(r.unwrap()),
                    _ = tokio::time::sleep(t) => cancels[1] += 1,
                }
            }
        }
        (got, cancels)
    });
    p.join().unwrap();
    assert!(
        cancels[0] >= 1000 && cancels[1] >= 10,
        "only {cancels:?} cancels: the test did not test"
    );
    let want: Vec<u32> = (0..n).collect();
    assert_eq!(got.len(), want.len(), "lost or duplicated items");
    assert!(got == want, "items out of order");
    assert!(q.try_get().is_err(), "an item left behind");
}

/// A blocking getter in another process beside cancelled async getters:
/// a wake-up swallowed by a cancelled task would leave it asleep with an
/// item in the queue; the counts must add up and nothing may wait long.
fn count_blocking(arg: (Queue<u32>, Queue<u32>)) -> u32 {
    let (q, counts) = arg;
    let mut k = 0;
    while q.get().unwrap() != u32::MAX {
        k += 1;
    }
    counts.put(k).unwrap();
    k
}

#[test]
fn cancelled_tasks_pass_their_wake_up_on() {
    let _w = watchdog("pass_on", LIMIT);
    let q = Queue::<u32>::new().unwrap();
    let counts = Queue::<u32>::new().unwrap();
    let mut blocking = Process::spawn(count_blocking, (q.clone(), counts.clone())).unwrap();
    let rt = current_thread();
    let n = 5000u32;
    let mine = rt.block_on(async {
        let mut rng = Rng(7);
        let mut mine = 0u32;
        for i in 0..n {
            // Put from this thread, then race a get that is cancelled
            // at a random point.
            q.put(i).unwrap();
            let t = Duration::from_micros(rng.next() % 50);
            tokio::select! {
                r = q.get_async() => { r.unwrap(); mine += 1; }
                _ = tokio::time::sleep(t) => {}
            }
        }
        mine
    });
    q.put(u32::MAX).unwrap();
    let theirs = blocking.join().unwrap();
    assert_eq!(mine + theirs, n, "items lost or duplicated");
    assert_eq!(counts.get().unwrap(), theirs);
}

fn hold_and_wait(arg: (Lock, Event)) {
    let (lock, held) = arg;
    std::mem::forget(lock.lock().unwrap());
    held.set();
    sleep_forever();
}

#[test]
fn owner_death_while_awaiting_a_lock_gives_owner_died() {
    let _w = watchdog("owner_died", LIMIT);
    let lock = Lock::new().unwrap();
    let held = Event::new().unwrap();
    let mut p = Process::spawn(hold_and_wait, (lock.clone(), held.clone())).unwrap();
    let rt = current_thread();
    rt.block_on(async {
        held.wait_async().await;
        let lock2 = lock.clone();
        let t = tokio::spawn(async move {
            match lock2.lock_async().await {
                Err(AcquireError::OwnerDied(g)) => {
                    g.mark_consistent();
                    true
                }
                Ok(_) => false,
                Err(e) => panic!("{e}"),
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!t.is_finished(), "took a held lock");
        p.kill().unwrap();
        assert!(t.await.unwrap(), "a dead owner's lock came back Clean");
    });
    // Released consistent: usable again.
    drop(lock.try_lock().unwrap());
}

fn contend(arg: (Lock, Queue<u32>, u32)) {
    let (lock, log, rounds) = arg;
    for i in 0..rounds {
        let g = lock.lock().unwrap();
        log.put(i).unwrap();
        std::thread::sleep(Duration::from_micros(50));
        drop(g);
    }
}

#[test]
fn async_and_blocking_lockers_exclude_each_other() {
    let _w = watchdog("lock_exclusion", LIMIT);
    let lock = Lock::new().unwrap();
    let log = Queue::<u32>::new().unwrap();
    let inside = Semaphore::new(1).unwrap();
    let rounds = 300;
    let mut p = Process::spawn(contend, (lock.clone(), log.clone(), rounds)).unwrap();
    let rt = current_thread();
    rt.block_on(async {
        for _ in 0..rounds {
            let g = lock.lock_async().await.unwrap();
            // Nobody else inside: the blocking locker holds the lock for
            // its whole put-and-sleep.
            assert!(inside.try_acquire());
            tokio::task::yield_now().await;
            inside.release().unwrap();
            drop(g);
        }
    });
    p.join().unwrap();
    assert_eq!(log.qsize(), rounds as usize);
}

fn work_through(q: JoinableQueue<u32>) {
    while let Ok(i) = q.get() {
        if i == u32::MAX {
            q.task_done().unwrap();
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
        q.task_done().unwrap();
    }
}

#[test]
fn join_async_waits_for_every_task_and_put_async_for_room() {
    let _w = watchdog("join_async", LIMIT);
    let q = JoinableQueue::<u32>::bounded(2).unwrap();
    let mut p = Process::spawn(work_through, q.clone()).unwrap();
    let rt = current_thread();
    rt.block_on(async {
        for i in 0..200 {
            q.put_async(i).await.unwrap();
        }
        q.join_async().await.unwrap();
        assert_eq!(q.unfinished(), 0);
        q.put_async(u32::MAX).await.unwrap();
        q.join_async().await.unwrap();
    });
    p.join().unwrap();
}

#[test]
fn timed_async_waits_time_out() {
    let _w = watchdog("timed", LIMIT);
    let q = Queue::<u32>::bounded(1).unwrap();
    let ev = Event::new().unwrap();
    let sem = Semaphore::new(0).unwrap();
    let rt = current_thread();
    rt.block_on(async {
        let t = std::time::Instant::now();
        assert!(
            q.get_timeout_async(Duration::from_millis(30))
                .await
                .is_err()
        );
        assert!(!ev.wait_timeout_async(Duration::from_millis(30)).await);
        assert!(!sem.acquire_timeout_async(Duration::from_millis(30)).await);
        q.put_async(1).await.unwrap();
        match q.put_timeout_async(2, Duration::from_millis(30)).await {
            Err(multiproc::SendTimeoutError::Timeout(2)) => {}
            r => panic!("{r:?}"),
        }
        assert!(t.elapsed() >= Duration::from_millis(120));
    });
}

/// Every future here can move between the threads of a multi-threaded
/// runtime (`tokio::spawn` needs `Send`).
#[test]
fn the_futures_are_send() {
    fn send<T: Send>(_: T) {}
    let q = Queue::<u32>::new().unwrap();
    let j = JoinableQueue::<u32>::new().unwrap();
    let (lock, ev, sem) = (
        Lock::new().unwrap(),
        Event::new().unwrap(),
        Semaphore::new(1).unwrap(),
    );
    send(q.get_async());
    send(q.put_async(1));
    send(q.get_bytes_async());
    send(q.put_bytes_async(b"x"));
    send(j.join_async());
    send(lock.lock_async());
    send(ev.wait_async());
    send(sem.acquire_async());
}
