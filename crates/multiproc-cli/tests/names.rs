//! `multiproc ls` shows named segments with their owner's liveness, and
//! `multiproc clean` removes exactly those whose owner is dead.

use multiproc::{Process, SharedMemory};

mod common;

multiproc::enable_test_support!();

fn create_and_exit(name: String) {
    let m = SharedMemory::create(&name, 128).unwrap();
    m.write(0, b"left behind").unwrap();
    // Exit without unlinking: the name stays, its owner is dead.
}

fn cli(args: &[&str]) -> String {
    common::cli(args, None)
}

#[test]
fn ls_and_clean_named_segments() {
    let tag = format!("cli-{}", std::process::id());
    let dead = format!("{tag}-dead");
    let live = format!("{tag}-live");
    let mut p = Process::spawn(create_and_exit, dead.clone()).unwrap();
    p.join().unwrap();
    let mine = SharedMemory::create(&live, 64).unwrap();

    let v: serde_json::Value = serde_json::from_str(&cli(&["ls", "--json"])).unwrap();
    let find = |name: &str| {
        v["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed: {v}"))
    };
    let d = find(&dead);
    assert_eq!(d["owner_alive"], false);
    assert_eq!(d["valid"], true);
    assert!(d["owner_pid"].as_u64().unwrap() > 0);
    let l = find(&live);
    assert_eq!(l["owner_alive"], true);
    assert_eq!(
        l["owner_pid"].as_u64().unwrap(),
        u64::from(std::process::id())
    );
    assert!(cli(&["ls"]).contains(&dead));

    let dry = cli(&["clean", "--dry-run"]);
    assert!(dry.contains(&dead) && !dry.contains(&live), "{dry}");
    assert!(SharedMemory::open(&dead).is_ok());

    let out = cli(&["clean"]);
    let removed = common::removed_names(&out);
    assert!(removed.contains(&dead), "{out}");
    assert!(!removed.contains(&live), "{out}");
    assert!(SharedMemory::open(&dead).is_err());
    assert!(SharedMemory::open(&live).is_ok());
    mine.unlink().unwrap();
}

fn record_fifo_and_exit((reg, path): (String, String)) {
    multiproc::names::registry::Registry::open(reg)
        .unwrap()
        .record(multiproc::names::Kind::Fifo, &path)
        .unwrap();
}

#[test]
fn registry_records_are_listed_and_cleaned_by_owner_liveness() {
    // A private registry, and only FIFOs: only this test's records are seen
    // and cleaned (the other test cleans dead named segments).
    let dir = std::env::temp_dir().join(format!("multiproc-names-{}", std::process::id()));
    let reg = dir.join("registry");
    std::fs::create_dir_all(&dir).unwrap();
    let dead = dir.join("dead.fifo").to_str().unwrap().to_owned();
    let live = dir.join("live.fifo").to_str().unwrap().to_owned();
    std::fs::write(&dead, b"").unwrap();
    std::fs::write(&live, b"").unwrap();
    let cli_reg = |args: &[&str]| common::cli(args, Some(&reg));
    // The dead owner: a child records and exits. The live owner: a child
    // that records and stays until it is killed.
    let r = reg.to_str().unwrap().to_owned();
    let mut p = Process::spawn(record_fifo_and_exit, (r.clone(), dead.clone())).unwrap();
    p.join().unwrap();
    let (mut ready, tx) = multiproc::pipe::<()>().unwrap();
    let mut p = multiproc::Builder::new()
        .daemon(true)
        .spawn(record_fifo_and_exit_and_stay, (r, live.clone(), tx))
        .unwrap();
    ready.recv().unwrap();

    let v: serde_json::Value =
        serde_json::from_str(&cli_reg(&["ls", "--json", "--kind", "fifo"])).unwrap();
    let objs = v["objects"].as_array().unwrap();
    let find = |name: &str| objs.iter().find(|o| o["name"] == name).cloned();
    let d = find(&dead).unwrap_or_else(|| panic!("{dead} not listed: {v}"));
    assert_eq!(d["kind"], "fifo");
    assert_eq!(d["owner_alive"], false);
    assert_eq!(d["valid"], true);
    let l = find(&live).unwrap_or_else(|| panic!("{live} not listed: {v}"));
    assert_eq!(l["owner_alive"], true);

    let out = cli_reg(&["clean", "--kind", "fifo"]);
    let removed = common::removed_names(&out);
    assert!(removed.contains(&dead), "{out}");
    assert!(!removed.contains(&live), "{out}");
    assert!(!std::path::Path::new(&dead).exists());
    assert!(std::path::Path::new(&live).exists());
    p.kill().unwrap();
    p.wait().unwrap();
    let out = cli_reg(&["clean", "--kind", "fifo"]);
    assert!(common::removed_names(&out).contains(&live), "{out}");
    assert!(!std::path::Path::new(&live).exists());
    let v: serde_json::Value =
        serde_json::from_str(&cli_reg(&["ls", "--json", "--kind", "fifo"])).unwrap();
    assert!(
        v["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["kind"] == "shm"),
        "{v}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn record_fifo_and_exit_and_stay(
    (reg, path, mut ready): (String, String, multiproc::Connection<()>),
) {
    record_fifo_and_exit((reg, path));
    ready.send(&()).unwrap();
    loop {
        std::thread::park();
    }
}
