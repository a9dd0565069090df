//! Seed 000 §4.3: twenty processes decrement a counter kept in a Manager
//! dict, each under a Manager lock, from 20 to 0 — and then the same
//! without a lock, with the server-side atomic `incr`.
//!
//! Run: `cargo run --example manager_counter`

use multiproc::Process;
use multiproc::manager::{DictProxy, LockProxy, Manager};

/// Seed's `work(d, lock)`: `with lock: d['count'] -= 1`.
fn work(arg: (DictProxy<String, i64>, LockProxy)) {
    let (d, lock) = arg;
    let _guard = lock.lock().expect("lock");
    let count = d.get_item(&"count".into()).expect("count");
    println!("counter minus one, now: {count}");
    d.insert(&"count".into(), &(count - 1)).expect("set");
}

/// No lock: one atomic decrement on the server.
fn work_incr(d: DictProxy<String, i64>) {
    let now = d.incr(&"count".into(), -1).expect("incr");
    println!("incr left: {now}");
}

fn main() {
    multiproc::init();
    let m = Manager::start().expect("manager"); // `with Manager() as m:`
    let lock = m.lock().expect("lock");
    let dic = m.dict_from([(&"count".to_string(), &20i64)]).expect("dict");
    let mut p_l: Vec<Process> = (0..20)
        .map(|_| Process::spawn(work, (dic.clone(), lock.clone())).expect("spawn"))
        .collect();
    for p in &mut p_l {
        p.join().expect("worker failed");
    }
    println!(
        "final count: {}",
        dic.get_item(&"count".into()).expect("count")
    );

    dic.insert(&"count".into(), &20).expect("reset");
    let mut p_l: Vec<Process> = (0..20)
        .map(|_| Process::spawn(work_incr, dic.clone()).expect("spawn"))
        .collect();
    for p in &mut p_l {
        p.join().expect("worker failed");
    }
    println!(
        "final count with incr: {}",
        dic.get_item(&"count".into()).expect("count")
    );
}
