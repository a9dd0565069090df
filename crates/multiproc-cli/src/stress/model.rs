//! What the processes of one history share: the item format, the queue of
//! any kind, the books where each records what it saw, and the limits.

use std::io;
use std::time::{Duration, Instant};

use multiproc::queue::{GetError, PutError};
use multiproc::{Connection, JoinableQueue, Queue, QueueBuilder, RawArray, SimpleQueue};
use serde::{Deserialize, Serialize};

use super::plan::{Kind, Plan, Rng};

/// A slack for timed calls and process exits on an oversubscribed machine.
pub(super) const SLACK: Duration = Duration::from_secs(5);
/// The longest a history may take.
pub(super) const HISTORY_BOUND: Duration = Duration::from_secs(60);
/// The producer id of a sentinel.
pub(super) const SENTINEL: u16 = u16::MAX;
/// The most items a consumer takes in one batch.
pub(super) const MAX_BATCH: u32 = 8;

/// Per-process counters of bad events, one row of [`BAD_COLS`] per process.
pub(super) const BAD_ORDER: usize = 0;
pub(super) const BAD_CORRUPT: usize = 1;
pub(super) const BAD_LATE: usize = 2;
pub(super) const BAD_AFTER_SENTINEL: usize = 3;
pub(super) const BAD_ERROR: usize = 4;
pub(super) const BAD_COLS: usize = 5;
pub(super) const BAD_NAMES: [&str; BAD_COLS] = [
    "out of order",
    "corrupt item",
    "timed call returned late",
    "item after a sentinel",
    "unexpected error",
];

// ----- items ------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Item {
    pub(super) p: u16,
    pub(super) seq: u32,
    pub(super) sum: u64,
    #[serde(with = "serde_bytes")]
    pub(super) body: Vec<u8>,
}

pub(super) fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

pub(super) fn checksum(p: u16, seq: u32, body: &[u8]) -> u64 {
    fnv(
        body,
        0xcbf2_9ce4_8422_2325 ^ (u64::from(p) << 32) ^ u64::from(seq),
    )
}

pub(super) fn make_item(plan: &Plan, p: u16, seq: u32) -> Item {
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

pub(super) fn sentinel() -> Item {
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
pub(super) enum AnyQueue {
    Queue(Queue<Item>),
    Simple(SimpleQueue<Item>),
    Joinable(JoinableQueue<Item>),
}

impl AnyQueue {
    pub(super) fn new(plan: &Plan) -> io::Result<AnyQueue> {
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
    pub(super) fn full(&self) -> Option<&Queue<Item>> {
        match self {
            AnyQueue::Queue(q) => Some(q),
            AnyQueue::Joinable(q) => Some(q),
            AnyQueue::Simple(_) => None,
        }
    }

    /// The queue's shared state and sleepers, for a hang's report (empty
    /// for a `SimpleQueue`, which does not show its state).
    pub(super) fn diagnose(&self) -> String {
        match self.full() {
            Some(q) => format!(
                "{}; sleepers (get, put) {:?}",
                q.debug_state(),
                q.sleepers()
            ),
            None => String::new(),
        }
    }

    pub(super) fn put(&self, item: Item) -> Result<(), PutError<Item>> {
        match self {
            AnyQueue::Simple(q) => q.put(item),
            _ => self.full().expect("not simple").put(item),
        }
    }

    pub(super) fn close(&self) {
        match self {
            AnyQueue::Simple(q) => q.close(),
            _ => self.full().expect("not simple").close(),
        }
    }

    pub(super) fn get(&self) -> Result<Item, GetError> {
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
pub(super) struct Books {
    /// `[p * items + seq]`: 1 once producer `p`'s put of `seq` returned Ok.
    pub(super) acked: RawArray<u8>,
    /// `[c * slots + p * items + seq]`: deliveries of that item to consumer
    /// `c`.
    pub(super) got: RawArray<u8>,
    /// `[c]`: items and sentinels consumer `c` got (JoinableQueue).
    pub(super) taken: RawArray<u64>,
    /// `[c]`: 1 once consumer `c` got a sentinel (it takes nothing more; it
    /// may still be giving back extra sentinels it got in the same batch).
    pub(super) done: RawArray<u8>,
    /// `[c]` for consumers, `[consumers]` for the finisher: `task_done`
    /// calls about to be made.
    pub(super) intents: RawArray<u64>,
    /// `[process * BAD_COLS + kind]`: bad events (producers first, then
    /// consumers, then the finisher).
    pub(super) bad: RawArray<u32>,
}

impl Books {
    pub(super) fn new(plan: &Plan) -> io::Result<Books> {
        let procs = (plan.producers + plan.consumers + 1) as usize;
        Ok(Books {
            acked: RawArray::zeroed(plan.slots())?,
            got: RawArray::zeroed(plan.slots() * plan.consumers as usize)?,
            taken: RawArray::zeroed(plan.consumers as usize)?,
            done: RawArray::zeroed(plan.consumers as usize)?,
            intents: RawArray::zeroed(plan.consumers as usize + 1)?,
            bad: RawArray::zeroed(procs * BAD_COLS)?,
        })
    }

    fn bump(arr: &RawArray<u32>, i: usize) {
        let v = arr.get(i).unwrap_or(0);
        let _ = arr.set(i, v.saturating_add(1));
    }

    pub(super) fn bad(&self, process: usize, kind: usize) {
        Self::bump(&self.bad, process * BAD_COLS + kind);
    }

    pub(super) fn add(arr: &RawArray<u64>, i: usize, n: u64) {
        let v = arr.get(i).unwrap_or(0);
        let _ = arr.set(i, v + n);
    }
}

/// What a child needs.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Job {
    pub(super) plan: Plan,
    pub(super) q: AnyQueue,
    pub(super) books: Books,
    /// Which producer or consumer this is.
    pub(super) index: u32,
    /// Consumers: where to hand tasks to the finisher.
    pub(super) to_finisher: Option<Connection<u32>>,
}

pub(super) fn start_chaos(plan: &Plan, salt: u64) {
    if plan.chaos > 0 {
        multiproc::failpoint::chaos(plan.chaos, plan.seed ^ salt.wrapping_mul(0x9e37_79b9));
    }
}

/// Check that a timed call returned in time.
pub(super) fn timed<R>(
    books: &Books,
    process: usize,
    timeout: Duration,
    f: impl FnOnce() -> R,
) -> R {
    let t0 = Instant::now();
    let r = f();
    if t0.elapsed() > timeout + SLACK {
        books.bad(process, BAD_LATE);
    }
    r
}
