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
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use multiproc::{ByteBatch, Connection, Fd, GetError, Process, Queue, duplex, pipe};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

mod fifo;
mod manager;
mod net;
mod posix_mq;
mod sysv_mq;

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

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// `--queue-capacity`, read by every queue case.
static QUEUE_CAPACITY: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// A queue for a measurement: the default one, or with `--queue-capacity`.
fn bench_queue<T>() -> std::io::Result<Queue<T>> {
    match QUEUE_CAPACITY.get() {
        Some(&bytes) => Queue::<T>::builder().capacity(bytes).build(),
        None => Queue::new(),
    }
}

/// What the child of a measurement does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Job {
    size: usize,
    count: usize,
    /// The CPU the child pins itself to, if any.
    cpu: Option<usize>,
}

/// CPUs for (parent, child): two different ones when there are two, so every
/// measurement crosses cores the same way instead of switching between a
/// same-core and a cross-core hand-off from run to run.
///
/// Read once, before the parent pins itself: afterwards the parent's
/// affinity is its one CPU, and a child that inherited it would share the
/// parent's core.
fn cpu_pair() -> Option<(usize, usize)> {
    match all_cpus() {
        [a, b, ..] => Some((*a, *b)),
        _ => None,
    }
}

/// The CPUs this process was allowed to run on when the benchmark started.
fn all_cpus() -> &'static [usize] {
    static CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    CPUS.get_or_init(|| multiproc::process::allowed_cpus().unwrap_or_default())
}

fn pin_child(job: &Job) {
    if let Some(cpu) = job.cpu {
        let _ = multiproc::process::pin_to_cpu(cpu);
    }
}

/// A way of moving one message each way, for both sides of a measurement.
trait Endpoint: Serialize + DeserializeOwned + Send + 'static {
    fn send(&mut self, msg: &[u8]);
    /// Receive one message into `buf` (whose length is the message size).
    fn recv(&mut self, buf: &mut Vec<u8>);
}

/// Raw descriptors: one `write` per message, `read` until the message is in.
#[derive(Serialize, Deserialize)]
struct RawEnd {
    rx: Option<Fd>,
    tx: Option<Fd>,
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
struct BytesEnd {
    rx: Option<Connection<ByteBuf>>,
    tx: Option<Connection<ByteBuf>>,
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
struct SerdeEnd {
    rx: Option<Connection<ByteBuf>>,
    tx: Option<Connection<ByteBuf>>,
    #[serde(skip)]
    scratch: ByteBuf,
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
fn echo_child<E: Endpoint>(arg: (E, Job)) {
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
fn stream_child<E: Endpoint>(arg: (E, Job)) {
    let (mut end, job) = arg;
    pin_child(&job);
    let msg = vec![0x5Au8; job.size];
    for _ in 0..job.count {
        end.send(&msg);
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// What one run of a case measured.
enum Sample {
    /// Round-trip times, and the wall time they took together.
    Latencies(Vec<u64>, Duration),
    /// Messages received and the time they took.
    Stream(usize, Duration),
    /// Mean ns per operation of each batch, operations, and wall time.
    Ops(Vec<u64>, usize, Duration),
}

fn pingpong<E: Endpoint>(
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

fn stream<E: Endpoint>(
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

const SIZES: [usize; 3] = [64, 4096, 1 << 20];

/// A named measurement; `run` does one round of it.
struct Case {
    mechanism: &'static str,
    pattern: &'static str,
    size: usize,
    run: Box<dyn Fn(usize) -> BenchResult<Sample>>,
}

/// Messages per round.
fn iterations(pattern: &str, size: usize, quick: bool) -> usize {
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
fn rounds(quick: bool) -> usize {
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

// ----- synchronization -------------------------------------------------------

/// Operations per timed batch in `uncontended` cases.
const BATCH: u32 = 256;

/// Time `batches` batches of `op`, giving the mean ns per op of each batch.
fn uncontended(batches: usize, mut op: impl FnMut()) -> BenchResult<Sample> {
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

fn bench_lock(batches: usize) -> BenchResult<Sample> {
    let lock = multiproc::Lock::new()?;
    uncontended(batches, || drop(lock.lock().expect("lock")))
}

fn bench_posix_sem(batches: usize) -> BenchResult<Sample> {
    let name = format!("/multiproc-bench-{}", std::process::id());
    let sem = multiproc::baseline::PosixSemaphore::create(&name, 1)?;
    uncontended(batches, || {
        sem.wait().expect("sem_wait");
        sem.post().expect("sem_post");
    })
}

fn bench_pthread_robust(batches: usize) -> BenchResult<Sample> {
    let mem = multiproc::SharedMemory::new(multiproc::baseline::RobustMutex::SIZE)?;
    // SAFETY: the block is at least SIZE bytes, page-aligned (the segment
    // payload starts 64 bytes into a page-aligned mapping), private to this
    // benchmark, and outlives `m`.
    let m = unsafe { multiproc::baseline::RobustMutex::init(mem.as_ptr())? };
    uncontended(batches, || {
        m.lock().expect("lock");
        m.unlock().expect("unlock");
    })
}

/// Time `iters` round trips after `warmup` untimed ones.
fn round_trips(warmup: usize, iters: usize, mut round_trip: impl FnMut()) -> Sample {
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

/// Child side of the event ping-pong.
fn event_echo(arg: (multiproc::Event, multiproc::Event, Job)) {
    let (ping, pong, job) = arg;
    pin_child(&job);
    for _ in 0..job.count {
        ping.wait();
        ping.clear();
        pong.set();
    }
}

fn bench_event(iters: usize) -> BenchResult<Sample> {
    let ping = multiproc::Event::new()?;
    let pong = multiproc::Event::new()?;
    let warmup = (iters / 10).max(5);
    let job = Job {
        size: 0,
        count: warmup + iters,
        cpu: cpu_pair().map(|p| p.1),
    };
    let mut child = Process::spawn(event_echo, (ping.clone(), pong.clone(), job))?;
    let sample = round_trips(warmup, iters, || {
        ping.set();
        pong.wait();
        pong.clear();
    });
    child.join()?;
    Ok(sample)
}

/// The futex word of the raw futex ping-pong, in shared memory.
fn futex_word(mem: &multiproc::SharedMemory) -> &std::sync::atomic::AtomicU32 {
    // SAFETY: the block is at least 4 bytes and 4-aligned (payload offset 64
    // in a page-aligned mapping) and lives as long as the borrow; an
    // AtomicU32 is valid for any bit pattern and made for shared access.
    unsafe { &*mem.as_ptr().cast::<std::sync::atomic::AtomicU32>() }
}

/// Child side of the raw futex ping-pong: wait for 1, answer 0.
fn futex_echo(arg: (multiproc::SharedMemory, Job)) {
    use std::sync::atomic::Ordering;
    let (mem, job) = arg;
    pin_child(&job);
    let w = futex_word(&mem);
    for _ in 0..job.count {
        while w.load(Ordering::Acquire) != 1 {
            multiproc::baseline::futex_wait(w, 0, None);
        }
        w.store(0, Ordering::Release);
        multiproc::baseline::futex_wake(w, 1);
    }
}

fn bench_futex(iters: usize) -> BenchResult<Sample> {
    use std::sync::atomic::Ordering;
    let mem = multiproc::SharedMemory::new(64)?;
    let warmup = (iters / 10).max(5);
    let job = Job {
        size: 0,
        count: warmup + iters,
        cpu: cpu_pair().map(|p| p.1),
    };
    let mut child = Process::spawn(futex_echo, (mem.clone(), job))?;
    let w = futex_word(&mem);
    let sample = round_trips(warmup, iters, || {
        w.store(1, Ordering::Release);
        multiproc::baseline::futex_wake(w, 1);
        while w.load(Ordering::Acquire) != 0 {
            multiproc::baseline::futex_wait(w, 1, None);
        }
    });
    child.join()?;
    Ok(sample)
}

fn sync_cases(cases: &mut Vec<Case>) {
    let mut add = |mechanism, pattern, run: fn(usize) -> BenchResult<Sample>| {
        cases.push(Case {
            mechanism,
            pattern,
            size: 0,
            run: Box::new(run),
        });
    };
    add("lock", "uncontended", bench_lock);
    add("os-posix-sem", "uncontended", bench_posix_sem);
    add("os-pthread-robust", "uncontended", bench_pthread_robust);
    add("event", "pingpong", bench_event);
    add("os-futex", "pingpong", bench_futex);
}

// ----- queues --------------------------------------------------------------------

/// Two queues (one each way) used with `put_bytes`/`get_bytes_into`; a
/// `busy` receiver spins on `try_get_bytes_into` instead of blocking.
#[derive(Serialize, Deserialize)]
struct QueueBytesEnd {
    rx: Queue<ByteBuf>,
    tx: Queue<ByteBuf>,
    busy: bool,
}

impl Endpoint for QueueBytesEnd {
    fn send(&mut self, msg: &[u8]) {
        self.tx.put_bytes(msg).expect("put");
    }
    fn recv(&mut self, buf: &mut Vec<u8>) {
        if !self.busy {
            return self.rx.get_bytes_into(buf).expect("get");
        }
        loop {
            match self.rx.try_get_bytes_into(buf) {
                Ok(()) => return,
                Err(GetError::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("get: {e}"),
            }
        }
    }
}

/// Two queues used with serde `put`/`get` of a byte buffer (an owned value
/// each way, as a serde user would).
#[derive(Serialize, Deserialize)]
struct QueueSerdeEnd {
    rx: Queue<ByteBuf>,
    tx: Queue<ByteBuf>,
}

impl Endpoint for QueueSerdeEnd {
    fn send(&mut self, msg: &[u8]) {
        self.tx.put(ByteBuf::from(msg.to_vec())).expect("put");
    }
    fn recv(&mut self, buf: &mut Vec<u8>) {
        *buf = self.rx.get().expect("get").into_vec();
    }
}

fn queue_pair() -> BenchResult<(Queue<ByteBuf>, Queue<ByteBuf>)> {
    Ok((bench_queue()?, bench_queue()?))
}

fn queue_bytes_ends(busy: bool) -> BenchResult<(QueueBytesEnd, QueueBytesEnd)> {
    let (a, b) = queue_pair()?;
    Ok((
        QueueBytesEnd {
            rx: a.clone(),
            tx: b.clone(),
            busy,
        },
        QueueBytesEnd { rx: b, tx: a, busy },
    ))
}

fn queue_serde_ends() -> BenchResult<(QueueSerdeEnd, QueueSerdeEnd)> {
    let (a, b) = queue_pair()?;
    Ok((
        QueueSerdeEnd {
            rx: a.clone(),
            tx: b.clone(),
        },
        QueueSerdeEnd { rx: b, tx: a },
    ))
}

/// Messages per `put_many_bytes` call in `queue-batch`.
const PUT_BATCH: usize = 64;
/// Most messages per `get_many_bytes` call in `queue-batch`.
const GET_BATCH: usize = 1024;

/// Child side of `queue-batch`: put `count` messages, `PUT_BATCH` a call.
fn batch_child(arg: (Queue<ByteBuf>, Job)) {
    let (q, job) = arg;
    pin_child(&job);
    let msg = vec![0x5Au8; job.size];
    let mut left = job.count;
    while left > 0 {
        let k = left.min(PUT_BATCH);
        let sent = q
            .put_many_bytes(std::iter::repeat_n(msg.as_slice(), k))
            .expect("put_many");
        left -= sent;
    }
}

fn stream_batch(size: usize, count: usize) -> BenchResult<Sample> {
    let q = bench_queue()?;
    let job = Job {
        size,
        count,
        cpu: cpu_pair().map(|p| p.1),
    };
    let mut child = Process::spawn(batch_child, (q.clone(), job))?;
    let mut batch = ByteBatch::new();
    // The clock starts at the first message (the child is running by then);
    // take just that one so the timed part always has the rest.
    let first = q.get_many_bytes(&mut batch, 1, None)?;
    let start = Instant::now();
    let mut got = first;
    while got < count {
        got += q.get_many_bytes(&mut batch, GET_BATCH, None)?;
    }
    let elapsed = start.elapsed();
    child.join()?;
    Ok(Sample::Stream(got - first, elapsed))
}

/// Producers and consumers of `queue-4x4`.
const PARTIES: usize = 4;

/// A `queue-4x4` producer: wait for the start, put `count` messages, then
/// an empty one (a consumer's signal to stop).
fn many_producer(arg: (Queue<ByteBuf>, multiproc::Event, Job, Vec<usize>)) {
    let (q, start, job, cpus) = arg;
    let _ = multiproc::process::set_cpus(&cpus);
    let msg = vec![0x5Au8; job.size];
    start.wait();
    for _ in 0..job.count {
        q.put_bytes(&msg).expect("put");
    }
    q.put_bytes(&[]).expect("put");
}

/// A `queue-4x4` consumer: count messages until an empty one.
fn many_consumer(arg: (Queue<ByteBuf>, Vec<usize>)) -> usize {
    let (q, cpus) = arg;
    let _ = multiproc::process::set_cpus(&cpus);
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        q.get_bytes_into(&mut buf).expect("get");
        if buf.is_empty() {
            return n;
        }
        n += 1;
    }
}

fn stream_many(size: usize, count: usize) -> BenchResult<Sample> {
    let q = bench_queue()?;
    let start = multiproc::Event::new()?;
    let per = count / PARTIES;
    let mut consumers = Vec::new();
    for _ in 0..PARTIES {
        consumers.push(Process::spawn(
            many_consumer,
            (q.clone(), all_cpus().to_vec()),
        )?);
    }
    let job = Job {
        size,
        count: per,
        cpu: None,
    };
    let mut producers = Vec::new();
    for _ in 0..PARTIES {
        producers.push(Process::spawn(
            many_producer,
            (q.clone(), start.clone(), job, all_cpus().to_vec()),
        )?);
    }
    let t = Instant::now();
    start.set();
    let mut got = 0;
    for c in &mut consumers {
        got += c.join()?;
    }
    let elapsed = t.elapsed();
    for p in &mut producers {
        p.join()?;
    }
    Ok(Sample::Stream(got, elapsed))
}

/// One process puts a 64-byte message and gets it back: the cost of the
/// two operations without any cross-core traffic.
fn bench_queue_uncontended(batches: usize) -> BenchResult<Sample> {
    let q: Queue<ByteBuf> = bench_queue()?;
    let msg = [0x5Au8; 64];
    let mut buf = Vec::with_capacity(64);
    uncontended(batches, || {
        q.put_bytes(&msg).expect("put");
        q.get_bytes_into(&mut buf).expect("get");
    })
}

/// The bandwidth limit: `memcpy` of `size` bytes between two buffers.
fn bench_memcpy(size: usize, count: usize) -> BenchResult<Sample> {
    let src = vec![0x5Au8; size];
    let mut dst = vec![0u8; size];
    dst.copy_from_slice(&src);
    let t = Instant::now();
    for _ in 0..count {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
    }
    Ok(Sample::Stream(count, t.elapsed()))
}

/// Queue streams move ten times the messages of a pipe stream per round:
/// at tens of millions of messages a second, fewer would be over in a few
/// milliseconds.
const QUEUE_SCALE: usize = 10;

fn queue_cases(cases: &mut Vec<Case>) {
    let mut add = |mechanism, pattern, size, run: Box<dyn Fn(usize) -> BenchResult<Sample>>| {
        cases.push(Case {
            mechanism,
            pattern,
            size,
            run,
        });
    };
    for size in SIZES {
        add(
            "queue-bytes",
            "pingpong",
            size,
            Box::new(move |n| pingpong(queue_bytes_ends(false)?, size, n)),
        );
        add(
            "queue-serde",
            "pingpong",
            size,
            Box::new(move |n| pingpong(queue_serde_ends()?, size, n)),
        );
    }
    add(
        "queue-bytes",
        "pingpong-busy",
        64,
        Box::new(|n| pingpong(queue_bytes_ends(true)?, 64, n)),
    );
    add(
        "queue-bytes",
        "uncontended",
        64,
        Box::new(bench_queue_uncontended),
    );
    for size in SIZES {
        add(
            "queue-bytes",
            "stream",
            size,
            Box::new(move |n| stream(queue_bytes_ends(false)?, size, n * QUEUE_SCALE)),
        );
        add(
            "queue-serde",
            "stream",
            size,
            // Serde of a MiB costs a millisecond: fewer rounds keep the run short.
            Box::new(move |n| {
                let scale = if size >= 1 << 20 { 3 } else { QUEUE_SCALE };
                stream(queue_serde_ends()?, size, n * scale)
            }),
        );
        add(
            "queue-batch",
            "stream",
            size,
            Box::new(move |n| stream_batch(size, n * QUEUE_SCALE)),
        );
        add(
            "queue-4x4",
            "stream",
            size,
            Box::new(move |n| stream_many(size, n * QUEUE_SCALE)),
        );
        add(
            "memcpy",
            "stream",
            size,
            Box::new(move |n| bench_memcpy(size, n * QUEUE_SCALE)),
        );
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    case!(cases, "os-pipe", raw_pipes());
    case!(cases, "os-socketpair", raw_socketpair());
    fifo::cases(&mut cases);
    case!(cases, "pipe-bytes", mp_pipes().map(bytes_ends));
    case!(cases, "pipe-serde", mp_pipes().map(serde_ends));
    case!(cases, "duplex-bytes", mp_duplex().map(bytes_ends));
    case!(cases, "duplex-serde", mp_duplex().map(serde_ends));
    sync_cases(&mut cases);
    queue_cases(&mut cases);
    sysv_mq::cases(&mut cases);
    posix_mq::cases(&mut cases);
    net::cases(&mut cases);
    manager::cases(&mut cases);
    cases
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
         (the manager against Python's); p50 ratio for pingpong and uncontended (lower is \
         better), msgs/s for stream (higher is better)."
    );
    for goal in goals(rows) {
        println!("{goal}");
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
    let goals = goals(rows);
    if !goals.is_empty() {
        println!();
        for goal in goals {
            println!("- {goal}");
        }
    }
}

/// Run the benchmark.
pub(crate) fn run(opts: &Options) -> BenchResult<()> {
    if let Some(bytes) = opts.queue_capacity {
        let _ = QUEUE_CAPACITY.set(bytes);
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
