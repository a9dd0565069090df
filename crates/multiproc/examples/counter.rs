//! Seed 000 §4.3: twenty processes decrement a shared counter, each under a
//! lock, from 20 to 0.
//!
//! The seed keeps the counter in a `Manager` dict; here it is a
//! `Value<i64>` in shared memory and the lock is a separate `Lock`, as in
//! the seed (`with lock: d['count'] -= 1`).
//!
//! Run: `cargo run --example counter`

use multiproc::{Lock, Process, RawValue};

/// Seed's `work(d, lock)`.
fn work(arg: (RawValue<i64>, Lock)) {
    let (d, lock) = arg;
    let _guard = lock.lock().expect("lock");
    println!("counter minus one, now: {}", d.get());
    d.set(d.get() - 1);
}

fn main() {
    multiproc::init();
    let lock = Lock::new().expect("lock");
    let count = RawValue::new(20i64).expect("value");
    let mut p_l: Vec<Process> = (0..20)
        .map(|_| Process::spawn(work, (count.clone(), lock.clone())).expect("spawn"))
        .collect();
    for p in &mut p_l {
        p.join().expect("worker failed");
    }
    println!("final count: {}", count.get());
}
