//! Seed 000 §4.4: thirteen people and five stalls. A `Semaphore(5)` lets at
//! most five processes in at once; a shared counter, updated under its lock,
//! records the most that were ever inside.
//!
//! Run: `cargo run --example toilet_semaphore`

use std::time::Duration;

use multiproc::{Array, Process, Semaphore};

/// Seed's `go_wc(sem, user)`; `stats` = [inside now, most ever inside].
fn go_wc(arg: (Semaphore, u32, Array<u32>)) {
    let (sem, user, stats) = arg;
    sem.acquire();
    {
        let g = stats.lock().expect("lock");
        let inside = g.get(0).expect("cell") + 1;
        g.set(0, inside).expect("cell");
        if inside > g.get(1).expect("cell") {
            g.set(1, inside).expect("cell");
        }
    }
    println!("user{user} got a stall");
    // The seed sleeps 0-3 s; vary it a little per user.
    std::thread::sleep(Duration::from_millis(20 + u64::from(user % 4) * 15));
    {
        let g = stats.lock().expect("lock");
        let inside = g.get(0).expect("cell") - 1;
        g.set(0, inside).expect("cell");
    }
    sem.release().expect("release");
}

fn main() {
    multiproc::init();
    let sem = Semaphore::new(5).expect("semaphore");
    let stats = Array::<u32>::zeroed(2).expect("array");
    let mut p_l: Vec<Process> = (0..13)
        .map(|i| Process::spawn(go_wc, (sem.clone(), i, stats.clone())).expect("spawn"))
        .collect();
    for p in &mut p_l {
        p.join().expect("user failed");
    }
    let s = stats.to_vec().expect("stats");
    println!("most inside at once: {}", s[1]);
    println!("inside at the end: {}", s[0]);
}
