//! Cross-process tests of Queue, SimpleQueue and JoinableQueue, including
//! kill -9 of producers and consumers at random points.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{sleep_forever, wait_until, watchdog};
use multiproc::{
    Connection, GetError, JoinableQueue, Process, PutError, Queue, RawArray, SimpleQueue, pipe,
};
use multiproc::{SendTimeoutError, TimeoutError, TryError, TrySendError};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(240);

#[test]
fn seed_003_bounded_queue_of_two() {
    let q = Queue::<i32>::bounded(2).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert_eq!(q.qsize(), 2);
    assert!(q.is_full());
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.get().unwrap(), 2);
    assert_eq!(q.qsize(), 0);
    assert!(q.is_empty());
}

#[test]
fn full_and_empty_hand_back_and_time_out() {
    let q = Queue::<String>::bounded(1).unwrap();
    q.put("a".into()).unwrap();
    match q.try_put("b".into()) {
        Err(TrySendError::Full(item)) => assert_eq!(item, "b"),
        r => panic!("{r:?}"),
    }
    let t = Instant::now();
    match q.put_timeout("c".into(), Duration::from_millis(50)) {
        Err(SendTimeoutError::Timeout(item)) => assert_eq!(item, "c"),
        r => panic!("{r:?}"),
    }
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert_eq!(q.try_get().unwrap(), "a");
    assert!(matches!(q.try_get(), Err(TryError::WouldBlock)));
    assert!(matches!(
        q.get_timeout(Duration::from_millis(30)),
        Err(TimeoutError::Timeout)
    ));
}

fn take_one_later(q: Queue<u64>) -> u64 {
    // Take only once the parent is blocked in its put.
    assert!(wait_until(LIMIT, || q.sleepers().1 > 0), "no blocked put");
    q.get().unwrap()
}

#[test]
fn a_blocked_put_is_released_by_a_get_in_another_process() {
    let _w = watchdog(
        "a_blocked_put_is_released_by_a_get_in_another_process",
        LIMIT,
    );
    let q = Queue::<u64>::bounded(1).unwrap();
    q.put(1).unwrap();
    let mut p = Process::spawn(take_one_later, q.clone()).unwrap();
    q.put(2).unwrap(); // blocks until the child takes 1
    // The child took 1 only after this put had blocked.
    assert_eq!(q.qsize(), 1);
    assert_eq!(p.join().unwrap(), 1);
    assert_eq!(q.get().unwrap(), 2);
}

fn close_later(q: Queue<u64>) {
    // Close only once the parent is blocked in its get.
    assert!(wait_until(LIMIT, || q.sleepers().0 > 0), "no blocked get");
    q.close();
}

#[test]
fn close_fails_puts_drains_gets_and_wakes_waiters() {
    let _w = watchdog("close_fails_puts_drains_gets_and_wakes_waiters", LIMIT);
    let q = Queue::<u64>::new().unwrap();
    q.put(7).unwrap();
    q.put(8).unwrap();
    q.close();
    assert!(q.is_closed());
    assert!(matches!(q.put(9), Err(PutError::Closed(9))));
    assert_eq!(q.get().unwrap(), 7);
    assert_eq!(q.iter().collect::<Vec<_>>(), vec![8]);
    assert!(matches!(q.get(), Err(GetError::Closed)));
    // A get blocked on an empty queue is woken by a close in another process.
    let q = Queue::<u64>::new().unwrap();
    let mut p = Process::spawn(close_later, q.clone()).unwrap();
    assert!(matches!(q.get(), Err(GetError::Closed)));
    p.join().unwrap();
}

#[test]
fn batches_and_bytes() {
    let q = Queue::<u32>::builder().capacity(4096).build().unwrap();
    assert_eq!(q.put_many(0..100).unwrap(), 100);
    let got = q.get_many(60, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(got, (0..60).collect::<Vec<_>>());
    let rest = q.get_many(1000, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(rest, (60..100).collect::<Vec<_>>());
    assert!(matches!(
        q.get_many(5, Some(Duration::from_millis(10))),
        Err(TimeoutError::Timeout)
    ));
    q.put_bytes(b"raw").unwrap();
    assert_eq!(q.get_bytes().unwrap(), b"raw");
}

fn echo_large(arg: (Queue<Vec<u8>>, Queue<Vec<u8>>)) {
    let (inq, outq) = arg;
    for item in inq.iter() {
        outq.put(item).unwrap();
    }
    outq.close();
}

#[test]
fn items_too_large_for_the_ring_travel_out_of_line() {
    let _w = watchdog("items_too_large_for_the_ring_travel_out_of_line", LIMIT);
    // A 4 KiB ring: items above 1 KiB go out of line, in order with the rest.
    let inq = Queue::<Vec<u8>>::builder().capacity(4096).build().unwrap();
    let outq = Queue::<Vec<u8>>::builder().capacity(4096).build().unwrap();
    let mut p = Process::spawn(echo_large, (inq.clone(), outq.clone())).unwrap();
    let items: Vec<Vec<u8>> = (0..40u32)
        .map(|i| {
            let len = if i % 3 == 0 {
                200_000 + i as usize
            } else {
                10 + i as usize
            };
            (0..len)
                .map(|k| (k as u32).wrapping_mul(31).wrapping_add(i) as u8)
                .collect()
        })
        .collect();
    let sender = {
        let inq = inq.clone();
        let items = items.clone();
        std::thread::spawn(move || {
            for it in items {
                inq.put(it).unwrap();
            }
            inq.close();
        })
    };
    let got: Vec<Vec<u8>> = outq.iter().collect();
    sender.join().unwrap();
    p.join().unwrap();
    assert_eq!(got.len(), items.len());
    assert!(got == items, "items differ");
}

fn answer_through(q: Queue<(String, Connection<String>)>) {
    let (name, mut reply) = q.get().unwrap();
    reply.send(&format!("hello {name}")).unwrap();
}

#[test]
fn items_carry_handles_in_order_with_the_rest() {
    let _w = watchdog("items_carry_handles_in_order_with_the_rest", LIMIT);
    let q = Queue::<(String, Connection<String>)>::new().unwrap();
    let (mut mine, theirs) = multiproc::duplex::<String>().unwrap();
    q.put(("child".into(), theirs)).unwrap();
    let mut p = Process::spawn(answer_through, q.clone()).unwrap();
    assert_eq!(mine.recv().unwrap(), "hello child");
    p.join().unwrap();
}

/// (producer, seq, checksum)
type Msg = (u32, u32, u32);

fn checksum(p: u32, s: u32) -> u32 {
    p.wrapping_mul(0x9E37_79B9) ^ s.wrapping_mul(0x85EB_CA6B)
}

fn producer(arg: (Queue<Msg>, u32, u32)) {
    let (q, id, n) = arg;
    for s in 1..=n {
        q.put((id, s, checksum(id, s))).unwrap();
    }
}

fn consumer(arg: (Queue<Msg>, Connection<Vec<Msg>>)) {
    let (q, mut report) = arg;
    let mut got = Vec::new();
    while let Ok(m) = q.get() {
        got.push(m);
    }
    report.send(&got).unwrap();
}

#[test]
fn many_producers_many_consumers_no_loss_no_duplicate_in_order() {
    let _w = watchdog(
        "many_producers_many_consumers_no_loss_no_duplicate_in_order",
        LIMIT,
    );
    let q = Queue::<Msg>::builder()
        .capacity(16 << 10)
        .maxsize(64)
        .build()
        .unwrap();
    let n = 3_000;
    let mut prods: Vec<Process> = (0..3)
        .map(|id| Process::spawn(producer, (q.clone(), id, n)).unwrap())
        .collect();
    let mut reports = Vec::new();
    let mut cons = Vec::new();
    for _ in 0..3 {
        let (rx, tx) = pipe().unwrap();
        cons.push(Process::spawn(consumer, (q.clone(), tx)).unwrap());
        reports.push(rx);
    }
    for p in &mut prods {
        p.join().unwrap();
    }
    q.close();
    let mut all = Vec::new();
    for (c, mut rx) in cons.iter_mut().zip(reports) {
        let got = rx.recv().unwrap();
        // Per producer, each consumer sees increasing sequence numbers.
        let mut last: HashMap<u32, u32> = HashMap::new();
        for &(p, s, sum) in &got {
            assert_eq!(sum, checksum(p, s), "corrupt message");
            let prev = last.insert(p, s).unwrap_or(0);
            assert!(s > prev, "producer {p} out of order: {s} after {prev}");
        }
        all.extend(got);
        c.join().unwrap();
    }
    assert_eq!(all.len(), 3 * n as usize, "lost or duplicated messages");
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "duplicates");
}

#[test]
fn simple_queue() {
    let q = SimpleQueue::<String>::new().unwrap();
    assert!(q.is_empty());
    q.put("x".into()).unwrap();
    assert!(!q.is_empty());
    assert_eq!(q.get().unwrap(), "x");
    q.close();
    assert!(matches!(q.get(), Err(GetError::Closed)));
}

fn worker(q: JoinableQueue<u32>) {
    while let Ok(_item) = q.get() {
        q.task_done().unwrap();
    }
}

#[test]
fn joinable_queue_task_done_and_join() {
    let _w = watchdog("joinable_queue_task_done_and_join", LIMIT);
    let q = JoinableQueue::<u32>::new().unwrap();
    assert!(q.task_done().is_err(), "task_done with nothing taken");
    for i in 0..100 {
        q.put(i).unwrap();
    }
    assert_eq!(q.unfinished(), 100);
    assert!(q.join_timeout(Duration::from_millis(20)).is_err());
    let mut w = Process::spawn(worker, q.clone()).unwrap();
    q.join().unwrap();
    assert_eq!(q.unfinished(), 0);
    q.close();
    w.join().unwrap();
}

fn take_and_die(arg: (JoinableQueue<u32>, Connection<u32>)) {
    let (q, mut tx) = arg;
    let item = q.get().unwrap();
    tx.send(&item).unwrap();
    sleep_forever();
}

#[test]
fn join_reports_the_tasks_of_a_consumer_that_died() {
    let _w = watchdog("join_reports_the_tasks_of_a_consumer_that_died", LIMIT);
    let q = JoinableQueue::<u32>::new().unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    let (mut rx, tx) = pipe().unwrap();
    let mut c = Process::spawn(take_and_die, (q.clone(), tx)).unwrap();
    assert_eq!(rx.recv().unwrap(), 1);
    c.kill().unwrap();
    c.wait().unwrap();
    // Item 2 is still ours to process.
    assert_eq!(q.get().unwrap(), 2);
    q.task_done().unwrap();
    // Item 1 died with its consumer: join neither waits for it for good
    // nor returns Ok as if it were done; it names it.
    let t0 = Instant::now();
    match q.join_timeout(Duration::from_secs(30)) {
        Err(TimeoutError::Failed(multiproc::JoinError::Abandoned { tasks: 1 })) => {}
        r => panic!("expected one abandoned task, got {r:?}"),
    }
    assert!(t0.elapsed() >= multiproc::queue::ABANDON_AFTER);
    assert_eq!(q.unfinished(), 1);
    // Anyone may still mark it done; then join returns.
    q.task_done().unwrap();
    q.join_timeout(Duration::from_secs(10)).unwrap();
}

/// Take `n` items and hand them to a worker over a pipe, then exit
/// normally.
fn take_and_hand_on(arg: (JoinableQueue<u32>, Connection<u32>, u32)) {
    let (q, mut to_worker, n) = arg;
    for _ in 0..n {
        to_worker.send(&q.get().unwrap()).unwrap();
    }
}

/// Receive items from the pipe and mark each done once `go` is set.
fn finish_handed_tasks(arg: (JoinableQueue<u32>, Connection<u32>, multiproc::Event)) -> u32 {
    let (q, mut from_taker, go) = arg;
    let mut got = Vec::new();
    while let Ok(item) = from_taker.recv() {
        got.push(item);
    }
    go.wait();
    for _ in &got {
        q.task_done().expect("task_done of a handed-on task");
    }
    got.len() as u32
}

/// Regression test (6a): a process takes three items, hands them to a
/// worker and exits normally. Its tasks were forgiven as a dead
/// consumer's: `join` returned at once and the worker's `task_done` calls
/// failed with TooManyCalls. Python allows `task_done` from any process.
#[test]
fn join_waits_for_tasks_handed_to_another_process() {
    let _w = watchdog("join_waits_for_tasks_handed_to_another_process", LIMIT);
    let q = JoinableQueue::<u32>::new().unwrap();
    for i in 0..3 {
        q.put(i).unwrap();
    }
    let go = multiproc::Event::new().unwrap();
    let (rx, tx) = pipe().unwrap();
    let mut w = Process::spawn(finish_handed_tasks, (q.clone(), rx, go.clone())).unwrap();
    let mut taker = Process::spawn(take_and_hand_on, (q.clone(), tx, 3)).unwrap();
    taker.join().unwrap();
    // The taker is gone, its tasks are not done: join must wait.
    assert!(matches!(
        q.join_timeout(Duration::from_millis(500)),
        Err(TimeoutError::Timeout)
    ));
    assert_eq!(q.unfinished(), 3);
    go.set();
    q.join_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(w.join().unwrap(), 3);
}

// ----- kill -9 at random points -----------------------------------------------

fn acked_producer(arg: (Queue<Msg>, RawArray<u32>, u32, u32)) {
    let (q, acked, id, n) = arg;
    for s in 1..=n {
        q.put((id, s, checksum(id, s))).unwrap();
        acked.set(id as usize, s).unwrap();
    }
}

fn reporting_consumer(arg: (Queue<Msg>, Connection<Msg>)) {
    let (q, mut report) = arg;
    while let Ok(m) = q.get() {
        report.send(&m).unwrap();
    }
}

#[test]
fn kill_9_of_producers_and_consumers_at_random_points() {
    let _w = watchdog("kill_9_of_producers_and_consumers_at_random_points", LIMIT);
    let mut seed = 0x2545_F491_4F6C_DD1Du64 ^ u64::from(std::process::id());
    let mut rand = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let n = 400;
    for round in 0..200 {
        let q = Queue::<Msg>::builder()
            .capacity(8 << 10)
            .maxsize(32)
            .build()
            .unwrap();
        let acked = RawArray::<u32>::zeroed(2).unwrap();
        let mut prods: Vec<Process> = (0..2)
            .map(|id| Process::spawn(acked_producer, (q.clone(), acked.clone(), id, n)).unwrap())
            .collect();
        let (mut rx, tx) = pipe().unwrap();
        let mut cons = Process::spawn(reporting_consumer, (q.clone(), tx)).unwrap();
        std::thread::sleep(Duration::from_micros(rand(3_000)));
        let victim = rand(3);
        match victim {
            0 | 1 => prods[victim as usize].kill().unwrap(),
            _ => cons.kill().unwrap(),
        }
        // Drain alongside the consumer (which may be the one killed) until
        // the producers are done: a bounded queue with no consumer would
        // block them, correctly, forever.
        let mut got: Vec<Msg> = Vec::new();
        let stall = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(
                Instant::now() < stall,
                "round {round} (victim {victim}) stalled: {}",
                q.debug_state()
            );
            match q.get_timeout(Duration::from_millis(20)) {
                Ok(m) => got.push(m),
                Err(TimeoutError::Timeout) => {
                    if prods.iter_mut().all(|p| !p.is_alive()) && q.is_empty() {
                        break;
                    }
                }
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        for p in &mut prods {
            p.wait().unwrap();
        }
        q.close();
        cons.wait().unwrap();
        // Until EOF, or a torn frame from a consumer killed mid-send (the
        // item in it is one it took and died with).
        while let Ok(m) = rx.recv() {
            got.push(m);
        }
        while let Ok(m) = q.try_get() {
            got.push(m);
        }
        let mut seen = HashSet::new();
        for &(p, s, sum) in &got {
            assert_eq!(sum, checksum(p, s), "round {round}: corrupt message");
            assert!(seen.insert((p, s)), "round {round}: duplicate {p}/{s}");
        }
        let mut missing = 0;
        for p in 0..2u32 {
            let acks = acked.get(p as usize).unwrap();
            for s in 1..=acks {
                if !seen.contains(&(p, s)) {
                    missing += 1;
                }
            }
            // Nothing beyond the last put that could have returned.
            assert!(
                seen.iter().all(|&(pp, s)| pp != p || s <= acks + 1),
                "round {round}: phantom message"
            );
        }
        // Only a killed consumer may take one acknowledged item with it.
        let allowed = if victim == 2 { 1 } else { 0 };
        assert!(
            missing <= allowed,
            "round {round}: {missing} acknowledged messages lost (victim {victim})"
        );
    }
}

// ----- failpoints: a process stopped at each step, then killed ----------------------

/// What the victim does: arm `point`, then put or get `n` items.
#[derive(serde::Serialize, serde::Deserialize)]
struct Victim {
    point: String,
    notify: multiproc::Fd,
    put: bool,
    big: bool,
}

fn item(i: u32, big: bool) -> Vec<u8> {
    let len = if big { 3000 } else { 24 };
    (0..len)
        .map(|k| (k as u32 ^ i.wrapping_mul(0x9E37_79B9)) as u8)
        .collect()
}

/// Spawn `victim_fn` armed at `point` (put or get side) and wait until it
/// stops there.
fn spawn_stopped(
    victim_fn: fn((Queue<Vec<u8>>, Victim)),
    q: &Queue<Vec<u8>>,
    point: &str,
    put: bool,
    big: bool,
) -> Process {
    let (r, w) = multiproc_sys::fd::pipe().unwrap();
    let victim = Victim {
        point: point.into(),
        notify: multiproc::Fd(w),
        put,
        big,
    };
    let p = Process::spawn(victim_fn, (q.clone(), victim)).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(
        multiproc_sys::io::read(std::os::fd::AsFd::as_fd(&r), &mut b).unwrap(),
        1,
        "{point}: never reached"
    );
    p
}

/// Everything a queue holds, until it stays empty for 300 ms.
fn drain(q: &Queue<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while let Ok(v) = q.get_timeout(Duration::from_millis(300)) {
        got.push(v);
    }
    got
}

fn stop_at(arg: (Queue<Vec<u8>>, Victim)) {
    let (q, v) = arg;
    multiproc::failpoint::arm(&v.point, v.notify);
    for i in 100..110 {
        if v.put {
            q.put(item(i, v.big)).unwrap();
        } else {
            q.get().unwrap();
        }
    }
}

#[test]
fn kill_at_every_failpoint_of_put_and_get() {
    let _w = watchdog("kill_at_every_failpoint_of_put_and_get", LIMIT);
    // (point, is a put, big item (out of line), delivered after the kill?)
    let cases = [
        ("put.locked", true, false, false),
        ("put.half", true, false, false),
        ("put.half", true, true, false),
        ("put.sent", true, true, false),
        ("put.published", true, false, true),
        ("put.published", true, true, true),
        ("put.committed", true, false, true),
        ("put.committed", true, true, true),
        ("put.unlocked", true, false, true),
        ("get.locked", false, false, true),
        ("get.copied", false, false, true),
        ("get.copied", false, true, true),
        ("get.committed", false, false, false),
        ("get.committed", false, true, false),
    ];
    for (point, put, big, survives) in cases {
        // A 4 KiB ring: 3000-byte items go out of line.
        let q = Queue::<Vec<u8>>::builder()
            .capacity(4096)
            .maxsize(4)
            .build()
            .unwrap();
        if !put {
            q.put(item(1, big)).unwrap();
            q.put(item(2, big)).unwrap();
        }
        let mut p = spawn_stopped(stop_at, &q, point, put, big);
        p.kill().unwrap();
        p.wait().unwrap();
        // The queue goes on: every operation completes within its timeout
        // (a lock the victim held is taken over).
        let t = Duration::from_secs(5);
        let got = drain(&q);
        let expected: Vec<Vec<u8>> = if put {
            if survives {
                vec![item(100, big)]
            } else {
                vec![]
            }
        } else if survives {
            vec![item(1, big), item(2, big)]
        } else {
            vec![item(2, big)]
        };
        assert!(
            got == expected,
            "{point} (big: {big}): got {} items, expected {}",
            got.len(),
            expected.len()
        );
        // And can be filled to its limit and drained again, in order.
        for i in 0..4 {
            q.put_timeout(item(i, big), t).unwrap();
        }
        assert!(q.try_put(item(9, big)).unwrap_err().is_full());
        for i in 0..4 {
            assert!(
                q.get_timeout(t).unwrap() == item(i, big),
                "{point}: order after the kill"
            );
        }
    }
}

/// A victim that first takes both queue locks again and again (so that both
/// are biased to it and it enters them without the fallback lock), then
/// stops at `point` inside a put of item 1000, or a put and a get of it.
fn biased_stop_at(arg: (Queue<Vec<u8>>, Victim)) {
    let (q, v) = arg;
    for i in 0..200 {
        q.put(item(i, false)).unwrap();
        q.get().unwrap();
    }
    multiproc::failpoint::arm(&v.point, v.notify);
    if v.put {
        q.put(item(1000, v.big)).unwrap();
    } else {
        q.put(item(1000, v.big))
            .unwrap_or_else(|_| std::process::exit(3));
        q.get().unwrap();
    }
}

#[test]
fn kill_a_biased_holder_inside_put_and_get() {
    let _w = watchdog("kill_a_biased_holder_inside_put_and_get", LIMIT);
    // (point, stops in put (else in get), item 1000 in the queue after?)
    let cases = [
        ("put.half", true, false),
        ("put.published", true, true),
        ("put.committed", true, true),
        ("get.copied", false, true),
        ("get.committed", false, false),
    ];
    for (point, put, survives) in cases {
        let q = Queue::<Vec<u8>>::builder()
            .capacity(1 << 16)
            .build()
            .unwrap();
        let mut p = spawn_stopped(biased_stop_at, &q, point, put, false);
        // The victim is inside a critical section it entered on its bias.
        let state = q.debug_state();
        assert!(
            state.contains("P-bias true") && state.contains("C-bias true"),
            "{point}: the locks are not biased: {state}"
        );
        p.kill().unwrap();
        p.wait().unwrap();
        // Both locks are taken over from the dead bias owner (a get waits
        // for the consumers' lock, a put for the producers').
        let t = Duration::from_secs(5);
        let got = drain(&q);
        let expected = if survives {
            vec![item(1000, false)]
        } else {
            vec![]
        };
        assert!(got == expected, "{point}: got {} items", got.len());
        for i in 0..8 {
            q.put_timeout(item(i, false), t).unwrap();
        }
        assert_eq!(q.qsize(), 8, "{point}: count after the kill");
        for i in 0..8 {
            assert!(
                q.get_timeout(t).unwrap() == item(i, false),
                "{point}: order after the kill"
            );
        }
        assert!(q.is_empty());
    }
}

/// The `tail` offset in a queue's ring of `cap` bytes, from its diagnostics.
fn tail_offset(q: &Queue<Vec<u8>>, cap: u32) -> u32 {
    let s = q.debug_state();
    let at = s
        .split("tail Pos { at: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no tail in {s}"));
    at & (cap - 1)
}

/// Stream one item ahead of its own gets until a put restarts the lap with
/// that item still pending, then put without getting: the put that runs out
/// of room moves the pending item behind the WRAP (`reclaim.copied`), where
/// the failpoint stops it for the kill.
fn strand_then_fill(arg: (Queue<Vec<u8>>, Victim)) {
    let (q, v) = arg;
    let cap = 4096;
    q.put(item(0, false)).unwrap();
    let mut i = 1;
    loop {
        let before = tail_offset(&q, cap);
        q.put(item(i, false)).unwrap();
        i += 1;
        if tail_offset(&q, cap) < before {
            break;
        }
        assert!(q.get().unwrap() == item(i - 2, false), "stream order");
    }
    multiproc::failpoint::arm(&v.point, v.notify);
    loop {
        q.put(item(i, false)).unwrap();
        i += 1;
    }
}

#[test]
fn a_producer_killed_while_it_reclaims_a_lap_loses_nothing() {
    let _w = watchdog(
        "a_producer_killed_while_it_reclaims_a_lap_loses_nothing",
        LIMIT,
    );
    let q = Queue::<Vec<u8>>::builder().capacity(4096).build().unwrap();
    let (r, w) = multiproc_sys::fd::pipe().unwrap();
    let victim = Victim {
        point: "reclaim.copied".into(),
        notify: multiproc::Fd(w),
        put: true,
        big: false,
    };
    let mut p = Process::spawn(strand_then_fill, (q.clone(), victim)).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(
        multiproc_sys::io::read(std::os::fd::AsFd::as_fd(&r), &mut b).unwrap(),
        1,
        "reclaim.copied never reached: {}",
        q.debug_state()
    );
    p.kill().unwrap();
    p.wait().unwrap();
    // Everything the victim put and did not get is there, in order, with
    // no gap and no duplicate, and the queue keeps working.
    let mut got = Vec::new();
    while let Ok(v) = q.get_timeout(Duration::from_millis(300)) {
        got.push(v);
    }
    assert!(got.len() > 10, "only {} items left", got.len());
    let first = (0..10_000)
        .find(|&k| item(k, false) == got[0])
        .expect("a known item");
    for (k, v) in got.iter().enumerate() {
        assert!(*v == item(first + k as u32, false), "item {k} out of order");
    }
    let t = Duration::from_secs(5);
    // (Fifty 24-byte items fill about half the 4 KiB ring.)
    for i in 0..50 {
        q.put_timeout(item(i, false), t).unwrap();
    }
    for i in 0..50 {
        assert!(
            q.get_timeout(t).unwrap() == item(i, false),
            "after the kill"
        );
    }
}

#[test]
fn out_of_range_sizes_are_refused_not_clamped() {
    use std::io::ErrorKind::InvalidInput;
    for bytes in [0, 4095, (2usize << 31) + 1] {
        let e = Queue::<u8>::builder()
            .capacity(bytes)
            .build::<u8>()
            .unwrap_err();
        assert_eq!(e.kind(), InvalidInput, "capacity {bytes}: {e}");
    }
    let e = Queue::<u8>::bounded(usize::MAX).unwrap_err();
    assert_eq!(e.kind(), InvalidInput, "{e}");
    // The bounds themselves are fine, and a size between powers of two is
    // rounded up.
    Queue::<u8>::builder().capacity(4096).build::<u8>().unwrap();
    Queue::<u8>::builder().capacity(5000).build::<u8>().unwrap();
    Queue::<u8>::bounded(u32::MAX as usize).unwrap();
}
