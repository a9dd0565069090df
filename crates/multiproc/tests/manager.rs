//! Manager: every proxy type's semantics, proxies handed to children,
//! remote connects with right and wrong keys, clients and servers killed
//! mid-call, user types, and bad requests.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{wait_until, watchdog};
use multiproc::connection::{Address, Client};
use multiproc::manager::{
    BarrierProxy, CallError, ConditionProxy, DataValue, DictProxy, EventProxy, JoinableQueueProxy,
    ListProxy, LockProxy, ManagedObject, Manager, ManagerError, NamespaceProxy, QueueProxy,
    RLockProxy, Registrar, RemoteError, Request, Response, SemaphoreProxy, ServerStats,
    TypeRegistry, ValueProxy, from_value,
};
use multiproc::{Connection, Process};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(120);

fn remote(e: &ManagerError) -> Option<&RemoteError> {
    match e {
        ManagerError::Remote(r) => Some(r),
        _ => None,
    }
}

#[test]
fn dict_semantics() {
    let _w = watchdog("dict_semantics", LIMIT);
    let m = Manager::start().unwrap();
    let d: DictProxy<String, i64> = m.dict().unwrap();
    assert_eq!(d.len().unwrap(), 0);
    assert!(d.is_empty().unwrap());
    assert_eq!(d.insert(&"a".into(), &1).unwrap(), None);
    assert_eq!(d.insert(&"b".into(), &2).unwrap(), None);
    assert_eq!(d.insert(&"a".into(), &10).unwrap(), Some(1));
    assert_eq!(d.get(&"a".into()).unwrap(), Some(10));
    assert_eq!(d.get(&"zz".into()).unwrap(), None);
    assert_eq!(
        remote(&d.get_item(&"zz".into()).unwrap_err()),
        Some(&RemoteError::Key)
    );
    assert!(d.contains_key(&"b".into()).unwrap());
    assert_eq!(d.keys().unwrap(), vec!["a".to_string(), "b".into()]);
    assert_eq!(d.values().unwrap(), vec![10, 2]);
    assert_eq!(
        d.items().unwrap(),
        vec![("a".to_string(), 10), ("b".into(), 2)]
    );
    let more = [("c".to_string(), 3i64), ("d".to_string(), 4)];
    d.update(more.iter().map(|(k, v)| (k, v))).unwrap();
    assert_eq!(d.len().unwrap(), 4);
    assert_eq!(d.setdefault(&"c".into(), &99).unwrap(), 3);
    assert_eq!(d.setdefault(&"e".into(), &5).unwrap(), 5);
    assert_eq!(d.pop(&"e".into()).unwrap(), Some(5));
    assert_eq!(d.remove(&"e".into()).unwrap(), None);
    assert_eq!(d.popitem().unwrap(), Some(("d".to_string(), 4)));
    assert_eq!(d.incr(&"a".into(), 5).unwrap(), 15);
    assert_eq!(d.incr(&"new".into(), -3).unwrap(), -3);
    d.clear().unwrap();
    assert_eq!(d.len().unwrap(), 0);
    assert_eq!(d.popitem().unwrap(), None);

    // Structured values and non-string keys.
    let s: DictProxy<u32, Vec<(String, f64)>> = m.dict().unwrap();
    s.insert(&7, &vec![("x".into(), 1.5)]).unwrap();
    assert_eq!(s.get(&7).unwrap(), Some(vec![("x".to_string(), 1.5)]));
    let nested: DictProxy<String, HashMap<u32, String>> = m.dict().unwrap();
    let mut h = HashMap::new();
    h.insert(1, "one".to_string());
    nested.insert(&"k".into(), &h).unwrap();
    assert_eq!(nested.get(&"k".into()).unwrap(), Some(h));
    // A string is not an integer: incr refuses it.
    let t: DictProxy<String, String> = m.dict().unwrap();
    t.insert(&"s".into(), &"x".into()).unwrap();
    assert!(matches!(
        remote(&t.incr(&"s".into(), 1).unwrap_err()),
        Some(RemoteError::Type(_))
    ));
    let init = [("p".to_string(), 1i64)];
    let f = m.dict_from(init.iter().map(|(k, v)| (k, v))).unwrap();
    assert_eq!(f.get(&"p".into()).unwrap(), Some(1));
}

#[test]
fn list_namespace_value_array_semantics() {
    let _w = watchdog("list_namespace_value_array_semantics", LIMIT);
    let m = Manager::start().unwrap();
    let l: ListProxy<i32> = m.list_from(&[1, 2, 3]).unwrap();
    l.push(&4).unwrap();
    l.extend(&[5, 6]).unwrap();
    assert_eq!(l.len().unwrap(), 6);
    assert_eq!(l.get(0).unwrap(), 1);
    assert_eq!(l.get(-1).unwrap(), 6);
    assert_eq!(remote(&l.get(6).unwrap_err()), Some(&RemoteError::Index));
    assert_eq!(l.set(1, &20).unwrap(), 2);
    assert_eq!(l.pop().unwrap(), Some(6));
    assert_eq!(l.pop_at(0).unwrap(), 1);
    l.insert(0, &0).unwrap();
    l.insert(100, &99).unwrap();
    assert_eq!(l.to_vec().unwrap(), vec![0, 20, 3, 4, 5, 99]);
    l.remove(&99).unwrap();
    assert!(matches!(
        remote(&l.remove(&99).unwrap_err()),
        Some(RemoteError::Value(_))
    ));
    assert_eq!(l.index(&3).unwrap(), Some(2));
    assert_eq!(l.index(&77).unwrap(), None);
    assert_eq!(l.count(&3).unwrap(), 1);
    assert!(l.contains(&4).unwrap());
    assert_eq!(l.delete(0).unwrap(), 0);
    l.reverse().unwrap();
    assert_eq!(l.to_vec().unwrap(), vec![5, 4, 3, 20]);
    l.sort().unwrap();
    assert_eq!(l.to_vec().unwrap(), vec![3, 4, 5, 20]);
    assert_eq!(l.incr(0, 10).unwrap(), 13);
    l.clear().unwrap();
    assert_eq!(l.pop().unwrap(), None);
    assert!(l.is_empty().unwrap());

    let ns: NamespaceProxy = m.namespace().unwrap();
    ns.set("x", &1).unwrap();
    ns.set("name", "seed").unwrap();
    assert_eq!(ns.get::<i32>("x").unwrap(), 1);
    assert_eq!(ns.get::<String>("name").unwrap(), "seed");
    assert_eq!(ns.get_opt::<i32>("nope").unwrap(), None);
    assert_eq!(
        remote(&ns.get::<i32>("nope").unwrap_err()),
        Some(&RemoteError::Key)
    );
    assert!(ns.contains("x").unwrap());
    assert_eq!(ns.incr("x", 2).unwrap(), 3);
    assert_eq!(ns.fields().unwrap().len(), 2);
    ns.delete("x").unwrap();
    assert!(!ns.contains("x").unwrap());

    let v: ValueProxy<i64> = m.value(&5).unwrap();
    assert_eq!(v.get().unwrap(), 5);
    v.set(&6).unwrap();
    assert_eq!(v.swap(&7).unwrap(), 6);
    assert_eq!(v.incr(3).unwrap(), 10);
    assert!(v.compare_and_set(&10, &11).unwrap());
    assert!(!v.compare_and_set(&10, &12).unwrap());
    {
        let _g = v.lock().unwrap();
        let x = v.get().unwrap();
        v.set(&(x * 2)).unwrap();
        assert!(v.locked().unwrap());
    }
    assert!(!v.locked().unwrap());
    assert_eq!(v.get().unwrap(), 22);
    let fv: ValueProxy<f64> = m.value(&0.5).unwrap();
    assert_eq!(fv.get().unwrap(), 0.5);

    let a: ArrayProxyI = m.array(&[0i64; 4]).unwrap();
    a.set(1, &5).unwrap();
    assert_eq!(a.get(1).unwrap(), 5);
    assert_eq!(a.incr(1, 2).unwrap(), 7);
    assert_eq!(a.len().unwrap(), 4);
    a.set_all(&[1, 2, 3, 4]).unwrap();
    assert!(matches!(
        remote(&a.set_all(&[1]).unwrap_err()),
        Some(RemoteError::Value(_))
    ));
    assert_eq!(a.to_vec().unwrap(), vec![1, 2, 3, 4]);
    assert_eq!(remote(&a.get(4).unwrap_err()), Some(&RemoteError::Index));
    let _g = a.lock().unwrap();
}

type ArrayProxyI = multiproc::manager::ArrayProxy<i64>;

#[test]
fn queues_block_time_out_and_join() {
    let _w = watchdog("queues_block_time_out_and_join", LIMIT);
    let m = Manager::start().unwrap();
    let q: QueueProxy<String> = m.queue_bounded(2).unwrap();
    assert!(q.empty().unwrap());
    assert!(q.try_get().unwrap_err().is_timeout());
    q.put(&"a".into()).unwrap();
    q.try_put(&"b".into()).unwrap();
    assert!(q.full().unwrap());
    let e = q.try_put(&"c".into()).unwrap_err();
    assert_eq!(remote(&e), Some(&RemoteError::Full));
    let t0 = Instant::now();
    let e = q
        .put_timeout(&"c".into(), Duration::from_millis(100))
        .unwrap_err();
    assert_eq!(remote(&e), Some(&RemoteError::Full));
    assert!(t0.elapsed() >= Duration::from_millis(100));
    assert_eq!(q.qsize().unwrap(), 2);
    assert_eq!(q.get().unwrap(), "a");
    assert_eq!(q.get_timeout(Duration::from_secs(1)).unwrap(), "b");
    assert_eq!(
        remote(&q.get_timeout(Duration::from_millis(50)).unwrap_err()),
        Some(&RemoteError::Empty)
    );
    // A blocked get is woken by a put from another thread.
    let q2 = q.clone();
    let t = std::thread::spawn(move || q2.get().unwrap());
    q.put(&"late".into()).unwrap();
    assert_eq!(t.join().unwrap(), "late");

    let jq: JoinableQueueProxy<u32> = m.joinable_queue().unwrap();
    for i in 0..3 {
        jq.put(&i).unwrap();
    }
    assert!(!jq.join_timeout(Duration::from_millis(50)).unwrap());
    let mut worker = Process::spawn(drain_joinable, jq.clone()).unwrap();
    jq.join().unwrap();
    assert_eq!(worker.join().unwrap(), 3);
    assert_eq!(
        remote(&jq.task_done().unwrap_err()),
        Some(&RemoteError::TaskDone)
    );
    // A plain queue has no task_done.
    assert!(matches!(
        remote(&q.handle_call("task_done")),
        Some(RemoteError::UnknownMethod { .. })
    ));
}

trait HandleCall {
    fn handle_call(&self, method: &str) -> ManagerError;
}

impl<T> HandleCall for QueueProxy<T> {
    fn handle_call(&self, method: &str) -> ManagerError {
        use multiproc::manager::Proxy;
        self.handle().call(method, vec![], None).unwrap_err()
    }
}

fn drain_joinable(q: JoinableQueueProxy<u32>) -> u32 {
    let mut n = 0;
    while let Ok(_x) = q.get_timeout(Duration::from_millis(200)) {
        n += 1;
        q.task_done().unwrap();
    }
    n
}

#[test]
fn locks_semaphores_across_processes() {
    let _w = watchdog("locks_semaphores_across_processes", LIMIT);
    let m = Manager::start().unwrap();
    let lock = m.lock().unwrap();
    let g = lock.lock().unwrap();
    assert!(
        !lock.try_acquire().unwrap() || {
            // A plain Lock is not reentrant: the same thread cannot take it twice.
            false
        }
    );
    // Another process cannot take it while we hold it.
    let mut p = Process::spawn(try_lock_for, (lock.clone(), 50u64)).unwrap();
    assert!(!p.join().unwrap());
    drop(g);
    let mut p = Process::spawn(try_lock_for, (lock.clone(), 5000u64)).unwrap();
    assert!(p.join().unwrap());
    assert_eq!(
        remote(&lock.release().unwrap_err()).map(|e| matches!(e, RemoteError::Release(_))),
        Some(true)
    );

    let r: RLockProxy = m.rlock().unwrap();
    r.acquire().unwrap();
    r.acquire().unwrap();
    let mut p = Process::spawn(try_rlock, r.clone()).unwrap();
    assert!(!p.join().unwrap());
    r.release().unwrap();
    r.release().unwrap();
    assert!(matches!(
        remote(&r.release().unwrap_err()),
        Some(RemoteError::Release(_))
    ));
    let mut p = Process::spawn(try_rlock, r.clone()).unwrap();
    assert!(p.join().unwrap());

    let s = m.semaphore(2).unwrap();
    s.acquire().unwrap();
    assert!(s.try_acquire().unwrap());
    assert!(!s.try_acquire().unwrap());
    assert!(!s.acquire_timeout(Duration::from_millis(30)).unwrap());
    s.release_n(2).unwrap();
    assert_eq!(s.get_value().unwrap(), 2);
    let b = m.bounded_semaphore(1).unwrap();
    assert!(matches!(
        remote(&b.release().unwrap_err()),
        Some(RemoteError::Release(_))
    ));
    b.acquire().unwrap();
    let mut p = Process::spawn(release_sem, b.clone()).unwrap();
    p.join().unwrap();
    assert_eq!(b.get_value().unwrap(), 1);
}

fn try_lock_for(arg: (LockProxy, u64)) -> bool {
    let (lock, ms) = arg;
    let got = lock.acquire_timeout(Duration::from_millis(ms)).unwrap();
    if got {
        lock.release().unwrap();
    }
    got
}

fn try_rlock(r: RLockProxy) -> bool {
    let got = r.try_acquire().unwrap();
    if got {
        r.release().unwrap();
    }
    got
}

fn release_sem(s: SemaphoreProxy) {
    s.release().unwrap();
}

#[test]
fn condition_event_barrier_across_processes() {
    let _w = watchdog("condition_event_barrier_across_processes", LIMIT);
    let m = Manager::start().unwrap();
    let cond = m.condition().unwrap();
    let flag: ValueProxy<bool> = m.value(&false).unwrap();
    let mut waiter = Process::spawn(cond_waiter, (cond.clone(), flag.clone())).unwrap();
    {
        let _g = cond.lock().unwrap();
        flag.set(&true).unwrap();
        cond.notify_all().unwrap();
    }
    assert!(waiter.join().unwrap());
    {
        let _g = cond.lock().unwrap();
        assert!(!cond.wait_timeout(Duration::from_millis(30)).unwrap());
    }
    assert!(matches!(
        remote(&cond.notify().unwrap_err()),
        Some(RemoteError::Release(_))
    ));

    let ev: EventProxy = m.event().unwrap();
    assert!(!ev.is_set().unwrap());
    assert!(!ev.wait_timeout(Duration::from_millis(20)).unwrap());
    let mut w = Process::spawn(event_waiter, ev.clone()).unwrap();
    ev.set().unwrap();
    assert!(w.join().unwrap());
    ev.clear().unwrap();
    assert!(!ev.is_set().unwrap());

    let bar: BarrierProxy = m.barrier(3).unwrap();
    assert_eq!(bar.parties().unwrap(), 3);
    let mut ps: Vec<_> = (0..2)
        .map(|_| Process::spawn(barrier_waiter, bar.clone()).unwrap())
        .collect();
    let mine = bar.wait().unwrap();
    let mut idx: Vec<u64> = ps.iter_mut().map(|p| p.join().unwrap().unwrap()).collect();
    idx.push(mine);
    idx.sort();
    assert_eq!(idx, vec![0, 1, 2]);
    // A timeout breaks it, as in Python.
    assert_eq!(
        remote(&bar.wait_timeout(Duration::from_millis(30)).unwrap_err()),
        Some(&RemoteError::BrokenBarrier)
    );
    assert!(bar.broken().unwrap());
    bar.reset().unwrap();
    assert!(!bar.broken().unwrap());
    // A reset while a party waits: that party gets BrokenBarrier, the
    // barrier is usable again.
    let mut p = Process::spawn(barrier_waiter, bar.clone()).unwrap();
    assert!(wait_until(Duration::from_secs(30), || bar
        .n_waiting()
        .unwrap()
        == 1));
    bar.reset().unwrap();
    assert_eq!(p.join().unwrap(), None);
    assert!(!bar.broken().unwrap());
    let mut ps: Vec<_> = (0..2)
        .map(|_| Process::spawn(barrier_waiter, bar.clone()).unwrap())
        .collect();
    bar.wait().unwrap();
    for p in &mut ps {
        assert!(p.join().unwrap().is_some());
    }
    bar.abort().unwrap();
    assert_eq!(
        remote(&bar.wait().unwrap_err()),
        Some(&RemoteError::BrokenBarrier)
    );
}

fn cond_waiter(arg: (ConditionProxy, ValueProxy<bool>)) -> bool {
    let (cond, flag) = arg;
    let _g = cond.lock().unwrap();
    cond.wait_for(|| flag.get().unwrap(), Some(Duration::from_secs(30)))
        .unwrap()
}

fn event_waiter(ev: EventProxy) -> bool {
    ev.wait_timeout(Duration::from_secs(30)).unwrap()
}

fn barrier_waiter(b: BarrierProxy) -> Option<u64> {
    b.wait_timeout(Duration::from_secs(30)).ok()
}

#[test]
fn proxies_moved_into_children_keep_the_object_alive() {
    let _w = watchdog("proxies_moved_into_children", LIMIT);
    let m = Manager::start().unwrap();
    let base = m.stats().unwrap();
    let d: DictProxy<String, String> = m.dict().unwrap();
    // The parent's only proxy moves into the child: the loan keeps the
    // object alive until the child claims it.
    let mut c = Process::spawn(child_fills, d).unwrap();
    let back: DictProxy<String, String> = c.join().unwrap();
    assert_eq!(back.get(&"from".into()).unwrap().as_deref(), Some("child"));
    drop(back);
    assert!(wait_until(Duration::from_secs(10), || m
        .stats()
        .unwrap()
        .objects
        == base.objects));
}

fn child_fills(d: DictProxy<String, String>) -> DictProxy<String, String> {
    d.insert(&"from".into(), &"child".into()).unwrap();
    d
}

#[test]
fn counter_with_lock_and_with_incr() {
    let _w = watchdog("counter_with_lock_and_with_incr", LIMIT);
    let m = Manager::start().unwrap();
    let d: DictProxy<String, i64> = m.dict().unwrap();
    d.insert(&"count".into(), &8).unwrap();
    let lock = m.lock().unwrap();
    let mut ps: Vec<_> = (0..8)
        .map(|_| Process::spawn(dec_under_lock, (d.clone(), lock.clone())).unwrap())
        .collect();
    for p in &mut ps {
        p.join().unwrap();
    }
    assert_eq!(d.get(&"count".into()).unwrap(), Some(0));
    let mut ps: Vec<_> = (0..8)
        .map(|_| Process::spawn(dec_incr, d.clone()).unwrap())
        .collect();
    for p in &mut ps {
        p.join().unwrap();
    }
    assert_eq!(d.get(&"count".into()).unwrap(), Some(-80));
}

fn dec_under_lock(arg: (DictProxy<String, i64>, LockProxy)) {
    let (d, lock) = arg;
    let _g = lock.lock().unwrap();
    let n = d.get(&"count".into()).unwrap().unwrap();
    d.insert(&"count".into(), &(n - 1)).unwrap();
}

fn dec_incr(d: DictProxy<String, i64>) {
    for _ in 0..10 {
        d.incr(&"count".into(), -1).unwrap();
    }
}

const KEY: &[u8] = b"manager test key";

#[test]
fn tcp_connect_with_right_and_wrong_authkey() {
    let _w = watchdog("tcp_connect_with_right_and_wrong_authkey", LIMIT);
    let m = Manager::start_at::<()>(Some(Address::localhost(0)), Some(KEY)).unwrap();
    let addr = m.address().clone();
    assert!(addr.is_tcp());
    let q: QueueProxy<String> = m.named("jobs").unwrap();
    let mut c = Process::spawn(tcp_client, (addr.clone(), KEY.to_vec())).unwrap();
    assert_eq!(
        q.get_timeout(Duration::from_secs(30)).unwrap(),
        "hello over tcp"
    );
    c.join().unwrap();
    let e = Manager::connect(addr.clone(), b"wrong key").unwrap_err();
    assert!(e.is_authentication(), "{e:?}");
    // The server still serves.
    let other = Manager::connect(addr, KEY).unwrap();
    assert_eq!(
        other
            .named::<QueueProxy<String>>("jobs")
            .unwrap()
            .qsize()
            .unwrap(),
        0
    );
}

/// Regression test (6c): eight TCP connections that connect and never
/// speak locked every authenticated client out ("the handshake timed out"
/// after 5 s): the server ran each handshake in one of four accept threads.
/// Handshakes now run on their own threads and never hold up accept.
#[test]
fn silent_tcp_peers_do_not_lock_out_authenticated_clients() {
    let _w = watchdog(
        "silent_tcp_peers_do_not_lock_out_authenticated_clients",
        LIMIT,
    );
    let m = Manager::start_at::<()>(Some(Address::localhost(0)), Some(KEY)).unwrap();
    let Address::Tcp(sa) = m.address().clone() else {
        panic!("not tcp")
    };
    let silent: Vec<std::net::TcpStream> = (0..12)
        .map(|_| std::net::TcpStream::connect(sa).unwrap())
        .collect();
    for _ in 0..3 {
        let other = Manager::connect(Address::Tcp(sa), KEY).expect("locked out by silent peers");
        other.dict::<String, i64>().unwrap();
    }
    drop(silent);
}

fn tcp_client(arg: (Address, Vec<u8>)) {
    let m = Manager::connect(arg.0, &arg.1).unwrap();
    let q: QueueProxy<String> = m.named("jobs").unwrap();
    q.put(&"hello over tcp".into()).unwrap();
}

fn kill9(pid: u32) {
    // SAFETY: kill(2) with a pid we spawned and a valid signal number.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0);
}

#[test]
fn client_killed_mid_call_leaves_the_server_serving_with_refcounts_right() {
    let _w = watchdog("client_killed_mid_call", LIMIT);
    let m = Manager::start().unwrap();
    let lock = m.lock().unwrap();
    let q: QueueProxy<u32> = m.queue().unwrap();
    let base = m.stats().unwrap();
    let ready = m.event().unwrap();
    let mut child = Process::spawn(
        client_blocks,
        (
            m.address().clone(),
            m.authkey().to_vec(),
            lock.clone(),
            q.clone(),
            ready.clone(),
        ),
    )
    .unwrap();
    assert!(ready.wait_timeout(Duration::from_secs(30)).unwrap());
    let during = m.stats().unwrap();
    assert!(during.objects > base.objects + 1, "{during:?} vs {base:?}");
    assert!(lock.locked().unwrap());
    kill9(child.pid().unwrap());
    let _ = child.join();
    // The child's objects are freed, its lock released, its references dropped.
    let settled = |s: &ServerStats| s.objects == base.objects + 1 && s.refs == base.refs + 1;
    assert!(
        wait_until(Duration::from_secs(10), || settled(&m.stats().unwrap())),
        "{:?} vs {base:?}",
        m.stats().unwrap()
    );
    assert!(lock.acquire_timeout(Duration::from_secs(10)).unwrap());
    lock.release().unwrap();
    q.put(&1).unwrap();
    assert_eq!(q.get().unwrap(), 1);
    drop(ready);
    assert!(wait_until(Duration::from_secs(10), || m
        .stats()
        .unwrap()
        .objects
        == base.objects));
}

fn client_blocks(arg: (Address, Vec<u8>, LockProxy, QueueProxy<u32>, EventProxy)) {
    let (addr, key, lock, q, ready) = arg;
    // Objects of its own, through its own session.
    let m = Manager::connect(addr, &key).unwrap();
    let d: DictProxy<u32, u32> = m.dict().unwrap();
    d.insert(&1, &1).unwrap();
    let _l = m.list::<u32>().unwrap();
    lock.acquire().unwrap();
    ready.set().unwrap();
    let _ = q.get(); // blocks until killed
    unreachable!("killed while blocked");
}

#[test]
fn server_killed_every_call_returns_server_gone() {
    let _w = watchdog("server_killed", LIMIT);
    let m = Manager::start().unwrap();
    let q: QueueProxy<u32> = m.queue().unwrap();
    let lock = m.lock().unwrap();
    let ev = m.event().unwrap();
    lock.acquire().unwrap();
    let blocked = {
        let (q, lock, ev) = (q.clone(), lock.clone(), ev.clone());
        vec![
            std::thread::spawn(move || q.get().map(drop)),
            std::thread::spawn(move || lock.acquire()),
            std::thread::spawn(move || ev.wait()),
        ]
    };
    // Let them block (they are waiting on the server, which we then kill).
    let started = Instant::now();
    assert!(wait_until(Duration::from_secs(10), || m
        .stats()
        .unwrap()
        .connections
        >= 5));
    kill9(m.server_pid().unwrap());
    for t in blocked {
        let r = t.join().unwrap();
        assert!(matches!(r, Err(ManagerError::ServerGone)), "{r:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(q.put(&1).unwrap_err().is_server_gone());
    assert!(lock.release().unwrap_err().is_server_gone());
    assert!(m.stats().unwrap_err().is_server_gone());
    remove_socket_of_killed_server(&m);
}

/// A server killed with SIGKILL cannot remove its socket file: do what
/// `multiproc clean` would, so the test leaves nothing behind.
fn remove_socket_of_killed_server(m: &Manager) {
    if let Address::Unix(path) = m.address() {
        let path = std::path::absolute(path).unwrap();
        multiproc::names::remove(multiproc::names::Kind::Socket, &path.to_string_lossy()).unwrap();
        assert!(!path.exists() && !path.parent().unwrap().exists());
    }
}

#[test]
fn stopped_tcp_server_is_gone_after_the_heartbeat_timeout() {
    let _w = watchdog("stopped_tcp_server", LIMIT);
    let m = Manager::start_at::<()>(Some(Address::localhost(0)), Some(KEY)).unwrap();
    let q: QueueProxy<u32> = m.queue().unwrap();
    let pid = m.server_pid().unwrap();
    let q2 = q.clone();
    let t = std::thread::spawn(move || q2.get().map(drop));
    assert!(wait_until(Duration::from_secs(10), || m
        .stats()
        .unwrap()
        .connections
        >= 3));
    // A stopped server neither answers nor closes its sockets: only the
    // missing heartbeat tells.
    // SAFETY: kill(2) with our child's pid and a valid signal.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) }, 0);
    let from = Instant::now();
    let r = t.join().unwrap();
    assert!(matches!(r, Err(ManagerError::ServerGone)), "{r:?}");
    assert!(from.elapsed() < Duration::from_secs(30));
    kill9(pid);
    // SAFETY: as above.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
}

// ----- user types --------------------------------------------------------------

struct Accumulator {
    total: i64,
}

impl ManagedObject for Accumulator {
    fn methods(&self) -> &'static [&'static str] {
        &["add", "total", "sleep_ms"]
    }

    fn call(&mut self, method: &str, args: DataValue) -> Result<DataValue, CallError> {
        match method {
            "add" => {
                let n: i64 =
                    from_value(args).map_err(|e| CallError::BadArguments(e.to_string()))?;
                self.total = self
                    .total
                    .checked_add(n)
                    .ok_or_else(|| CallError::Failed("overflow".into()))?;
                Ok(DataValue::Int(self.total))
            }
            "total" => Ok(DataValue::Int(self.total)),
            "sleep_ms" => {
                let ms: u64 =
                    from_value(args).map_err(|e| CallError::BadArguments(e.to_string()))?;
                std::thread::sleep(Duration::from_millis(ms));
                Ok(DataValue::Null)
            }
            _ => Err(CallError::Failed("not reached".into())),
        }
    }

    // `drop` exists on every type; it is not allow-listed.
}

fn make_accumulator(args: DataValue) -> Result<Box<dyn ManagedObject>, CallError> {
    let start: i64 = from_value(args).map_err(|e| CallError::BadArguments(e.to_string()))?;
    Ok(Box::new(Accumulator { total: start }))
}

struct Types;

impl Registrar for Types {
    fn register(types: &mut TypeRegistry) {
        types.register("Accumulator", make_accumulator);
    }
}

#[test]
fn user_types_and_unknown_names() {
    let _w = watchdog("user_types_and_unknown_names", LIMIT);
    let m = Manager::start_with::<Types>().unwrap();
    let acc = m.create_user("Accumulator", &10i64).unwrap();
    assert_eq!(acc.call::<_, i64>("add", &5).unwrap(), 15);
    let mut c = Process::spawn(add_in_child, acc.clone()).unwrap();
    c.join().unwrap();
    assert_eq!(acc.call::<_, i64>("total", &()).unwrap(), 22);
    let e = acc.call::<_, i64>("drop", &()).unwrap_err();
    assert!(
        matches!(remote(&e), Some(RemoteError::UnknownMethod { .. })),
        "{e:?}"
    );
    let e = acc.call::<_, i64>("add", &"text").unwrap_err();
    assert!(matches!(remote(&e), Some(RemoteError::Type(_))), "{e:?}");
    let e = m.create_user("Shell", &"rm -rf /").unwrap_err();
    assert_eq!(remote(&e), Some(&RemoteError::UnknownType("Shell".into())));
    // Built-in objects refuse names they do not have.
    let d: DictProxy<String, i32> = m.dict().unwrap();
    use multiproc::manager::Proxy;
    let e = d.handle().call("__class__", vec![], None).unwrap_err();
    assert!(
        matches!(remote(&e), Some(RemoteError::UnknownMethod { .. })),
        "{e:?}"
    );
    // A server without the type refuses it too.
    let plain = Manager::start().unwrap();
    assert!(matches!(
        remote(&plain.create_user("Accumulator", &0).unwrap_err()),
        Some(RemoteError::UnknownType(_))
    ));
}

fn add_in_child(acc: multiproc::manager::UserProxy) {
    assert_eq!(acc.call::<_, i64>("add", &7).unwrap(), 22);
}

// ----- bad input ---------------------------------------------------------------

#[test]
fn garbage_oversized_and_deep_requests_are_refused_without_harm() {
    let _w = watchdog("garbage_requests", LIMIT);
    let m = Manager::start().unwrap();
    let d: DictProxy<String, i32> = m.dict().unwrap();
    d.insert(&"k".into(), &1).unwrap();
    let addr = m.address().clone();
    let key = m.authkey().to_vec();

    // Request before Hello.
    let mut c: Connection<Request> = Client::connect(addr.clone(), &key).unwrap();
    c.send(&Request::Stats).unwrap();
    let mut r = c.try_clone().unwrap().cast::<Response>();
    assert!(matches!(
        r.recv_timeout(Duration::from_secs(10)).unwrap(),
        Response::Error(RemoteError::Protocol(_))
    ));

    // Garbage after Hello: refused, connection still usable.
    let mut c: Connection<Request> = Client::connect(addr.clone(), &key).unwrap();
    let mut r = c.try_clone().unwrap().cast::<Response>();
    c.send(&Request::Hello {
        version: multiproc::manager::PROTOCOL_VERSION,
        session: 1,
        primary: true,
    })
    .unwrap();
    assert!(matches!(
        r.recv_timeout(Duration::from_secs(10)).unwrap(),
        Response::Value(_)
    ));
    c.cast_send_bytes(&[0x00, 0xff, 0xfe, 0x13, 0x37]);
    assert!(matches!(
        r.recv_timeout(Duration::from_secs(10)).unwrap(),
        Response::Error(RemoteError::Protocol(_))
    ));
    // Nesting deeper than MAX_DEPTH.
    let mut deep = DataValue::Null;
    for _ in 0..1000 {
        deep = DataValue::List(vec![deep]);
    }
    c.send(&Request::Create {
        kind: multiproc::manager::ObjectKind::List,
        init: deep,
    })
    .unwrap();
    assert!(matches!(
        r.recv_timeout(Duration::from_secs(10)).unwrap(),
        Response::Error(RemoteError::Protocol(_))
    ));
    c.send(&Request::Stats).unwrap();
    assert!(matches!(
        r.recv_timeout(Duration::from_secs(10)).unwrap(),
        Response::Stats(_)
    ));
    // Wrong version.
    let mut c2: Connection<Request> = Client::connect(addr.clone(), &key).unwrap();
    let mut r2 = c2.try_clone().unwrap().cast::<Response>();
    c2.send(&Request::Hello {
        version: 999,
        session: 2,
        primary: false,
    })
    .unwrap();
    assert!(matches!(
        r2.recv_timeout(Duration::from_secs(10)).unwrap(),
        Response::Error(RemoteError::Version { .. })
    ));

    // A frame header announcing more than the maximum: the connection is cut.
    let mut c3: Connection<Request> = Client::connect(addr.clone(), &key).unwrap();
    c3.set_max_message_size(usize::MAX >> 1);
    let big = vec![0u8; (multiproc::manager::MAX_FRAME) + 16];
    let _ = c3.send_bytes(&big);
    let mut r3 = c3.try_clone().unwrap().cast::<Response>();
    assert!(r3.recv_timeout(Duration::from_secs(10)).is_err());

    // Calls on objects that do not exist.
    let mut c4: Connection<Request> = Client::connect(addr.clone(), &key).unwrap();
    let mut r4 = c4.try_clone().unwrap().cast::<Response>();
    c4.send(&Request::Hello {
        version: multiproc::manager::PROTOCOL_VERSION,
        session: 3,
        primary: true,
    })
    .unwrap();
    r4.recv_timeout(Duration::from_secs(10)).unwrap();
    c4.send(&Request::DecRef(424242)).unwrap();
    assert!(matches!(
        r4.recv_timeout(Duration::from_secs(10)).unwrap(),
        Response::Error(RemoteError::UnknownObject(_))
    ));

    // A timeout too long for the clock is waited as "forever", not a panic.
    c4.send(&Request::Create {
        kind: multiproc::manager::ObjectKind::Event,
        init: DataValue::Null,
    })
    .unwrap();
    let Response::Created(ev) = r4.recv_timeout(Duration::from_secs(10)).unwrap() else {
        panic!("no event")
    };
    c4.send(&Request::Call {
        id: ev,
        method: "set".into(),
        args: vec![],
        timeout_ms: None,
        owner: multiproc::manager::protocol::Owner {
            session: 3,
            thread: 1,
        },
    })
    .unwrap();
    r4.recv_timeout(Duration::from_secs(10)).unwrap();
    c4.send(&Request::Call {
        id: ev,
        method: "wait".into(),
        args: vec![],
        timeout_ms: Some(u64::MAX),
        owner: multiproc::manager::protocol::Owner {
            session: 3,
            thread: 1,
        },
    })
    .unwrap();
    assert!(matches!(
        r4.recv_timeout(Duration::from_secs(10)).unwrap(),
        Response::Value(DataValue::Bool(true))
    ));

    // The server still serves everyone.
    assert_eq!(d.get(&"k".into()).unwrap(), Some(1));
    assert!(
        Manager::connect(addr, b"bad key")
            .unwrap_err()
            .is_authentication()
    );
    assert_eq!(d.len().unwrap(), 1);
}

trait SendBytes {
    fn cast_send_bytes(&mut self, b: &[u8]);
}

impl SendBytes for Connection<Request> {
    fn cast_send_bytes(&mut self, b: &[u8]) {
        // A serde frame is a handle count byte (0) then the payload.
        let mut frame = vec![0u8];
        frame.extend_from_slice(b);
        self.send_bytes(&frame).unwrap();
    }
}

/// Valid encodings, then 30 000 deterministic mutations of them (flipped,
/// truncated, extended, random): decoding never panics or overflows the
/// stack. (The `manager_request` fuzz target explores further.)
#[test]
fn request_decoder_survives_mutated_input() {
    let mut deep = DataValue::Null;
    for _ in 0..60 {
        deep = DataValue::Map(vec![(
            DataValue::Str("k".into()),
            DataValue::List(vec![deep]),
        )]);
    }
    let owner = multiproc::manager::protocol::Owner {
        session: 1,
        thread: 2,
    };
    let seeds: Vec<Vec<u8>> = [
        Request::Hello {
            version: 1,
            session: 7,
            primary: true,
        },
        Request::Create {
            kind: multiproc::manager::ObjectKind::Dict,
            init: deep.clone(),
        },
        Request::Call {
            id: 3,
            method: "setitem".into(),
            args: vec![DataValue::Bytes(vec![1, 2, 3]), DataValue::Float(1.5), deep],
            timeout_ms: Some(10),
            owner,
        },
        Request::Named {
            name: "q".into(),
            kind: multiproc::manager::ObjectKind::Queue,
            init: DataValue::Int(-5),
        },
        Request::Claim { id: 1, token: 2 },
    ]
    .iter()
    .map(|r| postcard::to_stdvec(r).unwrap())
    .collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for s in &seeds {
        multiproc::manager::fuzz::fuzz_one(s);
    }
    for i in 0..30_000u32 {
        let mut d = seeds[i as usize % seeds.len()].clone();
        match next() % 4 {
            0 if !d.is_empty() => {
                let at = next() as usize % d.len();
                d[at] = next() as u8;
            }
            1 => d.truncate(next() as usize % (d.len() + 1)),
            2 => d.extend((0..next() % 64).map(|_| next() as u8)),
            _ => d = (0..next() % 128).map(|_| next() as u8).collect(),
        }
        multiproc::manager::fuzz::fuzz_one(&d);
    }
    // A long run of "list of" tags: rejected by depth, not by the stack.
    // Request::Create (variant 1), ObjectKind::Dict (variant 0), then
    // DataValue::List (variant 7) of length 1, 100 000 times over.
    let mut nested = vec![1u8, 0u8];
    nested.extend(std::iter::repeat_n([7u8, 1u8], 100_000).flatten());
    multiproc::manager::fuzz::fuzz_one(&nested);
    assert!(postcard::from_bytes::<Request>(&nested).is_err());
}

/// In a forked child the parent's connections are not usable: calls say
/// `Forked` (and dropping the proxy there sends nothing), while the parent
/// keeps working.
#[test]
fn proxies_refuse_use_in_a_forked_child() {
    let _w = watchdog("proxies_refuse_use_in_a_forked_child", LIMIT);
    let m = Manager::start().unwrap();
    let d: DictProxy<String, i64> = m.dict().unwrap();
    // Fork needs a single-threaded process: do it from a spawned child.
    let mut c = Process::spawn(fork_with_proxy, d.clone()).unwrap();
    assert_eq!(c.join().unwrap(), (true, 1));
    assert_eq!(d.get(&"k".into()).unwrap(), Some(1));
}

fn fork_with_proxy(d: DictProxy<String, i64>) -> (bool, i64) {
    d.insert(&"k".into(), &1).unwrap();
    let d2 = d.clone();
    let mut f =
        Process::fork(move || matches!(d2.get(&"k".into()), Err(ManagerError::Forked))).unwrap();
    let forked_refused = f.join().unwrap();
    (forked_refused, d.get(&"k".into()).unwrap().unwrap())
}

/// A child that sends a proxy back and exits before the parent claims it
/// does not free the object: the loan outlives the child's session.
#[test]
fn proxy_returned_by_an_exited_child_is_still_claimable() {
    let _w = watchdog("proxy_returned_by_an_exited_child", LIMIT);
    let m = Manager::start().unwrap();
    let base = m.stats().unwrap();
    let d: DictProxy<String, i64> = m.dict().unwrap();
    d.insert(&"n".into(), &5).unwrap();
    let (mut rx, tx) = multiproc::pipe::<DictProxy<String, i64>>().unwrap();
    let mut c = Process::spawn(send_back, (d, tx)).unwrap(); // our only proxy moves
    c.join().unwrap();
    // The child's session is over before we claim.
    assert!(wait_until(Duration::from_secs(10), || m
        .stats()
        .unwrap()
        .sessions
        == base.sessions));
    let back = rx.recv().unwrap();
    assert_eq!(back.get(&"n".into()).unwrap(), Some(5));
    drop(back);
    assert!(wait_until(Duration::from_secs(10), || m
        .stats()
        .unwrap()
        .objects
        == base.objects));
}

fn send_back(arg: (DictProxy<String, i64>, Connection<DictProxy<String, i64>>)) {
    let (d, mut tx) = arg;
    tx.send(&d).unwrap();
}

/// The authkey travels to children inside the spawn argument bytes, never
/// in their argv or environment (ANCHORS row 9f).
#[test]
fn authkey_is_not_in_a_childs_argv_or_environment() {
    let _w = watchdog("authkey_not_in_argv_env", LIMIT);
    let m = Manager::start().unwrap();
    let key = m.authkey().to_vec();
    let ev = m.event().unwrap();
    let ready = m.event().unwrap();
    let mut c = Process::spawn(wait_for_event, (ev.clone(), ready.clone())).unwrap();
    assert!(ready.wait_timeout(Duration::from_secs(30)).unwrap());
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    for pid in [c.pid().unwrap(), m.server_pid().unwrap()] {
        for file in ["cmdline", "environ"] {
            let data = std::fs::read(format!("/proc/{pid}/{file}")).unwrap();
            assert!(
                !data.windows(key.len()).any(|w| w == key.as_slice()),
                "{file}"
            );
            assert!(!String::from_utf8_lossy(&data).contains(&hex), "{file}");
        }
    }
    ev.set().unwrap();
    c.join().unwrap();
}

fn wait_for_event(arg: (EventProxy, EventProxy)) {
    let (ev, ready) = arg;
    ready.set().unwrap();
    assert!(ev.wait_timeout(Duration::from_secs(60)).unwrap());
}

/// Many clients killed mid-call at once: the server keeps serving and the
/// counts return to the baseline (ANCHORS row 18, scaled down).
#[test]
fn many_clients_killed_mid_call() {
    let _w = watchdog("many_clients_killed_mid_call", LIMIT);
    const CLIENTS: usize = 16;
    let m = Manager::start().unwrap();
    let q: QueueProxy<u32> = m.queue().unwrap();
    let started: ValueProxy<i64> = m.value(&0).unwrap();
    let base = m.stats().unwrap();
    let mut children: Vec<Process> = (0..CLIENTS)
        .map(|_| {
            Process::spawn(
                blocked_client,
                (
                    m.address().clone(),
                    m.authkey().to_vec(),
                    q.clone(),
                    started.clone(),
                ),
            )
            .unwrap()
        })
        .collect();
    assert!(wait_until(Duration::from_secs(60), || {
        started.get().unwrap() == CLIENTS as i64
    }));
    for c in &mut children {
        kill9(c.pid().unwrap());
    }
    for c in &mut children {
        let _ = c.join();
    }
    assert!(
        wait_until(Duration::from_secs(10), || {
            let s = m.stats().unwrap();
            s.objects == base.objects && s.refs == base.refs && s.sessions == base.sessions
        }),
        "{:?} vs {base:?}",
        m.stats().unwrap()
    );
    q.put(&7).unwrap();
    assert_eq!(q.get().unwrap(), 7);
}

fn blocked_client(arg: (Address, Vec<u8>, QueueProxy<u32>, ValueProxy<i64>)) {
    let (addr, key, q, started) = arg;
    let m = Manager::connect(addr, &key).unwrap();
    let l: ListProxy<u32> = m.list_from(&[1, 2, 3]).unwrap();
    let lock = m.lock().unwrap();
    lock.acquire().unwrap(); // held when killed: released with the session
    l.push(&4).unwrap();
    started.incr(1).unwrap();
    let _ = q.get(); // blocks until killed
    unreachable!("killed while blocked");
}

/// Seeds of the `manager_request` fuzz corpus (written by
/// `write_manager_request_corpus`), replayed on stable.
fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/manager_request")
}

fn corpus_seeds() -> Vec<Vec<u8>> {
    let owner = multiproc::manager::protocol::Owner {
        session: 1,
        thread: 2,
    };
    let mut deep = DataValue::Null;
    for _ in 0..63 {
        deep = DataValue::List(vec![deep]);
    }
    let reqs = [
        Request::Hello {
            version: 1,
            session: 7,
            primary: true,
        },
        Request::Create {
            kind: multiproc::manager::ObjectKind::Dict,
            init: DataValue::Null,
        },
        Request::Create {
            kind: multiproc::manager::ObjectKind::List,
            init: deep,
        },
        Request::CreateUser {
            type_name: "Accumulator".into(),
            args: DataValue::Int(3),
        },
        Request::Named {
            name: "jobs".into(),
            kind: multiproc::manager::ObjectKind::Queue,
            init: DataValue::Int(2),
        },
        Request::IncRef(1),
        Request::DecRef(1),
        Request::Lend(1),
        Request::Claim { id: 1, token: 9 },
        Request::Call {
            id: 1,
            method: "setitem".into(),
            args: vec![
                DataValue::Str("k".into()),
                DataValue::Map(vec![(DataValue::Bytes(vec![0, 1]), DataValue::Float(-0.5))]),
            ],
            timeout_ms: Some(100),
            owner,
        },
        Request::Call {
            id: 2,
            method: "get".into(),
            args: vec![],
            timeout_ms: None,
            owner,
        },
        Request::Stats,
        Request::Shutdown,
    ];
    let mut out: Vec<Vec<u8>> = reqs
        .iter()
        .map(|r| postcard::to_stdvec(r).unwrap())
        .collect();
    out.push(postcard::to_stdvec(&Response::Value(DataValue::UInt(u64::MAX))).unwrap());
    out.push(
        postcard::to_stdvec(&Response::Error(RemoteError::UnknownMethod {
            kind: "dict".into(),
            method: "x".into(),
        }))
        .unwrap(),
    );
    out
}

#[test]
#[ignore = "writes the fuzz corpus seeds; run by hand when the protocol changes"]
fn write_manager_request_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in corpus_seeds().iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
    }
}

#[test]
fn manager_request_corpus_replays_cleanly() {
    let mut n = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("corpus directory") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        multiproc::manager::fuzz::fuzz_one(&data);
        n += 1;
    }
    assert!(n >= corpus_seeds().len(), "corpus has only {n} inputs");
    // Every seed still decodes: the protocol has not drifted from them.
    for s in corpus_seeds().iter().take(13) {
        postcard::from_bytes::<Request>(s).unwrap();
    }
}

/// A user method may run longer than the heartbeat timeout: the client
/// checks that the server still answers instead of calling it gone.
#[test]
fn long_user_method_is_not_mistaken_for_a_dead_server() {
    let _w = watchdog("long_user_method", LIMIT);
    let m = Manager::start_with::<Types>().unwrap();
    let acc = m.create_user("Accumulator", &0i64).unwrap();
    let ms = multiproc::manager::HEARTBEAT_TIMEOUT.as_millis() as u64 + 1500;
    acc.call::<_, ()>("sleep_ms", &ms).unwrap();
    assert_eq!(acc.call::<_, i64>("add", &1).unwrap(), 1);
}

/// An answer larger than the frame limit is refused with a typed error;
/// the connection and the server stay usable.
#[test]
fn oversized_answer_is_a_typed_error() {
    let _w = watchdog("oversized_answer", LIMIT);
    let m = Manager::start().unwrap();
    let l: ListProxy<String> = m.list().unwrap();
    let chunk = "x".repeat(1 << 20);
    for _ in 0..(multiproc::manager::MAX_FRAME >> 20) + 1 {
        l.push(&chunk).unwrap();
    }
    let e = l.to_vec().unwrap_err();
    assert!(
        matches!(remote(&e), Some(RemoteError::TooLarge { .. })),
        "{e:?}"
    );
    assert_eq!(l.len().unwrap(), (multiproc::manager::MAX_FRAME >> 20) + 1);
    // Too large a request is refused before it is sent.
    let big = "y".repeat(multiproc::manager::MAX_FRAME + 1);
    assert!(matches!(
        l.push(&big).unwrap_err(),
        ManagerError::TooLarge { .. }
    ));
    assert_eq!(l.get(0).unwrap().len(), 1 << 20);
}

#[test]
fn handles_attach_by_id_and_loans_keep_objects_alive() {
    let _w = watchdog("handles_attach_by_id", LIMIT);
    let m = Manager::start().unwrap();
    let h = m
        .create_object(
            multiproc::manager::ObjectKind::List,
            DataValue::List(vec![DataValue::Int(7)]),
        )
        .unwrap();
    assert!(h.is_ours());
    assert_eq!(h.authkey(), m.authkey());
    let id = h.id();
    let again = multiproc::manager::Handle::attach(m.address().clone(), m.authkey(), id).unwrap();
    assert_eq!(again.call("len", vec![], None).unwrap(), DataValue::Int(1));
    // A loan keeps the object alive with no handle left.
    h.lend().unwrap();
    drop(h);
    drop(again);
    assert_eq!(m.stats().unwrap().objects, 1);
    let third = multiproc::manager::Handle::attach(m.address().clone(), m.authkey(), id).unwrap();
    assert_eq!(
        third
            .call("getitem", vec![DataValue::Int(0)], None)
            .unwrap(),
        DataValue::Int(7)
    );
    // An id the server does not hold is refused.
    let e = multiproc::manager::Handle::attach(m.address().clone(), m.authkey(), id + 1000)
        .unwrap_err();
    assert_eq!(remote(&e), Some(&RemoteError::UnknownObject(id + 1000)));
}

/// An interrupted call is cancelled on the server without taking anything:
/// `Interrupted` when it did nothing, its result when it completed first,
/// and the proxy's connection stays in step either way. Puts land around
/// the moment of the interruption (the first check comes 50 ms into the
/// wait), so both outcomes happen; no item is lost or duplicated.
#[test]
fn an_interrupted_call_is_cancelled_and_loses_no_item() {
    use multiproc::manager::Proxy;
    let _w = watchdog("an_interrupted_call_is_cancelled_and_loses_no_item", LIMIT);
    let m = Manager::start().unwrap();
    let q: QueueProxy<u32> = m.queue().unwrap();
    let t0 = Instant::now();
    let e = q
        .handle()
        .call_interruptible("get", vec![], None, || {
            t0.elapsed() >= Duration::from_millis(200)
        })
        .unwrap_err();
    assert!(matches!(e, ManagerError::Interrupted), "{e:?}");
    q.put(&1000).unwrap();
    assert_eq!(q.get().unwrap(), 1000);

    const N: u32 = 100;
    let (mut got, mut interrupted) = (Vec::new(), 0);
    for i in 0..N {
        let q2 = q.clone();
        let putter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(40 + u64::from(i % 31)));
            q2.put(&i).unwrap();
        });
        match q.handle().call_interruptible("get", vec![], None, || true) {
            Ok(v) => got.push(from_value::<u32>(v).unwrap()),
            Err(ManagerError::Interrupted) => interrupted += 1,
            Err(e) => panic!("get {i}: {e:?}"),
        }
        putter.join().unwrap();
        // An item the interrupted get left is still there.
        while let Ok(v) = q.try_get() {
            got.push(v);
        }
    }
    got.sort_unstable();
    assert_eq!(got, (0..N).collect::<Vec<_>>(), "lost or duplicated items");
    println!("{interrupted} of {N} gets interrupted, the rest completed");
}
