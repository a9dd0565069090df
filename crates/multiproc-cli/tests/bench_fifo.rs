//! `multiproc bench --filter fifo` runs the named-pipe rows: `pingpong` and
//! `stream` at 64 B and 4 KiB, and leaves nothing behind in the temporary
//! directory.

use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn fifo_rows_run_and_clean_up() {
    let leftovers = || {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("multiproc-bench-fifo-")
            })
            .count()
    };
    let before = leftovers();
    let out = Command::new(env!("CARGO_BIN_EXE_multiproc"))
        .args(["bench", "--smoke", "--json", "--filter", "fifo"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    let seen: BTreeSet<(String, u64)> = rows
        .iter()
        .map(|r| {
            assert_eq!(r["mechanism"], "fifo");
            (
                r["pattern"].as_str().unwrap().to_owned(),
                r["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, u64)> = ["pingpong", "stream"]
        .into_iter()
        .flat_map(|p| [(p.to_owned(), 64), (p.to_owned(), 4096)])
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(rows.len(), 4);
    assert!(leftovers() <= before, "a bench directory was left behind");
}
