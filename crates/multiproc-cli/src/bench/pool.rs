//! `pool-*` rows (issue 18): `pool-apply`, the round trip of one tiny task
//! through a [`Pool`] of one worker (p50); `pool-map`, tasks per second of a
//! `map` of many tiny tasks over a pool of one worker per CPU, with the
//! default chunk size; and `spawn-per-task`, the naive way, a new
//! [`Process`] per task, spawned and joined: the baseline of both.

use std::time::Instant;

use multiproc::{Pool, Process};

use super::harness::{BenchResult, Case, Sample, all_cpus, round_trips};

/// Tasks of one `pool-map` sample per iteration unit (`iterations` gives
/// 100 for this row: 100,000 tasks).
const MAP_TASKS_PER_ITER: usize = 1_000;

/// Round trips of one `spawn-per-task` sample at most (each is a process
/// start, milliseconds).
const SPAWNS: usize = 100;

/// The task: a multiplication, so that the rows measure the pool.
fn tiny(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn pool_apply(n: usize) -> BenchResult<Sample> {
    let pool = Pool::new(1)?;
    let warmup = (n / 10).max(5);
    let mut x = 0u64;
    let sample = round_trips(warmup, n, || {
        x += 1;
        std::hint::black_box(pool.apply(tiny, x).expect("apply"));
    });
    pool.terminate();
    Ok(sample)
}

fn pool_map(n: usize) -> BenchResult<Sample> {
    let pool = Pool::new(all_cpus().len().max(1))?;
    let tasks = n * MAP_TASKS_PER_ITER;
    // Warm up: every worker started and through its first chunk.
    pool.map(tiny, 0..1_000u64)?;
    let t = Instant::now();
    let out = pool.map(tiny, 0..tasks as u64)?;
    let elapsed = t.elapsed();
    std::hint::black_box(out);
    pool.terminate();
    Ok(Sample::Stream(tasks, elapsed))
}

fn spawn_per_task(n: usize) -> BenchResult<Sample> {
    let mut x = 0u64;
    Ok(round_trips(2, n.min(SPAWNS), || {
        x += 1;
        let mut p = Process::spawn(tiny, x).expect("spawn");
        std::hint::black_box(p.join().expect("join"));
    }))
}

pub(super) fn cases(cases: &mut Vec<Case>) {
    cases.push(Case {
        mechanism: "spawn-per-task",
        pattern: "pingpong",
        size: 8,
        run: Box::new(spawn_per_task),
    });
    cases.push(Case {
        mechanism: "pool-apply",
        pattern: "pingpong",
        size: 8,
        run: Box::new(pool_apply),
    });
    cases.push(Case {
        mechanism: "pool-map",
        pattern: "stream",
        size: 8,
        run: Box::new(pool_map),
    });
}
