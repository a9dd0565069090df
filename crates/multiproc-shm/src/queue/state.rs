//! The queue's shared state: positions, the producers' and consumers' halves,
//! the takers of a JoinableQueue, and what operations report.

use std::time::Instant;

use crate::bias::BiasLock;
use crate::env::Env;
use crate::eventcount::EventCount;
use crate::sync::{AtomicU32, AtomicU64};

use super::{SIDE_PREFIX, TAKERS};

/// A position in the ring and the number of records before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) at: u32,
    pub(crate) items: u32,
}

impl Pos {
    #[inline]
    pub(crate) fn pack(self) -> u64 {
        u64::from(self.at) | (u64::from(self.items) << 32)
    }
    #[inline]
    pub(crate) fn unpack(w: u64) -> Pos {
        Pos {
            at: w as u32,
            items: (w >> 32) as u32,
        }
    }
}

#[derive(Debug)]
#[repr(C, align(128))]
pub(crate) struct Config {
    /// Item limit (0: none).
    pub(crate) maxsize: AtomicU32,
    /// 1 once closed.
    pub(crate) closed: AtomicU32,
    /// 1 for a JoinableQueue.
    pub(crate) joinable: AtomicU32,
    pub(crate) _reserved: AtomicU32,
    /// Out-of-line bytes that may be pending.
    pub(crate) budget: AtomicU64,
}

#[derive(Debug)]
#[repr(C, align(128))]
pub(crate) struct Producers {
    pub(crate) lock: BiasLock,
    /// The last `head` a producer loaded (a lower bound of the real one).
    pub(crate) head_seen: AtomicU64,
    /// The next side-channel sequence number.
    pub(crate) side_seq: AtomicU64,
    /// Out-of-line bytes put, ever (added after the commit: a producer that
    /// dies in between makes the budget a little looser, never tighter).
    pub(crate) ool_put: AtomicU64,
    /// The `tail` position from which a producer past the soft limit looks
    /// at the consumers again to restart the lap ([`LAP_PROBE_EVERY`](super::LAP_PROBE_EVERY)).
    pub(crate) lap_probe: AtomicU32,
    /// Where the last lap restart wrote its WRAP (`1 << 32 | at`; 0: none
    /// yet): only records before it can strand a lap (`reclaim_lap`).
    pub(crate) restart_wrap: AtomicU64,
}

#[derive(Debug)]
#[repr(C, align(128))]
pub(crate) struct Consumers {
    pub(crate) lock: BiasLock,
    /// Out-of-line bytes taken, ever (added before the commit, for the same
    /// reason as `ool_put`).
    pub(crate) ool_got: AtomicU64,
    /// JoinableQueue: `task_done` calls made before the matching `get`.
    pub(crate) credit: AtomicU32,
    /// JoinableQueue: tasks taken by processes that found no row free in
    /// the takers table (never counted as abandoned).
    pub(crate) untracked: AtomicU32,
}

#[derive(Debug)]
#[repr(C, align(128))]
pub(crate) struct Word(pub(crate) AtomicU64);

/// One of the queue's three eventcounts (`not_empty`, `not_full`,
/// `all_done`) on a cache line of its own: the crate's eventcount (`seq` at
/// offset 0, `sleepers` at 4) padded to 128 bytes.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct Signal(pub(crate) EventCount);

#[cfg(not(multiproc_loom))]
const _: () = assert!(core::mem::size_of::<Signal>() == 128);

/// A consumer process and the tasks it took but has not marked done.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Taker {
    /// `pid | start << 32`; 0 = free.
    pub(crate) id: AtomicU64,
    pub(crate) held: AtomicU32,
    pub(crate) _reserved: AtomicU32,
}

/// The queue's shared state (2 KiB, 128-byte aligned, all zero when fresh
/// but for [`init`](RawQueue::init)).
#[derive(Debug)]
#[repr(C)]
pub struct RawQueue {
    pub(crate) config: Config,
    pub(crate) prod: Producers,
    pub(crate) tail: Word,
    pub(crate) cons: Consumers,
    pub(crate) head: Word,
    pub(crate) not_empty: Signal,
    pub(crate) not_full: Signal,
    pub(crate) all_done: Signal,
    pub(crate) takers: [Taker; TAKERS],
}

#[cfg(not(multiproc_loom))]
const _: () = assert!(core::mem::size_of::<RawQueue>() == 8 * 128 + TAKERS * 16);

/// What a waiter that sleeps elsewhere waits for ([`RawQueue::watch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueWait {
    /// An item to get (or the close).
    Items,
    /// Room to put (or the close).
    Room,
    /// Every task done (a JoinableQueue's `join`).
    AllDone,
}

/// Why a queue operation did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueError {
    /// The deadline passed (for a `try_` form: the deadline was now) with
    /// no room (put) or no item (get).
    Timeout,
    /// The queue was closed (put), or closed and drained (get).
    Closed,
    /// The record can never fit in this ring.
    TooLarge,
    /// The side channel has no room now: wait until it is writable, retry.
    SideFull,
    /// The shared state is inconsistent (written by a hostile or buggy
    /// process).
    Corrupted,
    /// `task_done` was called more times than items were put.
    TooManyTaskDone,
    /// `join`: every unfinished task is held by processes that died
    /// (killed, or exited without handing them on), and none was marked
    /// done for [`ABANDON_AFTER`]; [`JoinProgress::abandoned`] says how
    /// many. They stay unfinished: a later `task_done` still counts, and a
    /// later `join` waits again. (No payload here: a fieldless error keeps
    /// the hot paths' results small.)
    Abandoned,
}

// The queue's hot paths return `Result<_, QueueError>`: an error with a
// payload made them measurably slower (a 64-byte stream lost a quarter of
// its rate), so it stays one byte.
#[cfg(not(multiproc_loom))]
const _: () = assert!(core::mem::size_of::<QueueError>() == 1);

/// How long `join` waits without progress on tasks held only by dead
/// processes before it reports them [abandoned](QueueError::Abandoned).
/// A process that took tasks and exited may have handed them to another
/// (Python allows `task_done` from any process), so this is a grace
/// period, not a proof.
pub const ABANDON_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// What a `join` caller keeps between calls to tell progress from a stall
/// (so that a caller joining in short slices still sees abandoned tasks).
#[derive(Debug, Clone, Copy, Default)]
pub struct JoinProgress {
    /// The unfinished count last seen, and since when.
    pub(crate) last: Option<(i64, Instant)>,
    /// Tasks found abandoned by the last `join` that returned
    /// [`QueueError::Abandoned`].
    pub(crate) abandoned: u32,
}

impl JoinProgress {
    /// How many tasks the last [`QueueError::Abandoned`] was about.
    pub fn abandoned(&self) -> u32 {
        self.abandoned
    }
}

/// A record to put.
#[derive(Debug, Clone, Copy)]
pub enum Rec<'a> {
    /// The payload itself.
    Inline(&'a [u8]),
    /// A side record: `meta` goes in the ring after the sequence number;
    /// `ool` out-of-line bytes are charged to the budget.
    Side {
        /// Bytes stored in the ring after the prefix.
        meta: &'a [u8],
        /// Size of the out-of-line payload (0 if none).
        ool: u64,
    },
}

impl Rec<'_> {
    pub(crate) fn body_len(&self) -> usize {
        match self {
            Rec::Inline(b) => b.len(),
            Rec::Side { meta, .. } => SIDE_PREFIX + meta.len(),
        }
    }
}

/// A record taken by a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// [`KIND_INLINE`](super::KIND_INLINE) or [`KIND_SIDE`](super::KIND_SIDE).
    pub kind: u32,
    /// Side records: the sequence number of the socket message.
    pub seq: u64,
    /// Side records: the size of the out-of-line payload.
    pub ool: u64,
}

/// Called under the consumer lock right after each record is committed as
/// taken, with the record and the buffer its body was appended to, from the
/// given offset (for side records, the body after [`SIDE_PREFIX`]).
/// Side-channel messages are received here, in record order. Returns
/// whether to go on with the batch; a sink keeps its own errors (the record
/// is taken either way).
pub type Sink<'a> = &'a mut dyn FnMut(Taken, &mut Vec<u8>, usize) -> bool;

/// Called under the producer lock for a side record, with its sequence
/// number, before the record is committed: send the socket message.
/// `Ok(false)`: the socket is full.
pub type SendSide<'a> = &'a mut dyn FnMut(u64) -> Result<bool, QueueError>;

/// How long a `try_` or timed call waits for a lock another process holds
/// (holders never wait while holding one, so this only matters when a
/// holder is stopped or copying a very large record).
pub(crate) const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(20);

#[inline]
pub(crate) fn lock_deadline<E: Env + ?Sized>(
    env: &E,
    deadline: Option<Instant>,
) -> Option<Instant> {
    deadline.map(|d| d.max(env.now() + LOCK_GRACE))
}

#[inline]
pub(crate) fn pad8(n: u32) -> u32 {
    (n + 7) & !7
}

#[inline]
pub(crate) fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// What `append_one` did.
pub(crate) enum Appended {
    /// The record is committed.
    Yes,
    /// No room in the ring now.
    NoRoom,
    /// The out-of-line budget is used up now.
    NoBudget,
}

/// Room for records after a producer's position: bytes and item slots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Space {
    pub(crate) free: u32,
    pub(crate) slots: u32,
}

/// Bytes a record of `size` needs at `at`: a WRAP filler first (its size,
/// or 0) when it does not fit before the end of the ring; and in all.
#[inline]
pub(crate) fn placement(cap: u32, at: u32, size: u32) -> (u32, u32) {
    let to_end = cap - (at & (cap - 1));
    if size > to_end {
        (to_end, to_end + size)
    } else {
        (0, size)
    }
}

impl Space {
    #[inline]
    pub(crate) fn takes(&self, need: u32) -> bool {
        need <= self.free && self.slots > 0
    }

    #[inline]
    pub(crate) fn take(&mut self, need: u32) {
        self.free -= need;
        self.slots -= 1;
    }
}
