//! Seed 000 §4.2: a producer and a consumer, both forked children, share a
//! `Queue`; the producer ends the stream with `None`.
//!
//! Python puts `None` after the last string; in Rust the queue carries
//! `Option<String>`, and `None` is the same sentinel.
//!
//! Run: `cargo run --example queue_producer_consumer`

use std::time::Duration;

use multiproc::{Process, Queue};

/// Seed's `consumer2`: take messages until the `None` sentinel.
fn consumer2(q: &Queue<Option<String>>) -> usize {
    let mut n = 0;
    while let Some(res) = q.get().expect("get") {
        // The seed sleeps a second per message; a short pause keeps the
        // interleaving visible without making the example slow.
        std::thread::sleep(Duration::from_millis(20));
        println!("consumer received: {res}");
        n += 1;
    }
    n
}

/// Seed's `producer2`: ten messages, then the sentinel.
fn producer2(q: &Queue<Option<String>>) {
    for i in 0..10 {
        q.put(Some(format!("message {i}"))).expect("put");
        println!("producer sent message {i}");
        std::thread::sleep(Duration::from_millis(10));
    }
    q.put(None).expect("put");
}

fn main() {
    multiproc::init();
    // The seed calls `set_start_method('fork')`: `Process::fork` runs a
    // closure in a forked child, which uses the parent's queue directly.
    let q: Queue<Option<String>> = Queue::new().expect("queue");
    let mut producer_1 = Process::fork(|| producer2(&q)).expect("fork producer");
    let mut consumer_1 = Process::fork(|| consumer2(&q)).expect("fork consumer");
    producer_1.join().expect("producer failed");
    let n = consumer_1.join().expect("consumer failed");
    println!("consumer took {n} messages; queue empty: {}", q.is_empty());
}
