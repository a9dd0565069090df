//! `manager-*` rows: a [`multiproc::manager`] dict `get` round trip (p50 per
//! get) and the throughput of four client processes getting at once; and
//! `python-manager-dict`, the same round trip through Python's
//! `multiprocessing.Manager`, measured in the same run (skipped, with a note
//! on stderr, where `python3` is missing). `manager-dict` is compared with
//! `python-manager-dict`.

use std::process::Command;
use std::time::{Duration, Instant};

use multiproc::Process;
use multiproc::manager::{DictProxy, Manager};

use super::harness::{BenchResult, Case, Sample, cpu_pair, round_trips};

/// The script that measures Python's Manager (shipped in the repository).
const PYTHON_SCRIPT: &str = include_str!("python_manager_dict.py");

/// Client processes of the throughput row.
const CLIENTS: usize = 4;

/// Gets per client per round of the throughput row, per iteration unit.
const GETS_PER_ITER: usize = 20;

fn key() -> String {
    "key".to_owned()
}

/// Start a manager whose server runs on the other CPU of the pair, as the
/// echo child of every other row does (the server's threads inherit the
/// affinity of the thread that spawned it).
fn start_manager() -> BenchResult<Manager> {
    let Some((mine, other)) = cpu_pair() else {
        return Ok(Manager::start()?);
    };
    multiproc::process::pin_to_cpu(other)?;
    let m = Manager::start();
    multiproc::process::pin_to_cpu(mine)?;
    Ok(m?)
}

fn dict_get(n: usize) -> BenchResult<Sample> {
    let m = start_manager()?;
    let d: DictProxy<String, i64> = m.dict()?;
    d.insert(&key(), &1)?;
    let k = key();
    let warmup = (n / 10).max(5);
    Ok(round_trips(warmup, n, || {
        std::hint::black_box(d.get(&k).expect("get"));
    }))
}

/// A client of the throughput row: `n` gets; how long they took.
fn getter(arg: (DictProxy<String, i64>, usize)) -> Duration {
    let (d, n) = arg;
    let k = key();
    d.get(&k).expect("get"); // connect before the clock starts
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(d.get(&k).expect("get"));
    }
    t.elapsed()
}

fn dict_get_clients(n: usize) -> BenchResult<Sample> {
    let m = start_manager()?;
    let d: DictProxy<String, i64> = m.dict()?;
    d.insert(&key(), &1)?;
    let per = n * GETS_PER_ITER;
    let mut ps = Vec::new();
    for _ in 0..CLIENTS {
        ps.push(Process::spawn(getter, (d.clone(), per))?);
    }
    let mut longest = Duration::ZERO;
    for p in &mut ps {
        longest = longest.max(p.join()?);
    }
    Ok(Sample::Stream(per * CLIENTS, longest))
}

#[derive(serde::Deserialize)]
struct PythonResult {
    samples: Vec<u64>,
    wall_ns: u64,
}

fn python_dict_get(n: usize) -> BenchResult<Sample> {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(PYTHON_SCRIPT).arg(n.to_string());
    if let Some((mine, other)) = cpu_pair() {
        // Client on this CPU, server on the other, as for our rows.
        cmd.arg(mine.to_string()).arg(other.to_string());
    }
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!(
            "python3 manager benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let r: PythonResult = serde_json::from_slice(&out.stdout)?;
    Ok(Sample::Latencies(
        r.samples,
        Duration::from_nanos(r.wall_ns),
    ))
}

fn python_available() -> bool {
    Command::new("python3")
        .args(["-c", "import multiprocessing.managers"])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(super) fn cases(cases: &mut Vec<Case>) {
    cases.push(Case {
        mechanism: "manager-dict",
        pattern: "pingpong",
        size: 0,
        run: Box::new(dict_get),
    });
    cases.push(Case {
        mechanism: "manager-dict-4clients",
        pattern: "stream",
        size: 8,
        run: Box::new(dict_get_clients),
    });
    if python_available() {
        cases.push(Case {
            mechanism: "python-manager-dict",
            pattern: "pingpong",
            size: 0,
            run: Box::new(python_dict_get),
        });
    } else {
        eprintln!("python3 (with multiprocessing) not found: row python-manager-dict skipped");
    }
}
