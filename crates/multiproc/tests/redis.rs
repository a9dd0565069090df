//! `multiproc::redis` against a real server, across real processes. The
//! server's URL comes from `MULTIPROC_REDIS_URL` (`.ci/run` starts one on a
//! loopback port); without it every test says it is skipped and passes.

#![cfg(feature = "redis")]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::redis::{cleanup, fresh, url};
use common::watchdog;
use multiproc::redis::{Dict, JoinableQueue, Options, Queue, RedisError};
use multiproc::{
    Connection, Fd, Process, SendTimeoutError, TimeoutError, TryError, TrySendError, pipe,
};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(120);

fn opts(heartbeat_ms: u64) -> Options {
    Options {
        heartbeat: Duration::from_millis(heartbeat_ms),
        ..Options::default()
    }
}

#[test]
fn queue_operations() {
    let Some(url) = url("queue_operations") else {
        return;
    };
    let _w = watchdog("queue_operations", LIMIT);
    let name = fresh("ops");
    let q = Queue::<String>::open(&url, &name).unwrap();
    for s in ["a", "b", "c"] {
        q.put(s.to_string()).unwrap();
    }
    assert_eq!(q.qsize().unwrap(), 3);
    assert!(!q.empty().unwrap());
    assert!(!q.full().unwrap(), "no maxsize: never full");
    // A second handle (another consumer) sees the same queue, in order.
    let other = Queue::<String>::open(&url, &name).unwrap();
    assert_eq!(other.get().unwrap(), "a");
    assert_eq!(q.get().unwrap(), "b");
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), "c");
    assert!(q.empty().unwrap());
    assert!(matches!(q.try_get(), Err(TryError::WouldBlock)));
    assert!(matches!(
        q.get_timeout(Duration::from_millis(50)),
        Err(TimeoutError::Timeout)
    ));
    q.close();
    assert!(q.is_closed());
    let e = q.put("late".into()).unwrap_err();
    assert!(matches!(e.error, RedisError::Closed) && e.item == "late");
    other.put("still open".into()).unwrap();
    assert_eq!(other.get().unwrap(), "still open");
    cleanup(&url, &name);
}

#[test]
fn maxsize_bounds_the_items_waiting() {
    let Some(url) = url("maxsize_bounds_the_items_waiting") else {
        return;
    };
    let _w = watchdog("maxsize_bounds_the_items_waiting", LIMIT);
    let name = fresh("maxsize");
    let o = Options {
        maxsize: 2,
        ..Options::default()
    };
    let q = Queue::<u32>::open_with(&url, &name, o).unwrap();
    q.try_put(1).unwrap();
    q.put(2).unwrap();
    assert!(q.full().unwrap());
    assert!(matches!(q.try_put(3), Err(TrySendError::Full(3))));
    assert!(matches!(
        q.put_timeout(3, Duration::from_millis(30)),
        Err(SendTimeoutError::Timeout(3))
    ));
    assert_eq!(q.get().unwrap(), 1);
    q.try_put(3).unwrap();
    assert_eq!((q.get().unwrap(), q.get().unwrap()), (2, 3));
    // A blocked put goes through once a consumer in another process makes
    // room.
    q.put(4).unwrap();
    q.put(5).unwrap();
    let mut child = Process::spawn(take_one_later, (url.clone(), name.clone())).unwrap();
    q.put(6).unwrap();
    assert_eq!(child.join().unwrap(), 4);
    assert_eq!((q.get().unwrap(), q.get().unwrap()), (5, 6));
    cleanup(&url, &name);
}

fn take_one_later((url, name): (String, String)) -> u32 {
    std::thread::sleep(Duration::from_millis(200));
    Queue::<u32>::open(&url, &name).unwrap().get().unwrap()
}

#[test]
fn values_with_os_handles_are_refused() {
    let Some(url) = url("values_with_os_handles_are_refused") else {
        return;
    };
    let name = fresh("handles");
    let q = Queue::<Fd>::open(&url, &name).unwrap();
    let (r, _w) = multiproc_sys::fd::pipe().unwrap();
    let e = q.put(Fd(r)).unwrap_err();
    assert!(matches!(e.error, RedisError::Handles), "{e}");
    assert_eq!(q.qsize().unwrap(), 0);
    cleanup(&url, &name);
}

#[test]
fn joinable_queue_counts_and_joins() {
    let Some(url) = url("joinable_queue_counts_and_joins") else {
        return;
    };
    let _w = watchdog("joinable_queue_counts_and_joins", LIMIT);
    let name = fresh("joinable");
    let q = JoinableQueue::<u64>::open(&url, &name).unwrap();
    for i in 0..5 {
        q.put(i).unwrap();
    }
    assert_eq!(q.unfinished().unwrap(), 5);
    assert!(matches!(
        q.join_timeout(Duration::from_millis(50)),
        Err(TimeoutError::Timeout)
    ));
    let d = q.get_delivery().unwrap();
    assert_eq!((d.value, d.deliveries), (0, 1));
    let rest: Vec<u64> = (0..4).map(|_| q.get().unwrap()).collect();
    assert_eq!(rest, [1, 2, 3, 4]);
    // Got but not done: still unfinished, no longer waiting.
    assert_eq!((q.qsize().unwrap(), q.unfinished().unwrap()), (0, 5));
    q.task_done_for(&d.id).unwrap();
    assert!(matches!(
        q.task_done_for(&d.id),
        Err(RedisError::TooManyTaskDone)
    ));
    // Another process finishes nothing of ours; join wakes when we do.
    let (mut rx, tx) = pipe::<u8>().unwrap();
    let mut joiner = Process::spawn(join_and_report, (url.clone(), name.clone(), tx)).unwrap();
    for _ in 0..4 {
        assert!(
            matches!(rx.poll(Some(Duration::from_millis(20))), Ok(false)),
            "join returned early"
        );
        q.task_done().unwrap();
    }
    assert_eq!(rx.recv().unwrap(), 1);
    joiner.join().unwrap();
    assert!(matches!(q.task_done(), Err(RedisError::TooManyTaskDone)));
    q.join().unwrap();
    assert_eq!(q.unfinished().unwrap(), 0);
    cleanup(&url, &name);
}

fn join_and_report((url, name, tx): (String, String, Connection<u8>)) {
    let mut tx = tx;
    JoinableQueue::<u64>::open(&url, &name)
        .unwrap()
        .join()
        .unwrap();
    tx.send(&1).unwrap();
}

#[test]
fn dict_operations_and_incr_across_processes() {
    let Some(url) = url("dict_operations_and_incr_across_processes") else {
        return;
    };
    let _w = watchdog("dict_operations_and_incr_across_processes", LIMIT);
    let name = fresh("dict");
    let d = Dict::<String, i64>::open(&url, &name).unwrap();
    assert!(d.is_empty().unwrap());
    assert_eq!(d.insert(&"a".into(), &1).unwrap(), None);
    assert_eq!(d.insert(&"a".into(), &2).unwrap(), Some(1));
    d.set(&"b".into(), &3).unwrap();
    assert_eq!(d.get(&"a".into()).unwrap(), Some(2));
    assert_eq!(d.get(&"zz".into()).unwrap(), None);
    assert!(d.contains_key(&"b".into()).unwrap());
    assert_eq!(d.len().unwrap(), 2);
    let mut items = d.items().unwrap();
    items.sort();
    assert_eq!(items, [("a".to_string(), 2), ("b".to_string(), 3)]);
    let mut keys = d.keys().unwrap();
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(d.values().unwrap().iter().sum::<i64>(), 5);
    assert_eq!(d.remove(&"a".into()).unwrap(), Some(2));
    assert!(!d.delete(&"a".into()).unwrap());
    assert!(d.delete(&"b".into()).unwrap());
    // incr is atomic against other processes.
    let kids: Vec<_> = (0..4)
        .map(|_| Process::spawn(incr_many, (url.clone(), name.clone())).unwrap())
        .collect();
    for mut k in kids {
        k.join().unwrap();
    }
    assert_eq!(d.get(&"n".into()).unwrap(), Some(4 * 300));
    d.clear().unwrap();
    assert_eq!(d.len().unwrap(), 0);
    cleanup(&url, &name);
}

fn incr_many((url, name): (String, String)) {
    let d = Dict::<String, i64>::open(&url, &name).unwrap();
    for _ in 0..300 {
        d.incr(&"n".to_string(), 1).unwrap();
    }
}

/// 4 producer and 4 consumer processes, 100k items: every item is delivered
/// and acknowledged exactly once.
#[test]
fn four_producers_four_consumers_deliver_every_item_once() {
    let Some(url) = url("four_producers_four_consumers_deliver_every_item_once") else {
        return;
    };
    let _w = watchdog(
        "four_producers_four_consumers_deliver_every_item_once",
        Duration::from_secs(600),
    );
    let name = fresh("4x4");
    const PER: u32 = 25_000;
    let q = JoinableQueue::<Option<(u8, u32)>>::open(&url, &name).unwrap();
    let consumers: Vec<_> = (0..4)
        .map(|_| Process::spawn(consume_all, (url.clone(), name.clone())).unwrap())
        .collect();
    let producers: Vec<_> = (0..4u8)
        .map(|p| Process::spawn(produce, (url.clone(), name.clone(), p, PER)).unwrap())
        .collect();
    for mut p in producers {
        p.join().unwrap();
    }
    for _ in 0..4 {
        q.put(None).unwrap();
    }
    let mut seen = HashSet::new();
    let mut acked = 0;
    for mut c in consumers {
        let (items, done) = c.join().unwrap();
        acked += done;
        for it in items {
            assert!(seen.insert(it), "{it:?} delivered twice");
        }
    }
    assert_eq!(seen.len(), 4 * PER as usize, "items lost");
    for p in 0..4u8 {
        for i in 0..PER {
            assert!(seen.contains(&(p, i)));
        }
    }
    assert_eq!(
        acked,
        4 * PER as usize + 4,
        "every item (and sentinel) acknowledged once"
    );
    q.join().unwrap();
    assert_eq!((q.unfinished().unwrap(), q.qsize().unwrap()), (0, 0));
    cleanup(&url, &name);
}

fn produce((url, name, p, n): (String, String, u8, u32)) {
    let q = JoinableQueue::<Option<(u8, u32)>>::open(&url, &name).unwrap();
    for i in 0..n {
        q.put(Some((p, i))).unwrap();
    }
}

/// The items it got, and how many `task_done` calls succeeded.
fn consume_all((url, name): (String, String)) -> (Vec<(u8, u32)>, usize) {
    let q = JoinableQueue::<Option<(u8, u32)>>::open(&url, &name).unwrap();
    let mut got = Vec::new();
    let mut done = 0;
    loop {
        let item = q.get().unwrap();
        q.task_done().unwrap();
        done += 1;
        match item {
            Some(it) => got.push(it),
            None => return (got, done),
        }
    }
}

/// Gets `n` items, reports, and waits to be killed.
fn hold_items(
    (url, name, n, consumer, heartbeat_ms, tx): (
        String,
        String,
        usize,
        Option<String>,
        u64,
        Connection<u8>,
    ),
) {
    let mut tx = tx;
    let o = Options {
        consumer,
        ..opts(heartbeat_ms)
    };
    let q = JoinableQueue::<u32>::open_with(&url, &name, o).unwrap();
    for _ in 0..n {
        q.get().unwrap();
    }
    tx.send(&1).unwrap();
    common::sleep_forever();
}

/// A consumer process (heartbeat `ttl` ms, named `consumer` if given)
/// that holds `n` items of queue `name` without finishing them, once it
/// has them.
fn holder(url: &str, name: &str, n: usize, consumer: Option<String>, ttl: u64) -> Process<()> {
    let (mut rx, tx) = pipe::<u8>().unwrap();
    let child = Process::spawn(
        hold_items,
        (url.to_owned(), name.to_owned(), n, consumer, ttl, tx),
    )
    .unwrap();
    assert_eq!(rx.recv().unwrap(), 1);
    child
}

/// `kill -9` and reap.
fn kill(mut child: Process<()>) {
    child.kill().unwrap();
    let _ = child.join();
}

#[test]
fn a_killed_consumers_items_go_to_a_live_one_within_ttl_plus_a_second() {
    let Some(url) = url("a_killed_consumers_items_go_to_a_live_one_within_ttl_plus_a_second")
    else {
        return;
    };
    let _w = watchdog("a_killed_consumers_items_go_to_a_live_one", LIMIT);
    let name = fresh("kill9");
    let ttl = 1000;
    let q = JoinableQueue::<u32>::open_with(&url, &name, opts(ttl)).unwrap();
    for i in 0..10 {
        q.put(i).unwrap();
    }
    let child = holder(&url, &name, 10, None, ttl);
    assert_eq!(q.qsize().unwrap(), 0, "all ten are the child's");
    kill(child);
    let killed = Instant::now();
    let mut got = Vec::new();
    while got.len() < 10 {
        let d = q.get_delivery_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(d.deliveries, 2, "delivered to the dead consumer, then here");
        got.push(d.value);
        q.task_done().unwrap();
    }
    let took = killed.elapsed();
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    eprintln!("redelivered 10 items {took:?} after kill -9 (heartbeat TTL {ttl} ms)");
    // The bound the design promises (TTL + the 1 s reclaim period), with
    // room for a loaded machine's scheduling.
    assert!(
        took < Duration::from_millis(ttl + 1000) + Duration::from_secs(3),
        "{took:?}"
    );
    q.join().unwrap();
    cleanup(&url, &name);
}

#[test]
fn a_long_task_on_a_live_consumer_is_not_delivered_again() {
    let Some(url) = url("a_long_task_on_a_live_consumer_is_not_delivered_again") else {
        return;
    };
    let _w = watchdog("a_long_task_on_a_live_consumer", LIMIT);
    let name = fresh("long");
    let ttl = 500;
    let q = JoinableQueue::<u32>::open_with(&url, &name, opts(ttl)).unwrap();
    q.put(7).unwrap();
    let child = holder(&url, &name, 1, None, ttl);
    // Idle far past the heartbeat's TTL: a claim by idle time would take it.
    assert!(matches!(
        q.get_timeout(Duration::from_millis(4 * ttl)),
        Err(TimeoutError::Timeout)
    ));
    kill(child);
    assert_eq!(q.get_timeout(Duration::from_secs(30)).unwrap(), 7);
    q.task_done().unwrap();
    cleanup(&url, &name);
}

#[test]
fn a_consumer_opened_again_under_its_name_takes_back_its_items_first() {
    let Some(url) = url("a_consumer_opened_again_under_its_name") else {
        return;
    };
    let _w = watchdog("a_consumer_opened_again_under_its_name", LIMIT);
    let name = fresh("rename");
    // A long TTL: only the name can give the items back this soon.
    let ttl = 60_000;
    let q = JoinableQueue::<u32>::open_with(&url, &name, opts(ttl)).unwrap();
    for i in 0..3 {
        q.put(i).unwrap();
    }
    let me = Some("worker-1".to_string());
    kill(holder(&url, &name, 3, me.clone(), ttl));
    let o = Options {
        consumer: me,
        ..opts(ttl)
    };
    let again = JoinableQueue::<u32>::open_with(&url, &name, o).unwrap();
    for want in 0..3 {
        let d = again.get_delivery_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((d.value, d.deliveries), (want, 2));
        again.task_done().unwrap();
    }
    again.join().unwrap();
    cleanup(&url, &name);
}

#[test]
fn an_item_past_its_delivery_limit_goes_to_the_dead_letters_and_back() {
    let Some(url) = url("an_item_past_its_delivery_limit") else {
        return;
    };
    let _w = watchdog("an_item_past_its_delivery_limit", LIMIT);
    let name = fresh("dead");
    let ttl = 300;
    let o = Options {
        max_deliveries: 2,
        ..opts(ttl)
    };
    let q = JoinableQueue::<u32>::open_with(&url, &name, o).unwrap();
    q.put(42).unwrap();
    // Two consumers take it and die.
    for _ in 0..2 {
        kill(holder(&url, &name, 1, None, ttl));
    }
    // The next claim finds it past its limit: buried, not delivered.
    assert!(matches!(
        q.get_timeout(Duration::from_millis(3 * ttl + 2500)),
        Err(TimeoutError::Timeout)
    ));
    let dead = q.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!((d.deliveries, d.reason.as_str()), (3, "delivery limit"));
    assert_eq!(*d.value.as_ref().unwrap(), 42);
    assert_eq!(
        q.unfinished().unwrap(),
        0,
        "a dead letter is finished for join"
    );
    q.join().unwrap();
    assert!(q.requeue(&d.id).unwrap());
    assert!(!q.requeue(&d.id).unwrap(), "requeued once");
    let back = q.get_delivery().unwrap();
    assert_eq!((back.value, back.deliveries), (42, 1));
    q.task_done().unwrap();
    q.join().unwrap();
    cleanup(&url, &name);
}

#[test]
fn an_item_that_does_not_decode_is_buried_with_its_reason() {
    let Some(url) = url("an_item_that_does_not_decode") else {
        return;
    };
    let name = fresh("decode");
    // Bytes that are no valid String: a length, then invalid UTF-8.
    Queue::<Vec<u8>>::open(&url, &name)
        .unwrap()
        .put(vec![0xff, 0xfe, 0xfd])
        .unwrap();
    let q = Queue::<String>::open(&url, &name).unwrap();
    assert!(matches!(q.get(), Err(RedisError::Decode { .. })));
    let dead = q.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "decode");
    assert!(dead[0].value.is_err());
    assert!(
        matches!(q.try_get(), Err(TryError::WouldBlock)),
        "nothing left"
    );
    cleanup(&url, &name);
}

#[test]
fn with_an_authkey_items_from_anyone_without_it_are_refused() {
    let Some(url) = url("with_an_authkey_items_from_anyone_without_it_are_refused") else {
        return;
    };
    let name = fresh("authkey");
    let keyed = |k: &[u8]| Options {
        authkey: Some(k.to_vec()),
        ..Options::default()
    };
    let q = Queue::<String>::open_with(&url, &name, keyed(b"secret")).unwrap();
    q.put("signed".into()).unwrap();
    assert_eq!(q.get().unwrap(), "signed");
    // Written without the key (or with another): refused, buried, not
    // decoded.
    Queue::<String>::open(&url, &name)
        .unwrap()
        .put("forged".into())
        .unwrap();
    Queue::<String>::open_with(&url, &name, keyed(b"guess"))
        .unwrap()
        .put("forged".into())
        .unwrap();
    for _ in 0..2 {
        assert!(matches!(q.get(), Err(RedisError::Unauthenticated(_))));
    }
    let dead = q.dead_letters().unwrap();
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter().all(|d| d.reason == "authentication"
            && matches!(d.value, Err(RedisError::Unauthenticated(_))))
    );
    cleanup(&url, &name);

    let name = fresh("authdict");
    let d = Dict::<String, i64>::open_with(&url, &name, Some(b"secret".to_vec())).unwrap();
    d.set(&"a".into(), &1).unwrap();
    assert_eq!(d.incr(&"a".into(), 2).unwrap(), 3);
    assert!(d.compare_and_set(&"a".into(), Some(&3), &10).unwrap());
    assert!(
        !d.compare_and_set(&"a".into(), Some(&3), &11).unwrap(),
        "the value is 10 now"
    );
    assert!(d.compare_and_set(&"b".into(), None, &5).unwrap());
    assert_eq!(d.get(&"a".into()).unwrap(), Some(10));
    // A field written without the key is refused when read.
    Dict::<String, i64>::open(&url, &name)
        .unwrap()
        .set(&"forged".into(), &1)
        .unwrap();
    assert!(matches!(d.items(), Err(RedisError::Unauthenticated(_))));
    assert_eq!(
        d.get(&"forged".into()).unwrap(),
        None,
        "a signed lookup does not find it"
    );
    cleanup(&url, &name);
}

/// Consumes until killed: reports each item on `done` before finishing it,
/// so an item is reported at least once whatever the kill interrupts.
fn consume_and_report((url, name, done_name, ttl): (String, String, String, u64)) {
    let q = JoinableQueue::<u32>::open_with(&url, &name, opts(ttl)).unwrap();
    let done = Queue::<u32>::open(&url, &done_name).unwrap();
    loop {
        let item = q.get().unwrap();
        // Work: the window in which a kill leaves the item held.
        std::thread::sleep(Duration::from_millis(3));
        done.put(item).unwrap();
        match q.task_done() {
            // Taken over while this consumer was slow: it is finished there.
            Ok(()) | Err(RedisError::Reclaimed(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// Consumers killed at random moments, again and again, while 3,000 items
/// go through: none is lost (each is reported), the queue ends finished,
/// and the only repeats are items a killed consumer held.
#[test]
fn consumers_killed_at_random_lose_nothing() {
    let Some(url) = url("consumers_killed_at_random_lose_nothing") else {
        return;
    };
    let _w = watchdog(
        "consumers_killed_at_random_lose_nothing",
        Duration::from_secs(300),
    );
    let name = fresh("chaos");
    let done_name = fresh("chaos-done");
    const N: u32 = 3000;
    // Long enough that a live consumer's heartbeat never lapses on a busy
    // machine (a lapse would give its item to another: a repeat with no
    // kill behind it).
    let ttl = 1000;
    let q = JoinableQueue::<u32>::open_with(&url, &name, opts(ttl)).unwrap();
    for i in 0..N {
        q.put(i).unwrap();
    }
    let start = || {
        Process::spawn(
            consume_and_report,
            (url.clone(), name.clone(), done_name.clone(), ttl),
        )
        .unwrap()
    };
    let mut consumers: Vec<_> = (0..4).map(|_| start()).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(std::process::id());
    let mut kills = 0;
    while q.unfinished().unwrap() > 0 && kills < 20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 150));
        let victim = (seed >> 32) as usize % consumers.len();
        let mut c = consumers.swap_remove(victim);
        c.kill().unwrap();
        let _ = c.join();
        kills += 1;
        consumers.push(start());
    }
    q.join().unwrap();
    for mut c in consumers {
        c.kill().unwrap();
        let _ = c.join();
    }
    let done = Queue::<u32>::open(&url, &done_name).unwrap();
    let mut count = vec![0u32; N as usize];
    while let Ok(i) = done.try_get() {
        count[i as usize] += 1;
    }
    let lost: Vec<_> = (0..N).filter(|&i| count[i as usize] == 0).collect();
    assert!(lost.is_empty(), "lost after {kills} kills: {lost:?}");
    let repeats: u32 = count.iter().map(|&c| c.saturating_sub(1)).sum();
    eprintln!("{N} items, {kills} consumers killed, {repeats} delivered again");
    // A killed consumer held at most the item it was working on.
    assert!(repeats <= kills, "{repeats} repeats for {kills} kills");
    assert_eq!((q.unfinished().unwrap(), q.qsize().unwrap()), (0, 0));
    cleanup(&url, &name);
    cleanup(&url, &done_name);
}

#[test]
fn a_consumer_back_under_its_name_takes_back_every_page_and_keeps_the_limit() {
    let Some(url) = url("a_consumer_back_under_its_name_takes_back_every_page") else {
        return;
    };
    let _w = watchdog("a_consumer_back_under_its_name", LIMIT);
    let name = fresh("pages");
    let ttl = 60_000;
    let q = JoinableQueue::<u32>::open_with(&url, &name, opts(ttl)).unwrap();
    for i in 0..250 {
        q.put(i).unwrap();
    }
    let me = Some("worker-pages".to_string());
    // More than one page (100) of entries pending under the name.
    kill(holder(&url, &name, 250, me.clone(), ttl));
    let o = Options {
        consumer: me.clone(),
        max_deliveries: 2,
        ..opts(ttl)
    };
    let again = JoinableQueue::<u32>::open_with(&url, &name, o.clone()).unwrap();
    let mut got: Vec<u32> = Vec::new();
    // Keep 3 and die again: their third delivery passes the limit.
    for _ in 0..3 {
        got.push(again.get_timeout(Duration::from_secs(10)).unwrap());
    }
    let held = got.clone();
    drop(again);
    let again = JoinableQueue::<u32>::open_with(&url, &name, o).unwrap();
    got.clear();
    while let Ok(i) = again.get_timeout(Duration::from_millis(500)) {
        got.push(i);
        again.task_done().unwrap();
    }
    got.sort_unstable();
    let want: Vec<u32> = (0..250).filter(|i| !held.contains(i)).collect();
    assert_eq!(
        got, want,
        "every page taken back, the three held once more dead"
    );
    let dead = again.dead_letters().unwrap();
    assert_eq!(dead.len(), 3);
    assert!(
        dead.iter()
            .all(|d| d.deliveries == 3 && d.reason == "delivery limit")
    );
    again.join().unwrap();
    cleanup(&url, &name);
}
