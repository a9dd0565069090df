//! A process pool that never hangs: a task that kills its worker, one that
//! panics and one that hangs each fail alone, and the pool goes on serving.
//! (Python's `multiprocessing.Pool` hangs for ever on the first;
//! `ProcessPoolExecutor` breaks for good.)
//!
//! Run: `cargo run --example pool_never_hangs`

use std::time::Duration;

use multiproc::{Pool, TaskError};

/// Squares `x`; 13 aborts the worker, 14 panics, 15 hangs.
fn risky(x: u64) -> u64 {
    match x {
        13 => std::process::abort(),
        14 => panic!("fourteen is right out"),
        15 => loop {
            std::thread::sleep(Duration::from_secs(60));
        },
        _ => x * x,
    }
}

fn main() {
    multiproc::init();
    let pool = Pool::builder()
        .processes(2)
        .task_timeout(Duration::from_secs(1))
        .build()
        .expect("start the pool");
    let tasks = pool
        .map_async(risky, 10..=17, Some(1))
        .expect("submit the tasks");
    for (x, task) in (10..=17).zip(&tasks) {
        match task.get() {
            Ok(v) => println!("risky({x}) = {v}"),
            Err(TaskError::WorkerDied { exit, .. }) => {
                println!("risky({x}): its worker died ({exit})")
            }
            Err(TaskError::Panicked { message, .. }) => {
                println!("risky({x}): panicked: {message}")
            }
            Err(TaskError::TimedOut) => println!("risky({x}): timed out, worker killed"),
            Err(e) => println!("risky({x}): {e}"),
        }
    }
    let squares = pool.map(risky, 0..10).expect("a map after the failures");
    println!("the pool goes on: {squares:?}");
    pool.join();
}
