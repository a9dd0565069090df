//! Seed 003: a bounded `Queue(2)` in one process: put, put, qsize, get, get.
//!
//! Where the seed comments out `q.put(3)` (it would block forever on a full
//! queue) and the final `q.get()` (it would block on an empty one), this
//! shows their non-blocking and timed forms: `Full` hands the item back and
//! `Empty` says there was nothing.
//!
//! Run: `cargo run --example queue_basics`

use std::time::Duration;

use multiproc::Queue;
use multiproc::TimeoutError;

fn main() {
    multiproc::init();
    let q: Queue<i32> = Queue::bounded(2).expect("queue");
    println!("{q:?}");
    q.put(1).expect("put");
    q.put(2).expect("put");
    match q.try_put(3) {
        Err(e) if e.is_full() => println!("queue full, got back {}", e.into_inner()),
        other => panic!("expected Full, got {other:?}"),
    }
    println!("qsize: {}", q.qsize());
    println!("get: {}", q.get().expect("get"));
    println!("get: {}", q.get().expect("get"));
    println!("qsize: {}", q.qsize());
    // Python raises `queue.Empty` for both: `TryError::WouldBlock` and
    // `TimeoutError::Timeout` here.
    match q.try_get() {
        Err(e) if e.is_would_block() => println!("queue empty now"),
        other => panic!("expected Empty, got {other:?}"),
    }
    match q.get_timeout(Duration::from_millis(50)) {
        Err(TimeoutError::Timeout) => println!("queue empty after 50 ms"),
        other => panic!("expected Empty, got {other:?}"),
    }
}
