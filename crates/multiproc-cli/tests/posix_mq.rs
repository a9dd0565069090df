//! `multiproc ls`/`clean --kind posix-mq`: a POSIX message queue whose
//! creator died is listed as such and removed; one whose creator lives is
//! kept.

use multiproc::Process;
use multiproc::names::registry::Registry;
use multiproc::os::posix::{MessageQueue, OpenError};

mod common;

multiproc::enable_test_support!();

fn create_and_exit((name, reg): (String, String)) {
    let q: MessageQueue = MessageQueue::builder(name)
        .maxmsg(2)
        .msgsize(16)
        .registry(Registry::open(reg).unwrap())
        .create()
        .unwrap();
    q.send_bytes(b"left behind", 1).unwrap();
    // Exit without unlinking: the queue stays, its creator is dead.
}

/// Unlinks the name when the test ends, however it ends.
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = MessageQueue::unlink_name(&self.0);
    }
}

#[test]
fn clean_removes_a_dead_creators_queue_and_keeps_a_live_ones() {
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("multiproc-cli-posixmq-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let reg = dir.join("registry");
    let r = reg.to_str().unwrap().to_owned();
    let dead = format!("/multiproc-cli-test-{pid}-dead");
    let live = format!("/multiproc-cli-test-{pid}-live");
    let (_u1, _u2) = (Unlink(dead.clone()), Unlink(live.clone()));
    let cli = |args: &[&str]| common::cli(args, Some(&reg));

    Process::spawn(create_and_exit, (dead.clone(), r.clone()))
        .unwrap()
        .join()
        .unwrap();
    let mine: MessageQueue = MessageQueue::builder(&live)
        .maxmsg(2)
        .msgsize(16)
        .registry(Registry::open(&reg).unwrap())
        .create()
        .unwrap();

    let v: serde_json::Value =
        serde_json::from_str(&cli(&["ls", "--json", "--kind", "posix-mq"])).unwrap();
    let objs = v["objects"].as_array().unwrap();
    let find = |name: &str| objs.iter().find(|o| o["name"] == name).cloned();
    let d = find(&dead).unwrap_or_else(|| panic!("{dead} not listed: {v}"));
    assert_eq!(d["kind"], "posix-mq");
    assert_eq!(d["owner_alive"], false);
    assert_eq!(d["valid"], true);
    let l = find(&live).unwrap_or_else(|| panic!("{live} not listed: {v}"));
    assert_eq!(l["owner_alive"], true);
    assert_eq!(l["owner_pid"], pid);

    let out = cli(&["clean", "--kind", "posix-mq"]);
    let removed = common::removed_names(&out);
    assert!(removed.contains(&dead), "{out}");
    assert!(!removed.contains(&live), "{out}");
    assert!(matches!(
        MessageQueue::<Vec<u8>>::open(&dead),
        Err(OpenError::NotFound(_))
    ));
    MessageQueue::<Vec<u8>>::open(&live).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&cli(&["ls", "--json", "--kind", "posix-mq"])).unwrap();
    let names: Vec<&str> = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(names, [live.as_str()], "{v}");

    mine.unlink().unwrap();
    assert!(Registry::open(&reg).unwrap().list().unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
