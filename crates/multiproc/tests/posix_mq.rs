//! Cross-process tests of POSIX message queues: priority order, full and
//! empty queues, timeouts, limits, names, survival of the creator, typed
//! messages, handle passing, the registry, and signals during a wait.

mod common;

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{wait_until, watchdog};
use multiproc::names::Kind;
use multiproc::names::registry::Registry;
use multiproc::os::posix::{MessageQueue, OpenError, RecvError, SendError, validate_name};
use multiproc::{Fd, Process, SendTimeoutError, TimeoutError, TryError, TrySendError};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(60);

/// A queue name unique to this test process and `tag`.
fn name(tag: &str) -> String {
    format!("/multiproc-test-{}-{tag}", std::process::id())
}

/// Unlinks the name when the test ends, however it ends.
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = multiproc_sys::mq::unlink(&self.0);
    }
}

/// A private registry directory for one test, removed at the end.
struct TempRegistry(PathBuf);

impl TempRegistry {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("multiproc-posixmq-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempRegistry(dir)
    }

    fn open(&self) -> Registry {
        Registry::open(&self.0).unwrap()
    }

    fn path(&self) -> String {
        self.0.to_str().unwrap().to_owned()
    }
}

impl Drop for TempRegistry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Child: open the queue by name and send `(priority, label)` in order.
fn produce((name, reg, msgs): (String, String, Vec<(u32, String)>)) {
    let q: MessageQueue = MessageQueue::builder(name)
        .registry(Registry::open(reg).unwrap())
        .open()
        .unwrap();
    for (p, label) in msgs {
        q.send_bytes(label.as_bytes(), p).unwrap();
    }
}

#[test]
fn priority_order_and_fifo_within_a_priority_across_processes() {
    let _w = watchdog("priority_order", LIMIT);
    let reg = TempRegistry::new("prio");
    let n = name("prio");
    let _u = Unlink(n.clone());
    let q: MessageQueue = MessageQueue::builder(&n)
        .maxmsg(10)
        .msgsize(32)
        .registry(reg.open())
        .create()
        .unwrap();
    let msgs: Vec<(u32, String)> = [1, 5, 1, 3, 5, 1, 3, 0, 5, 2]
        .iter()
        .enumerate()
        .map(|(i, &p)| (p, format!("p{p}-{i}")))
        .collect();
    let mut child = Process::spawn(produce, (n.clone(), reg.path(), msgs.clone())).unwrap();
    child.join().unwrap();
    assert_eq!(q.attributes().unwrap().curmsgs, 10);
    let got: Vec<(u32, String)> = (0..msgs.len())
        .map(|_| {
            let (bytes, p) = q.recv_bytes().unwrap();
            (p, String::from_utf8(bytes).unwrap())
        })
        .collect();
    // Highest priority first; within a priority, the order sent (a stable sort).
    let mut want = msgs;
    want.sort_by_key(|(p, _)| std::cmp::Reverse(*p));
    assert_eq!(got, want);
    assert!(q.try_recv_bytes().unwrap_err().is_would_block());
    q.unlink().unwrap();
}

#[test]
fn try_send_on_a_full_queue_is_full_and_try_receive_on_an_empty_one_is_empty() {
    let _w = watchdog("full_and_empty", LIMIT);
    let reg = TempRegistry::new("full");
    let n = name("full");
    let _u = Unlink(n.clone());
    let q: MessageQueue = MessageQueue::builder(&n)
        .maxmsg(2)
        .msgsize(64)
        .registry(reg.open())
        .create()
        .unwrap();
    assert!(matches!(q.try_recv_bytes(), Err(TryError::WouldBlock)));
    q.try_send_bytes(b"a", 0).unwrap();
    q.try_send_bytes(b"b", 0).unwrap();
    assert!(matches!(
        q.try_send_bytes(b"c", 0),
        Err(TrySendError::Full(()))
    ));
    // Typed: the value is handed back.
    let typed = q.try_clone().unwrap().cast::<String>();
    match typed.try_send("kept".to_string(), 7) {
        Err(e) if e.is_full() => assert_eq!(e.into_inner(), "kept"),
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(q.attributes().unwrap().curmsgs, 2);
    assert_eq!(q.try_recv_bytes().unwrap(), (b"a".to_vec(), 0));
    assert_eq!(q.try_recv_bytes().unwrap(), (b"b".to_vec(), 0));
    assert!(q.try_recv_bytes().unwrap_err().is_would_block());
    assert!(matches!(typed.try_recv(), Err(TryError::WouldBlock)));
    q.unlink().unwrap();
}

#[test]
fn timeouts_end_in_bounded_time() {
    let _w = watchdog("timeouts", LIMIT);
    let reg = TempRegistry::new("timeout");
    let n = name("timeout");
    let _u = Unlink(n.clone());
    let q: MessageQueue = MessageQueue::builder(&n)
        .maxmsg(1)
        .msgsize(8)
        .registry(reg.open())
        .create()
        .unwrap();
    let wait = Duration::from_millis(100);
    let start = Instant::now();
    assert!(matches!(
        q.recv_bytes_timeout(wait),
        Err(TimeoutError::Timeout)
    ));
    let took = start.elapsed();
    assert!(took >= wait, "returned early: {took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    q.send_bytes_timeout(b"x", 1, wait).unwrap();
    let start = Instant::now();
    assert!(matches!(
        q.send_bytes_timeout(b"y", 1, wait),
        Err(SendTimeoutError::Timeout(()))
    ));
    let took = start.elapsed();
    assert!(took >= wait, "returned early: {took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    // A zero timeout still tries once.
    assert_eq!(
        q.recv_bytes_timeout(Duration::ZERO).unwrap(),
        (b"x".to_vec(), 1)
    );
    assert!(
        q.recv_bytes_timeout(Duration::ZERO)
            .unwrap_err()
            .is_timeout()
    );
    // A timeout too long to represent waits like the blocking form.
    q.send_bytes(b"z", 0).unwrap();
    assert_eq!(
        q.recv_bytes_timeout(Duration::MAX).unwrap(),
        (b"z".to_vec(), 0)
    );
    // The non-blocking flag: try and timeout forms behave the same, and the
    // blocking form waits by polling.
    q.set_nonblocking(true).unwrap();
    assert!(q.attributes().unwrap().nonblocking);
    assert!(q.try_recv_bytes().unwrap_err().is_would_block());
    assert!(q.recv_bytes_timeout(wait).unwrap_err().is_timeout());
    q.send_bytes(b"w", 0).unwrap();
    assert_eq!(q.recv_bytes().unwrap(), (b"w".to_vec(), 0));
    q.set_nonblocking(false).unwrap();
    assert!(!q.attributes().unwrap().nonblocking);
    q.unlink().unwrap();
}

#[test]
fn oversized_messages_and_short_buffers_are_too_large() {
    let _w = watchdog("too_large", LIMIT);
    let reg = TempRegistry::new("large");
    let n = name("large");
    let _u = Unlink(n.clone());
    let q: MessageQueue = MessageQueue::builder(&n)
        .maxmsg(2)
        .msgsize(16)
        .registry(reg.open())
        .create()
        .unwrap();
    assert_eq!(q.msgsize(), 16);
    match q.send_bytes(&[1; 17], 0) {
        Err(SendError::TooLarge { len, msgsize, .. }) => assert_eq!((len, msgsize), (17, 16)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    q.send_bytes(&[2; 16], 0).unwrap();
    // The kernel wants a buffer of msgsize, even for a short message; the
    // message stays queued.
    let mut short = [0u8; 8];
    match q.try_recv_bytes_into(&mut short) {
        Err(TryError::Failed(RecvError::TooLarge { buffer, msgsize })) => {
            assert_eq!((buffer, msgsize), (8, 16))
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let mut buf = [0u8; 16];
    assert_eq!(q.recv_bytes_into(&mut buf).unwrap(), (16, 0));
    assert_eq!(buf, [2; 16]);
    // A typed value that encodes larger than msgsize hands the value back.
    let big = "a string longer than sixteen bytes".to_string();
    match q.try_clone().unwrap().cast::<String>().send(big.clone(), 0) {
        Err(e @ SendError::TooLarge { .. }) => assert_eq!(e.into_inner(), big),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(matches!(
        q.send_bytes(b"p", multiproc::os::posix::PRIORITY_MAX),
        Err(SendError::InvalidPriority { .. })
    ));
    q.unlink().unwrap();
}

/// Whether this process has `CAP_SYS_RESOURCE` (bit 24 of `CapEff`).
fn has_cap_sys_resource() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps >> 24 & 1 == 1)
}

#[test]
fn capacity_defaults_and_limits() {
    let _w = watchdog("limits", LIMIT);
    let reg = TempRegistry::new("limits");
    let limits = multiproc_sys::mq::limits();
    let msg_max = usize::try_from(limits.msg_max.unwrap()).unwrap();
    let msgsize_max = usize::try_from(limits.msgsize_max.unwrap()).unwrap();

    // Defaults stay within the unprivileged limits.
    let n = name("default");
    let _u = Unlink(n.clone());
    let q: MessageQueue = MessageQueue::builder(&n)
        .registry(reg.open())
        .create()
        .unwrap();
    let a = q.attributes().unwrap();
    assert_eq!(a.maxmsg, msg_max.min(multiproc::os::posix::DEFAULT_MAXMSG));
    assert_eq!(
        a.msgsize,
        msgsize_max.min(multiproc::os::posix::DEFAULT_MSGSIZE)
    );
    assert_eq!(a.curmsgs, 0);
    assert!(!a.nonblocking);
    q.unlink().unwrap();

    // One above msg_max: refused with a typed error unless privileged
    // (CAP_SYS_RESOURCE: being root is not enough; containers often drop it).
    let n = name("over");
    let _u = Unlink(n.clone());
    let r = MessageQueue::builder(&n)
        .maxmsg(msg_max + 1)
        .msgsize(64)
        .registry(reg.open())
        .create();
    if has_cap_sys_resource() {
        let q: MessageQueue = r.unwrap();
        assert_eq!(q.attributes().unwrap().maxmsg, msg_max + 1);
        q.unlink().unwrap();
    } else {
        match r {
            Err(OpenError::LimitExceeded {
                maxmsg, msg_max: m, ..
            }) => assert_eq!((maxmsg, m), (msg_max + 1, msg_max as i64)),
            other => panic!("expected LimitExceeded, got {other:?}"),
        }
    }

    // Above the kernel's hard limit: refused for everyone.
    let n = name("hard");
    let _u = Unlink(n.clone());
    match MessageQueue::builder(&n)
        .maxmsg(65_537)
        .msgsize(1)
        .registry(reg.open())
        .create::<Vec<u8>>()
    {
        Err(e @ OpenError::LimitExceeded { .. }) => {
            assert!(e.to_string().contains("65537 messages"), "{e}");
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    assert!(matches!(
        MessageQueue::builder(&n).msgsize(0).create::<Vec<u8>>(),
        Err(OpenError::InvalidAttributes { .. })
    ));
}

#[test]
fn names_exclusive_create_and_missing_open() {
    let _w = watchdog("names", LIMIT);
    let reg = TempRegistry::new("names");
    let n = name("names");
    let _u = Unlink(n.clone());
    for bad in ["noslash", "/a/b", "/", ""] {
        assert!(validate_name(bad).is_err());
        assert!(matches!(
            MessageQueue::<Vec<u8>>::create(bad),
            Err(OpenError::InvalidName(_))
        ));
    }
    assert!(matches!(
        MessageQueue::<Vec<u8>>::open(&n),
        Err(OpenError::NotFound(m)) if m == n
    ));
    let q: MessageQueue = MessageQueue::builder(&n)
        .maxmsg(3)
        .msgsize(8)
        .registry(reg.open())
        .create()
        .unwrap();
    assert!(matches!(
        MessageQueue::builder(&n).registry(reg.open()).create::<Vec<u8>>(),
        Err(OpenError::AlreadyExists(m)) if m == n
    ));
    // create_or_open opens the existing queue with its own capacity.
    let again: MessageQueue = MessageQueue::builder(&n)
        .maxmsg(5)
        .msgsize(64)
        .registry(reg.open())
        .create_or_open()
        .unwrap();
    assert_eq!(again.attributes().unwrap().maxmsg, 3);
    q.send_bytes(b"hi", 0).unwrap();
    assert_eq!(again.recv_bytes().unwrap(), (b"hi".to_vec(), 0));
    // Mode 0600 and close-on-exec.
    let info = multiproc_sys::shm::file_info(q.fd()).unwrap();
    assert_eq!(info.mode, 0o600);
    assert!(multiproc_sys::fd::is_cloexec(q.fd()).unwrap());
    again.unlink().unwrap();
    assert!(matches!(
        MessageQueue::<Vec<u8>>::open(&n),
        Err(OpenError::NotFound(_))
    ));
    // Handles stay usable after the unlink.
    q.send_bytes(b"still", 0).unwrap();
    assert_eq!(again.recv_bytes().unwrap(), (b"still".to_vec(), 0));
    assert!(matches!(
        MessageQueue::unlink_name(&n),
        Err(OpenError::NotFound(_))
    ));
}

/// Child: create the queue, send, exit without unlinking.
fn create_send_and_exit((name, reg): (String, String)) {
    let q: MessageQueue = MessageQueue::builder(name)
        .maxmsg(4)
        .msgsize(32)
        .registry(Registry::open(reg).unwrap())
        .create()
        .unwrap();
    q.send_bytes(b"left behind", 2).unwrap();
    q.send_bytes(b"urgent", 9).unwrap();
}

#[test]
fn the_queue_survives_its_creator_until_unlinked() {
    let _w = watchdog("survives", LIMIT);
    let reg = TempRegistry::new("survive");
    let n = name("survive");
    let _u = Unlink(n.clone());
    let mut child = Process::spawn(create_send_and_exit, (n.clone(), reg.path())).unwrap();
    child.join().unwrap();
    let child_pid = child.pid().unwrap();
    // The creator is dead; its record says so.
    let records = reg.open().list().unwrap();
    let r = records
        .iter()
        .find(|r| r.kind == Kind::PosixMq && r.name == n)
        .unwrap_or_else(|| panic!("no record of {n}: {records:?}"));
    assert_eq!(r.owner_pid, child_pid);
    assert!(!r.owner_alive);
    assert!(multiproc::names::exists(Kind::PosixMq, &n));

    let q: MessageQueue = MessageQueue::builder(&n)
        .registry(reg.open())
        .open()
        .unwrap();
    assert_eq!(q.attributes().unwrap().curmsgs, 2);
    assert_eq!(q.recv_bytes().unwrap(), (b"urgent".to_vec(), 9));
    assert_eq!(q.recv_bytes().unwrap(), (b"left behind".to_vec(), 2));
    q.unlink().unwrap();
    assert!(!multiproc::names::exists(Kind::PosixMq, &n));
    assert!(reg.open().list().unwrap().is_empty());
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
enum Job {
    Work { id: u32, payload: Vec<u8> },
    Stop,
}

/// Child: answer each job with its id doubled, until `Stop`.
fn worker((jobs, results): (MessageQueue<Job>, MessageQueue<u64>)) -> usize {
    let mut n = 0;
    loop {
        match jobs.recv().unwrap().0 {
            Job::Work { id, payload } => {
                results
                    .send(u64::from(id) * 2 + payload.len() as u64, 0)
                    .unwrap();
                n += 1;
            }
            Job::Stop => return n,
        }
    }
}

#[test]
fn typed_messages_and_handles_passed_to_a_child() {
    let _w = watchdog("typed", LIMIT);
    let reg = TempRegistry::new("typed");
    let (jn, rn) = (name("jobs"), name("results"));
    let (_u1, _u2) = (Unlink(jn.clone()), Unlink(rn.clone()));
    let mk = |n: &str| {
        MessageQueue::builder(n)
            .maxmsg(4)
            .msgsize(128)
            .registry(reg.open())
            .create::<Vec<u8>>()
            .unwrap()
    };
    let jobs: MessageQueue<Job> = mk(&jn).cast();
    let results: MessageQueue<u64> = mk(&rn).cast();
    // The handles (descriptors) move into the child with its argument.
    let mut child = Process::spawn(
        worker,
        (jobs.try_clone().unwrap(), results.try_clone().unwrap()),
    )
    .unwrap();
    let mut sum = 0;
    for id in 0..10u32 {
        jobs.send(
            Job::Work {
                id,
                payload: vec![0; 3],
            },
            1,
        )
        .unwrap();
        sum += results.recv().unwrap().0;
    }
    jobs.send(Job::Stop, 0).unwrap();
    assert_eq!(child.join().unwrap(), 10);
    assert_eq!(sum, (0..10u64).map(|i| i * 2 + 3).sum::<u64>());

    // A value with a handle inside is refused, and handed back.
    let (r, _w) = multiproc_sys::fd::pipe().unwrap();
    match jobs.try_clone().unwrap().cast::<Fd>().send(Fd(r), 0) {
        Err(SendError::Handles { count: 1, msg }) => drop(msg),
        other => panic!("expected Handles, got {other:?}"),
    }
    // Bytes that are not a `Job`: a decode error, not a panic.
    jobs.send_bytes(&[0xff, 0xff, 0xff], 0).unwrap();
    assert!(matches!(
        jobs.try_recv(),
        Err(TryError::Failed(RecvError::Decode(_)))
    ));
    jobs.unlink().unwrap();
    results.unlink().unwrap();
}

/// Child: receive a queue handle over a connection, send on it.
fn via_connection(mut conn: multiproc::Connection<MessageQueue>) {
    let q = conn.recv().unwrap();
    q.send_bytes(b"from the child", 4).unwrap();
}

#[test]
fn a_handle_travels_in_a_message_and_the_fd_can_be_polled() {
    let _w = watchdog("in_message", LIMIT);
    let reg = TempRegistry::new("msg");
    let n = name("msg");
    let _u = Unlink(n.clone());
    let q: MessageQueue = MessageQueue::builder(&n)
        .maxmsg(2)
        .msgsize(32)
        .registry(reg.open())
        .create()
        .unwrap();
    // Not readable while empty.
    let ready = multiproc_sys::poll::wait_readable(q.as_fd(), Some(Instant::now())).unwrap();
    assert!(!ready.readable);
    let (mut mine, theirs) = multiproc::duplex::<MessageQueue>().unwrap();
    let mut child = Process::spawn(via_connection, theirs).unwrap();
    mine.send(&q.try_clone().unwrap()).unwrap();
    let ready = multiproc_sys::poll::wait_readable(q.as_fd(), None).unwrap();
    assert!(ready.readable);
    assert_eq!(q.try_recv_bytes().unwrap(), (b"from the child".to_vec(), 4));
    child.join().unwrap();
    q.unlink().unwrap();
}

#[test]
fn registry_record_appears_on_create_and_goes_on_unlink() {
    let _w = watchdog("registry", LIMIT);
    let reg = TempRegistry::new("registry");
    let n = name("registry");
    let _u = Unlink(n.clone());
    assert!(reg.open().list().unwrap().is_empty());
    let q: MessageQueue = MessageQueue::builder(&n)
        .registry(reg.open())
        .create()
        .unwrap();
    let records = reg.open().list().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].kind, Kind::PosixMq);
    assert_eq!(records[0].name, n);
    assert_eq!(records[0].owner_pid, std::process::id());
    assert!(records[0].owner_alive);
    assert!(multiproc::names::exists(Kind::PosixMq, &n));
    q.unlink().unwrap();
    assert!(reg.open().list().unwrap().is_empty());
    assert!(!multiproc::names::exists(Kind::PosixMq, &n));
}

// ----- EINTR ------------------------------------------------------------------

static HANDLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn on_usr1(_: libc::c_int) {
    HANDLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Child: install a SIGUSR1 handler without `SA_RESTART` (so a blocked
/// `mq_receive` fails with `EINTR`), say so, then block in `recv` and
/// `recv_timeout`; return what arrived and how many signals it handled.
fn receive_through_signals(
    (q, mut ready): (MessageQueue, multiproc::Connection<()>),
) -> (Vec<u8>, Vec<u8>, usize) {
    // SAFETY: all-zero is a valid `sigaction`; the handler only touches an
    // atomic (async-signal-safe); no SA_RESTART, so the kernel reports EINTR.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_usr1 as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    ready.send(&()).unwrap();
    let (a, _) = q.recv_bytes().unwrap();
    ready.send(&()).unwrap();
    let (b, _) = q.recv_bytes_timeout(Duration::from_secs(50)).unwrap();
    (a, b, HANDLED.load(std::sync::atomic::Ordering::Relaxed))
}

/// Whether `pid` is asleep (state `S`), as a thread blocked in a wait is.
fn sleeping(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('S'))
        })
        .unwrap_or(false)
}

#[test]
fn a_signal_during_a_blocked_receive_neither_ends_it_nor_loses_a_message() {
    let _w = watchdog("eintr", LIMIT);
    let reg = TempRegistry::new("eintr");
    let n = name("eintr");
    let _u = Unlink(n.clone());
    let q: MessageQueue = MessageQueue::builder(&n)
        .maxmsg(2)
        .msgsize(16)
        .registry(reg.open())
        .create()
        .unwrap();
    let (mut ready, theirs) = multiproc::duplex::<()>().unwrap();
    let mut child =
        Process::spawn(receive_through_signals, (q.try_clone().unwrap(), theirs)).unwrap();
    let pid = child.pid().unwrap();
    for msg in [&b"first"[..], b"second"] {
        ready.recv().unwrap();
        // One thread: a process-directed signal interrupts the receive.
        let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .count();
        assert_eq!(threads, 1);
        for _ in 0..5 {
            assert!(wait_until(Duration::from_secs(20), || sleeping(pid)));
            multiproc_sys::process::kill(pid, libc::SIGUSR1).unwrap();
        }
        // Still waiting: the signals did not end the receive.
        assert!(wait_until(Duration::from_secs(20), || sleeping(pid)));
        assert_eq!(child.wait_timeout(Duration::ZERO).unwrap(), None);
        q.send_bytes(msg, 0).unwrap();
    }
    let (a, b, handled) = child.join().unwrap();
    assert_eq!(
        (a.as_slice(), b.as_slice()),
        (&b"first"[..], &b"second"[..])
    );
    assert!(handled >= 1, "no signal was handled");
    assert!(q.try_recv_bytes().unwrap_err().is_would_block());
    q.unlink().unwrap();
}

// ----- the default registry -----------------------------------------------------

/// Not a test on its own: run by
/// `default_registry_records_a_created_queue_and_unlink_forgets_it` in a
/// child process whose `MULTIPROC_REGISTRY_DIR` names a private registry.
/// Creates the queue it is told to (default registry) and leaves it.
#[test]
#[ignore = "helper run by default_registry_records_a_created_queue_and_unlink_forgets_it"]
fn helper_create_in_the_default_registry() {
    let (Some(_), Some(name)) = (
        std::env::var_os("MULTIPROC_REGISTRY_DIR"),
        std::env::var_os("MULTIPROC_TEST_MQ_NAME"),
    ) else {
        return;
    };
    let q: MessageQueue = MessageQueue::builder(name.to_str().unwrap())
        .maxmsg(1)
        .msgsize(8)
        .create()
        .unwrap();
    q.send_bytes(b"kept", 0).unwrap();
}

#[test]
fn default_registry_records_a_created_queue_and_unlink_forgets_it() {
    let _w = watchdog("default_registry", LIMIT);
    let reg = TempRegistry::new("default");
    reg.open();
    let n = name("default-registry");
    let _u = Unlink(n.clone());
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_create_in_the_default_registry",
            "--ignored",
            "--test-threads=1",
        ])
        .env("MULTIPROC_REGISTRY_DIR", &reg.0)
        .env("MULTIPROC_TEST_MQ_NAME", &n)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let records = reg.open().list().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        (records[0].kind, records[0].name.as_str()),
        (Kind::PosixMq, n.as_str())
    );
    assert!(!records[0].owner_alive);
    let q: MessageQueue = MessageQueue::builder(&n)
        .registry(reg.open())
        .open()
        .unwrap();
    assert_eq!(q.recv_bytes().unwrap(), (b"kept".to_vec(), 0));
    q.unlink().unwrap();
    assert!(reg.open().list().unwrap().is_empty());
}
