//! The naming convention, checked by the compiler: every blocking operation
//! has its four forms, `x` (block), `try_x` (never block), `x_timeout`
//! (a `Duration`) and `x_deadline` (an `Instant`). Each row below names the
//! four methods as function items, so a missing or misnamed form does not
//! compile; the test prints the table it checked.
//!
//! The forms that do not exist, by design (see the crate docs' naming
//! convention): a condition wait and a barrier wait have no `try` form, and
//! `SimpleQueue` keeps Python's two blocking calls.

use std::time::{Duration, Instant};

use multiproc::connection::Listener;
use multiproc::os::fifo::{Fifo, FifoReader};
use multiproc::os::signal::{SignalFlag, Signals};
use multiproc::os::{posix, sysv};
use multiproc::{
    Array, Barrier, Condition, ConditionGuard, Connection, Event, JoinableQueue, Lock, Process,
    Queue, RLock, Semaphore, Task, Value,
};

/// One row: the operation and its four forms' names. Building it takes the
/// four methods as values, which is the check.
macro_rules! row {
    ($rows:ident, $op:literal, $x:expr, $try_x:expr, $x_timeout:expr, $x_deadline:expr) => {{
        let _forms = ($x, $try_x, $x_timeout, $x_deadline);
        $rows.push($op);
    }};
}

#[test]
fn every_blocking_operation_has_its_four_forms() {
    let mut rows: Vec<&str> = Vec::new();
    row!(
        rows,
        "Queue::put",
        Queue::<u8>::put,
        Queue::<u8>::try_put,
        Queue::<u8>::put_timeout,
        Queue::<u8>::put_deadline
    );
    row!(
        rows,
        "Queue::get",
        Queue::<u8>::get,
        Queue::<u8>::try_get,
        Queue::<u8>::get_timeout,
        Queue::<u8>::get_deadline
    );
    row!(
        rows,
        "Queue::put_bytes",
        Queue::<u8>::put_bytes,
        Queue::<u8>::try_put_bytes,
        Queue::<u8>::put_bytes_timeout,
        Queue::<u8>::put_bytes_deadline
    );
    row!(
        rows,
        "Queue::get_bytes",
        Queue::<u8>::get_bytes,
        Queue::<u8>::try_get_bytes,
        Queue::<u8>::get_bytes_timeout,
        Queue::<u8>::get_bytes_deadline
    );
    row!(
        rows,
        "Queue::get_bytes_into",
        Queue::<u8>::get_bytes_into,
        Queue::<u8>::try_get_bytes_into,
        Queue::<u8>::get_bytes_into_timeout,
        Queue::<u8>::get_bytes_into_deadline
    );
    row!(
        rows,
        "JoinableQueue::join",
        JoinableQueue::<u8>::join,
        JoinableQueue::<u8>::try_join,
        JoinableQueue::<u8>::join_timeout,
        JoinableQueue::<u8>::join_deadline
    );
    row!(
        rows,
        "Connection::recv",
        Connection::<u8>::recv,
        Connection::<u8>::try_recv,
        Connection::<u8>::recv_timeout,
        Connection::<u8>::recv_deadline
    );
    row!(
        rows,
        "Connection::recv_bytes",
        Connection::<u8>::recv_bytes,
        Connection::<u8>::try_recv_bytes,
        Connection::<u8>::recv_bytes_timeout,
        Connection::<u8>::recv_bytes_deadline
    );
    row!(
        rows,
        "Listener::accept",
        Listener::accept::<u8>,
        Listener::try_accept::<u8>,
        Listener::accept_timeout::<u8>,
        Listener::accept_deadline::<u8>
    );
    row!(
        rows,
        "Task::get",
        Task::<u8>::get,
        Task::<u8>::try_get,
        Task::<u8>::get_timeout,
        Task::<u8>::get_deadline
    );
    row!(
        rows,
        "Process::join",
        Process::<u8>::join,
        Process::<u8>::try_join,
        Process::<u8>::join_timeout,
        Process::<u8>::join_deadline
    );
    row!(
        rows,
        "Process::wait",
        Process::<u8>::wait,
        Process::<u8>::try_wait,
        Process::<u8>::wait_timeout,
        Process::<u8>::wait_deadline
    );
    row!(
        rows,
        "Lock::lock",
        Lock::lock,
        Lock::try_lock,
        Lock::lock_timeout,
        Lock::lock_deadline
    );
    row!(
        rows,
        "Lock::acquire",
        Lock::acquire,
        Lock::try_acquire,
        Lock::acquire_timeout,
        Lock::acquire_deadline
    );
    row!(
        rows,
        "RLock::lock",
        RLock::lock,
        RLock::try_lock,
        RLock::lock_timeout,
        RLock::lock_deadline
    );
    row!(
        rows,
        "Semaphore::acquire",
        Semaphore::acquire,
        Semaphore::try_acquire,
        Semaphore::acquire_timeout,
        Semaphore::acquire_deadline
    );
    row!(
        rows,
        "Event::wait",
        Event::wait,
        Event::try_wait,
        Event::wait_timeout,
        Event::wait_deadline
    );
    row!(
        rows,
        "Condition::lock",
        Condition::lock,
        Condition::try_lock,
        Condition::lock_timeout,
        Condition::lock_deadline
    );
    row!(
        rows,
        "Value::lock",
        Value::<u64>::lock,
        Value::<u64>::try_lock,
        Value::<u64>::lock_timeout,
        Value::<u64>::lock_deadline
    );
    row!(
        rows,
        "Array::lock",
        Array::<u64>::lock,
        Array::<u64>::try_lock,
        Array::<u64>::lock_timeout,
        Array::<u64>::lock_deadline
    );
    row!(
        rows,
        "Fifo::open_write",
        Fifo::open_write,
        Fifo::try_open_write,
        Fifo::open_write_timeout,
        Fifo::open_write_deadline
    );
    row!(
        rows,
        "Fifo::open_read",
        Fifo::open_read,
        Fifo::try_open_read,
        Fifo::open_read_timeout,
        Fifo::open_read_deadline
    );
    row!(
        rows,
        "FifoReader::read",
        <FifoReader as std::io::Read>::read,
        FifoReader::try_read,
        FifoReader::read_timeout,
        FifoReader::read_deadline
    );
    row!(
        rows,
        "Signals::wait",
        Signals::wait,
        Signals::try_wait,
        Signals::wait_timeout,
        Signals::wait_deadline
    );
    row!(
        rows,
        "SignalFlag::wait",
        SignalFlag::wait,
        SignalFlag::try_wait,
        SignalFlag::wait_timeout,
        SignalFlag::wait_deadline
    );
    row!(
        rows,
        "posix::MessageQueue::send",
        posix::MessageQueue::<u8>::send,
        posix::MessageQueue::<u8>::try_send,
        posix::MessageQueue::<u8>::send_timeout,
        posix::MessageQueue::<u8>::send_deadline
    );
    row!(
        rows,
        "posix::MessageQueue::recv",
        posix::MessageQueue::<u8>::recv,
        posix::MessageQueue::<u8>::try_recv,
        posix::MessageQueue::<u8>::recv_timeout,
        posix::MessageQueue::<u8>::recv_deadline
    );
    row!(
        rows,
        "sysv::MessageQueue::send",
        sysv::MessageQueue::send::<u8>,
        sysv::MessageQueue::try_send::<u8>,
        sysv::MessageQueue::send_timeout::<u8>,
        sysv::MessageQueue::send_deadline::<u8>
    );
    // `recv` takes `impl Into<Selector>`, which a function item cannot
    // name: closures call the four forms instead.
    row!(
        rows,
        "sysv::MessageQueue::recv",
        |q: &sysv::MessageQueue| q.recv::<u8>(0),
        |q: &sysv::MessageQueue| q.try_recv::<u8>(0),
        |q: &sysv::MessageQueue, t: Duration| q.recv_timeout::<u8>(0, t),
        |q: &sysv::MessageQueue, d: Instant| q.recv_deadline::<u8>(0, d)
    );
    row!(
        rows,
        "sysv::SemaphoreSet::op",
        sysv::SemaphoreSet::op,
        sysv::SemaphoreSet::try_op,
        sysv::SemaphoreSet::op_timeout,
        sysv::SemaphoreSet::op_deadline
    );
    // Waits whose `try` form would mean nothing: a condition wait is for a
    // notification still to come, and a barrier party that does not wait
    // is not a party. Three forms each.
    let mut three: Vec<&str> = Vec::new();
    let _forms = (
        ConditionGuard::wait,
        ConditionGuard::wait_timeout,
        ConditionGuard::wait_deadline,
    );
    three.push("ConditionGuard::wait");
    let _forms = (Barrier::wait, Barrier::wait_timeout, Barrier::wait_deadline);
    three.push("Barrier::wait");
    for op in &rows {
        println!("{op}: x, try_x, x_timeout, x_deadline");
    }
    for op in &three {
        println!("{op}: x, x_timeout, x_deadline (no try form)");
    }
    assert_eq!((rows.len(), three.len()), (30, 2));
}

#[test]
fn a_deadline_form_waits_until_its_instant_and_no_longer() {
    let q = Queue::<u8>::new().unwrap();
    let past = Instant::now();
    assert!(q.get_deadline(past).unwrap_err().is_timeout());
    let e = Event::new().unwrap();
    assert!(!e.wait_deadline(Instant::now() + Duration::from_millis(20)));
    e.set();
    assert!(e.wait_deadline(past) && e.try_wait());
    let l = Lock::new().unwrap();
    let g = l.lock().unwrap();
    assert!(
        l.lock_deadline(Instant::now() + Duration::from_millis(20))
            .is_err()
    );
    drop(g);
    drop(l.lock_deadline(past).unwrap());
    q.put_deadline(7, past).unwrap();
    assert_eq!(q.get_deadline(past).unwrap(), 7);
}
