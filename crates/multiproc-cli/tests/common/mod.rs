//! Running the `multiproc` binary from the tests.

#![allow(dead_code, reason = "each test file uses part of this module")]

use std::path::Path;
use std::process::Command;

/// Run `multiproc ARGS` (with `MULTIPROC_REGISTRY_DIR` set to `registry`
/// when given), check that it succeeded, and return its stdout.
pub fn cli(args: &[&str], registry: Option<&Path>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_multiproc"));
    cmd.args(args);
    if let Some(reg) = registry {
        cmd.env("MULTIPROC_REGISTRY_DIR", reg);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "multiproc {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `multiproc bench --smoke --json ARGS`, parsed.
pub fn bench_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["bench", "--smoke", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&cli(&all, None)).unwrap()
}

/// The (mechanism, pattern, size) of every row of a bench JSON output.
pub fn row_keys(v: &serde_json::Value) -> Vec<(String, String, u64)> {
    v["rows"]
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
        .collect()
}

/// The names that `multiproc clean` reports as removed (`removed NAME ...`
/// lines), whole: a substring test would find a short name such as a System V
/// id "1" inside another line or an owner's pid.
pub fn removed_names(clean_output: &str) -> Vec<String> {
    clean_output
        .lines()
        .filter_map(|l| l.strip_prefix("removed "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}
