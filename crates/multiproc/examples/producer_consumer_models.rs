//! Seed 001 §57.3: the producer/consumer models.
//!
//! - `model1 [N]`: one producer puts random numbers into a `Queue`, one
//!   consumer prints them. The seed's loops never end; here each side stops
//!   after `N` items (default 5) so the program finishes.
//! - `model2`: a `JoinableQueue`, two producers putting ten numbers each, and
//!   a *daemon* consumer that gets and calls `task_done` forever. The parent
//!   joins the producers, then `q.join()` returns once every item was
//!   processed, and the daemon consumer dies with the parent.
//!
//! Run: `cargo run --example producer_consumer_models -- model2`

use std::time::Duration;

use multiproc::{Builder, JoinableQueue, Process, Queue};

/// A small random number in [0, 1) without a dependency (xorshift seeded by
/// the pid and the clock).
fn random(state: &mut u64) -> f64 {
    if *state == 0 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        *state = t ^ (u64::from(std::process::id()) << 32) | 1;
    }
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// The seed's pause between items (a second there), shortened.
const PAUSE: Duration = Duration::from_millis(10);

/// Model 1 producer.
fn producer1(arg: (Queue<f64>, usize)) {
    let (q, n) = arg;
    let mut seed = 0;
    for _ in 0..n {
        let num = random(&mut seed);
        println!("producer made: {num}");
        q.put(num).expect("put");
        std::thread::sleep(PAUSE);
    }
}

/// Model 1 consumer.
fn customer1(arg: (Queue<f64>, usize)) {
    let (q, n) = arg;
    for _ in 0..n {
        println!("consumer got: {}", q.get().expect("get"));
        std::thread::sleep(PAUSE);
    }
}

/// Model 2 producer: ten numbers.
fn producer2(q: JoinableQueue<f64>) {
    let mut seed = 0;
    for _ in 1..11 {
        let num = random(&mut seed);
        println!("producer made: {num}");
        q.put(num).expect("put");
        std::thread::sleep(PAUSE);
    }
}

/// Model 2 consumer: forever get, print, `task_done`.
fn customer2(q: JoinableQueue<f64>) {
    loop {
        println!("consumer got: {}", q.get().expect("get"));
        // One item read and processed: the queue's counter goes down by one.
        q.task_done().expect("task_done");
        std::thread::sleep(PAUSE);
    }
}

fn model1(n: usize) {
    let q = Queue::new().expect("queue");
    let mut p1 = Process::spawn(producer1, (q.clone(), n)).expect("spawn");
    let mut p2 = Process::spawn(customer1, (q, n)).expect("spawn");
    p1.join().expect("producer failed");
    p2.join().expect("consumer failed");
    println!("model 1 done");
}

fn model2() {
    let q = JoinableQueue::new().expect("queue");
    let mut p1 = Process::spawn(producer2, q.clone()).expect("spawn producer 1");
    let mut p2 = Process::spawn(producer2, q.clone()).expect("spawn producer 2");
    // The consumer is a daemon: it never returns, and dies with the parent.
    let c2 = Builder::new()
        .daemon(true)
        .spawn(customer2, q.clone())
        .expect("spawn consumer");
    p1.join().expect("producer 1 failed");
    p2.join().expect("producer 2 failed");
    // Every item has been put; wait until each was marked done.
    q.join().expect("join");
    println!("queue joined: {} unfinished", q.unfinished());
    // Dropping the handle of a running daemon kills it, as Python kills
    // daemonic children at exit.
    drop(c2);
    println!("model 2 done");
}

fn main() {
    multiproc::init();
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("model1") => model1(args.next().map_or(5, |s| s.parse().expect("N"))),
        Some("model2") | None => model2(),
        Some(other) => panic!("unknown model {other:?}: use model1 [N] or model2"),
    }
}
