//! `multiproc bench --filter fifo` runs the named-pipe rows: `pingpong` and
//! `stream` at 64 B and 4 KiB, and leaves nothing behind in the temporary
//! directory.

use std::collections::BTreeSet;

mod common;

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
    let v = common::bench_json(&["--filter", "fifo"]);
    let seen: BTreeSet<(String, String, u64)> = common::row_keys(&v).into_iter().collect();
    let expected: BTreeSet<(String, String, u64)> = ["pingpong", "stream"]
        .into_iter()
        .flat_map(|p| [64, 4096].map(|s| ("fifo".to_owned(), p.to_owned(), s)))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(v["rows"].as_array().unwrap().len(), 4);
    assert!(leftovers() <= before, "a bench directory was left behind");
}
