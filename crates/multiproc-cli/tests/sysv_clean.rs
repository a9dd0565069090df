//! `multiproc ls`/`clean --kind sysv-msg`: a System V queue whose creator
//! died is listed with a dead owner and removed; a live creator's is kept.

use multiproc::Process;
use multiproc::names::registry::Registry;
use multiproc::os::sysv::{Key, MessageQueue};

mod common;

multiproc::enable_test_support!();

/// Creates a private queue recorded in the registry `reg`, and exits
/// without removing it.
fn create_queue_and_exit(reg: String) -> i32 {
    let q = MessageQueue::builder(Key::PRIVATE)
        .registry(Registry::open(reg).unwrap())
        .create()
        .unwrap();
    q.send(1, b"left behind").unwrap();
    q.id()
}

/// Removes the queues when dropped, even when the test fails.
struct Guard(Vec<MessageQueue>);

impl Drop for Guard {
    fn drop(&mut self) {
        for q in &self.0 {
            let _ = q.remove();
        }
    }
}

#[test]
fn clean_removes_a_sysv_queue_whose_creator_died() {
    let dir = std::env::temp_dir().join(format!("multiproc-sysv-clean-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let reg = dir.join("registry");
    std::fs::create_dir_all(&dir).unwrap();
    let r = reg.to_str().unwrap().to_owned();
    let cli = |args: &[&str]| common::cli(args, Some(&reg));

    let mut p = Process::spawn(create_queue_and_exit, r.clone()).unwrap();
    let dead = MessageQueue::from_id(p.join().unwrap());
    let live = MessageQueue::builder(Key::PRIVATE)
        .registry(Registry::open(&reg).unwrap())
        .create()
        .unwrap();
    let _g = Guard(vec![dead.clone(), live.clone()]);
    let (dead_id, live_id) = (dead.id().to_string(), live.id().to_string());

    let v: serde_json::Value =
        serde_json::from_str(&cli(&["ls", "--json", "--kind", "sysv-msg"])).unwrap();
    let objs = v["objects"].as_array().unwrap();
    let find = |name: &str| {
        objs.iter()
            .find(|o| o["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed: {v}"))
    };
    let d = find(&dead_id);
    assert_eq!(d["kind"], "sysv-msg");
    assert_eq!(d["owner_alive"], false);
    assert_eq!(d["valid"], true);
    assert_eq!(
        d["owner_pid"].as_u64().unwrap(),
        u64::from(p.pid().unwrap())
    );
    assert_eq!(find(&live_id)["owner_alive"], true);
    assert_eq!(dead.stats().unwrap().messages, 1);

    let out = cli(&["clean", "--kind", "sysv-msg"]);
    let removed = common::removed_names(&out);
    assert!(removed.contains(&dead_id), "{out}");
    assert!(!removed.contains(&live_id), "{out}");
    assert!(
        dead.stats().is_err(),
        "the dead creator's queue still exists"
    );
    assert!(live.stats().is_ok());

    live.remove().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&cli(&["ls", "--json", "--kind", "sysv-msg"])).unwrap();
    assert_eq!(v["objects"].as_array().unwrap().len(), 0, "{v}");
    std::fs::remove_dir_all(&dir).unwrap();
}
