//! `multiproc stress`: many short randomized histories of the queues across
//! real processes, each checked for loss, duplication, order, corruption and
//! hangs.
//!
//! A history is drawn from one seed: the kind (`Queue`, `SimpleQueue`,
//! `JoinableQueue`), 1–8 producers and 1–8 consumers (often more processes
//! than cores), the ring (4–64 KiB, so that wraps, lap restarts and
//! reclaims happen all the time, or the default 128 MiB), a bound on the
//! item count or none, item sizes from 0 B to past the in-ring limit (the
//! out-of-line side channel), the call forms each process mixes (blocking,
//! `try_`, `_timeout`, batches), and which processes are killed with
//! `SIGKILL`, when. Producers exit right after their last put; the parent
//! joins them and then puts one sentinel per consumer (the seeds' pattern).
//! In a `JoinableQueue` history, consumers may hand items to a finisher
//! process that calls `task_done` for them, while the parent `join`s.
//!
//! What is checked, from shared arrays each process writes as it goes:
//! - every item whose put returned `Ok` is delivered exactly once, unless a
//!   consumer was killed (each killed consumer may take at most one batch
//!   with it); no item is ever delivered twice;
//! - each consumer sees each producer's items in the order they were put,
//!   and no item after a sentinel;
//! - every item arrives whole (size and checksum, from the seed);
//! - every timed call returns within its timeout (plus a slack for an
//!   oversubscribed machine), and the history ends within its bound;
//! - `join` returns `Ok` only when every task is done.
//!
//! `--chaos` makes every failpoint inside the locks and the queue yield,
//! spin or sleep at random in the child processes
//! ([`multiproc::failpoint::chaos`]).

use std::io;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use multiproc::queue::{GetError, JoinError, PutError};
use multiproc::{
    Connection, JoinableQueue, Process, ProcessError, Queue, QueueBuilder, RawArray, SimpleQueue,
    pipe,
};
use serde::{Deserialize, Serialize};

/// Options of `multiproc stress`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Run for at most about 45 s (for CI).
    #[arg(long)]
    quick: bool,
    /// Run histories for this many seconds (a soak). Default: 60.
    #[arg(long)]
    seconds: Option<u64>,
    /// Run the one history drawn from this seed (printed with every
    /// violation) and print its plan.
    #[arg(long)]
    replay: Option<u64>,
    /// The first history's seed (default: from the clock). History `i` uses
    /// `seed + i`.
    #[arg(long)]
    seed: Option<u64>,
    /// Make the children yield, spin or sleep at random at every failpoint
    /// of the locks and the queue.
    #[arg(long)]
    chaos: bool,
}

/// A slack for timed calls and process exits on an oversubscribed machine.
const SLACK: Duration = Duration::from_secs(5);
/// The longest a history may take.
const HISTORY_BOUND: Duration = Duration::from_secs(60);
/// The producer id of a sentinel.
const SENTINEL: u16 = u16::MAX;
/// The most items a consumer takes in one batch.
const MAX_BATCH: u32 = 8;

/// Per-process counters of bad events, one row of [`BAD_COLS`] per process.
const BAD_ORDER: usize = 0;
const BAD_CORRUPT: usize = 1;
const BAD_LATE: usize = 2;
const BAD_AFTER_SENTINEL: usize = 3;
const BAD_ERROR: usize = 4;
const BAD_COLS: usize = 5;
const BAD_NAMES: [&str; BAD_COLS] = [
    "out of order",
    "corrupt item",
    "timed call returned late",
    "item after a sentinel",
    "unexpected error",
];

// ----- randomness --------------------------------------------------------------------

/// SplitMix64: small, seedable, good enough to draw plans and payloads.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
}

// ----- the plan of one history ----------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Kind {
    Queue,
    Simple,
    Joinable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Role {
    Producer,
    Consumer,
}

/// Everything about one history, drawn from its seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    seed: u64,
    kind: Kind,
    producers: u32,
    consumers: u32,
    /// Ring bytes; `None`: the default ring.
    capacity: Option<usize>,
    /// Item bound; 0: unbounded.
    maxsize: usize,
    /// Items each producer puts.
    items: u32,
    /// The largest payload (past the in-ring limit when large items are on).
    max_payload: usize,
    /// One in this many items is large.
    large_one_in: u64,
    /// Processes to kill, and when (ms after the start; most histories
    /// take 50-300 ms).
    kills: Vec<(Role, u32, u64)>,
    /// JoinableQueue: consumers hand some tasks to a finisher process.
    finisher: bool,
    /// Chaos rate in the children (per 1024 failpoint hits).
    chaos: u32,
}

impl Plan {
    fn draw(seed: u64, chaos: bool) -> Plan {
        let mut r = Rng::new(seed);
        let kind = match r.range(0, 5) {
            0 | 1 => Kind::Queue,
            2 => Kind::Simple,
            _ => Kind::Joinable,
        };
        // Small counts are common, many processes now and then.
        let count = |r: &mut Rng| {
            if r.chance(1, 4) {
                r.range(1, 8) as u32
            } else {
                r.range(1, 3) as u32
            }
        };
        let producers = count(&mut r);
        let consumers = count(&mut r);
        let capacity = if r.chance(1, 5) {
            None
        } else {
            Some(4096 << r.range(0, 4))
        };
        let maxsize = if kind != Kind::Simple && r.chance(1, 3) {
            r.range(1, 16) as usize
        } else {
            0
        };
        let in_ring = capacity.unwrap_or(multiproc::queue::DEFAULT_CAPACITY) / 4;
        let max_payload = match capacity {
            Some(cap) => cap * 2,
            None => 256 << 10,
        }
        .max(in_ring.min(256 << 10) + 64);
        let large_one_in = if r.chance(1, 2) { 20 } else { 1000 };
        let items = r.range(20, 1200 / u64::from(producers).max(1)) as u32;
        // Distinct victims, and never every consumer: producers would then
        // block on a full queue for good, as they would in Python.
        let mut kills: Vec<(Role, u32, u64)> = Vec::new();
        if r.chance(2, 5) {
            for _ in 0..r.range(1, 3) {
                let (role, n) = if r.chance(1, 2) {
                    (Role::Producer, producers)
                } else {
                    (Role::Consumer, consumers)
                };
                let i = r.range(0, u64::from(n) - 1) as u32;
                let consumer_kills = kills.iter().filter(|k| k.0 == Role::Consumer).count() as u32;
                let taken = kills.iter().any(|k| k.0 == role && k.1 == i);
                if !taken && (role == Role::Producer || consumer_kills + 1 < consumers) {
                    kills.push((role, i, r.range(0, 120)));
                }
            }
        }
        let finisher = kind == Kind::Joinable && r.chance(1, 2);
        let chaos = if chaos {
            [16, 64, 256][r.range(0, 2) as usize]
        } else {
            0
        };
        Plan {
            seed,
            kind,
            producers,
            consumers,
            capacity,
            maxsize,
            items,
            max_payload,
            large_one_in,
            kills,
            finisher,
            chaos,
        }
    }

    /// The payload size of item `seq` of producer `p` (deterministic).
    fn size_of(&self, p: u16, seq: u32) -> usize {
        let mut r = Rng::new(self.seed ^ (u64::from(p) << 40) ^ u64::from(seq).wrapping_mul(31));
        let x = r.next();
        if x % self.large_one_in == 0 {
            r.range(1, self.max_payload as u64) as usize
        } else if x % 3 == 0 {
            r.range(64, 2048) as usize
        } else {
            r.range(0, 64) as usize
        }
    }

    fn slots(&self) -> usize {
        self.producers as usize * self.items as usize
    }
}

// ----- items ------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
struct Item {
    p: u16,
    seq: u32,
    sum: u64,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
}

fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn checksum(p: u16, seq: u32, body: &[u8]) -> u64 {
    fnv(
        body,
        0xcbf2_9ce4_8422_2325 ^ (u64::from(p) << 32) ^ u64::from(seq),
    )
}

fn make_item(plan: &Plan, p: u16, seq: u32) -> Item {
    let len = plan.size_of(p, seq);
    let mut body = Vec::with_capacity(len);
    let mut r = Rng::new(plan.seed ^ u64::from(seq) ^ (u64::from(p) << 48));
    while body.len() < len {
        let w = r.next().to_le_bytes();
        body.extend_from_slice(&w[..(len - body.len()).min(8)]);
    }
    Item {
        p,
        seq,
        sum: checksum(p, seq, &body),
        body,
    }
}

fn sentinel() -> Item {
    Item {
        p: SENTINEL,
        seq: 0,
        sum: 0,
        body: Vec::new(),
    }
}

// ----- the queue under test, of any kind ------------------------------------------------------

/// One handle type for the three kinds (a `JoinableQueue` derefs to its
/// `Queue`; a `SimpleQueue` allows only blocking put and get).
#[derive(Debug, Clone, Serialize, Deserialize)]
enum AnyQueue {
    Queue(Queue<Item>),
    Simple(SimpleQueue<Item>),
    Joinable(JoinableQueue<Item>),
}

impl AnyQueue {
    fn new(plan: &Plan) -> io::Result<AnyQueue> {
        let mut b = QueueBuilder::default().maxsize(plan.maxsize);
        if let Some(cap) = plan.capacity {
            b = b.capacity(cap);
        }
        Ok(match plan.kind {
            Kind::Queue => AnyQueue::Queue(b.build()?),
            Kind::Simple => AnyQueue::Simple(b.build_simple()?),
            Kind::Joinable => AnyQueue::Joinable(b.build_joinable()?),
        })
    }

    /// The full queue API, if this kind has it.
    fn full(&self) -> Option<&Queue<Item>> {
        match self {
            AnyQueue::Queue(q) => Some(q),
            AnyQueue::Joinable(q) => Some(q),
            AnyQueue::Simple(_) => None,
        }
    }

    fn put(&self, item: Item) -> Result<(), PutError<Item>> {
        match self {
            AnyQueue::Simple(q) => q.put(item),
            _ => self.full().expect("not simple").put(item),
        }
    }

    fn close(&self) {
        match self {
            AnyQueue::Simple(q) => q.close(),
            _ => self.full().expect("not simple").close(),
        }
    }

    fn get(&self) -> Result<Item, GetError> {
        match self {
            AnyQueue::Simple(q) => q.get(),
            _ => self.full().expect("not simple").get(),
        }
    }
}

// ----- shared bookkeeping -------------------------------------------------------------------

/// Arrays every process of a history writes as it goes (each cell has one
/// writer), so what a killed process did before it died is still known.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Books {
    /// `[p * items + seq]`: 1 once producer `p`'s put of `seq` returned Ok.
    acked: RawArray<u8>,
    /// `[c * slots + p * items + seq]`: deliveries of that item to consumer
    /// `c`.
    got: RawArray<u8>,
    /// `[c]`: items and sentinels consumer `c` got (JoinableQueue).
    taken: RawArray<u64>,
    /// `[c]` for consumers, `[consumers]` for the finisher: `task_done`
    /// calls about to be made.
    intents: RawArray<u64>,
    /// `[process * BAD_COLS + kind]`: bad events (producers first, then
    /// consumers, then the finisher).
    bad: RawArray<u32>,
}

impl Books {
    fn new(plan: &Plan) -> io::Result<Books> {
        let procs = (plan.producers + plan.consumers + 1) as usize;
        Ok(Books {
            acked: RawArray::zeroed(plan.slots())?,
            got: RawArray::zeroed(plan.slots() * plan.consumers as usize)?,
            taken: RawArray::zeroed(plan.consumers as usize)?,
            intents: RawArray::zeroed(plan.consumers as usize + 1)?,
            bad: RawArray::zeroed(procs * BAD_COLS)?,
        })
    }

    fn bump(arr: &RawArray<u32>, i: usize) {
        let v = arr.get(i).unwrap_or(0);
        let _ = arr.set(i, v.saturating_add(1));
    }

    fn bad(&self, process: usize, kind: usize) {
        Self::bump(&self.bad, process * BAD_COLS + kind);
    }

    fn add(arr: &RawArray<u64>, i: usize, n: u64) {
        let v = arr.get(i).unwrap_or(0);
        let _ = arr.set(i, v + n);
    }
}

/// What a child needs.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    plan: Plan,
    q: AnyQueue,
    books: Books,
    /// Which producer or consumer this is.
    index: u32,
    /// Consumers: where to hand tasks to the finisher.
    to_finisher: Option<Connection<u32>>,
}

fn start_chaos(plan: &Plan, salt: u64) {
    if plan.chaos > 0 {
        multiproc::failpoint::chaos(plan.chaos, plan.seed ^ salt.wrapping_mul(0x9e37_79b9));
    }
}

/// Check that a timed call returned in time.
fn timed<R>(books: &Books, process: usize, timeout: Duration, f: impl FnOnce() -> R) -> R {
    let t0 = Instant::now();
    let r = f();
    if t0.elapsed() > timeout + SLACK {
        books.bad(process, BAD_LATE);
    }
    r
}

// ----- producers ------------------------------------------------------------------------

fn producer(job: Job) {
    let Job {
        plan,
        q,
        books,
        index,
        ..
    } = job;
    start_chaos(&plan, u64::from(index) + 1);
    let me = index as usize;
    let p = index as u16;
    let mut r = Rng::new(plan.seed ^ 0x5052_4f44 ^ u64::from(index));
    let ack = |seq: u32| {
        let _ = books.acked.set(me * plan.items as usize + seq as usize, 1);
    };
    let mut seq = 0;
    while seq < plan.items {
        let form = match q.full() {
            Some(_) => r.range(0, 3),
            None => 0,
        };
        match form {
            // Blocking put.
            0 => {
                if q.put(make_item(&plan, p, seq)).is_err() {
                    books.bad(me, BAD_ERROR);
                    return;
                }
                ack(seq);
                seq += 1;
            }
            // try_put until there is room.
            1 => {
                let full = q.full().expect("full API");
                let mut item = make_item(&plan, p, seq);
                loop {
                    match full.try_put(item) {
                        Ok(()) => break,
                        Err(PutError::Full(back)) => {
                            item = back;
                            std::thread::yield_now();
                        }
                        Err(_) => {
                            books.bad(me, BAD_ERROR);
                            return;
                        }
                    }
                }
                ack(seq);
                seq += 1;
            }
            // put_timeout, again on Timeout.
            2 => {
                let full = q.full().expect("full API");
                let mut item = make_item(&plan, p, seq);
                let t = Duration::from_micros(r.range(10, 20_000));
                loop {
                    match timed(&books, me, t, || full.put_timeout(item, t)) {
                        Ok(()) => break,
                        Err(PutError::Timeout(back)) => item = back,
                        Err(_) => {
                            books.bad(me, BAD_ERROR);
                            return;
                        }
                    }
                }
                ack(seq);
                seq += 1;
            }
            // A batch.
            _ => {
                let full = q.full().expect("full API");
                let n = (r.range(2, 8) as u32).min(plan.items - seq);
                let items = (seq..seq + n).map(|s| make_item(&plan, p, s));
                match full.put_many(items) {
                    Ok(k) if k == n as usize => {}
                    _ => {
                        books.bad(me, BAD_ERROR);
                        return;
                    }
                }
                for s in seq..seq + n {
                    ack(s);
                }
                seq += n;
            }
        }
    }
    // Exit right after the last put (the seeds' pattern).
}

// ----- consumers ------------------------------------------------------------------------

/// What a consumer keeps while it runs.
struct Seen {
    last: Vec<Option<u32>>,
    sentinels: u32,
}

fn consumer(job: Job) {
    let Job {
        plan,
        q,
        books,
        index,
        mut to_finisher,
    } = job;
    start_chaos(&plan, 100 + u64::from(index));
    let me = plan.producers as usize + index as usize;
    let c = index as usize;
    let mut r = Rng::new(plan.seed ^ 0x434f_4e53 ^ u64::from(index));
    let mut seen = Seen {
        last: vec![None; plan.producers as usize],
        sentinels: 0,
    };
    let mut batch = Vec::new();
    while seen.sentinels == 0 {
        batch.clear();
        let Some(full) = q.full() else {
            match q.get() {
                Ok(item) => batch.push(item),
                Err(_) => {
                    books.bad(me, BAD_ERROR);
                    return;
                }
            }
            take(
                &plan,
                &books,
                c,
                me,
                &mut seen,
                &mut batch,
                &q,
                &mut to_finisher,
                &mut r,
            );
            continue;
        };
        match r.range(0, 3) {
            0 => match full.get() {
                Ok(item) => batch.push(item),
                Err(_) => {
                    books.bad(me, BAD_ERROR);
                    return;
                }
            },
            1 => match full.try_get() {
                Ok(item) => batch.push(item),
                Err(GetError::Empty) => {
                    std::thread::yield_now();
                    continue;
                }
                Err(_) => {
                    books.bad(me, BAD_ERROR);
                    return;
                }
            },
            2 => {
                let t = Duration::from_micros(r.range(10, 20_000));
                match timed(&books, me, t, || full.get_timeout(t)) {
                    Ok(item) => batch.push(item),
                    Err(GetError::Timeout) => continue,
                    Err(_) => {
                        books.bad(me, BAD_ERROR);
                        return;
                    }
                }
            }
            _ => {
                let t = Duration::from_micros(r.range(10, 20_000));
                let max = r.range(1, u64::from(MAX_BATCH)) as usize;
                match timed(&books, me, t, || full.get_many(max, Some(t))) {
                    Ok(items) => batch.extend(items),
                    Err(GetError::Timeout) => continue,
                    Err(_) => {
                        books.bad(me, BAD_ERROR);
                        return;
                    }
                }
            }
        }
        take(
            &plan,
            &books,
            c,
            me,
            &mut seen,
            &mut batch,
            &q,
            &mut to_finisher,
            &mut r,
        );
    }
}

/// Check and record a batch a consumer got.
#[allow(clippy::too_many_arguments)]
fn take(
    plan: &Plan,
    books: &Books,
    c: usize,
    me: usize,
    seen: &mut Seen,
    batch: &mut Vec<Item>,
    q: &AnyQueue,
    to_finisher: &mut Option<Connection<u32>>,
    r: &mut Rng,
) {
    Books::add(&books.taken, c, batch.len() as u64);
    let mut extra_sentinels = 0;
    for item in batch.drain(..) {
        if item.p == SENTINEL {
            if seen.sentinels > 0 {
                extra_sentinels += 1;
            }
            seen.sentinels += 1;
        } else if item.p as u32 >= plan.producers || item.seq >= plan.items {
            books.bad(me, BAD_CORRUPT);
        } else {
            if seen.sentinels > 0 {
                books.bad(me, BAD_AFTER_SENTINEL);
            }
            if item.body.len() != plan.size_of(item.p, item.seq)
                || item.sum != checksum(item.p, item.seq, &item.body)
            {
                books.bad(me, BAD_CORRUPT);
            }
            let last = &mut seen.last[item.p as usize];
            if last.is_some_and(|l| l >= item.seq) {
                books.bad(me, BAD_ORDER);
            }
            *last = Some(item.seq);
            let at = c * plan.slots() + item.p as usize * plan.items as usize + item.seq as usize;
            let n = books.got.get(at).unwrap_or(0);
            let _ = books.got.set(at, n.saturating_add(1));
        }
        if let AnyQueue::Joinable(jq) = q {
            // Hand the task to the finisher now and then (Python allows
            // task_done from any process), else mark it done here.
            match to_finisher {
                Some(tx) if r.chance(1, 2) => {
                    if tx.send(&0).is_err() {
                        books.bad(me, BAD_ERROR);
                    }
                }
                _ => {
                    Books::add(&books.intents, c, 1);
                    if jq.task_done().is_err() {
                        books.bad(me, BAD_ERROR);
                    }
                }
            }
        }
    }
    // A batch that took another consumer's sentinel gives it back.
    for _ in 0..extra_sentinels {
        if q.put(sentinel()).is_err() {
            books.bad(me, BAD_ERROR);
        }
    }
}

// ----- the finisher -------------------------------------------------------------------------

fn finisher(job: Job) {
    let Job {
        plan,
        q,
        books,
        to_finisher,
        ..
    } = job;
    start_chaos(&plan, 1000);
    let me = (plan.producers + plan.consumers) as usize;
    let (AnyQueue::Joinable(jq), Some(mut rx)) = (q, to_finisher) else {
        return;
    };
    // Until every consumer closed its end.
    while rx.recv().is_ok() {
        Books::add(&books.intents, plan.consumers as usize, 1);
        if jq.task_done().is_err() {
            books.bad(me, BAD_ERROR);
        }
    }
}

// ----- one history ----------------------------------------------------------------------

/// What one history did and found.
#[derive(Debug, Default)]
struct Outcome {
    items: u64,
    kills: u64,
    violations: Vec<String>,
}

fn spawn(
    target: fn(Job),
    plan: &Plan,
    q: &AnyQueue,
    books: &Books,
    index: u32,
    to_finisher: Option<Connection<u32>>,
) -> Result<Process<()>, ProcessError> {
    Process::spawn(
        target,
        Job {
            plan: plan.clone(),
            q: q.clone(),
            books: books.clone(),
            index,
            to_finisher,
        },
    )
}

/// Wait for `p` until `deadline`; kill it if it is still running then.
/// Returns its exit code, or `None` if it hung.
fn reap(p: &mut Process<()>, deadline: Instant) -> Option<i32> {
    let left = deadline.saturating_duration_since(Instant::now());
    match p.wait_timeout(left) {
        Ok(Some(code)) => Some(code),
        _ => {
            let _ = p.kill();
            let _ = p.wait();
            None
        }
    }
}

fn run_history(plan: &Plan) -> Result<Outcome, Box<dyn std::error::Error>> {
    let mut out = Outcome::default();
    let q = AnyQueue::new(plan)?;
    let books = Books::new(plan)?;
    let t0 = Instant::now();
    let deadline = t0 + HISTORY_BOUND;
    let (mut fin_rx, fin_tx) = if plan.finisher {
        let (rx, tx) = pipe::<u32>()?;
        (Some(rx), Some(tx))
    } else {
        (None, None)
    };
    let mut consumers = Vec::new();
    for c in 0..plan.consumers {
        let tx = fin_tx.as_ref().map(Connection::try_clone).transpose()?;
        consumers.push(spawn(consumer, plan, &q, &books, c, tx)?);
    }
    drop(fin_tx);
    let mut finisher_p = match fin_rx.take() {
        Some(rx) => Some(spawn(finisher, plan, &q, &books, 0, Some(rx))?),
        None => None,
    };
    let mut producers = Vec::new();
    for p in 0..plan.producers {
        producers.push(spawn(producer, plan, &q, &books, p, None)?);
    }

    // Kills, in time order.
    let mut kills = plan.kills.clone();
    kills.sort_by_key(|k| k.2);
    let mut killed_consumers = 0;
    for &(role, i, at) in &kills {
        let when = t0 + Duration::from_millis(at);
        std::thread::sleep(when.saturating_duration_since(Instant::now()));
        let victim = match role {
            Role::Producer => &mut producers[i as usize],
            Role::Consumer => &mut consumers[i as usize],
        };
        if victim.is_alive() {
            let _ = victim.kill();
        }
    }

    // Producers end (on their own, or killed).
    let mut producers_killed = vec![false; plan.producers as usize];
    for (i, p) in producers.iter_mut().enumerate() {
        match reap(p, deadline) {
            Some(0) => {}
            Some(-9) => {
                producers_killed[i] = true;
                out.kills += 1;
            }
            Some(code) => out
                .violations
                .push(format!("producer {i} exited with {code}")),
            None => out.violations.push(format!("producer {i} hung")),
        }
    }

    // The seeds' pattern: a sentinel per consumer after the producers
    // joined, and one more for each consumer killed meanwhile (it may have
    // taken one with it). They are put from a thread: with every consumer
    // dead a put may block for good, and then closing the queue ends it.
    let mut live_consumers: Vec<bool> = consumers.iter_mut().map(|c| c.is_alive()).collect();
    let sentinels = plan.consumers as usize + live_consumers.iter().filter(|l| !**l).count();
    let putter = {
        let q = q.clone();
        std::thread::spawn(move || (0..sentinels).all(|_| q.put(sentinel()).is_ok()))
    };

    // A join while consumers and the finisher still work: when it returns
    // Ok, every task got so far must have been marked done.
    if let AnyQueue::Joinable(jq) = &q {
        let kill_planned = plan.kills.iter().any(|k| k.0 == Role::Consumer);
        // With consumers killed, tasks (and the extra sentinels) may stay
        // unfinished for good: a short join then.
        let mut left = deadline.saturating_duration_since(Instant::now());
        if kill_planned {
            left = left.min(multiproc::queue::ABANDON_AFTER + Duration::from_secs(1));
        }
        match jq.join_timeout(left) {
            Ok(()) => {
                let taken: u64 = (0..plan.consumers as usize)
                    .map(|c| books.taken.get(c).unwrap_or(0))
                    .sum();
                let done: u64 = (0..=plan.consumers as usize)
                    .map(|c| books.intents.get(c).unwrap_or(0))
                    .sum();
                if done < taken && !kill_planned {
                    out.violations.push(format!(
                        "join returned with {} of {taken} tasks not marked done",
                        taken - done
                    ));
                }
            }
            Err(JoinError::Timeout) if kill_planned => {}
            Err(JoinError::Abandoned { .. }) if kill_planned => {}
            Err(e) => out.violations.push(format!("join: {e}")),
        }
    }

    for (i, c) in consumers.iter_mut().enumerate() {
        match reap(c, deadline) {
            Some(0) => {}
            Some(-9) => {
                live_consumers[i] = false;
                killed_consumers += 1;
                out.kills += 1;
            }
            Some(code) => out
                .violations
                .push(format!("consumer {i} exited with {code}")),
            None => out.violations.push(format!("consumer {i} hung")),
        }
    }
    // Every consumer is gone: a sentinel put still blocked has nobody to
    // make room for it.
    if !putter.is_finished() {
        q.close();
    }
    if !putter.join().unwrap_or(false) && killed_consumers == 0 {
        out.violations
            .push("the parent's sentinel put failed".into());
    }
    if let Some(f) = finisher_p.as_mut() {
        match reap(f, deadline) {
            Some(0) => {}
            Some(code) => out.violations.push(format!("finisher exited with {code}")),
            None => out.violations.push("finisher hung".into()),
        }
    }

    // What is left may only be sentinels.
    loop {
        let left = match &q {
            AnyQueue::Simple(s) if s.is_empty() => break,
            AnyQueue::Simple(s) => match s.get() {
                Ok(item) => Some(item),
                Err(GetError::Closed) => break,
                Err(e) => {
                    out.violations.push(format!("draining: {e}"));
                    break;
                }
            },
            _ => match q.full().expect("full API").try_get() {
                Ok(item) => Some(item),
                Err(GetError::Empty | GetError::Closed) => break,
                Err(e) => {
                    out.violations.push(format!("draining: {e}"));
                    break;
                }
            },
        };
        match left {
            Some(item) if item.p != SENTINEL => out.violations.push(format!(
                "item {}:{} was left in the queue behind the sentinels",
                item.p, item.seq
            )),
            Some(_) => {}
            None => break,
        }
    }

    // Bad events the processes recorded.
    for proc in 0..(plan.producers + plan.consumers + 1) as usize {
        for (kind, name) in BAD_NAMES.iter().enumerate() {
            let n = books.bad.get(proc * BAD_COLS + kind).unwrap_or(0);
            if n > 0 {
                out.violations.push(format!("{n}× {name} (process {proc})"));
            }
        }
    }

    // Exactly once.
    let slots = plan.slots();
    let mut got = vec![0u8; slots * plan.consumers as usize];
    books.got.read(0, &mut got)?;
    let mut acked = vec![0u8; slots];
    books.acked.read(0, &mut acked)?;
    let mut missing = Vec::new();
    for at in 0..slots {
        let n: u32 = (0..plan.consumers as usize)
            .map(|c| u32::from(got[c * slots + at]))
            .sum();
        let (p, seq) = (at / plan.items as usize, at % plan.items as usize);
        if n > 1 {
            out.violations
                .push(format!("item {p}:{seq} delivered {n} times"));
        }
        if acked[at] == 1 {
            out.items += 1;
            if n == 0 {
                missing.push(format!("{p}:{seq}"));
            }
        } else if !producers_killed[p] && n == 0 {
            out.violations
                .push(format!("producer {p} never put item {seq}"));
        }
    }
    let allowed = killed_consumers * MAX_BATCH as usize;
    if missing.len() > allowed {
        missing.truncate(8);
        out.violations.push(format!(
            "lost items (put returned Ok, never delivered; {killed_consumers} consumers killed): {}",
            missing.join(", ")
        ));
    }
    Ok(out)
}

// ----- the command ----------------------------------------------------------------------

/// `multiproc stress`.
pub fn run(opts: &Options) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(seed) = opts.replay {
        let plan = Plan::draw(seed, opts.chaos);
        println!("stress: replaying {plan:?}");
        let out = run_history(&plan)?;
        for v in &out.violations {
            println!("violation: {v}");
        }
        return finish(1, out.items, out.kills, out.violations.len());
    }
    let budget = Duration::from_secs(match (opts.quick, opts.seconds) {
        (_, Some(s)) => s,
        (true, None) => 45,
        (false, None) => 60,
    });
    let base = opts.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    println!(
        "stress: seed {base}{}, {} s",
        if opts.chaos { ", chaos" } else { "" },
        budget.as_secs()
    );
    let bar = ProgressBar::with_draw_target(Some(budget.as_secs()), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s {msg}")
            .map_err(io::Error::other)?,
    );
    let t0 = Instant::now();
    let (mut histories, mut items, mut kills, mut violations) = (0u64, 0u64, 0u64, 0usize);
    while t0.elapsed() < budget {
        let plan = Plan::draw(base.wrapping_add(histories), opts.chaos);
        let out = run_history(&plan)?;
        histories += 1;
        items += out.items;
        kills += out.kills;
        if !out.violations.is_empty() {
            violations += out.violations.len();
            bar.suspend(|| {
                println!(
                    "violation in history {} (replay: multiproc stress --replay {}{}):",
                    histories - 1,
                    plan.seed,
                    if opts.chaos { " --chaos" } else { "" }
                );
                for v in &out.violations {
                    println!("  {v}");
                }
            });
        }
        bar.set_position(t0.elapsed().as_secs().min(budget.as_secs()));
        bar.set_message(format!(
            "{histories} histories, {items} items, {kills} kills, {violations} violations"
        ));
    }
    bar.finish_and_clear();
    finish(histories, items, kills, violations)
}

fn finish(
    histories: u64,
    items: u64,
    kills: u64,
    violations: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "stress: {histories} histories, {items} items, {kills} kills, {violations} violations"
    );
    if violations > 0 {
        std::process::exit(1);
    }
    Ok(())
}
