//! `multiproc ls` shows named segments with their owner's liveness, and
//! `multiproc clean` removes exactly those whose owner is dead.

use std::process::Command;

use multiproc::{Process, SharedMemory};

multiproc::enable_test_support!();

fn create_and_exit(name: String) {
    let m = SharedMemory::create(&name, 128).unwrap();
    m.write(0, b"left behind").unwrap();
    // Exit without unlinking: the name stays, its owner is dead.
}

fn cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_multiproc"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
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
    assert!(out.contains(&format!("removed {dead}")), "{out}");
    assert!(!out.contains(&live), "{out}");
    assert!(SharedMemory::open(&dead).is_err());
    assert!(SharedMemory::open(&live).is_ok());
    mine.unlink().unwrap();
}
