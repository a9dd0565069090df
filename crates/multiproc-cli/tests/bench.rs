//! `multiproc bench --quick --json` prints one row per mechanism, pattern and
//! size, with the fields later comparisons rely on. (Numbers are not judged
//! here: speed is measured by the benchmark, not by tests.)

use std::collections::BTreeSet;
use std::process::Command;

mod common;

#[test]
fn bench_quick_json_prints_every_row() {
    let out = Command::new(env!("CARGO_BIN_EXE_multiproc"))
        .args(["bench", "--quick", "--smoke", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Progress goes to stderr, so stdout is pure JSON.
    assert!(!out.stderr.is_empty(), "no progress was shown");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    let mut seen = BTreeSet::new();
    for r in rows {
        let mech = r["mechanism"].as_str().unwrap().to_owned();
        let pattern = r["pattern"].as_str().unwrap().to_owned();
        let size = r["size"].as_u64().unwrap();
        match pattern.as_str() {
            "pingpong" | "pingpong-busy" | "uncontended" => {
                assert!(r["p50_ns"].as_u64().unwrap() > 0);
                assert!(r["p99_ns"].as_u64().unwrap() >= r["p50_ns"].as_u64().unwrap());
            }
            "stream" => {
                assert!(r["msgs_per_s"].as_f64().unwrap() > 0.0);
                let bps = r["bytes_per_s"].as_f64().unwrap();
                let mps = r["msgs_per_s"].as_f64().unwrap();
                assert!((bps / (mps * size as f64) - 1.0).abs() < 1e-6);
            }
            p => panic!("unknown pattern {p}"),
        }
        seen.insert((mech, pattern, size));
    }
    for (mech, pattern) in [
        ("lock", "uncontended"),
        ("os-posix-sem", "uncontended"),
        ("os-pthread-robust", "uncontended"),
        ("event", "pingpong"),
        ("os-futex", "pingpong"),
    ] {
        assert!(
            seen.contains(&(mech.to_owned(), pattern.to_owned(), 0)),
            "missing row {mech} {pattern} 0"
        );
    }
    for mech in [
        "os-pipe",
        "os-socketpair",
        "pipe-bytes",
        "pipe-serde",
        "duplex-bytes",
        "duplex-serde",
    ] {
        for pattern in ["pingpong", "stream"] {
            for size in [64, 4096, 1 << 20] {
                assert!(
                    seen.contains(&(mech.to_owned(), pattern.to_owned(), size)),
                    "missing row {mech} {pattern} {size}"
                );
            }
        }
    }
    // The operating system's IPC objects, at the sizes they carry.
    for mech in ["fifo", "posix-mq", "sysv-mq", "uds", "tcp"] {
        for pattern in ["pingpong", "stream"] {
            for size in [64, 4096] {
                assert!(
                    seen.contains(&(mech.to_owned(), pattern.to_owned(), size)),
                    "missing row {mech} {pattern} {size}"
                );
            }
        }
    }
    for (mech, pattern, size) in [
        ("queue-bytes", "pingpong-busy", 64),
        ("queue-bytes", "uncontended", 64),
        ("spawn-per-task", "pingpong", 8),
        ("pool-apply", "pingpong", 8),
        ("pool-map", "stream", 8),
    ] {
        assert!(
            seen.contains(&(mech.to_owned(), pattern.to_owned(), size)),
            "missing row {mech} {pattern} {size}"
        );
    }
    for size in [64, 4096, 1 << 20] {
        for (mech, pattern) in [
            ("queue-bytes", "pingpong"),
            ("queue-serde", "pingpong"),
            ("queue-bytes", "stream"),
            ("queue-serde", "stream"),
            ("queue-batch", "stream"),
            ("queue-4x4", "stream"),
            ("memcpy", "stream"),
        ] {
            assert!(
                seen.contains(&(mech.to_owned(), pattern.to_owned(), size)),
                "missing row {mech} {pattern} {size}"
            );
        }
    }
}

#[test]
fn filter_selects_mechanisms() {
    let v = common::bench_json(&["--filter", "os-pipe"]);
    let rows = common::row_keys(&v);
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|(m, _, _)| m == "os-pipe"));
}

#[test]
fn filter_takes_several_mechanisms() {
    let v = common::bench_json(&["--filter", "os-pipe,fifo", "--size", "64"]);
    let mut rows: Vec<String> = common::row_keys(&v)
        .into_iter()
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            "fifo pingpong",
            "fifo stream",
            "os-pipe pingpong",
            "os-pipe stream"
        ]
    );
}

/// `--redis URL` adds the Redis rows, each against the raw client's.
#[test]
fn bench_redis_rows_run_against_the_raw_client() {
    let Ok(url) = std::env::var("MULTIPROC_REDIS_URL") else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED bench_redis_rows_run_against_the_raw_client: MULTIPROC_REDIS_URL is not set"
        );
        return;
    };
    let v = common::bench_json(&["--quick", "--filter", "redis", "--redis", &url]);
    let seen: BTreeSet<(String, String, u64)> = common::row_keys(&v).into_iter().collect();
    for size in [64, 4096] {
        for (mech, pattern) in [
            ("redis-pipe-raw", "pingpong"),
            ("redis-pipe-raw", "stream"),
            ("redis-queue", "pingpong"),
            ("redis-queue", "stream"),
            ("redis-queue-batch", "stream"),
        ] {
            assert!(
                seen.contains(&(mech.to_owned(), pattern.to_owned(), size)),
                "missing row {mech} {pattern} {size}"
            );
        }
    }
    // Every round removed what it made.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_connection().unwrap();
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("*multiproc-bench-*")
        .query(&mut c)
        .unwrap();
    assert!(left.is_empty(), "left on the server: {left:?}");
}

/// `--peers` runs every peer row, each pattern and size, and prints the
/// verdict of the queue against the best cross-process peer.
#[test]
fn bench_peers_runs_every_peer_row_and_the_verdicts() {
    let table = common::cli(
        &[
            "bench",
            "--quick",
            "--smoke",
            "--peers",
            "--filter",
            "peer-,queue-bytes",
        ],
        None,
    );
    for mech in [
        "peer-ipc-channel-bytes",
        "peer-ipc-channel-typed",
        "peer-interprocess",
        "peer-iceoryx2-loan",
        "peer-iceoryx2-copy",
        "peer-crossbeam",
        "peer-crossbeam-4x4",
    ] {
        let rows = table
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(mech))
            .count();
        let want = if mech.ends_with("4x4") { 3 } else { 6 };
        assert_eq!(rows, want, "{mech}: {rows} rows in\n{table}");
    }
    for case in ["64 B stream", "1 MiB stream", "64 B pingpong-busy"] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(&format!("queue-bytes {case} "))
                    && l.contains("best cross-process peer")),
            "no verdict for {case} in\n{table}"
        );
    }
}
