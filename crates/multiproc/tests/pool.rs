//! Cross-process tests of `Pool`: the test binary's functions are the
//! tasks, run in spawned workers.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{pid_alive, watchdog};
use multiproc::pool::Exit;
use multiproc::{
    Connection, OnWorkerDeath, Pool, PoolError, Process, TaskError, TimeoutError, TryError, pipe,
};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(60);
/// A hang guard for waits that should end at once.
const GUARD: Duration = Duration::from_secs(30);

fn square(x: u64) -> u64 {
    x * x
}

fn add((a, b): (u64, u64)) -> u64 {
    a + b
}

fn my_pid(_: ()) -> u32 {
    std::process::id()
}

fn panics(msg: String) -> u64 {
    panic!("{msg}")
}

/// Aborts its worker when `x` is `kill`, else squares.
fn square_or_abort((x, kill): (u64, u64)) -> u64 {
    if x == kill {
        std::process::abort();
    }
    x * x
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Tells the test its pid, then runs until its worker is killed.
fn announce_and_hang(report: Connection<u32>) -> u64 {
    let mut report = report;
    report.send(&std::process::id()).unwrap();
    common::sleep_forever()
}

/// Squares `x`, first waiting for a byte on the connection if it has one.
fn square_when_told((x, told): (u64, Option<Connection<u8>>)) -> u64 {
    if let Some(mut told) = told {
        told.recv().unwrap();
    }
    x * x
}

static GREETING: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// A worker initializer: what `greeting` will say.
fn set_greeting(g: String) {
    GREETING.set(g).unwrap();
}

fn greeting(_: ()) -> Option<String> {
    GREETING.get().cloned()
}

fn failing_initializer(_: ()) {
    panic!("no start");
}

fn abort(_: ()) -> u64 {
    std::process::abort()
}

/// Starts a pool, reports its workers' pids, then blocks until killed.
fn parent_of_pool(report: Connection<Vec<u32>>) {
    let mut report = report;
    let pool = Pool::new(2).unwrap();
    report.send(&pool.pids()).unwrap();
    std::mem::forget(pool); // only the parent's death may end the workers
    common::sleep_forever();
}

/// Why `pool` refuses a new task.
fn refused(pool: &Pool) -> PoolError {
    pool.apply_async(square, 1).unwrap_err()
}

#[test]
fn apply_and_map_return_results() {
    let _w = watchdog("apply_and_map_return_results", LIMIT);
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.apply(square, 7).unwrap(), 49);
    let t = pool.apply_async(square, 9).unwrap();
    assert_eq!(t.get_timeout(GUARD).unwrap(), 81);
    assert!(matches!(
        t.try_get(),
        Err(TryError::Failed(TaskError::AlreadyTaken))
    ));
    let want: Vec<u64> = (0..100).map(|x| x * x).collect();
    assert_eq!(pool.map(square, 0..100).unwrap(), want);
    for chunk in [1, 3, 7, 1000] {
        assert_eq!(pool.map_chunked(square, 0..100, Some(chunk)).unwrap(), want);
    }
    assert_eq!(
        pool.map(square, std::iter::empty()).unwrap(),
        Vec::<u64>::new()
    );
    let pairs: Vec<(u64, u64)> = (0..50).map(|x| (x, x + 1)).collect();
    let sums: Vec<u64> = (0..50).map(|x| 2 * x + 1).collect();
    assert_eq!(pool.map_chunked(add, pairs, Some(4)).unwrap(), sums);
    pool.join();
    assert!(matches!(refused(&pool), PoolError::Closed));
}

#[test]
fn get_forms_wait_for_the_result() {
    let _w = watchdog("get_forms_wait_for_the_result", LIMIT);
    let pool = Pool::new(1).unwrap();
    let t = pool.apply_async(sleep_ms, 300).unwrap();
    // Taken right after submission, a 300 ms task is not ready.
    assert!(!t.ready());
    assert!(matches!(t.try_get(), Err(TryError::WouldBlock)));
    assert!(matches!(
        t.get_timeout(Duration::from_millis(1)),
        Err(TimeoutError::Timeout)
    ));
    assert_eq!(
        t.get_deadline(std::time::Instant::now() + GUARD).unwrap(),
        300
    );
}

#[test]
fn pools_and_tasks_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Pool>();
    send_sync::<multiproc::Task<String>>();
}

#[test]
fn the_pool_is_shared_between_threads() {
    let _w = watchdog("the_pool_is_shared_between_threads", LIMIT);
    let pool = Pool::new(2).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let pool = &pool;
            s.spawn(move || {
                for x in 0..20 {
                    assert_eq!(
                        pool.apply(square, t * 100 + x).unwrap(),
                        (t * 100 + x).pow(2)
                    );
                }
            });
        }
    });
}

#[test]
fn a_panicking_task_fails_alone_and_its_worker_lives() {
    let _w = watchdog("a_panicking_task_fails_alone_and_its_worker_lives", LIMIT);
    let pool = Pool::new(1).unwrap();
    let before = pool.apply(my_pid, ()).unwrap();
    match pool.apply(panics, "boom".to_string()) {
        Err(TaskError::Panicked { message, location }) => {
            assert_eq!(message, "boom");
            assert!(location.is_some_and(|l| l.contains("pool.rs")));
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(pool.apply(my_pid, ()).unwrap(), before);
    assert_eq!(pool.apply(square, 3).unwrap(), 9);
}

#[test]
fn a_task_that_kills_its_worker_is_blamed_alone() {
    let _w = watchdog("a_task_that_kills_its_worker_is_blamed_alone", LIMIT);
    let pool = Pool::new(2).unwrap();
    let before: HashSet<u32> = pool.pids().into_iter().collect();
    // In one chunk of ten, the fifth aborts its worker: exactly it fails,
    // the four before it have their results, the five after it run again.
    let tasks = pool
        .map_async(square_or_abort, (0..10).map(|x| (x, 4)), Some(10))
        .unwrap();
    for (x, t) in tasks.iter().enumerate() {
        let r = t.get_timeout(GUARD);
        if x == 4 {
            match r {
                Err(TimeoutError::Failed(TaskError::WorkerDied { pid, exit })) => {
                    assert!(before.contains(&pid), "{pid} is not a worker of {before:?}");
                    assert_eq!(exit, Exit::Signal(6)); // SIGABRT
                }
                other => panic!("task 4: expected WorkerDied, got {other:?}"),
            }
        } else {
            assert_eq!(r.unwrap(), (x * x) as u64);
        }
    }
    // The pool replaced the worker and serves the next tasks.
    let want: Vec<u64> = (0..200).map(|x| x * x).collect();
    assert_eq!(pool.map(square, 0..200).unwrap(), want);
    assert_eq!(pool.pids().len(), 2);
    assert_ne!(pool.pids().into_iter().collect::<HashSet<_>>(), before);
}

#[test]
fn retry_runs_the_task_again() {
    let _w = watchdog("retry_runs_the_task_again", LIMIT);
    let pool = Pool::builder()
        .processes(1)
        .on_worker_death(OnWorkerDeath::Retry(2))
        .build()
        .unwrap();
    // Aborts every time: three runs, then it fails.
    assert!(matches!(
        pool.apply(abort, ()),
        Err(TaskError::WorkerDied { .. })
    ));
    assert_eq!(pool.apply(square, 5).unwrap(), 25);
}

#[test]
fn break_policy_fails_every_pending_task() {
    let _w = watchdog("break_policy_fails_every_pending_task", LIMIT);
    let pool = Pool::builder()
        .processes(1)
        .on_worker_death(OnWorkerDeath::Break)
        .build()
        .unwrap();
    let dying = pool.apply_async(abort, ()).unwrap();
    let behind = pool.apply_async(sleep_ms, 1).unwrap();
    assert!(matches!(
        dying.get_timeout(GUARD),
        Err(TimeoutError::Failed(TaskError::WorkerDied { .. }))
    ));
    assert!(matches!(
        behind.get_timeout(GUARD),
        Err(TimeoutError::Failed(TaskError::Broken))
    ));
    assert!(matches!(refused(&pool), PoolError::Broken));
}

#[test]
fn a_task_over_its_timeout_kills_its_worker() {
    let _w = watchdog("a_task_over_its_timeout_kills_its_worker", LIMIT);
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let before = pool.apply(my_pid, ()).unwrap();
    // A task that would sleep for a minute: the watchdog proves it was cut.
    assert!(matches!(
        pool.apply(sleep_ms, 60_000),
        Err(TaskError::TimedOut)
    ));
    let after = pool.apply(my_pid, ()).unwrap();
    assert_ne!(before, after);
    assert!(!pid_alive(before));
    assert_eq!(pool.apply(sleep_ms, 1).unwrap(), 1);
}

#[test]
fn max_tasks_per_child_recycles_workers() {
    let _w = watchdog("max_tasks_per_child_recycles_workers", LIMIT);
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(3)
        .build()
        .unwrap();
    let pids: Vec<u32> = (0..9).map(|_| pool.apply(my_pid, ()).unwrap()).collect();
    for run in pids.chunks(3) {
        assert!(run.iter().all(|&p| p == run[0]), "{pids:?}");
    }
    assert_eq!(pids.iter().collect::<HashSet<_>>().len(), 3, "{pids:?}");
}

#[test]
fn terminate_leaves_no_worker() {
    let _w = watchdog("terminate_leaves_no_worker", LIMIT);
    let pool = Pool::new(3).unwrap();
    let pids = pool.pids();
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|&p| pid_alive(p)));
    let long = pool.apply_async(sleep_ms, 60_000).unwrap();
    pool.terminate();
    assert!(matches!(
        long.get_timeout(GUARD),
        Err(TimeoutError::Failed(TaskError::Terminated))
    ));
    for p in pids {
        assert!(!pid_alive(p), "worker {p} is still there");
    }
    assert!(pool.pids().is_empty());
}

#[test]
fn a_restart_storm_breaks_the_pool() {
    let _w = watchdog("a_restart_storm_breaks_the_pool", LIMIT);
    let pool = Pool::builder()
        .processes(2)
        .restart_limit(3, Duration::from_secs(600))
        .build()
        .unwrap();
    let tasks = pool.map_async(abort, vec![(); 20], Some(1)).unwrap();
    let mut died = 0;
    let mut broken = 0;
    for t in &tasks {
        match t.get_timeout(GUARD) {
            Err(TimeoutError::Failed(TaskError::WorkerDied { .. })) => died += 1,
            Err(TimeoutError::Failed(TaskError::Broken)) => broken += 1,
            other => panic!("expected a death or a broken pool, got {other:?}"),
        }
    }
    // The fourth death is over the limit: at most four workers died (plus
    // at most one more already running at that moment).
    assert!((4..=5).contains(&died), "{died} deaths");
    assert_eq!(died + broken, 20);
    assert!(matches!(refused(&pool), PoolError::Broken));
}

#[test]
fn workers_die_with_a_killed_parent() {
    let _w = watchdog("workers_die_with_a_killed_parent", LIMIT);
    let (mut rx, tx) = pipe::<Vec<u32>>().unwrap();
    let mut middle = Process::spawn(parent_of_pool, tx).unwrap();
    let workers = rx.recv().unwrap();
    assert_eq!(workers.len(), 2);
    assert!(workers.iter().all(|&p| pid_alive(p)));
    middle.kill().unwrap(); // SIGKILL: no cleanup code runs in the parent
    assert_eq!(middle.wait().unwrap(), -9);
    for p in workers {
        assert!(
            common::wait_until(GUARD, || !pid_alive(p)),
            "worker {p} outlived its parent"
        );
    }
}

/// A pool for the kill tests: their 100 kills in a few seconds are more
/// than the default restart limit allows.
fn killable_pool() -> Pool {
    Pool::builder()
        .processes(2)
        .restart_limit(1_000, Duration::from_secs(60))
        .build()
        .unwrap()
}

/// SIGKILL one of the pool's workers (which one changes with the round);
/// its pid.
fn kill_a_worker(pool: &Pool, round: usize) -> u32 {
    let pids = pool.pids();
    let victim = pids[round % pids.len()];
    let _ = multiproc::os::signal::send(victim, multiproc::os::signal::SIGKILL);
    victim
}

/// A task's outcome in a kill round: its value, or `None` when it was
/// blamed on the killed worker (counted in `blamed`); any other error
/// fails the test.
fn judge(r: Result<u64, TaskError>, victim: u32, round: usize, blamed: &mut usize) -> Option<u64> {
    match r {
        Ok(v) => Some(v),
        Err(TaskError::WorkerDied { pid, .. }) => {
            assert_eq!(pid, victim, "round {round}");
            *blamed += 1;
            None
        }
        Err(e) => panic!("round {round}: {e}"),
    }
}

/// After the kills, the pool still serves 1,000 tasks one by one.
fn serves_1000_more(pool: &Pool) {
    let want: Vec<u64> = (0..1000).map(|x| x * x).collect();
    assert_eq!(pool.map_chunked(square, 0..1000, Some(1)).unwrap(), want);
}

#[test]
fn kill_9_of_a_busy_worker_blames_exactly_its_task() {
    let _w = watchdog("kill_9_of_a_busy_worker_blames_exactly_its_task", LIMIT);
    let pool = killable_pool();
    for round in 0..100u64 {
        let (mut rx, tx) = pipe::<u32>().unwrap();
        let before = pool.map_async(square, 0..20, Some(4)).unwrap();
        let hung = pool.apply_async(announce_and_hang, tx).unwrap();
        let after = pool.map_async(square, 0..20, Some(4)).unwrap();
        let pid = rx.recv().unwrap();
        multiproc::os::signal::send(pid, multiproc::os::signal::SIGKILL).unwrap();
        match hung.get_timeout(GUARD) {
            Err(TimeoutError::Failed(TaskError::WorkerDied { pid: p, exit })) => {
                assert_eq!((p, exit), (pid, Exit::Signal(9)), "round {round}");
            }
            other => panic!("round {round}: expected WorkerDied, got {other:?}"),
        }
        for (x, t) in before.iter().chain(&after).enumerate() {
            let x = (x % 20) as u64;
            assert_eq!(t.get_timeout(GUARD).unwrap(), x * x, "round {round}");
        }
    }
    serves_1000_more(&pool);
    assert_eq!(pool.pids().len(), 2);
}

#[test]
fn imap_is_ordered_and_imap_unordered_is_not() {
    let _w = watchdog("imap_is_ordered_and_imap_unordered_is_not", LIMIT);
    let pool = Pool::new(2).unwrap();
    let got: Vec<u64> = pool
        .imap(square, 0..50, Some(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, (0..50).map(|x| x * x).collect::<Vec<_>>());
    // The first task waits until the other nine have come out of the
    // iterator: it can only come last.
    let (rx, mut tx) = pipe::<u8>().unwrap();
    let args = std::iter::once((0, Some(rx))).chain((1..10).map(|x| (x, None)));
    let mut it = pool
        .imap_unordered(square_when_told, args, Some(1))
        .unwrap();
    let mut got: Vec<u64> = it.by_ref().take(9).map(Result::unwrap).collect();
    tx.send(&1).unwrap();
    got.push(it.next().unwrap().unwrap());
    assert!(it.next().is_none());
    assert_eq!(got.last(), Some(&0));
    got.sort_unstable();
    assert_eq!(got, (0..10).map(|x| x * x).collect::<Vec<_>>());
}

#[test]
fn imap_unordered_reports_a_killed_task_and_goes_on() {
    let _w = watchdog("imap_unordered_reports_a_killed_task_and_goes_on", LIMIT);
    let pool = Pool::new(2).unwrap();
    let results: Vec<_> = pool
        .imap_unordered(square_or_abort, (0..30).map(|x| (x, 17)), Some(2))
        .unwrap()
        .collect();
    assert_eq!(results.len(), 30);
    let died = results
        .iter()
        .filter(|r| matches!(r, Err(TaskError::WorkerDied { .. })))
        .count();
    assert_eq!(died, 1);
    let mut ok: Vec<u64> = results.into_iter().filter_map(Result::ok).collect();
    ok.sort_unstable();
    let want: Vec<u64> = (0..30).filter(|&x| x != 17).map(|x| x * x).collect();
    assert_eq!(ok, want);
}

#[test]
fn cancel_withdraws_a_task_not_sent_yet() {
    let _w = watchdog("cancel_withdraws_a_task_not_sent_yet", LIMIT);
    let pool = Pool::new(1).unwrap();
    let (rx, mut tx) = pipe::<u8>().unwrap();
    // The one worker holds the first task until told: the second waits.
    let held = pool.apply_async(square_when_told, (3, Some(rx))).unwrap();
    let waiting = pool.apply_async(square, 4).unwrap();
    assert!(!held.cancel());
    assert!(waiting.cancel());
    assert!(!waiting.cancel());
    tx.send(&1).unwrap();
    assert_eq!(held.get_timeout(GUARD).unwrap(), 9);
    assert!(matches!(
        waiting.get_timeout(GUARD),
        Err(TimeoutError::Failed(TaskError::Cancelled))
    ));
    assert_eq!(pool.apply(square, 5).unwrap(), 25);
}

#[test]
fn the_initializer_runs_in_each_worker_first() {
    let _w = watchdog("the_initializer_runs_in_each_worker_first", LIMIT);
    let pool = Pool::builder()
        .processes(2)
        .max_tasks_per_child(2)
        .initializer(set_greeting, "hello".to_string())
        .build()
        .unwrap();
    // Replacement workers (every two tasks) run it too.
    for _ in 0..6 {
        assert_eq!(pool.apply(greeting, ()).unwrap().as_deref(), Some("hello"));
    }
    assert_eq!(greeting(()), None); // not in the parent
}

#[test]
fn an_initializer_that_always_fails_breaks_the_pool() {
    let _w = watchdog("an_initializer_that_always_fails_breaks_the_pool", LIMIT);
    let pool = Pool::builder()
        .processes(1)
        .restart_limit(2, Duration::from_secs(600))
        .initializer(failing_initializer, ())
        .build()
        .unwrap();
    assert!(matches!(pool.apply(square, 2), Err(TaskError::Broken)));
}

#[test]
fn a_timeout_in_a_chunk_fails_only_that_task() {
    let _w = watchdog("a_timeout_in_a_chunk_fails_only_that_task", LIMIT);
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let tasks = pool
        .map_async(sleep_ms, [1, 2, 60_000, 3, 4], Some(5))
        .unwrap();
    let got: Vec<_> = tasks.iter().map(|t| t.get_timeout(GUARD)).collect();
    assert!(
        matches!(got[2], Err(TimeoutError::Failed(TaskError::TimedOut))),
        "{got:?}"
    );
    for (i, want) in [(0, 1), (1, 2), (3, 3), (4, 4)] {
        assert_eq!(got[i].as_ref().ok(), Some(&want), "{got:?}");
    }
}

#[test]
fn kill_9_at_any_moment_of_an_imap_unordered_never_hangs_nor_blames_twice() {
    let _w = watchdog(
        "kill_9_at_any_moment_of_an_imap_unordered_never_hangs_nor_blames_twice",
        LIMIT,
    );
    let pool = killable_pool();
    for round in 0..100usize {
        let mut it = pool
            .imap_unordered(square, 0..100u64, Some(1 + round % 3))
            .unwrap();
        // Kill a worker after a number of results that changes with the
        // round, then drain: every task comes out once, at most one blamed.
        let mut got: Vec<u64> = it
            .by_ref()
            .take((round * 7) % 100)
            .map(|r| r.expect("no death yet"))
            .collect();
        let victim = kill_a_worker(&pool, round);
        let mut blamed = 0;
        got.extend(it.filter_map(|r| judge(r, victim, round, &mut blamed)));
        assert!(blamed <= 1, "round {round}: {blamed} tasks blamed");
        assert_eq!(
            got.len() + blamed,
            100,
            "round {round}: a task lost or repeated"
        );
        got.sort_unstable();
        got.dedup();
        assert_eq!(got.len() + blamed, 100, "round {round}: a result repeated");
        assert!(got.iter().all(|v| (0..100u64).any(|x| x * x == *v)));
    }
    serves_1000_more(&pool);
}

#[test]
fn kill_9_at_any_moment_of_a_map_never_hangs_nor_blames_twice() {
    let _w = watchdog(
        "kill_9_at_any_moment_of_a_map_never_hangs_nor_blames_twice",
        LIMIT,
    );
    let pool = killable_pool();
    for round in 0..100usize {
        let tasks = pool.map_async(square, 0..200, Some(1 + round % 3)).unwrap();
        // Kill a worker somewhere in the map: after a number of tasks that
        // changes with the round (receiving, running, reporting, idle).
        let seen = (round * 7) % 200;
        let _ = tasks[seen].get_timeout(GUARD);
        let victim = kill_a_worker(&pool, round);
        let mut blamed = 0;
        for (x, t) in tasks.iter().enumerate().filter(|(x, _)| *x != seen) {
            let r = t
                .get_timeout(GUARD)
                .map_err(|e| e.failed().expect("a task hung"));
            if let Some(v) = judge(r, victim, round, &mut blamed) {
                assert_eq!(v, (x * x) as u64, "round {round}");
            }
        }
        assert!(blamed <= 1, "round {round}: {blamed} tasks blamed");
    }
    serves_1000_more(&pool);
}

/// A task that only counts the handle it was given.
fn takes_a_handle(_c: Connection<u32>) -> u64 {
    1
}

#[test]
fn a_chunk_whose_handles_cannot_travel_fails_instead_of_starving() {
    let _w = watchdog(
        "a_chunk_whose_handles_cannot_travel_fails_instead_of_starving",
        LIMIT,
    );
    let pool = Pool::new(1).unwrap();
    let mut keep = Vec::new();
    let mut args = Vec::new();
    for _ in 0..300 {
        let (rx, tx) = pipe::<u32>().unwrap();
        keep.push(rx);
        args.push(tx);
    }
    // One chunk of 300 handles: more than one message can carry.
    let tasks = pool.map_async(takes_a_handle, args, Some(300)).unwrap();
    for t in &tasks {
        assert!(
            matches!(
                t.get_timeout(GUARD),
                Err(TimeoutError::Failed(TaskError::Transfer(_)))
            ),
            "a task of an untravelable chunk did not fail"
        );
    }
    // The tasks behind it are not held up.
    assert_eq!(pool.apply(square, 3).unwrap(), 9);
}
