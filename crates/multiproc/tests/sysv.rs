//! Cross-process tests of System V message queues, semaphore sets and
//! shared memory: type selection, no-wait and full/empty, size limits,
//! lifetime beyond the creator, removal waking waiters, atomic semaphore
//! operations, `SEM_UNDO` after `kill -9`, attachments, and the registry.
//!
//! Every object is private (`IPC_PRIVATE`) or keyed by `ftok` of a temporary
//! file unique to the test, and a guard removes it even when the test fails.

mod common;

use std::time::{Duration, Instant};

use common::{wait_until, watchdog};
use multiproc::names::Kind;
use multiproc::names::registry::Registry;
use multiproc::os::sysv::{
    Key, MessageQueue, OpenError, RecvError, SemError, SemOp, SemaphoreSet, SendError,
    SharedMemory, ShmError,
};
use multiproc::{Connection, Fd, Process, TimeoutError, TryError, pipe};
use serde::{Deserialize, Serialize};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(20);

/// Removes a System V object when dropped (also when the test panics).
struct Remove<F: FnMut()>(F);

impl<F: FnMut()> Drop for Remove<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

fn guard_mq(q: &MessageQueue) -> Remove<impl FnMut() + use<>> {
    let q = q.clone();
    Remove(move || {
        let _ = q.remove();
    })
}

fn guard_sem(s: &SemaphoreSet) -> Remove<impl FnMut() + use<>> {
    let s = s.clone();
    Remove(move || {
        let _ = s.remove();
    })
}

fn guard_shm(m: &SharedMemory) -> Remove<impl FnMut() + use<>> {
    let m = m.clone();
    Remove(move || {
        let _ = m.remove();
    })
}

/// A temporary file unique to this test, for `ftok`; removed on drop.
struct KeyFile(std::path::PathBuf);

impl KeyFile {
    fn new(test: &str) -> KeyFile {
        let p = std::env::temp_dir().join(format!(
            "multiproc-sysv-{}-{test}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::write(&p, b"").unwrap();
        KeyFile(p)
    }

    fn key(&self) -> Key {
        Key::from_path(&self.0, b'M').unwrap()
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A private registry directory, removed on drop.
struct TempRegistry(std::path::PathBuf);

impl TempRegistry {
    fn new(test: &str) -> TempRegistry {
        let p =
            std::env::temp_dir().join(format!("multiproc-sysv-reg-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempRegistry(p)
    }
    fn open(&self) -> Registry {
        Registry::open(&self.0).unwrap()
    }
}

impl Drop for TempRegistry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ----- message queues --------------------------------------------------------

/// Sends `(type, text)` messages in order.
fn send_all(arg: (MessageQueue, Vec<(i64, String)>)) {
    let (q, msgs) = arg;
    for (t, text) in msgs {
        q.send_bytes(t, text.as_bytes()).unwrap();
    }
}

fn text(m: multiproc::os::sysv::Message) -> (i64, String) {
    (m.mtype, String::from_utf8(m.data).unwrap())
}

#[test]
fn selectors_follow_the_msgrcv_rules_across_processes() {
    let _w = watchdog("selectors_follow_the_msgrcv_rules_across_processes", LIMIT);
    let q = MessageQueue::private().unwrap();
    let _g = guard_mq(&q);
    let msgs: Vec<(i64, String)> = [3, 1, 2, 5, 1, 4]
        .iter()
        .enumerate()
        .map(|(i, &t)| (t, format!("m{i}-t{t}")))
        .collect();
    let mut p = Process::spawn(send_all, (q.clone(), msgs)).unwrap();
    p.join().unwrap();
    assert_eq!(q.stats().unwrap().messages, 6);
    assert_eq!(q.stats().unwrap().last_send_pid, p.pid().unwrap());

    // type > 0: the first message of that type.
    assert_eq!(text(q.recv_bytes(2).unwrap()), (2, "m2-t2".into()));
    // type < 0: the first message of the lowest type <= |type|.
    assert_eq!(text(q.recv_bytes(-5).unwrap()), (1, "m1-t1".into()));
    assert_eq!(text(q.recv_bytes(-5).unwrap()), (1, "m4-t1".into()));
    // type 0: the first message, whatever its type.
    assert_eq!(text(q.recv_bytes(0).unwrap()), (3, "m0-t3".into()));
    // MSG_EXCEPT: the first message not of that type.
    assert_eq!(
        text(
            q.recv_bytes(multiproc::os::sysv::Selector::Except(5))
                .unwrap()
        ),
        (4, "m5-t4".into())
    );
    // Nothing of type <= 4 is left; type 5 is.
    assert!(matches!(q.try_recv_bytes(-4), Err(TryError::WouldBlock)));
    assert!(matches!(q.try_recv_bytes(1), Err(TryError::WouldBlock)));
    assert_eq!(text(q.try_recv_bytes(0).unwrap()), (5, "m3-t5".into()));
    assert!(matches!(q.try_recv_bytes(0), Err(TryError::WouldBlock)));
    let st = q.stats().unwrap();
    assert_eq!((st.messages, st.bytes), (0, 0));
    assert_eq!(st.last_receive_pid, std::process::id());
    assert_eq!(st.perm.mode, 0o600);
}

#[test]
fn empty_queue_no_wait_and_timeout() {
    let _w = watchdog("empty_queue_no_wait_and_timeout", LIMIT);
    let q = MessageQueue::private().unwrap();
    let _g = guard_mq(&q);
    assert!(matches!(q.try_recv_bytes(0), Err(TryError::WouldBlock)));
    let mut buf = [0u8; 8];
    assert!(matches!(
        q.try_recv_bytes_into(1, &mut buf, false),
        Err(TryError::WouldBlock)
    ));
    let t = Instant::now();
    assert!(matches!(
        q.recv_bytes_timeout(0, Duration::from_millis(60)),
        Err(TimeoutError::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(60));
    // A message of another type does not satisfy a typed receive.
    q.send_bytes(7, b"x").unwrap();
    assert!(matches!(
        q.recv_bytes_timeout(3, Duration::from_millis(10)),
        Err(TimeoutError::Timeout)
    ));
    assert_eq!(
        q.recv_bytes_timeout(7, Duration::from_millis(10))
            .unwrap()
            .data,
        b"x"
    );
}

/// Takes one message, then reports.
fn take_one(q: MessageQueue) -> usize {
    q.recv_bytes(0).unwrap().data.len()
}

#[test]
fn full_queue_no_wait_is_full_and_a_receiver_makes_room() {
    let _w = watchdog(
        "full_queue_no_wait_is_full_and_a_receiver_makes_room",
        LIMIT,
    );
    let q = MessageQueue::private().unwrap();
    let _g = guard_mq(&q);
    let max = q.stats().unwrap().max_bytes;
    let msg = vec![0x42u8; 1024];
    let mut sent = 0u64;
    loop {
        match q.try_send_bytes(1, &msg) {
            Ok(()) => sent += 1,
            Err(TryError::WouldBlock) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(sent * 1024 <= max, "sent past the limit of {max} bytes");
    }
    let st = q.stats().unwrap();
    assert_eq!(st.messages, sent);
    assert!(st.bytes + 1024 > st.max_bytes, "{st:?}");
    assert!(matches!(
        q.send_bytes_timeout(1, &msg, Duration::from_millis(30)),
        Err(TimeoutError::Timeout)
    ));
    let mut p = Process::spawn(take_one, q.clone()).unwrap();
    assert_eq!(p.join().unwrap(), 1024);
    // Room for one more now; a blocking send goes through.
    q.send_bytes(1, &msg).unwrap();
    assert!(matches!(
        q.try_send_bytes(1, &msg),
        Err(TryError::WouldBlock)
    ));
}

#[test]
fn size_limits_and_truncation() {
    let _w = watchdog("size_limits_and_truncation", LIMIT);
    let q = MessageQueue::private().unwrap();
    let _g = guard_mq(&q);
    let max = MessageQueue::max_message_size();
    // Over msgmax: the kernel refuses (EINVAL), a typed error here.
    match q.try_send_bytes(1, &vec![0; max + 1]) {
        Err(TryError::Failed(SendError::TooLarge { len, max: m })) => {
            assert_eq!((len, m), (max + 1, max))
        }
        other => panic!("{other:?}"),
    }
    // Exactly msgmax goes through.
    q.send_bytes(1, &vec![1; max]).unwrap();
    assert_eq!(q.recv_bytes(0).unwrap().data.len(), max);
    // Invalid types and selectors.
    assert!(matches!(
        q.send_bytes(0, b"x"),
        Err(SendError::InvalidType(0))
    ));
    assert!(matches!(
        q.send_bytes(-3, b"x"),
        Err(SendError::InvalidType(-3))
    ));
    assert!(matches!(
        q.try_recv_bytes(multiproc::os::sysv::Selector::Type(0)),
        Err(TryError::Failed(RecvError::InvalidSelector(0)))
    ));

    q.send_bytes(9, b"0123456789").unwrap();
    let mut small = [0u8; 4];
    // Without MSG_NOERROR: E2BIG, and the message stays queued.
    assert!(matches!(
        q.try_recv_bytes_into(0, &mut small, false),
        Err(TryError::Failed(RecvError::TooLarge { max: 4 }))
    ));
    assert_eq!(q.stats().unwrap().messages, 1);
    // With it: truncated to the buffer, the rest is lost.
    assert_eq!(q.try_recv_bytes_into(9, &mut small, true).unwrap(), (9, 4));
    assert_eq!(&small, b"0123");
    assert_eq!(q.stats().unwrap().messages, 0);
}

/// Creates a queue for `key`, leaves a message in it, and exits.
fn create_and_leave(key: Key) -> i32 {
    let q = MessageQueue::create(key).unwrap();
    q.send_bytes(4, b"left behind").unwrap();
    q.id()
}

#[test]
fn queue_survives_its_creator_until_removed() {
    let _w = watchdog("queue_survives_its_creator_until_removed", LIMIT);
    let file = KeyFile::new("survives");
    let key = file.key();
    let mut p = Process::spawn(create_and_leave, key).unwrap();
    let id = p.join().unwrap();
    let creator = p.pid().unwrap();
    let _g = guard_mq(&MessageQueue::from_id(id));
    assert!(!p.is_alive());

    let q = MessageQueue::open(key).unwrap();
    assert_eq!(q.id(), id);
    assert!(matches!(
        MessageQueue::create(key),
        Err(OpenError::AlreadyExists(_))
    ));
    assert_eq!(MessageQueue::create_or_open(key).unwrap().id(), id);
    assert_eq!(q.stats().unwrap().last_send_pid, creator);
    assert_eq!(text(q.recv_bytes(0).unwrap()), (4, "left behind".into()));
    q.remove().unwrap();
    assert!(matches!(
        MessageQueue::open(key),
        Err(OpenError::NotFound(_))
    ));
    assert!(q.stats().is_err());
    assert!(matches!(
        q.try_send_bytes(1, b"x"),
        Err(TryError::Failed(SendError::Removed))
    ));
    assert!(matches!(
        q.try_recv_bytes(0),
        Err(TryError::Failed(RecvError::Removed))
    ));
}

/// Announces itself on type 2, then blocks on type 1 until the queue goes.
fn blocked_receiver(q: MessageQueue) -> String {
    q.send_bytes(2, b"ready").unwrap();
    match q.recv_bytes(1) {
        Err(RecvError::Removed) => "removed".into(),
        other => format!("{other:?}"),
    }
}

#[test]
fn a_blocked_receiver_gets_removed() {
    let _w = watchdog("a_blocked_receiver_gets_removed", LIMIT);
    let q = MessageQueue::private().unwrap();
    let _g = guard_mq(&q);
    let mut p = Process::spawn(blocked_receiver, q.clone()).unwrap();
    assert_eq!(q.recv_bytes(2).unwrap().data, b"ready");
    // Give the child the chance to block in msgrcv; if it has not yet, it
    // sees the removed id (EINVAL) and reports Removed as well.
    wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{}/wchan", p.pid().unwrap()))
            .is_ok_and(|w| w.contains("msgrcv"))
    });
    q.remove().unwrap();
    assert_eq!(p.join_timeout(SHORT).unwrap(), "removed");
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u32,
    item: String,
    qty: u16,
}

fn send_orders(q: MessageQueue) {
    for i in 0..3 {
        q.send(
            10 + i64::from(i),
            &Order {
                id: i,
                item: format!("item{i}"),
                qty: 2 * i as u16,
            },
        )
        .unwrap();
    }
}

#[test]
fn typed_values_cross_processes_and_handles_are_refused() {
    let _w = watchdog(
        "typed_values_cross_processes_and_handles_are_refused",
        LIMIT,
    );
    let q = MessageQueue::private().unwrap();
    let _g = guard_mq(&q);
    let mut p = Process::spawn(send_orders, q.clone()).unwrap();
    p.join().unwrap();
    let (t, o): (i64, Order) = q.recv(12).unwrap();
    assert_eq!((t, o.id, o.item.as_str(), o.qty), (12, 2, "item2", 4));
    let (t, o): (i64, Order) = q.try_recv(-11).unwrap();
    assert_eq!((t, o.id), (10, 0));
    let (t, o): (i64, Order) = q.recv_timeout(0, SHORT).unwrap();
    assert_eq!((t, o.id), (11, 1));

    let (r, _w) = multiproc_sys::fd::pipe().unwrap();
    assert!(matches!(q.send(1, &Fd(r)), Err(SendError::Handles(1))));
    // Bytes that are not an Order.
    q.send_bytes(1, &[0xff; 3]).unwrap();
    assert!(matches!(
        q.try_recv::<Order>(1),
        Err(TryError::Failed(RecvError::Decode(_)))
    ));
}

// ----- semaphore sets --------------------------------------------------------

/// Takes one from each of semaphores 0 and 1 in one atomic op.
fn take_both(s: SemaphoreSet) -> String {
    match s.op(&[SemOp::new(0, -1), SemOp::new(1, -1)]) {
        Ok(()) => "ok".into(),
        Err(e) => format!("{e:?}"),
    }
}

#[test]
fn semaphore_ops_apply_all_or_none() {
    let _w = watchdog("semaphore_ops_apply_all_or_none", LIMIT);
    let s = SemaphoreSet::private(2).unwrap();
    let _g = guard_sem(&s);
    assert_eq!(s.len(), 2);
    s.set_all(&[1, 0]).unwrap();
    // One of the two would block: nothing is applied.
    assert!(matches!(
        s.try_op(&[SemOp::new(0, -1), SemOp::new(1, -1)]),
        Err(TryError::WouldBlock)
    ));
    assert!(matches!(
        s.op(&[SemOp::new(0, -1), SemOp::new(1, -1).no_wait()]),
        Err(SemError::WouldBlock)
    ));
    assert_eq!(s.get_all().unwrap(), [1, 0]);

    let mut p = Process::spawn(take_both, s.clone()).unwrap();
    assert!(wait_until(SHORT, || s.getncnt(1).unwrap() == 1));
    // The child waits on semaphore 1 and has not taken semaphore 0.
    assert_eq!(s.get(0).unwrap(), 1);
    s.v(1, 1).unwrap();
    assert_eq!(p.join_timeout(SHORT).unwrap(), "ok");
    assert_eq!(s.get_all().unwrap(), [0, 0]);
    assert_eq!(s.getpid(0).unwrap(), p.pid().unwrap());
}

fn wait_for_zero(s: SemaphoreSet) -> String {
    match s.wait_zero(0) {
        Ok(()) => "zero".into(),
        Err(e) => format!("{e:?}"),
    }
}

#[test]
fn wait_for_zero_is_released_by_another_process() {
    let _w = watchdog("wait_for_zero_is_released_by_another_process", LIMIT);
    let s = SemaphoreSet::private(1).unwrap();
    let _g = guard_sem(&s);
    s.set(0, 3).unwrap();
    let mut p = Process::spawn(wait_for_zero, s.clone()).unwrap();
    assert!(wait_until(SHORT, || s.getzcnt(0).unwrap() == 1));
    s.p(0, 2).unwrap();
    // Still 1: the waiter keeps waiting.
    assert!(p.join_timeout(Duration::from_millis(50)).is_err());
    assert_eq!(s.getzcnt(0).unwrap(), 1);
    s.p(0, 1).unwrap();
    assert_eq!(p.join_timeout(SHORT).unwrap(), "zero");
    assert_eq!(s.getzcnt(0).unwrap(), 0);
}

/// Takes 2 with SEM_UNDO, says so, and waits to be killed.
fn take_with_undo(arg: (SemaphoreSet, Connection<u8>)) {
    let (s, mut tx) = arg;
    s.op(&[SemOp::new(0, -2).undo()]).unwrap();
    tx.send(&1).unwrap();
    common::sleep_forever();
}

#[test]
fn sem_undo_is_undone_when_the_process_is_killed() {
    let _w = watchdog("sem_undo_is_undone_when_the_process_is_killed", LIMIT);
    let s = SemaphoreSet::private(1).unwrap();
    let _g = guard_sem(&s);
    s.set(0, 3).unwrap();
    let (mut rx, tx) = pipe::<u8>().unwrap();
    let mut p = Process::spawn(take_with_undo, (s.clone(), tx)).unwrap();
    assert_eq!(rx.recv().unwrap(), 1);
    assert_eq!(s.get(0).unwrap(), 1);
    p.kill().unwrap();
    assert_eq!(p.wait().unwrap(), -9);
    assert_eq!(s.get(0).unwrap(), 3);
}

#[test]
fn timed_ops_time_out_and_p_v_move_any_amount() {
    let _w = watchdog("timed_ops_time_out_and_p_v_move_any_amount", LIMIT);
    let s = SemaphoreSet::private(3).unwrap();
    let _g = guard_sem(&s);
    let t = Instant::now();
    assert!(matches!(
        s.p_timeout(0, 1, Duration::from_millis(80)),
        Err(TimeoutError::Timeout)
    ));
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(80), "{took:?}");
    assert!(took < SHORT, "{took:?}");
    s.v(0, 5).unwrap();
    s.p(0, 3).unwrap();
    assert_eq!(s.get(0).unwrap(), 2);
    assert!(matches!(s.try_p(0, 3), Err(TryError::WouldBlock)));
    s.p_timeout(0, 2, SHORT).unwrap();
    assert_eq!(s.get(0).unwrap(), 0);
    // Bad input is typed, never a panic.
    assert!(matches!(
        s.get(3),
        Err(SemError::InvalidIndex { index: 3, len: 3 })
    ));
    assert!(matches!(s.v(0, 40_000), Err(SemError::OutOfRange(_))));
    assert!(matches!(s.op(&[]), Err(SemError::OutOfRange(_))));
    assert!(matches!(s.set_all(&[1]), Err(SemError::OutOfRange(_))));
    s.set_all(&[1, 2, 3]).unwrap();
    assert_eq!(s.get_all().unwrap(), [1, 2, 3]);
}

fn blocked_p(s: SemaphoreSet) -> String {
    match s.p(0, 1) {
        Err(SemError::Removed) => "removed".into(),
        other => format!("{other:?}"),
    }
}

#[test]
fn removing_a_set_wakes_its_waiters_with_removed() {
    let _w = watchdog("removing_a_set_wakes_its_waiters_with_removed", LIMIT);
    let file = KeyFile::new("semrm");
    let s = SemaphoreSet::create(file.key(), 1).unwrap();
    let _g = guard_sem(&s);
    assert_eq!(SemaphoreSet::open(file.key()).unwrap().id(), s.id());
    let mut p = Process::spawn(blocked_p, s.clone()).unwrap();
    assert!(wait_until(SHORT, || s.getncnt(0).unwrap() == 1));
    s.remove().unwrap();
    assert_eq!(p.join_timeout(SHORT).unwrap(), "removed");
    assert!(matches!(s.get(0), Err(SemError::Removed)));
    assert!(matches!(
        SemaphoreSet::open(file.key()),
        Err(OpenError::NotFound(_))
    ));
}

// ----- shared memory ---------------------------------------------------------

/// Whether the segment comes to have `n` attachments. Polled: while another
/// test of this binary forks a child, the child holds copies of this
/// process's attachments until it execs.
fn attached(m: &SharedMemory, n: u64) -> bool {
    wait_until(SHORT, || m.attach_count().is_ok_and(|c| c == n))
}

/// Attaches, writes, says so, waits for the word to go, then detaches.
fn attach_and_write(arg: (SharedMemory, Connection<u8>, Connection<u8>)) {
    let (m, mut tx, mut go) = arg;
    let a = m.attach().unwrap();
    a.write(100, b"hello from the child").unwrap();
    tx.send(&1).unwrap();
    go.recv().unwrap();
    drop(a);
    tx.send(&2).unwrap();
}

#[test]
fn shared_memory_is_shared_and_attachments_are_counted() {
    let _w = watchdog("shared_memory_is_shared_and_attachments_are_counted", LIMIT);
    let m = SharedMemory::private(4096).unwrap();
    let _g = guard_shm(&m);
    assert_eq!(m.size().unwrap(), 4096);
    assert!(attached(&m, 0));
    let a = m.attach().unwrap();
    assert!(attached(&m, 1));
    let (mut rx, tx) = pipe::<u8>().unwrap();
    let (go_rx, mut go) = pipe::<u8>().unwrap();
    let mut p = Process::spawn(attach_and_write, (m.clone(), tx, go_rx)).unwrap();
    assert_eq!(rx.recv().unwrap(), 1);
    assert_eq!(a.read_vec(100, 20).unwrap(), b"hello from the child");
    assert!(attached(&m, 2));
    go.send(&0).unwrap();
    assert_eq!(rx.recv().unwrap(), 2);
    assert!(attached(&m, 1));
    p.join().unwrap();
    drop(a);
    assert!(attached(&m, 0));
}

#[test]
fn a_removed_segment_lives_until_its_last_detach() {
    let _w = watchdog("a_removed_segment_lives_until_its_last_detach", LIMIT);
    let file = KeyFile::new("shmrm");
    let m = SharedMemory::create(file.key(), 1000).unwrap();
    let _g = guard_shm(&m);
    assert_eq!(SharedMemory::open(file.key()).unwrap().id(), m.id());
    let a = m.attach().unwrap();
    a.write(0, b"still here").unwrap();
    m.remove().unwrap();
    // Gone by key, alive by id while attached.
    assert!(matches!(
        SharedMemory::open(file.key()),
        Err(OpenError::NotFound(_))
    ));
    assert!(m.stats().unwrap().removed);
    assert!(attached(&m, 1));
    assert_eq!(a.read_vec(0, 10).unwrap(), b"still here");
    a.write(990, b"0123456789").unwrap();
    drop(a);
    assert!(wait_until(SHORT, || matches!(
        m.stats(),
        Err(ShmError::Removed)
    )));
    assert!(matches!(m.attach(), Err(ShmError::Removed)));
}

#[test]
fn read_only_attachments_refuse_writes_and_bounds_are_checked() {
    let _w = watchdog("read_only_attachments_refuse_writes", LIMIT);
    let m = SharedMemory::private(64).unwrap();
    let _g = guard_shm(&m);
    let rw = m.attach().unwrap();
    rw.write(0, b"abc").unwrap();
    let ro = m.attach_read_only().unwrap();
    assert!(ro.is_read_only());
    assert!(matches!(ro.write(0, b"x"), Err(ShmError::ReadOnly)));
    assert_eq!(ro.read_vec(0, 3).unwrap(), b"abc");
    assert!(matches!(
        rw.write(60, b"12345"),
        Err(ShmError::OutOfRange(_))
    ));
    assert!(matches!(
        ro.read(usize::MAX, &mut [0; 2]),
        Err(ShmError::OutOfRange(_))
    ));
    assert!(attached(&m, 2));
}

// ----- registry --------------------------------------------------------------

#[test]
fn created_objects_are_recorded_and_forgotten_on_remove() {
    let _w = watchdog(
        "created_objects_are_recorded_and_forgotten_on_remove",
        LIMIT,
    );
    let dir = TempRegistry::new("record");
    let reg = dir.open();
    let q = MessageQueue::builder(Key::PRIVATE)
        .registry(reg.clone())
        .create()
        .unwrap();
    let _gq = guard_mq(&q);
    let s = SemaphoreSet::builder(Key::PRIVATE)
        .registry(reg.clone())
        .len(2)
        .create()
        .unwrap();
    let _gs = guard_sem(&s);
    let m = SharedMemory::builder(Key::PRIVATE)
        .registry(reg.clone())
        .size(128)
        .create()
        .unwrap();
    let _gm = guard_shm(&m);
    let names = |kind| -> Vec<String> {
        reg.list()
            .unwrap()
            .into_iter()
            .filter(|r| r.kind == kind && r.owner_alive && r.owner_pid == std::process::id())
            .map(|r| r.name)
            .collect()
    };
    assert_eq!(names(Kind::SysvMsg), [q.id().to_string()]);
    assert_eq!(names(Kind::SysvSem), [s.id().to_string()]);
    assert_eq!(names(Kind::SysvShm), [m.id().to_string()]);
    for (kind, id) in [
        (Kind::SysvMsg, q.id()),
        (Kind::SysvSem, s.id()),
        (Kind::SysvShm, m.id()),
    ] {
        assert!(multiproc::names::exists(kind, &id.to_string()));
    }
    q.remove().unwrap();
    s.remove().unwrap();
    m.remove().unwrap();
    assert!(reg.list().unwrap().is_empty());
    for (kind, id) in [
        (Kind::SysvMsg, q.id()),
        (Kind::SysvSem, s.id()),
        (Kind::SysvShm, m.id()),
    ] {
        assert!(!multiproc::names::exists(kind, &id.to_string()));
    }
}

/// Create-or-open of an existing queue, recording in `reg`.
fn create_or_open_in(arg: (Key, String)) -> i32 {
    let (key, reg) = arg;
    MessageQueue::builder(key)
        .registry(Registry::open(reg).unwrap())
        .create_or_open()
        .unwrap()
        .id()
}

#[test]
fn only_the_creator_is_recorded_by_create_or_open() {
    let _w = watchdog("only_the_creator_is_recorded_by_create_or_open", LIMIT);
    let dir = TempRegistry::new("create-or-open");
    let reg = dir.open();
    let file = KeyFile::new("create-or-open");
    let q = MessageQueue::builder(file.key())
        .registry(reg.clone())
        .create_or_open()
        .unwrap();
    let _g = guard_mq(&q);
    let mut p = Process::spawn(
        create_or_open_in,
        (file.key(), dir.0.to_str().unwrap().to_owned()),
    )
    .unwrap();
    assert_eq!(p.join().unwrap(), q.id());
    let records = reg.list().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].owner_pid, std::process::id());
    assert_eq!(records[0].name, q.id().to_string());
}

/// Blocks sending into a full queue until the queue goes.
fn blocked_sender(q: MessageQueue) -> String {
    match q.send_bytes(1, &[0; 1024]) {
        Err(SendError::Removed) => "removed".into(),
        other => format!("{other:?}"),
    }
}

#[test]
fn a_sender_blocked_on_a_full_queue_gets_removed() {
    let _w = watchdog("a_sender_blocked_on_a_full_queue_gets_removed", LIMIT);
    let q = MessageQueue::private().unwrap();
    let _g = guard_mq(&q);
    while q.try_send_bytes(1, &[0; 1024]).is_ok() {}
    let mut p = Process::spawn(blocked_sender, q.clone()).unwrap();
    // Wait until the child sleeps in msgsnd (if it has not got there, it
    // sees the removed id and reports Removed all the same).
    wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{}/wchan", p.pid().unwrap()))
            .is_ok_and(|w| w.contains("msgsnd"))
    });
    q.remove().unwrap();
    assert_eq!(p.join_timeout(SHORT).unwrap(), "removed");
}
