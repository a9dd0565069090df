//! Seed 003, data isolation: ten children each decrement a global, and the
//! parent still sees 100. Every process has its own copy of the global,
//! whether the child is spawned (a fresh copy of the program) or forked (a
//! copy of the parent's memory).
//!
//! Run: `cargo run --example data_isolation`

use std::sync::atomic::{AtomicI64, Ordering};

use multiproc::Process;

static NUM: AtomicI64 = AtomicI64::new(100);

/// Seed 003's `func`: `global num; num -= 1`, returning what this process saw.
fn func(_: ()) -> i64 {
    NUM.fetch_sub(1, Ordering::SeqCst) - 1
}

fn main() {
    multiproc::init();
    let mut process_list = Vec::new();
    for _ in 0..10 {
        process_list.push(Process::spawn(func, ()).expect("spawn"));
    }
    for p in &mut process_list {
        let seen = p.join().expect("child failed");
        println!("spawned child {} saw num={seen}", p.pid().unwrap_or(0));
    }
    // Fork copies the parent's memory at the moment of the fork.
    NUM.store(50, Ordering::SeqCst);
    let mut forked = Process::fork(|| func(())).expect("fork");
    println!(
        "forked child saw num={}",
        forked.join().expect("child failed")
    );
    NUM.store(100, Ordering::SeqCst);
    println!("num={}", NUM.load(Ordering::SeqCst));
}
