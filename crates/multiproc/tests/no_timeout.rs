//! `Duration::MAX` is the usual "no timeout": every `_timeout` form takes it
//! and waits as if it had no timeout, instead of panicking with "overflow
//! when adding duration to instant". Each call here is given something to
//! return at once (or soon, from another process), so the test ends.

use std::time::Duration;

use multiproc::manager::Manager;
use multiproc::{
    Barrier, Condition, Event, JoinableQueue, Lock, Process, Queue, RLock, Semaphore, duplex, pipe,
};

multiproc::enable_test_support!();

const FOREVER: Duration = Duration::MAX;

fn answer(x: u32) -> u32 {
    x + 1
}

#[test]
fn queues_take_no_timeout() {
    let q: Queue<u32> = Queue::new().unwrap();
    q.put_timeout(7, FOREVER).unwrap();
    assert_eq!(q.get_timeout(FOREVER).unwrap(), 7);
    q.put_bytes_timeout(b"x", FOREVER).unwrap();
    assert_eq!(q.get_bytes_timeout(FOREVER).unwrap(), b"x");
    let jq: JoinableQueue<u32> = JoinableQueue::new().unwrap();
    jq.put(1).unwrap();
    assert_eq!(jq.get_timeout(FOREVER).unwrap(), 1);
    jq.task_done().unwrap();
    jq.join_timeout(FOREVER).unwrap();
}

#[test]
fn sync_objects_take_no_timeout() {
    let lock = Lock::new().unwrap();
    drop(lock.lock_timeout(FOREVER).unwrap());
    let rlock = RLock::new().unwrap();
    drop(rlock.lock_timeout(FOREVER).unwrap());
    let sem = Semaphore::new(1).unwrap();
    assert!(sem.acquire_timeout(FOREVER));
    let ev = Event::new().unwrap();
    ev.set();
    assert!(ev.wait_timeout(FOREVER));
    let b = Barrier::new(1).unwrap();
    assert_eq!(b.wait_timeout(FOREVER).unwrap(), 0);
    let cond = Condition::new().unwrap();
    let mut g = cond.lock().unwrap();
    assert!(g.wait_for(|| true, Some(FOREVER)).unwrap());
}

#[test]
fn connections_and_processes_take_no_timeout() {
    let (mut rx, mut tx) = pipe::<u32>().unwrap();
    tx.send(&5).unwrap();
    assert!(rx.poll(Some(FOREVER)).unwrap());
    assert_eq!(rx.recv_timeout(FOREVER).unwrap(), 5);
    let (mut a, mut b) = duplex::<u32>().unwrap();
    a.send_bytes(b"hi").unwrap();
    assert_eq!(b.recv_bytes_timeout(FOREVER).unwrap(), b"hi");
    let mut p = Process::spawn(answer, 41).unwrap();
    assert_eq!(p.join_timeout(FOREVER).unwrap(), 42);
}

#[test]
fn manager_condition_takes_no_timeout() {
    let m = Manager::start().unwrap();
    let c = m.condition().unwrap();
    c.acquire().unwrap();
    assert!(c.wait_for(|| true, Some(FOREVER)).unwrap());
    c.release().unwrap();
}
