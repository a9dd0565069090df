//! `multiproc::redis` at the edges of the server: batches, entries that are
//! not multiproc's, wrong passwords, servers that are gone or stop
//! answering, and a server restarted mid-run. The shared server comes from
//! `MULTIPROC_REDIS_URL`; tests that must restart or reconfigure a server
//! start their own from `redis-server` on `PATH`. Without them, each test
//! says it is skipped and passes.

#![cfg(feature = "redis")]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::redis::{OwnServer, cleanup, fresh, url};
use common::watchdog;
use multiproc::os::signal;
use multiproc::redis::{JoinableQueue, Options, Queue, RedisError};
use multiproc::{Process, TimeoutError, TryError};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn put_many_and_get_many_keep_the_order_and_the_bound() {
    let Some(url) = url("put_many_and_get_many_keep_the_order_and_the_bound") else {
        return;
    };
    let _w = watchdog("put_many_and_get_many", LIMIT);
    let name = fresh("batches");
    let o = Options {
        maxsize: 100,
        ..Options::default()
    };
    let q = Queue::<u32>::open_with(&url, &name, o.clone()).unwrap();
    // More than the bound: the rest goes in as a consumer in another
    // process makes room.
    let consumer = Process::spawn(drain_in_batches, (url.clone(), name.clone(), 3_000)).unwrap();
    assert_eq!(q.put_many(0..3_000).unwrap(), 3_000);
    let (got, largest) = {
        let mut c = consumer;
        c.join().unwrap()
    };
    assert_eq!(
        got,
        (0..3_000).collect::<Vec<_>>(),
        "every item once, in order"
    );
    assert!(
        largest <= 64 && largest > 1,
        "batches of at most 64: {largest}"
    );
    // A batch that does not fit waits, and a timeout ends an empty wait.
    assert!(matches!(
        q.get_many(10, Some(Duration::from_millis(50))),
        Err(TimeoutError::Timeout)
    ));
    // A joinable queue's batch is one task_done per item.
    let j = JoinableQueue::<u32>::open_with(&url, &fresh("batches-j"), o).unwrap();
    j.put_many([1, 2, 3]).unwrap();
    assert_eq!(j.get_many(10, None).unwrap(), [1, 2, 3]);
    assert_eq!(j.unfinished().unwrap(), 3);
    for _ in 0..3 {
        j.task_done().unwrap();
    }
    j.join_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(j.task_done(), Err(RedisError::TooManyTaskDone)));
    cleanup(&url, &name);
}

fn drain_in_batches((url, name, n): (String, String, usize)) -> (Vec<u32>, usize) {
    let q = Queue::<u32>::open(&url, &name).unwrap();
    let mut got = Vec::new();
    let mut largest = 0;
    while got.len() < n {
        let batch = q.get_many(64, Some(Duration::from_secs(30))).unwrap();
        largest = largest.max(batch.len());
        got.extend(batch);
        // Slower than the producer, so that it meets the bound.
        std::thread::sleep(Duration::from_millis(2));
    }
    (got, largest)
}

#[test]
fn entries_that_are_not_multiprocs_give_a_typed_error_and_the_consumer_goes_on() {
    let Some(url) = url("entries_that_are_not_multiprocs") else {
        return;
    };
    let _w = watchdog("entries_that_are_not_multiprocs", LIMIT);
    let name = fresh("foreign");
    let q = Queue::<String>::open(&url, &name).unwrap();
    q.put("before".into()).unwrap();
    // Someone else's entries on the same stream: other fields, no payload,
    // a payload that is no encoding of a String.
    let stream = format!("multiproc:{{{name}}}:stream");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_connection().unwrap();
    for fields in [
        vec![("user", "alice"), ("action", "login")],
        vec![("d", "")],
        vec![("d", "\u{7f}garbage that is not bincode")],
    ] {
        redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg(&fields)
            .query::<String>(&mut c)
            .unwrap();
    }
    q.put("after".into()).unwrap();
    let mut good = Vec::new();
    let mut bad = 0;
    loop {
        match q.try_get() {
            Ok(s) => good.push(s),
            Err(TryError::Failed(RedisError::Decode { id, .. })) => {
                assert!(!id.is_empty());
                bad += 1;
            }
            Err(TryError::WouldBlock) => break,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(good, ["before", "after"]);
    assert_eq!(bad, 3, "one typed error per foreign entry");
    let dead = q.dead_letters().unwrap();
    assert_eq!(dead.len(), 3, "kept for a look, not lost");
    assert!(
        dead.iter()
            .all(|d| d.reason == "decode" && d.value.is_err())
    );
    // A batch skips them the same way.
    q.put("x".into()).unwrap();
    redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("foo")
        .arg("bar")
        .query::<String>(&mut c)
        .unwrap();
    q.put("y".into()).unwrap();
    assert_eq!(q.get_many(10, None).unwrap(), ["x", "y"]);
    cleanup(&url, &name);
}

#[test]
fn a_wrong_password_is_a_typed_error_at_once() {
    let Some(server) = OwnServer::start("wrong_password", &["--requirepass", "s3cret"]) else {
        return;
    };
    let _w = watchdog("a_wrong_password_is_a_typed_error_at_once", LIMIT);
    let t = Instant::now();
    for password in [None, Some("wrong")] {
        let e = Queue::<u8>::open(&server.url(password), "q").unwrap_err();
        match &e {
            // No password: the server's NOAUTH on the first command; a
            // wrong one: the client's AUTH is refused (WRONGPASS).
            RedisError::Redis(r) => assert!(
                r.kind() == redis::ErrorKind::AuthenticationFailed || r.code() == Some("NOAUTH"),
                "{e} ({:?}, {:?})",
                r.kind(),
                r.code()
            ),
            other => panic!("not a server error: {other:?}"),
        }
        eprintln!("password {password:?}: {e}");
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let q = Queue::<u8>::open(&server.url(Some("s3cret")), "q").unwrap();
    q.put(7).unwrap();
    assert_eq!(q.get().unwrap(), 7);
}

#[test]
fn a_server_that_is_gone_or_mute_is_an_error_within_the_timeout() {
    let _w = watchdog("a_server_that_is_gone_or_mute", LIMIT);
    // Nothing listens: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let t = Instant::now();
    let e = Queue::<u8>::open(&format!("redis://127.0.0.1:{port}/0"), "q").unwrap_err();
    assert!(matches!(e, RedisError::Redis(_)), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // Something accepts and never answers: the connect timeout (10 s) for
    // the handshake, or the reply timeout (15 s) for the first command.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://127.0.0.1:{}/0", mute.local_addr().unwrap().port());
    let t = Instant::now();
    let e = Queue::<u8>::open(&url, "q").unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, RedisError::Redis(_)), "{e:?}");
    assert!(took < Duration::from_secs(40), "{took:?}");
    eprintln!("a mute server: {e} after {took:?}");
    drop(mute);
}

#[test]
fn a_server_that_stops_answering_mid_wait_is_an_error_not_a_hang() {
    let Some(server) = OwnServer::start("stops_answering", &[]) else {
        return;
    };
    let _w = watchdog("a_server_that_stops_answering", LIMIT);
    let q = Queue::<u8>::open(&server.url(None), "q").unwrap();
    q.put(1).unwrap();
    assert_eq!(q.get().unwrap(), 1);
    // Frozen, not dead: the socket stays open and nothing comes back.
    let pid = server.pid();
    signal::send(pid, signal::SIGSTOP).unwrap();
    let t = Instant::now();
    let r = q.get_timeout(Duration::from_secs(1));
    let took = t.elapsed();
    signal::send(pid, signal::SIGCONT).unwrap();
    match r {
        Err(TimeoutError::Failed(RedisError::Redis(e))) => {
            eprintln!("a frozen server: {e} after {took:?}")
        }
        other => panic!("not a server error: {other:?}"),
    }
    // The 1 s wait plus the 15 s reply timeout, with room for a busy
    // machine.
    assert!(took < Duration::from_secs(30), "{took:?}");
    // Thawed, the handle works again on a new connection.
    q.put(2).unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), 2);
}

#[test]
fn a_server_restarted_mid_run_with_append_only_loses_no_acknowledged_item() {
    let Some(mut server) = OwnServer::start(
        "restarted",
        &["--appendonly", "yes", "--appendfsync", "always"],
    ) else {
        return;
    };
    let _w = watchdog("a_server_restarted_mid_run", LIMIT);
    let url = server.url(None);
    let name = "restart";
    const N: u32 = 2_000;
    let o = Options {
        heartbeat: Duration::from_secs(2),
        ..Options::default()
    };
    let q = JoinableQueue::<u32>::open_with(&url, name, o).unwrap();
    let mut consumer = Process::spawn(consume_through_restarts, (url.clone(), N)).unwrap();
    let mut restarted = false;
    let mut errors = 0;
    for i in 0..N {
        if i == N / 2 {
            // kill -9: only what the append-only file holds survives.
            server.kill();
            std::thread::sleep(Duration::from_millis(300));
            server.restart();
            restarted = true;
        }
        // `put` returned Ok: acknowledged, and so it must arrive. A put
        // that failed is put again (it may arrive twice: at least once).
        while q.put(i).is_err() {
            errors += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert!(restarted);
    let (seen, repeats) = consumer.join().unwrap();
    assert_eq!(seen, N as usize, "every acknowledged item arrived");
    // A put retried after its reply was lost went in twice: its second
    // copy may still wait. Once they are finished too, the count is 0.
    let mut late = 0;
    while q.unfinished().unwrap() > 0 {
        if let Ok(d) = q.get_delivery_timeout(Duration::from_secs(1)) {
            assert!(d.value < N);
            late += 1;
            q.task_done_for(&d.id).unwrap();
        }
    }
    eprintln!(
        "restart: {errors} failed puts retried, {repeats} repeated deliveries, {late} late copies"
    );
    assert!(late <= errors, "only a retried put can leave a copy behind");
    q.join_timeout(Duration::from_secs(60)).unwrap();
}

/// Take items of `restart` until all `n` distinct ones came, through the
/// server's restart; (distinct items, repeated deliveries).
fn consume_through_restarts((url, n): (String, u32)) -> (usize, usize) {
    let o = Options {
        heartbeat: Duration::from_secs(2),
        ..Options::default()
    };
    let q = JoinableQueue::<u32>::open_with(&url, "restart", o).unwrap();
    let mut seen = HashSet::new();
    let mut repeats = 0;
    while seen.len() < n as usize {
        match q.get_delivery_timeout(Duration::from_secs(1)) {
            Ok(d) => {
                if !seen.insert(d.value) {
                    repeats += 1;
                }
                while let Err(e) = q.task_done_for(&d.id) {
                    match e {
                        // Finished through another path or reclaimed:
                        // nothing left to do.
                        RedisError::TooManyTaskDone | RedisError::Reclaimed(_) => break,
                        _ => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            }
            Err(TimeoutError::Timeout) => {}
            Err(TimeoutError::Failed(_)) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    (seen.len(), repeats)
}
