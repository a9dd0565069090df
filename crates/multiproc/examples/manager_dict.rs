//! Seed 001 §57.2.1: `manager.dict()` is set in a child process and read in
//! the parent.
//!
//! Run: `cargo run --example manager_dict`

use multiproc::Process;
use multiproc::manager::{DictProxy, Manager};

/// Seed's `task(dic)`: `dic['a'] = 'a'`.
fn task(dic: DictProxy<String, String>) {
    dic.insert(&"a".into(), &"a".into()).expect("insert");
}

fn show(dic: &DictProxy<String, String>) -> String {
    let items: Vec<String> = dic
        .items()
        .expect("items")
        .into_iter()
        .map(|(k, v)| format!("{k:?}: {v:?}"))
        .collect();
    format!("{{{}}}", items.join(", "))
}

fn main() {
    multiproc::init();
    let manager = Manager::start().expect("manager");
    let manager_dic: DictProxy<String, String> = manager.dict().expect("dict"); // the dict service
    println!("{}", show(&manager_dic)); // parent prints
    let mut p = Process::spawn(task, manager_dic.clone()).expect("spawn");
    p.join().expect("child failed");
    println!("{}", show(&manager_dic)); // parent prints
}
