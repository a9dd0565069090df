//! Seed 001 §57.1: buying train tickets. Ten buyers read the stock from a JSON file
//! at once, but buy under a Lock, so exactly the stock is sold.
//!
//! Run: `cargo run --example ticket_buying -- [stock] [data file]`

use std::path::PathBuf;
use std::time::Duration;

use multiproc::{Lock, Process};

fn read_stock(path: &PathBuf) -> i64 {
    let text = std::fs::read_to_string(path).expect("read data file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("data file is JSON");
    v["ticket_num"].as_i64().expect("ticket_num")
}

/// Replace the data file whole (write a temporary file, then rename), so a
/// `search` running outside the lock never reads a half-written file.
fn write_stock(path: &PathBuf, stock: i64) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serde_json::json!({ "ticket_num": stock }).to_string())
        .expect("write data file");
    std::fs::rename(&tmp, path).expect("replace data file");
}

/// Seed's `search`: look at the stock without the lock.
fn search(user: u32, path: &PathBuf) {
    println!("user {user} sees {} tickets left", read_stock(path));
}

/// Seed's `buy`: read, think, decrement, write back.
fn buy(user: u32, path: &PathBuf) {
    let stock = read_stock(path);
    // The seed sleeps 1-2 s here to make the race obvious without a lock.
    std::thread::sleep(Duration::from_millis(5));
    if stock > 0 {
        write_stock(path, stock - 1);
        println!("user {user} bought a ticket");
    } else {
        println!("user {user} found no ticket");
    }
}

/// Seed's `run`: search, then buy under the lock.
fn run(arg: (u32, Lock, PathBuf)) {
    let (user, lock, path) = arg;
    search(user, &path);
    let _guard = lock.lock().expect("lock");
    buy(user, &path);
}

fn main() {
    multiproc::init();
    let stock: i64 = std::env::args()
        .nth(1)
        .map_or(3, |s| s.parse().expect("stock"));
    let path = std::env::args().nth(2).map_or_else(
        || std::env::temp_dir().join(format!("tickets-{}.json", std::process::id())),
        PathBuf::from,
    );
    write_stock(&path, stock);
    let mutex = Lock::new().expect("lock");
    let mut buyers: Vec<Process> = (1..=10)
        .map(|i| Process::spawn(run, (i, mutex.clone(), path.clone())).expect("spawn"))
        .collect();
    for b in &mut buyers {
        b.join().expect("buyer failed");
    }
    println!("tickets left: {}", read_stock(&path));
    let _ = std::fs::remove_file(&path);
}
