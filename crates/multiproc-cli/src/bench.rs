//! `multiproc bench`: every mechanism measured in one run, as ratios against
//! the raw OS baselines measured in the same run.
//!
//! Patterns:
//! - `pingpong`: a child echoes each message back; the parent times every
//!   round trip and reports p50 and p99 (and round trips per second).
//! - `stream`: a child sends messages as fast as it can; the parent times
//!   from the first arrival to the last and reports messages and bytes per
//!   second.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use multiproc::{Connection, Fd, duplex, pipe};
use serde::Serialize;
use serde_bytes::ByteBuf;

#[macro_use]
mod harness;

mod aio;
mod fifo;
mod manager;
mod net;
#[cfg(feature = "peers")]
mod peers;
#[cfg(feature = "peers")]
mod peers_iceoryx;
mod pool;
mod posix_mq;
mod queue;
mod redis;
mod svg;
mod sync;
mod sysv_mq;

use harness::{
    BenchResult, BytesEnd, Case, QUEUE_CAPACITY, RawEnd, SIZES, Sample, SerdeEnd, all_cpus,
    cpu_pair, iterations, percentile, pingpong, rounds, stream,
};

/// Options of `multiproc bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// Short run (under 30 s): fewer iterations per measurement.
    #[arg(long)]
    quick: bool,
    /// Print JSON (`{"rows": [...]}`) instead of a table.
    #[arg(long)]
    json: bool,
    /// Print a Markdown table (for the README).
    #[arg(long, conflicts_with = "json")]
    markdown: bool,
    /// Only run mechanisms whose name contains this text (several texts,
    /// comma-separated: any of them, e.g. `os-pipe,fifo`).
    #[arg(long)]
    filter: Option<String>,
    /// Only run cases of this message size in bytes.
    #[arg(long)]
    size: Option<usize>,
    /// Only run cases of this pattern (`pingpong`, `stream`, …).
    #[arg(long)]
    pattern: Option<String>,
    /// Ring bytes of the queues measured (`QueueBuilder::capacity`; default:
    /// the library's default ring).
    #[arg(long)]
    queue_capacity: Option<usize>,
    /// Also measure `multiproc::redis` on the server at this URL (rows
    /// `redis-queue`, `redis-queue-batch`, and `redis-pipe-raw`, the
    /// `redis` crate by hand, as their baseline).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Also measure the peer libraries (ipc-channel, interprocess,
    /// iceoryx2, crossbeam-channel) with the same harness, and print the
    /// verdict of multiproc's queue against the best of them per case.
    #[arg(long)]
    peers: bool,
    /// Instead of the usual rows: the queue (and crossbeam, with
    /// `--peers`) at N producers × N consumers for N = 1, 2, 4, 8, 16 up to
    /// the CPUs present, each N×N's messages/s as a ratio of 1×1's.
    #[arg(long)]
    scale: bool,
    /// Also write the run as an SVG chart to this file (messages/s of the
    /// streams and p50 of the ping-pongs, by size), captioned with the
    /// date and machine.
    #[arg(long, value_name = "FILE")]
    svg: Option<std::path::PathBuf>,
    /// One short round per case: checks that every case runs (tests), measures
    /// nothing worth reading.
    #[arg(long, hide = true)]
    smoke: bool,
}

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    mechanism: String,
    pattern: &'static str,
    size: usize,
    p50_ns: Option<u64>,
    p99_ns: Option<u64>,
    msgs_per_s: Option<f64>,
    bytes_per_s: Option<f64>,
}
// ----- the mechanisms -------------------------------------------------------

fn raw_pipes() -> BenchResult<(RawEnd, RawEnd)> {
    let (r1, w1) = multiproc::baseline::pipe()?;
    let (r2, w2) = multiproc::baseline::pipe()?;
    Ok((
        RawEnd {
            rx: Some(Fd(r1)),
            tx: Some(Fd(w2)),
        },
        RawEnd {
            rx: Some(Fd(r2)),
            tx: Some(Fd(w1)),
        },
    ))
}

fn raw_socketpair() -> BenchResult<(RawEnd, RawEnd)> {
    let (a, b) = multiproc::baseline::socketpair()?;
    let a2 = multiproc::baseline::dup(&a)?;
    let b2 = multiproc::baseline::dup(&b)?;
    Ok((
        RawEnd {
            rx: Some(Fd(a)),
            tx: Some(Fd(a2)),
        },
        RawEnd {
            rx: Some(Fd(b)),
            tx: Some(Fd(b2)),
        },
    ))
}

type ConnPair = (
    (Option<Connection<ByteBuf>>, Option<Connection<ByteBuf>>),
    (Option<Connection<ByteBuf>>, Option<Connection<ByteBuf>>),
);

fn mp_pipes() -> BenchResult<ConnPair> {
    let (r1, w1) = pipe()?;
    let (r2, w2) = pipe()?;
    Ok(((Some(r1), Some(w2)), (Some(r2), Some(w1))))
}

fn mp_duplex() -> BenchResult<ConnPair> {
    let (a, b) = duplex()?;
    let (a2, b2) = (a.try_clone()?, b.try_clone()?);
    Ok(((Some(a), Some(a2)), (Some(b), Some(b2))))
}

fn bytes_ends(p: ConnPair) -> (BytesEnd, BytesEnd) {
    let ((r1, t1), (r2, t2)) = p;
    (BytesEnd { rx: r1, tx: t1 }, BytesEnd { rx: r2, tx: t2 })
}

fn serde_ends(p: ConnPair) -> (SerdeEnd, SerdeEnd) {
    let ((r1, t1), (r2, t2)) = p;
    (
        SerdeEnd {
            rx: r1,
            tx: t1,
            scratch: ByteBuf::new(),
        },
        SerdeEnd {
            rx: r2,
            tx: t2,
            scratch: ByteBuf::new(),
        },
    )
}

use aio::aio_cases;
use queue::queue_cases;
use sync::sync_cases;

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    if SCALE.load(std::sync::atomic::Ordering::Relaxed) {
        // A scaling run is its own: the N×N rows only.
        scale_cases(&mut cases);
        return cases;
    }
    case!(cases, "os-pipe", raw_pipes());
    case!(cases, "os-socketpair", raw_socketpair());
    fifo::cases(&mut cases);
    case!(cases, "pipe-bytes", mp_pipes().map(bytes_ends));
    case!(cases, "pipe-serde", mp_pipes().map(serde_ends));
    case!(cases, "duplex-bytes", mp_duplex().map(bytes_ends));
    case!(cases, "duplex-serde", mp_duplex().map(serde_ends));
    sync_cases(&mut cases);
    queue_cases(&mut cases);
    aio_cases(&mut cases);
    sysv_mq::cases(&mut cases);
    posix_mq::cases(&mut cases);
    net::cases(&mut cases);
    manager::cases(&mut cases);
    pool::cases(&mut cases);
    redis::cases(&mut cases);
    #[cfg(feature = "peers")]
    if PEERS.load(std::sync::atomic::Ordering::Relaxed) {
        peers::cases(&mut cases);
        peers_iceoryx::cases(&mut cases);
    }
    cases
}

/// The N of `--scale`: 1, 2, 4, 8, 16 up to the CPUs present (1 and 2 at
/// least).
fn scale_parties() -> Vec<usize> {
    let cpus = all_cpus().len().max(2);
    [1, 2, 4, 8, 16]
        .into_iter()
        .filter(|&n| n <= cpus)
        .collect()
}

/// Add the `--scale` rows: `queue-NxN` (and `peer-crossbeam-NxN`), 64 B.
fn scale_cases(cases: &mut Vec<Case>) {
    for n in scale_parties() {
        let name: &'static str = Box::leak(format!("queue-{n}x{n}").into_boxed_str());
        cases.push(Case {
            mechanism: name,
            pattern: "stream",
            size: 64,
            run: Box::new(move |c| queue::stream_many(64, c * queue::QUEUE_SCALE, n)),
        });
        #[cfg(feature = "peers")]
        if PEERS.load(std::sync::atomic::Ordering::Relaxed) {
            let name: &'static str = Box::leak(format!("peer-crossbeam-{n}x{n}").into_boxed_str());
            cases.push(Case {
                mechanism: name,
                pattern: "stream",
                size: 64,
                run: Box::new(move |c| peers::crossbeam_many(64, c * queue::QUEUE_SCALE, n)),
            });
        }
    }
}

/// `--scale` lines: each N×N's messages/s as a ratio of 1×1's.
fn scale_lines(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    for family in ["queue", "peer-crossbeam"] {
        let rate = |n: usize| {
            rows.iter()
                .find(|r| r.mechanism == format!("{family}-{n}x{n}"))
                .and_then(|r| r.msgs_per_s)
        };
        let Some(one) = rate(1) else { continue };
        for n in [2, 4, 8, 16] {
            if let Some(r) = rate(n) {
                out.push(format!(
                    "{family} {n}x{n} stream 64 B: {} msgs/s, {:.2}x of 1x1 (goal at 8x8 on 16+ cores: >= 0.5x)",
                    human_rate(r, ""),
                    r / one
                ));
            }
        }
    }
    out
}

/// `--scale`: add the N×N rows.
static SCALE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--peers`: add the peer rows.
static PEERS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The notes and verdict lines of the peer rows, when there are any.
fn peer_lines(rows: &[Row]) -> Vec<String> {
    if !rows.iter().any(|r| r.mechanism.starts_with("peer-")) {
        return Vec::new();
    }
    #[cfg(feature = "peers")]
    {
        let mut out: Vec<String> = peers::NOTES.iter().map(|n| (*n).to_owned()).collect();
        out.extend(peers::verdicts(rows));
        out
    }
    #[cfg(not(feature = "peers"))]
    Vec::new()
}

/// Progress on stderr: a bar on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: usize,
}

impl Progress {
    fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                    .expect("valid template"),
            );
            b
        });
        Progress {
            bar,
            total,
            done: 0,
        }
    }

    fn start(&mut self, what: &str) {
        match &self.bar {
            Some(b) => b.set_message(what.to_owned()),
            None => eprintln!("[{}/{}] {what}", self.done + 1, self.total),
        }
    }

    fn finish_one(&mut self) {
        self.done += 1;
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn human_size(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

fn human_ns(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else if ns >= 1_000 {
        format!("{:.2} µs", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}

fn human_rate(r: f64, unit: &str) -> String {
    if r >= 1e9 {
        format!("{:.2} G{unit}", r / 1e9)
    } else if r >= 1e6 {
        format!("{:.2} M{unit}", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k{unit}", r / 1e3)
    } else {
        format!("{r:.0} {unit}")
    }
}

/// The baseline a row is compared with: the first OS mechanism measured
/// with the same pattern and size (the raw pipe for connections, the POSIX
/// semaphore for locks, the raw futex for events).
fn baseline<'a>(row: &Row, rows: &'a [Row]) -> Option<&'a Row> {
    if row.mechanism == "memcpy" || row.mechanism == "python-manager-dict" {
        // A bandwidth limit, not a messaging mechanism; a peer, not ours.
        return None;
    }
    if row.mechanism.starts_with("redis-") {
        // Against the `redis` crate by hand, on the same server.
        return rows.iter().find(|b| {
            b.mechanism == "redis-pipe-raw" && b.pattern == row.pattern && b.size == row.size
        });
    }
    if row.mechanism.starts_with("pool-") {
        // A pool is measured against a process per task.
        return rows.iter().find(|b| b.mechanism == "spawn-per-task");
    }
    if row.mechanism == "manager-dict" {
        // A manager is measured against Python's.
        return rows
            .iter()
            .find(|b| b.mechanism == "python-manager-dict" && b.pattern == row.pattern);
    }
    rows.iter()
        .find(|b| b.mechanism.starts_with("os-") && b.pattern == row.pattern && b.size == row.size)
}

fn ratio_to_baseline(row: &Row, rows: &[Row]) -> Option<f64> {
    let base = baseline(row, rows)?;
    match row.pattern {
        "stream" => Some(row.msgs_per_s? / base.msgs_per_s?),
        _ => Some(row.p50_ns? as f64 / base.p50_ns? as f64),
    }
}

/// The goals of the queue (issue 4) and the manager (issue 6) as ratios
/// within this run, where both rows were measured.
fn goals(rows: &[Row]) -> Vec<String> {
    let find = |m: &str, p: &str, size: usize| {
        rows.iter()
            .find(|r| r.mechanism == m && r.pattern == p && r.size == size)
    };
    let rate = |m: &str, size: usize| find(m, "stream", size).and_then(|r| r.msgs_per_s);
    let bytes = |m: &str, size: usize| find(m, "stream", size).and_then(|r| r.bytes_per_s);
    let p50 = |m: &str, p: &str| find(m, p, 64).and_then(|r| r.p50_ns);
    let mut out = Vec::new();
    if let (Some(q), Some(b)) = (rate("queue-bytes", 64), rate("os-pipe", 64)) {
        out.push(format!(
            "queue-bytes 64 B stream {:.1}x os-pipe (goal 10x)",
            q / b
        ));
    }
    if let (Some(q), Some(b)) = (rate("queue-batch", 64), rate("os-pipe", 64)) {
        out.push(format!(
            "queue-batch 64 B stream {:.1}x os-pipe (goal 20x)",
            q / b
        ));
    }
    if let (Some(q), Some(b)) = (bytes("queue-bytes", 1 << 20), bytes("memcpy", 1 << 20)) {
        out.push(format!(
            "queue-bytes 1 MiB stream {:.2}x memcpy (goal 0.4x)",
            q / b
        ));
    }
    if let (Some(q), Some(b)) = (p50("queue-bytes", "pingpong"), p50("os-pipe", "pingpong")) {
        out.push(format!(
            "queue-bytes 64 B pingpong p50 {} vs os-pipe {} (goal no worse)",
            human_ns(q),
            human_ns(b)
        ));
    }
    if let Some(q) = p50("queue-bytes", "pingpong-busy") {
        out.push(format!(
            "queue-bytes 64 B busy pingpong p50 {} (goal under 2 µs)",
            human_ns(q)
        ));
    }
    if let (Some(a), Some(q)) = (rate("queue-async", 64), rate("queue-bytes", 64)) {
        out.push(format!(
            "queue-async 64 B stream {:.2}x queue-bytes (goal 0.7x)",
            a / q
        ));
    }
    if let (Some(a), Some(q)) = (
        p50("queue-async", "pingpong"),
        p50("queue-bytes", "pingpong"),
    ) {
        out.push(format!(
            "queue-async 64 B pingpong p50 {} vs queue-bytes {}",
            human_ns(a),
            human_ns(q)
        ));
    }
    if let (Some(q), Some(b)) = (rate("redis-queue", 64), rate("redis-pipe-raw", 64)) {
        out.push(format!(
            "redis-queue 64 B stream {:.2}x redis-pipe-raw (goal 0.8x)",
            q / b
        ));
    }
    if let (Some(q), Some(b)) = (rate("redis-queue-batch", 64), rate("redis-pipe-raw", 64)) {
        out.push(format!(
            "redis-queue-batch 64 B stream {:.1}x redis-pipe-raw (goal 5x)",
            q / b
        ));
    }
    let p50_0 = |m: &str| find(m, "pingpong", 0).and_then(|r| r.p50_ns);
    if let (Some(m), Some(py)) = (p50_0("manager-dict"), p50_0("python-manager-dict")) {
        out.push(format!(
            "manager-dict get p50 {} vs python-manager-dict {}: {:.1}x faster (goal 5x)",
            human_ns(m),
            human_ns(py),
            py as f64 / m as f64
        ));
    }
    out
}

/// A ratio with two significant digits below 0.1 (0.004x, not 0.00x).
fn human_ratio(x: f64) -> String {
    if x > 0.0 && x < 0.1 {
        let decimals = (-x.log10().floor()) as usize + 1;
        format!("{x:.decimals$}")
    } else {
        format!("{x:.2}")
    }
}

fn print_table(rows: &[Row]) {
    let w = rows
        .iter()
        .map(|r| r.mechanism.len())
        .max()
        .unwrap_or(0)
        .max(9);
    let wp = rows
        .iter()
        .map(|r| r.pattern.len())
        .max()
        .unwrap_or(0)
        .max(7);
    println!(
        "{:<w$} {:<wp$} {:>7} {:>11} {:>11} {:>12} {:>12} {:>26}",
        "mechanism", "pattern", "size", "p50", "p99", "ops/s", "bytes/s", "vs baseline"
    );
    for r in rows {
        let ratio = ratio_to_baseline(r, rows).map_or(String::new(), |x| {
            format!(
                "{}x {}",
                human_ratio(x),
                baseline(r, rows).map_or("", |b| b.mechanism.as_str())
            )
        });
        println!(
            "{:<w$} {:<wp$} {:>7} {:>11} {:>11} {:>12} {:>12} {:>26}",
            r.mechanism,
            r.pattern,
            human_size(r.size),
            r.p50_ns.map_or(String::new(), human_ns),
            r.p99_ns.map_or(String::new(), human_ns),
            r.msgs_per_s.map_or(String::new(), |x| human_rate(x, "")),
            r.bytes_per_s.map_or(String::new(), |x| human_rate(x, "B")),
            ratio,
        );
    }
    println!();
    println!(
        "vs baseline: against the OS mechanism of the same pattern and size in this run \
         (the manager against Python's, the pool against a process per task); p50 ratio \
         for pingpong and uncontended (lower is better), msgs/s for stream (higher is better)."
    );
    for goal in goals(rows) {
        println!("{goal}");
    }
    for line in peer_lines(rows).into_iter().chain(scale_lines(rows)) {
        println!("{line}");
    }
}

/// Fold the rounds of one case into its row.
fn summarize(case: &Case, samples: Vec<Sample>) -> Row {
    let mut lat = Vec::new();
    let mut wall = Duration::ZERO;
    let mut msgs = 0usize;
    for s in samples {
        match s {
            Sample::Latencies(v, d) => {
                msgs += v.len();
                lat.extend(v);
                wall += d;
            }
            Sample::Stream(n, d) => {
                msgs += n;
                wall += d;
            }
            Sample::Ops(v, n, d) => {
                lat.extend(v);
                msgs += n;
                wall += d;
            }
        }
    }
    let rate = msgs as f64 / wall.as_secs_f64().max(1e-9);
    lat.sort_unstable();
    let (p50, p99) = if lat.is_empty() {
        (None, None)
    } else {
        (Some(percentile(&lat, 0.50)), Some(percentile(&lat, 0.99)))
    };
    Row {
        mechanism: case.mechanism.to_owned(),
        pattern: case.pattern,
        size: case.size,
        p50_ns: p50,
        p99_ns: p99,
        msgs_per_s: Some(rate),
        bytes_per_s: (case.pattern == "stream").then_some(rate * case.size as f64),
    }
}

fn print_markdown(rows: &[Row]) {
    println!("| mechanism | pattern | size | p50 | p99 | ops/s | bytes/s | vs baseline |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let ratio = ratio_to_baseline(r, rows).map_or(String::new(), |x| {
            format!(
                "{}x {}",
                human_ratio(x),
                baseline(r, rows).map_or("", |b| b.mechanism.as_str())
            )
        });
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.mechanism,
            r.pattern,
            human_size(r.size),
            r.p50_ns.map_or(String::new(), human_ns),
            r.p99_ns.map_or(String::new(), human_ns),
            r.msgs_per_s.map_or(String::new(), |x| human_rate(x, "")),
            r.bytes_per_s.map_or(String::new(), |x| human_rate(x, "B")),
            ratio,
        );
    }
    let mut goals = goals(rows);
    goals.extend(peer_lines(rows));
    goals.extend(scale_lines(rows));
    if !goals.is_empty() {
        println!();
        for goal in goals {
            println!("- {goal}");
        }
    }
}

/// The date (UTC) and this machine, for a chart's caption.
fn caption() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{year:04}-{month:02}-{day:02}, {} CPUs ({cpu}), Linux {}",
        all_cpus().len(),
        kernel.trim()
    )
}

/// Run the benchmark.
pub(crate) fn run(opts: &Options) -> BenchResult<()> {
    if let Some(bytes) = opts.queue_capacity {
        let _ = QUEUE_CAPACITY.set(bytes);
    }
    if let Some(url) = &opts.redis {
        let _ = redis::URL.set(url.clone());
    }
    if opts.scale {
        SCALE.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    if opts.peers {
        if cfg!(feature = "peers") {
            PEERS.store(true, std::sync::atomic::Ordering::Relaxed);
        } else {
            return Err(
                "--peers needs the `peers` feature of multiproc-cli (on by default)".into(),
            );
        }
    }
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| {
            opts.filter
                .as_ref()
                .is_none_or(|f| f.split(',').any(|f| c.mechanism.contains(f)))
                && opts.size.is_none_or(|s| c.size == s)
                && opts
                    .pattern
                    .as_ref()
                    .is_none_or(|p| c.pattern == p.as_str())
        })
        .collect();
    // Groups of cases that take turns: same pattern and size.
    let mut groups: Vec<(&'static str, usize)> = Vec::new();
    for c in &cases {
        if !groups.contains(&(c.pattern, c.size)) {
            groups.push((c.pattern, c.size));
        }
    }
    // Read the CPU set before pinning (see `cpu_pair`).
    all_cpus();
    if let Some((parent, _)) = cpu_pair() {
        multiproc::process::pin_to_cpu(parent)?;
    }
    let rounds = if opts.smoke { 1 } else { rounds(opts.quick) };
    let mut progress = Progress::new(groups.len() * rounds);
    let mut samples: Vec<Vec<Sample>> = cases.iter().map(|_| Vec::new()).collect();
    let started = Instant::now();
    for &(pattern, size) in &groups {
        for round in 0..rounds {
            progress.start(&format!(
                "{pattern} {} round {}/{rounds}",
                human_size(size),
                round + 1
            ));
            for (i, case) in cases.iter().enumerate() {
                if (case.pattern, case.size) == (pattern, size) {
                    let n = iterations(pattern, size, opts.quick);
                    let n = if opts.smoke { (n / 50).max(3) } else { n };
                    samples[i].push((case.run)(n)?);
                }
            }
            progress.finish_one();
        }
    }
    progress.finish();
    let rows: Vec<Row> = cases
        .iter()
        .zip(samples)
        .map(|(c, s)| summarize(c, s))
        .collect();
    if let Some(path) = &opts.svg {
        std::fs::write(path, svg::render(&rows, &caption()))?;
        eprintln!("wrote {}", path.display());
    }
    if opts.json {
        println!("{}", serde_json::json!({ "rows": rows }));
    } else if opts.markdown {
        print_markdown(&rows);
    } else {
        print_table(&rows);
        eprintln!("measured in {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}
