//! `multiproc bench --filter sysv-mq` gives the System V message queue rows:
//! `pingpong` and `stream` at 64 B and 4 KiB, and the queues are removed.

use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn sysv_mq_rows() {
    let out = Command::new(env!("CARGO_BIN_EXE_multiproc"))
        .args(["bench", "--smoke", "--json", "--filter", "sysv-mq"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let seen: BTreeSet<(String, String, u64)> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["mechanism"].as_str().unwrap().to_owned(),
                r["pattern"].as_str().unwrap().to_owned(),
                r["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, u64)> = ["pingpong", "stream"]
        .iter()
        .flat_map(|p| [64, 4096].map(|s| ("sysv-mq".to_owned(), (*p).to_owned(), s)))
        .collect();
    assert_eq!(seen, want, "{v}");
}
