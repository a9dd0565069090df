//! `multiproc::redis::{Pool, Worker}` against a real server: serving
//! processes stand for machines, each with its own local pool. The
//! server's URL comes from `MULTIPROC_REDIS_URL`; without it every test
//! says it is skipped and passes.

#![cfg(feature = "redis")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::redis::{cleanup, fresh, url};
use common::watchdog;
use multiproc::redis::{Options, Worker};
use multiproc::{Connection, PoolError, Process, TaskError, pipe};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(120);

fn square(x: u64) -> u64 {
    x * x
}

fn boom(x: u64) -> u64 {
    panic!("boom on {x}");
}

/// A task that ends its worker process.
fn die(code: i32) -> u64 {
    std::process::exit(code);
}

fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(40));
    x * x
}

fn opts(heartbeat_ms: u64) -> Options {
    Options {
        heartbeat: Duration::from_millis(heartbeat_ms),
        ..Options::default()
    }
}

/// A "machine": a local pool of 2 serving queue `name` (with `authkey`, if
/// given) until its parent sends on (or closes) `stop`.
fn serve_machine(
    (url, name, heartbeat_ms, authkey, stop): (
        String,
        String,
        u64,
        Option<Vec<u8>>,
        Connection<u8>,
    ),
) {
    let pool = multiproc::Pool::new(2).unwrap();
    let flag = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut stop = stop;
            let _ = stop.recv();
            flag.store(true, Ordering::Relaxed);
        });
        let options = Options {
            authkey,
            ..opts(heartbeat_ms)
        };
        Worker::new(&url, &name)
            .options(options)
            .task("square", square)
            .task("slow_square", slow_square)
            .task("boom", boom)
            .task("die", die)
            .serve(&pool, &flag)
            .unwrap();
    });
    pool.join();
}

/// Start a machine; the connection that stops it.
fn machine(url: &str, name: &str, heartbeat_ms: u64) -> (Process<()>, Connection<u8>) {
    machine_with_key(url, name, heartbeat_ms, None)
}

/// [`machine`] with an authkey.
fn machine_with_key(
    url: &str,
    name: &str,
    heartbeat_ms: u64,
    authkey: Option<Vec<u8>>,
) -> (Process<()>, Connection<u8>) {
    let (rx, tx) = pipe::<u8>().unwrap();
    let p = Process::spawn(
        serve_machine,
        (url.to_owned(), name.to_owned(), heartbeat_ms, authkey, rx),
    )
    .unwrap();
    (p, tx)
}

#[test]
fn a_pool_on_two_machines_applies_maps_and_types_its_failures() {
    let Some(url) = url("a_pool_on_two_machines") else {
        return;
    };
    let _w = watchdog("a_pool_on_two_machines", LIMIT);
    let name = fresh("pool");
    let machines = [machine(&url, &name, 5000), machine(&url, &name, 5000)];
    let pool = multiproc::Pool::redis(&url, &name).unwrap();
    assert_eq!(pool.apply::<u64, u64>("square", 7).unwrap(), 49);
    let want: Vec<u64> = (0..500u64).map(|x| x * x).collect();
    assert_eq!(pool.map::<u64, u64>("square", 0..500).unwrap(), want);
    assert_eq!(
        pool.map_chunked::<u64, u64>("square", 0..500, Some(7))
            .unwrap(),
        want
    );
    let ordered: Vec<u64> = pool
        .imap::<u64, u64>("square", 0..100, Some(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ordered, want[..100]);
    let mut unordered: Vec<u64> = pool
        .imap_unordered::<u64, u64>("square", 0..100, None)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    unordered.sort_unstable();
    assert_eq!(unordered, want[..100]);
    // Failures keep their types across the server, and fail their task
    // alone.
    let unknown = pool.apply::<u64, u64>("no such task", 1).unwrap_err();
    assert!(
        matches!(&unknown, TaskError::UnknownTask(t) if t == "no such task"),
        "{unknown:?}"
    );
    match pool.apply::<u64, u64>("boom", 3).unwrap_err() {
        TaskError::Panicked { message, .. } => assert!(message.contains("boom on 3")),
        other => panic!("{other:?}"),
    }
    match pool.apply::<i32, u64>("die", 7).unwrap_err() {
        TaskError::WorkerDied { exit, .. } => {
            assert_eq!(exit, multiproc::pool::Exit::Code(7))
        }
        other => panic!("{other:?}"),
    }
    // A result of the wrong type is the caller's decode error.
    assert!(matches!(
        pool.apply::<u64, String>("square", 2),
        Err(TaskError::Decode(_))
    ));
    // The machines lived on through it all.
    assert_eq!(pool.apply::<u64, u64>("square", 9).unwrap(), 81);
    pool.close();
    assert!(matches!(
        pool.apply_async::<u64, u64>("square", 1),
        Err(PoolError::Closed)
    ));
    pool.join();
    for (mut p, mut stop) in machines {
        stop.send(&1).unwrap();
        p.join().unwrap();
    }
    cleanup(&url, &name);
}

#[test]
fn a_machine_killed_mid_way_loses_no_task() {
    let Some(url) = url("a_machine_killed_mid_way") else {
        return;
    };
    let _w = watchdog("a_machine_killed_mid_way", LIMIT);
    let name = fresh("pool-kill");
    let ttl = 1000;
    let (mut doomed, _doomed_stop) = machine(&url, &name, ttl);
    let (mut survivor, mut stop) = machine(&url, &name, ttl);
    let pool = multiproc::redis::Pool::open_with(&url, &name, opts(ttl)).unwrap();
    let tasks = pool
        .map_async::<u64, u64>("slow_square", 0..200, Some(2))
        .unwrap();
    // Orders are in both machines' hands when one dies.
    wait_until_both_hold_orders(&url, &name);
    doomed.kill().unwrap();
    let _ = doomed.join();
    let got: Vec<u64> = tasks.iter().map(|t| t.get().unwrap()).collect();
    assert_eq!(got, (0..200u64).map(|x| x * x).collect::<Vec<_>>());
    pool.join();
    stop.send(&1).unwrap();
    survivor.join().unwrap();
    cleanup(&url, &name);
}

/// Wait until two consumers of queue `name` have orders pending (each
/// machine's serving handle holds some).
fn wait_until_both_hold_orders(url: &str, name: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_connection().unwrap();
    let stream = format!("multiproc:{{{name}}}:stream");
    loop {
        let summary: redis::Value = redis::cmd("XPENDING")
            .arg(&stream)
            .arg("multiproc")
            .query(&mut c)
            .unwrap();
        // [count, first id, last id, [[consumer, count], ...]]
        if let redis::Value::Array(parts) = summary
            && let Some(redis::Value::Array(consumers)) = parts.get(3)
            && consumers.len() >= 2
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_answer_after_its_pool_ended_does_not_bring_back_the_reply_queue() {
    let Some(url) = url("an_answer_after_its_pool_ended") else {
        return;
    };
    let _w = watchdog("an_answer_after_its_pool_ended", LIMIT);
    let name = fresh("pool-late");
    let pool = multiproc::Pool::redis(&url, &name).unwrap();
    let task = pool.apply_async::<u64, u64>("slow_square", 3).unwrap();
    pool.terminate();
    assert!(matches!(task.get(), Err(TaskError::Terminated)));
    // The order waits on the queue; a machine takes it and answers now.
    let (mut p, mut stop) = machine(&url, &name, 5000);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_connection().unwrap();
    let unfinished = format!("multiproc:{{{name}}}:unfinished");
    // Finished: acknowledged and deleted from the queue.
    while redis::cmd("GET")
        .arg(&unfinished)
        .query::<Option<i64>>(&mut c)
        .unwrap()
        .unwrap_or(0)
        > 0
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let pattern = format!("multiproc:{{{name}:reply:*");
    let left: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut c).unwrap();
    assert!(left.is_empty(), "reply keys came back: {left:?}");
    stop.send(&1).unwrap();
    p.join().unwrap();
    cleanup(&url, &name);
}

#[test]
fn an_order_that_goes_to_the_dead_letters_fails_its_tasks_instead_of_hanging() {
    let Some(url) = url("an_order_that_goes_to_the_dead_letters") else {
        return;
    };
    let _w = watchdog("an_order_that_goes_to_the_dead_letters", LIMIT);
    let name = fresh("pool-dead");
    let options = Options {
        authkey: Some(b"the pool's key".to_vec()),
        ..Options::default()
    };
    let pool = multiproc::redis::Pool::open_with(&url, &name, options).unwrap();
    let tasks = pool.map_async::<u64, u64>("square", 0..4, Some(2)).unwrap();
    // The only machine has another key: it refuses both orders (buried,
    // reason "authentication"), and no answer will ever come.
    let (mut machine, mut stop) =
        machine_with_key(&url, &name, 5000, Some(b"not the pool's key".to_vec()));
    for t in &tasks {
        match t.get() {
            Err(TaskError::Transfer(why)) => {
                assert!(
                    why.contains("dead letters") && why.contains("authentication"),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
    pool.join();
    stop.send(&1).unwrap();
    machine.join().unwrap();
    cleanup(&url, &name);
}
