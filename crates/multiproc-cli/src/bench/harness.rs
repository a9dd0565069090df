//! What every row is measured with: the endpoints and their echo and stream
//! children, pinning, the ping-pong and stream loops, the case table.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use multiproc::{Connection, Fd, Process, Queue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

pub(super) type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// `--queue-capacity`, read by every queue case.
pub(super) static QUEUE_CAPACITY: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// A queue for a measurement: the default one, or with `--queue-capacity`.
pub(super) fn bench_queue<T>() -> std::io::Result<Queue<T>> {
    match QUEUE_CAPACITY.get() {
        Some(&bytes) => Queue::<T>::builder().capacity(bytes).build(),
        None => Queue::new(),
    }
}

/// What the child of a measurement does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct Job {
    pub(super) size: usize,
    pub(super) count: usize,
    /// The CPU the child pins itself to, if any.
    pub(super) cpu: Option<usize>,
}

/// CPUs for (parent, child): two different ones when there are two, so every
/// measurement crosses cores the same way instead of switching between a
/// same-core and a cross-core hand-off from run to run.
///
/// Read once, before the parent pins itself: afterwards the parent's
/// affinity is its one CPU, and a child that inherited it would share the
/// parent's core.
pub(super) fn cpu_pair() -> Option<(usize, usize)> {
    match all_cpus() {
        [a, b, ..] => Some((*a, *b)),
        _ => None,
    }
}

/// The CPUs this process was allowed to run on when the benchmark started.
pub(super) fn all_cpus() -> &'static [usize] {
    static CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    CPUS.get_or_init(|| multiproc::process::allowed_cpus().unwrap_or_default())
}

pub(super) fn pin_child(job: &Job) {
    if let Some(cpu) = job.cpu {
        let _ = multiproc::process::pin_to_cpu(cpu);
    }
}

/// A way of moving one message each way, for both sides of a measurement.
pub(super) trait Endpoint: Serialize + DeserializeOwned + Send + 'static {
    fn send(&mut self, msg: &[u8]);
    /// Receive one message into `buf` (whose length is the message size).
    fn recv(&mut self, buf: &mut Vec<u8>);
}

/// Raw descriptors: one `write` per message, `read` until the message is in.
#[derive(Serialize, Deserialize)]
pub(super) struct RawEnd {
    pub(super) rx: Option<Fd>,
    pub(super) tx: Option<Fd>,
}

impl Endpoint for RawEnd {
    fn send(&mut self, msg: &[u8]) {
        let tx = self.tx.as_ref().expect("write end");
        multiproc::baseline::write_all(tx, msg).expect("write");
    }
    fn recv(&mut self, buf: &mut Vec<u8>) {
        let rx = self.rx.as_ref().expect("read end").as_fd();
        let mut got = 0;
        while got < buf.len() {
            let n = multiproc::baseline::read(rx, &mut buf[got..]).expect("read");
            assert!(n > 0, "unexpected end of file");
            got += n;
        }
    }
}

/// A multiproc connection pair used with `send_bytes`/`recv_bytes`.
#[derive(Serialize, Deserialize)]
pub(super) struct BytesEnd {
    pub(super) rx: Option<Connection<ByteBuf>>,
    pub(super) tx: Option<Connection<ByteBuf>>,
}

impl Endpoint for BytesEnd {
    fn send(&mut self, msg: &[u8]) {
        self.tx.as_mut().expect("tx").send_bytes(msg).expect("send");
    }
    fn recv(&mut self, buf: &mut Vec<u8>) {
        *buf = self.rx.as_mut().expect("rx").recv_bytes().expect("recv");
    }
}

/// A multiproc connection pair used with serde `send`/`recv` of a byte buffer.
#[derive(Serialize, Deserialize)]
pub(super) struct SerdeEnd {
    pub(super) rx: Option<Connection<ByteBuf>>,
    pub(super) tx: Option<Connection<ByteBuf>>,
    #[serde(skip)]
    pub(super) scratch: ByteBuf,
}

impl Endpoint for SerdeEnd {
    fn send(&mut self, msg: &[u8]) {
        self.scratch.clear();
        self.scratch.extend_from_slice(msg);
        self.tx
            .as_mut()
            .expect("tx")
            .send(&self.scratch)
            .expect("send");
    }
    fn recv(&mut self, buf: &mut Vec<u8>) {
        *buf = self
            .rx
            .as_mut()
            .expect("rx")
            .recv()
            .expect("recv")
            .into_vec();
    }
}

/// Child side of `pingpong`: echo `count` messages.
pub(super) fn echo_child<E: Endpoint>(arg: (E, Job)) {
    let (mut end, job) = arg;
    pin_child(&job);
    let mut buf = vec![0u8; job.size];
    for _ in 0..job.count {
        buf.resize(job.size, 0);
        end.recv(&mut buf);
        end.send(&buf);
    }
}

/// Child side of `stream`: send `count` messages.
pub(super) fn stream_child<E: Endpoint>(arg: (E, Job)) {
    let (mut end, job) = arg;
    pin_child(&job);
    let msg = vec![0x5Au8; job.size];
    for _ in 0..job.count {
        end.send(&msg);
    }
}

pub(super) fn percentile(sorted: &[u64], p: f64) -> u64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// What one run of a case measured.
pub(super) enum Sample {
    /// Round-trip times, and the wall time they took together.
    Latencies(Vec<u64>, Duration),
    /// Messages received and the time they took.
    Stream(usize, Duration),
    /// Mean ns per operation of each batch, operations, and wall time.
    Ops(Vec<u64>, usize, Duration),
}

pub(super) fn pingpong<E: Endpoint>(
    (mut mine, theirs): (E, E),
    size: usize,
    iters: usize,
) -> BenchResult<Sample> {
    let warmup = (iters / 10).max(5);
    let job = Job {
        size,
        count: warmup + iters,
        cpu: cpu_pair().map(|p| p.1),
    };
    let mut child = Process::spawn(echo_child::<E>, (theirs, job))?;
    let msg = vec![0xA5u8; size];
    let mut buf = vec![0u8; size];
    let sample = round_trips(warmup, iters, || {
        mine.send(&msg);
        buf.resize(size, 0);
        mine.recv(&mut buf);
    });
    child.join()?;
    Ok(sample)
}

pub(super) fn stream<E: Endpoint>(
    (mut mine, theirs): (E, E),
    size: usize,
    count: usize,
) -> BenchResult<Sample> {
    let job = Job {
        size,
        count,
        cpu: cpu_pair().map(|p| p.1),
    };
    let mut child = Process::spawn(stream_child::<E>, (theirs, job))?;
    let mut buf = vec![0u8; size];
    mine.recv(&mut buf);
    let start = Instant::now();
    for _ in 1..count {
        buf.resize(size, 0);
        mine.recv(&mut buf);
    }
    let elapsed = start.elapsed();
    child.join()?;
    Ok(Sample::Stream(count - 1, elapsed))
}

pub(super) const SIZES: [usize; 3] = [64, 4096, 1 << 20];

/// A named measurement; `run` does one round of it.
pub(super) struct Case {
    pub(super) mechanism: &'static str,
    pub(super) pattern: &'static str,
    pub(super) size: usize,
    pub(super) run: Box<dyn Fn(usize) -> BenchResult<Sample>>,
}

/// Messages per round.
pub(super) fn iterations(pattern: &str, size: usize, quick: bool) -> usize {
    match (pattern, size) {
        ("pingpong" | "pingpong-busy", s) if quick && s < 1 << 20 => 1_000,
        ("uncontended", _) => 400,
        ("pingpong" | "pingpong-busy", s) if s >= 1 << 20 => 30,
        ("pingpong" | "pingpong-busy", _) => 2_000,
        (_, 64) => 100_000,
        (_, 4096) => 20_000,
        _ => 100,
    }
}

/// Rounds per case; the cases of one pattern and size take turns, round by
/// round, so that a noisy moment of the machine hits them all alike.
pub(super) fn rounds(quick: bool) -> usize {
    if quick { 4 } else { 12 }
}

macro_rules! case {
    ($cases:ident, $name:literal, $make:expr) => {
        for size in SIZES {
            $cases.push(Case {
                mechanism: $name,
                pattern: "pingpong",
                size,
                run: Box::new(move |n| pingpong($make?, size, n)),
            });
        }
        for size in SIZES {
            $cases.push(Case {
                mechanism: $name,
                pattern: "stream",
                size,
                run: Box::new(move |n| stream($make?, size, n)),
            });
        }
    };
}

/// Operations per timed batch in `uncontended` cases.
pub(super) const BATCH: u32 = 256;

/// Time `batches` batches of `op`, giving the mean ns per op of each batch.
pub(super) fn uncontended(batches: usize, mut op: impl FnMut()) -> BenchResult<Sample> {
    for _ in 0..BATCH {
        op(); // warm up: first-use costs (pid cache, page faults)
    }
    let mut samples = Vec::with_capacity(batches);
    let start = Instant::now();
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..BATCH {
            op();
        }
        samples.push(t.elapsed().as_nanos() as u64 / u64::from(BATCH));
    }
    let ops = batches as u32 * BATCH;
    let wall = start.elapsed();
    // Report as latencies of one op; the rate is ops per second.
    Ok(Sample::Ops(samples, ops as usize, wall))
}

/// Time `iters` round trips after `warmup` untimed ones.
pub(super) fn round_trips(warmup: usize, iters: usize, mut round_trip: impl FnMut()) -> Sample {
    for _ in 0..warmup {
        round_trip();
    }
    let mut samples = Vec::with_capacity(iters);
    let from = Instant::now();
    for _ in 0..iters {
        let t = Instant::now();
        round_trip();
        samples.push(t.elapsed().as_nanos() as u64);
    }
    Sample::Latencies(samples, from.elapsed())
}

/// A name no other round uses.
pub(super) fn fresh(what: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("multiproc-bench-{what}-{}-{n}", std::process::id())
}
