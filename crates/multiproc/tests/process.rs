//! Cross-process tests of `Process`: the test binary is re-executed as the
//! child (spawn), or forked from a single-threaded spawned helper (fork).

mod common;

use std::time::Duration;

use common::watchdog;
use multiproc::TimeoutError;
use multiproc::{Builder, Connection, OnDrop, Process, ProcessError, RecvError, duplex, pipe};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(60);

fn add(pair: (i64, i64)) -> i64 {
    pair.0 + pair.1
}

#[test]
fn spawn_returns_the_target_result() {
    let _w = watchdog("spawn_returns_the_target_result", LIMIT);
    let mut p = Process::spawn(add, (40, 2)).unwrap();
    assert!(p.pid().is_some());
    assert_eq!(p.join().unwrap(), 42);
    assert_eq!(p.exitcode(), Some(0));
    assert!(!p.is_alive());
    assert!(matches!(p.join(), Err(ProcessError::AlreadyJoined)));
    assert_eq!(p.wait().unwrap(), 0);
}

fn name_of_child(_: ()) -> String {
    multiproc::current_process_name().to_owned()
}

#[test]
fn names_default_and_explicit() {
    let _w = watchdog("names_default_and_explicit", LIMIT);
    let mut p = Builder::new()
        .name("worker-7")
        .spawn(name_of_child, ())
        .unwrap();
    assert_eq!(p.name(), "worker-7");
    assert_eq!(p.join().unwrap(), "worker-7");
    let mut q = Process::spawn(name_of_child, ()).unwrap();
    assert!(q.name().starts_with("Process-"), "{}", q.name());
    assert_eq!(q.join().unwrap(), q.name());
    assert_eq!(multiproc::current_process_name(), "MainProcess");
}

fn unstarted(_: ()) {}

#[test]
fn new_then_start() {
    let _w = watchdog("new_then_start", LIMIT);
    let mut p = Process::new(unstarted, ());
    assert_eq!(p.pid(), None);
    assert!(!p.is_alive());
    assert!(matches!(p.join(), Err(ProcessError::NotStarted)));
    p.start().unwrap();
    assert!(matches!(p.start(), Err(ProcessError::AlreadyStarted)));
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(0));
}

fn exit_with(code: i32) {
    std::process::exit(code);
}

#[test]
fn exit_status_is_the_exitcode() {
    let _w = watchdog("exit_status_is_the_exitcode", LIMIT);
    let mut p = Process::spawn(exit_with, 3).unwrap();
    match p.join() {
        Err(ProcessError::Failed {
            exitcode: 3,
            panic: None,
        }) => {}
        r => panic!("unexpected {r:?}"),
    }
    assert_eq!(p.exitcode(), Some(3));
    // exit(0) without a result: fine for a unit target.
    let mut p = Process::spawn(exit_with, 0).unwrap();
    p.join().unwrap();
}

fn panics(msg: String) {
    panic!("{msg}");
}

/// Regression test (6g): the parent learns the panic's message and
/// location, not only exit code 1, from spawned and forked children alike.
#[test]
fn panic_gives_exitcode_1_with_the_message_and_location() {
    let _w = watchdog(
        "panic_gives_exitcode_1_with_the_message_and_location",
        LIMIT,
    );
    let check = |r: Result<(), ProcessError>| match r {
        Err(ProcessError::Failed {
            exitcode: 1,
            panic: Some(p),
        }) => {
            assert_eq!(p.message, "child panicked on purpose");
            let at = p.location.expect("a location");
            assert!(at.starts_with("crates/multiproc/tests/process.rs:"), "{at}");
            let e = ProcessError::Failed {
                exitcode: 1,
                panic: Some(multiproc::ChildPanic {
                    message: p.message.clone(),
                    location: Some(at.clone()),
                }),
            };
            assert!(
                e.to_string()
                    .contains("panicked at crates/multiproc/tests/process.rs:")
            );
        }
        r => panic!("unexpected {r:?}"),
    };
    let mut p = Process::spawn(panics, "child panicked on purpose".to_string()).unwrap();
    check(p.join());
    // Forked children: see `fork_suite`.
}

fn sleep_forever(_: ()) {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[test]
fn terminate_and_kill_give_negative_signals() {
    let _w = watchdog("terminate_and_kill_give_negative_signals", LIMIT);
    let mut p = Process::spawn(sleep_forever, ()).unwrap();
    assert!(p.is_alive());
    assert!(matches!(
        p.join_timeout(Duration::from_millis(50)),
        Err(TimeoutError::Timeout)
    ));
    assert_eq!(p.wait_timeout(Duration::from_millis(10)).unwrap(), None);
    p.terminate().unwrap();
    assert_eq!(p.wait().unwrap(), -15);
    assert!(matches!(
        p.join(),
        Err(ProcessError::Failed { exitcode: -15, .. })
    ));

    let mut p = Process::spawn(sleep_forever, ()).unwrap();
    p.kill().unwrap();
    assert_eq!(p.wait().unwrap(), -9);
    // Signalling an exited process is a no-op, not an error.
    p.terminate().unwrap();
}

#[test]
fn sentinel_becomes_readable_on_exit() {
    let _w = watchdog("sentinel_becomes_readable_on_exit", LIMIT);
    let mut a = Process::spawn(sleep_forever, ()).unwrap();
    let mut b = Process::spawn(exit_with, 0).unwrap();
    let ready = multiproc_sys::poll::wait_any_readable(
        &[a.sentinel().unwrap(), b.sentinel().unwrap()],
        None,
    )
    .unwrap();
    assert_eq!(ready, vec![false, true]);
    a.kill().unwrap();
    a.wait().unwrap();
    b.wait().unwrap();
}

/// The child sums what arrives on `rx` until EOF and returns the sum.
fn sum_until_eof(rx: Connection<u64>) -> u64 {
    let mut rx = rx;
    let mut sum = 0;
    loop {
        match rx.recv() {
            Ok(v) => sum += v,
            Err(RecvError::Eof) => return sum,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn spawn_with_a_pipe_in_the_argument() {
    let _w = watchdog("spawn_with_a_pipe_in_the_argument", LIMIT);
    let (rx, mut tx) = pipe::<u64>().unwrap();
    let mut p = Process::spawn(sum_until_eof, rx).unwrap();
    for i in 1..=100 {
        tx.send(&i).unwrap();
    }
    drop(tx);
    assert_eq!(p.join().unwrap(), 5050);
}

/// Receives a connection inside a message, then echoes over it.
fn echo_server(ctl: Connection<Connection<String>>) {
    let mut ctl = ctl;
    let mut conn = ctl.recv().unwrap();
    while let Ok(s) = conn.recv() {
        conn.send(&format!("echo: {s}")).unwrap();
    }
}

#[test]
fn a_connection_sent_over_a_connection() {
    let _w = watchdog("a_connection_sent_over_a_connection", LIMIT);
    let (mut ctl_parent, ctl_child) = duplex::<Connection<String>>().unwrap();
    let mut p = Process::spawn(echo_server, ctl_child).unwrap();
    let (mut mine, theirs) = duplex::<String>().unwrap();
    ctl_parent.send(&theirs).unwrap();
    drop(theirs);
    mine.send(&"hi".to_string()).unwrap();
    assert_eq!(mine.recv().unwrap(), "echo: hi");
    drop(mine);
    p.join().unwrap();
}

/// Returns a connection to the parent through the result channel.
fn make_pipe(_: ()) -> Connection<u32> {
    let (rx, mut tx) = pipe::<u32>().unwrap();
    tx.send(&99).unwrap();
    rx
}

#[test]
fn a_result_can_carry_a_handle() {
    let _w = watchdog("a_result_can_carry_a_handle", LIMIT);
    let mut p = Process::spawn(make_pipe, ()).unwrap();
    let mut rx = p.join().unwrap();
    assert_eq!(rx.recv().unwrap(), 99);
    assert!(rx.recv().unwrap_err().is_eof());
}

/// Spawns a daemon grandchild that sleeps forever, reports its pid, then the
/// middle process blocks until killed.
fn parent_of_daemon(report: Connection<u32>) {
    let mut report = report;
    let d = Builder::new()
        .daemon(true)
        .spawn(sleep_forever, ())
        .unwrap();
    report.send(&d.pid().unwrap()).unwrap();
    std::mem::forget(d); // keep it running; only the parent's death may end it
    sleep_forever(());
}

#[test]
fn daemon_children_die_with_their_parent() {
    let _w = watchdog("daemon_children_die_with_their_parent", LIMIT);
    let (mut rx, tx) = pipe::<u32>().unwrap();
    let mut middle = Process::spawn(parent_of_daemon, tx).unwrap();
    let daemon_pid = rx.recv().unwrap();
    assert!(common::pid_alive(daemon_pid));
    middle.kill().unwrap(); // SIGKILL: no cleanup code runs in the parent
    assert_eq!(middle.wait().unwrap(), -9);
    assert!(
        common::wait_until(Duration::from_secs(10), || !common::pid_alive(daemon_pid)),
        "daemon {daemon_pid} outlived its parent"
    );
}

#[test]
fn dropping_a_daemon_handle_kills_it() {
    let _w = watchdog("dropping_a_daemon_handle_kills_it", LIMIT);
    let d = Builder::new()
        .daemon(true)
        .spawn(sleep_forever, ())
        .unwrap();
    let pid = d.pid().unwrap();
    drop(d);
    assert!(!common::pid_alive(pid));
}

#[test]
fn a_non_daemon_with_kill_on_drop_is_killed_and_reaped_by_the_drop() {
    let _w = watchdog(
        "a_non_daemon_with_kill_on_drop_is_killed_and_reaped_by_the_drop",
        LIMIT,
    );
    let p = Builder::new()
        .on_drop(OnDrop::Kill)
        .spawn(sleep_forever, ())
        .unwrap();
    assert!(!p.daemon());
    let pid = p.pid().unwrap();
    drop(p); // with the default (Join) this would never return
    assert!(!common::pid_alive(pid));
    // Reaped, not a zombie: the pid's /proc entry is gone.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn a_daemon_with_join_on_drop_is_waited_for() {
    let _w = watchdog("a_daemon_with_join_on_drop_is_waited_for", LIMIT);
    let (mut rx, tx) = pipe::<u8>().unwrap();
    let p = Builder::new()
        .daemon(true)
        .on_drop(OnDrop::Join)
        .spawn(finish_after_a_while, tx)
        .unwrap();
    let pid = p.pid().unwrap();
    drop(p);
    // The child ran to its end (a killed one would leave only end of file).
    assert_eq!(rx.recv().unwrap(), 1);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

fn finish_after_a_while(done: Connection<u8>) {
    let mut done = done;
    std::thread::sleep(Duration::from_millis(200));
    done.send(&1).unwrap();
}

fn big_result(n: usize) -> Vec<u8> {
    vec![0xAB; n]
}

#[test]
fn results_larger_than_the_socket_buffer() {
    let _w = watchdog("results_larger_than_the_socket_buffer", LIMIT);
    let mut p = Process::spawn(big_result, 5 << 20).unwrap();
    let v = p.join().unwrap();
    assert_eq!(v.len(), 5 << 20);
    assert!(v.iter().all(|&b| b == 0xAB));
}

/// Runs fork tests inside a single-threaded spawned helper (the test harness
/// itself is multi-threaded, so forking there is refused).
fn fork_suite(_: ()) -> Vec<String> {
    let mut log = Vec::new();
    // 1. A closure's result comes back.
    let base = 40;
    let mut p = Process::fork(move || base + 2).unwrap();
    log.push(format!("result={}", p.join().unwrap()));
    // 2. A pipe created before the fork works across it.
    let (mut rx, tx) = pipe::<String>().unwrap();
    let mut p = Process::fork(move || {
        let mut tx = tx;
        tx.send(&"from fork".to_string()).unwrap();
    })
    .unwrap();
    log.push(rx.recv().unwrap());
    p.join().unwrap();
    // 3. Exit codes and panics.
    let mut p = Process::<()>::fork(|| std::process::exit(5)).unwrap();
    log.push(format!("exit={}", p.wait().unwrap()));
    let mut p = Process::<()>::fork(|| panic!("fork child panics on purpose")).unwrap();
    log.push(format!("panic={}", p.wait().unwrap()));
    match p.join() {
        Err(ProcessError::Failed { panic: Some(p), .. }) => log.push(p.message),
        r => log.push(format!("no panic report: {r:?}")),
    }
    // 4. Memory is copied, not shared.
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(7);
    let mut p =
        Process::fork(|| COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1).unwrap();
    log.push(format!(
        "child={} parent={}",
        p.join().unwrap(),
        COUNTER.load(std::sync::atomic::Ordering::SeqCst)
    ));
    // 5. A second thread makes fork refuse.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let _ = stop_rx.recv();
    });
    match Process::fork(|| ()) {
        Err(ProcessError::ForkWithThreads { threads }) => log.push(format!("refused {threads}")),
        r => log.push(format!("not refused: {r:?}")),
    }
    drop(stop_tx);
    t.join().unwrap();
    log
}

#[test]
fn fork_start_method() {
    let _w = watchdog("fork_start_method", LIMIT);
    let mut p = Process::spawn(fork_suite, ()).unwrap();
    let log = p.join().unwrap();
    assert_eq!(
        log,
        vec![
            "result=42",
            "from fork",
            "exit=5",
            "panic=1",
            "fork child panics on purpose",
            "child=8 parent=7",
            "refused 2"
        ]
    );
}

#[test]
fn fork_is_refused_in_a_multithreaded_test_harness() {
    // The harness runs this test on its own thread, so there are at least two.
    match Process::fork(|| ()) {
        Err(ProcessError::ForkWithThreads { threads }) => assert!(threads >= 2),
        r => panic!("fork was not refused: {r:?}"),
    }
}
