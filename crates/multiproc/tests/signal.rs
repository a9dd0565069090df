//! Cross-process tests of signals: delivery to a child waiting on
//! `Signals` or a `SignalFlag`, timeouts, graceful `terminate`, refusal of
//! uncatchable signals, and blocking calls that must survive a storm of
//! handled signals (`EINTR`).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::watchdog;
use multiproc::os::signal::{
    self, SIGKILL, SIGSTOP, SIGTERM, SIGUSR1, SIGUSR2, SignalError, Signals,
};
use multiproc::{Connection, Process, Queue, pipe};
use multiproc::{TimeoutError, TryError};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(60);

/// Child: watch SIGUSR1 and SIGUSR2, say so, report the first two received.
fn wait_for_two(ready: Connection<()>) -> Vec<i32> {
    let mut ready = ready;
    let mut signals = Signals::new(&[SIGUSR1, SIGUSR2]).unwrap();
    ready.send(&()).unwrap();
    let a = signals.wait().unwrap();
    let b = signals
        .wait_timeout(Duration::from_secs(30))
        .unwrap()
        .unwrap();
    vec![a, b]
}

#[test]
fn a_child_waits_for_signals_with_the_iterator() {
    let _w = watchdog("a_child_waits_for_signals_with_the_iterator", LIMIT);
    let (mut rx, tx) = pipe::<()>().unwrap();
    let mut child = Process::spawn(wait_for_two, tx).unwrap();
    rx.recv().unwrap();
    // One through the pidfd, one by pid.
    child.send_signal(SIGUSR1).unwrap();
    signal::send(child.pid().unwrap(), SIGUSR2).unwrap();
    let mut got = child.join().unwrap();
    got.sort_unstable();
    assert_eq!(got, vec![SIGUSR1, SIGUSR2]);
}

/// Child: with no signal sent, the timeout forms report none; then one sent
/// to itself is seen by every form.
fn timeouts(_: ()) -> (bool, bool, Option<i32>, Vec<i32>) {
    let mut s = Signals::new(&[SIGUSR2]).unwrap();
    let t = Instant::now();
    let none = s
        .wait_timeout(Duration::from_millis(100))
        .unwrap()
        .is_none();
    let waited = t.elapsed() >= Duration::from_millis(100);
    assert!(s.try_wait().unwrap().is_none());
    assert_eq!(s.pending().count(), 0);
    signal::send(std::process::id(), SIGUSR2).unwrap();
    let got = s.wait_timeout(Duration::from_secs(30)).unwrap();
    signal::send(std::process::id(), SIGUSR2).unwrap();
    // Delivered before `kill` returns (to this process, unblocked).
    let mut later = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while later.is_empty() && Instant::now() < deadline {
        later.extend(s.pending());
    }
    (none, waited, got, later)
}

#[test]
fn timeout_forms_return_none_without_a_signal() {
    let _w = watchdog("timeout_forms_return_none_without_a_signal", LIMIT);
    let mut child = Process::spawn(timeouts, ()).unwrap();
    let (none, waited, got, later) = child.join().unwrap();
    assert!(none);
    assert!(waited);
    assert_eq!(got, Some(SIGUSR2));
    assert_eq!(later, vec![SIGUSR2]);
}

/// Child: a flag for SIGUSR1; report its states.
fn flag_child(ready: Connection<()>) -> (bool, bool, bool, bool) {
    let mut ready = ready;
    let f = signal::flag(SIGUSR1).unwrap();
    let before = f.is_set();
    ready.send(&()).unwrap();
    let set = f.wait_timeout(Duration::from_secs(30)).unwrap();
    let still = f.is_set();
    f.clear();
    let after_clear = f.wait_timeout(Duration::from_millis(50)).unwrap();
    (before, set, still, after_clear)
}

#[test]
fn the_flag_form_is_set_by_the_signal() {
    let _w = watchdog("the_flag_form_is_set_by_the_signal", LIMIT);
    let (mut rx, tx) = pipe::<()>().unwrap();
    let mut child = Process::spawn(flag_child, tx).unwrap();
    rx.recv().unwrap();
    child.send_signal(SIGUSR1).unwrap();
    assert_eq!(child.join().unwrap(), (false, true, true, false));
}

/// Child: turn SIGTERM into a flag, wait for it, clean up, return normally.
fn graceful(arg: (Connection<()>, PathBuf)) {
    let (mut ready, marker) = arg;
    let term = signal::flag(SIGTERM).unwrap();
    ready.send(&()).unwrap();
    term.wait().unwrap();
    std::fs::write(&marker, b"cleaned up").unwrap();
}

/// Child: no handler; SIGTERM ends it.
fn idle(ready: Connection<()>) {
    let mut ready = ready;
    ready.send(&()).unwrap();
    common::sleep_forever();
}

#[test]
fn terminate_lets_a_child_that_handles_sigterm_clean_up() {
    let _w = watchdog(
        "terminate_lets_a_child_that_handles_sigterm_clean_up",
        LIMIT,
    );
    let marker = std::env::temp_dir().join(format!("multiproc-signal-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let (mut rx, tx) = pipe::<()>().unwrap();
    let mut child = Process::spawn(graceful, (tx, marker.clone())).unwrap();
    rx.recv().unwrap();
    child.terminate().unwrap();
    assert_eq!(child.wait().unwrap(), 0);
    assert_eq!(child.exitcode(), Some(0));
    child.join().unwrap();
    assert_eq!(std::fs::read(&marker).unwrap(), b"cleaned up");
    std::fs::remove_file(&marker).unwrap();
    // Without a handler, the default action: killed by SIGTERM.
    let (mut rx, tx) = pipe::<()>().unwrap();
    let mut child = Process::spawn(idle, tx).unwrap();
    rx.recv().unwrap();
    child.terminate().unwrap();
    assert_eq!(child.wait().unwrap(), -SIGTERM);
}

#[test]
fn uncatchable_and_forbidden_signals_are_refused() {
    assert!(matches!(
        Signals::new(&[SIGUSR1, SIGKILL]),
        Err(SignalError::Uncatchable(9))
    ));
    assert!(matches!(
        Signals::new(&[SIGSTOP]),
        Err(SignalError::Uncatchable(_))
    ));
    assert!(matches!(
        signal::flag(SIGKILL),
        Err(SignalError::Uncatchable(_))
    ));
    for s in signal::FORBIDDEN {
        if *s != SIGKILL && *s != SIGSTOP {
            assert!(
                matches!(Signals::new(&[*s]), Err(SignalError::Forbidden(x)) if x == *s),
                "{s}"
            );
        }
    }
    assert!(signal::FORBIDDEN.len() >= 5);
    for bad in [0, -1, 200] {
        assert!(matches!(Signals::new(&[bad]), Err(SignalError::Invalid(_))));
    }
    assert!(matches!(
        signal::send(std::process::id(), 1000),
        Err(SignalError::Invalid(1000))
    ));
    assert_eq!(signal::name(SIGTERM), Some("SIGTERM"));
}

fn exit_now(_: ()) {}

#[test]
fn sending_to_a_process_that_is_gone() {
    let _w = watchdog("sending_to_a_process_that_is_gone", LIMIT);
    let mut child = Process::spawn(exit_now, ()).unwrap();
    let pid = child.pid().unwrap();
    assert!(matches!(
        child.send_signal(1000),
        Err(multiproc::ProcessError::Signal(SignalError::Invalid(1000)))
    ));
    child.join().unwrap();
    // Reaped: the pid names nothing (unless reused at once, which Linux
    // avoids by cycling through the pid space).
    assert!(matches!(
        signal::send(pid, 0),
        Err(SignalError::NoSuchProcess(p)) if p == pid
    ));
    // Through the handle, a finished child is not an error.
    child.terminate().unwrap();
}

const MESSAGES: u64 = 200;

/// Child: handle SIGUSR1 (so every arrival interrupts a blocking call) and
/// take `MESSAGES` messages from a queue and a connection; then wait for a
/// timeout that signals keep interrupting.
fn storm_child(
    arg: (Queue<u64>, Connection<u64>, Connection<()>),
) -> (Vec<u64>, Vec<u64>, bool, usize) {
    let (q, mut rx, mut ready) = arg;
    let mut signals = Signals::new(&[SIGUSR1]).unwrap();
    ready.send(&()).unwrap();
    let mut from_queue = Vec::new();
    let mut from_conn = Vec::new();
    for _ in 0..MESSAGES {
        from_queue.push(q.get().unwrap());
        from_conn.push(rx.recv().unwrap());
    }
    let t = Instant::now();
    let timed_out = matches!(
        rx.recv_timeout(Duration::from_millis(300)),
        Err(TimeoutError::Timeout)
    ) && t.elapsed() >= Duration::from_millis(300);
    let seen = signals.pending().count();
    ready.send(&()).unwrap();
    (from_queue, from_conn, timed_out, seen)
}

#[test]
fn blocking_calls_survive_a_storm_of_handled_signals() {
    let _w = watchdog("blocking_calls_survive_a_storm_of_handled_signals", LIMIT);
    let q = Queue::<u64>::new().unwrap();
    let (rx, mut tx) = pipe::<u64>().unwrap();
    let (mut ready_rx, ready_tx) = pipe::<()>().unwrap();
    let mut child = Process::spawn(storm_child, (q.clone(), rx, ready_tx)).unwrap();
    ready_rx.recv().unwrap();
    for i in 0..MESSAGES {
        for _ in 0..5 {
            child.send_signal(SIGUSR1).unwrap();
        }
        q.put(i).unwrap();
        for _ in 0..5 {
            child.send_signal(SIGUSR1).unwrap();
        }
        tx.send(&i).unwrap();
    }
    // Keep signalling through the child's 300 ms timed wait.
    while matches!(ready_rx.try_recv(), Err(TryError::WouldBlock)) {
        child.send_signal(SIGUSR1).unwrap();
        std::thread::yield_now();
    }
    let (from_queue, from_conn, timed_out, seen) = child.join().unwrap();
    let expected: Vec<u64> = (0..MESSAGES).collect();
    assert_eq!(from_queue, expected);
    assert_eq!(from_conn, expected);
    assert!(timed_out, "recv_timeout returned early or not with Timeout");
    assert!(seen > 0, "the child's handler never ran");
}
