//! The MPMC record ring behind `Queue`, `SimpleQueue` and `JoinableQueue`.
//!
//! # Layout
//!
//! The state ([`RawQueue`], 2 KiB) is split into 128-byte groups so that
//! producers and consumers touch different cache lines:
//!
//! | group | written by | what |
//! |-------|------------|------|
//! | config | creator, `close` | item limit, memory budget, joinable flag, closed flag |
//! | producer | producers (P lock held) | P lock, cached head, side-channel sequence, out-of-line bytes put |
//! | tail | producers (P lock held) | the producers' commit word |
//! | consumer | consumers (C lock held) | C lock, cached tail, out-of-line bytes taken, task credit |
//! | head | consumers (C lock held) | the consumers' commit word |
//! | not_empty / not_full / all_done | waiters and notifiers | eventcounts |
//! | takers | consumers (C lock held) | JoinableQueue: tasks held per consumer process |
//!
//! The ring itself (a power of two, `cap` bytes) is supplied by the caller as
//! a [`Region`]; its size comes from the caller's own mapping, never from
//! shared memory, so no value another process writes can move an access out
//! of bounds.
//!
//! # Records
//!
//! A record is an 8-byte header (one `u64` word, `len | kind << 32`, stored
//! and loaded atomically) and `len` bytes of body, padded to 8 bytes. A
//! record never wraps: when it does not fit before the end of the ring, a
//! [`KIND_WRAP`] header fills the rest of the lap and the record starts at
//! offset 0. A header word of 0 (kind 0) is a cleared slot: nothing there
//! yet.
//!
//! # Commits
//!
//! `tail` and `head` each pack a position and an item count into one `u64`
//! (`at | items << 32`). `at` counts bytes modulo 2³², the offset in the ring
//! is `at & (cap - 1)`, and `cap` divides 2³², so wrapping arithmetic gives
//! `used = tail.at - head.at` and `queued = tail.items - head.items`.
//!
//! A record is published by its header: the producer writes the body,
//! clears the header slot after the record, and then stores the header
//! (with a filler, the filler's header last). So the slot at `tail` always
//! holds 0 until a record is committed there, and consumers read only the
//! header at `head`, never `tail`: a consumer keeping pace with a producer
//! pulls only the ring's cache lines, not the producers' as well. `tail` is
//! the producers' own count, moved right after the header.
//!
//! | word | Release store (SYNC POINT: write) | paired Acquire (SYNC POINT: read) |
//! |------|-------------------------------------|------------------------------------|
//! | record header | a producer, after the body and the cleared next slot | a consumer, before reading the body |
//! | `tail` | a producer, after the header | producers (and `len`), to find room |
//! | `head` | a consumer, after copying the record out | a producer, before overwriting those bytes |
//!
//! Each operation commits with one store of one word, so a process killed at
//! any point leaves the queue either before or after its operation:
//!
//! - a producer killed before the header store leaves half-written bytes
//!   beyond `tail`, behind a cleared header, which nobody reads and the next
//!   put overwrites; killed after it, the record is in the queue, and the
//!   next producer, which takes the lock over from the dead one, moves
//!   `tail` over it (its roll-forward);
//! - a consumer killed before its `head` store leaves the record for the next
//!   consumer; killed after, it took the item with it (gone, as in Python).
//!
//! Both locks are robust [`BiasLock`]s (a process that takes one again and
//! again enters without a locked instruction): a waiter takes a dead holder's lock
//! over within [`LIVENESS_CHECK`](crate::LIVENESS_CHECK); apart from the
//! roll-forward every shared field either commits atomically or errs on the
//! safe side (see the out-of-line budget and the JoinableQueue counters).
//! Between a header store and the `tail` store consumers may be ahead of
//! `tail`; counts read without the P lock treat that as empty. Every header
//! read from the ring is validated against `head` and `cap` (a record never
//! crosses the ring's end; two WRAPs never follow each other): a ring
//! corrupted by a hostile process gives [`QueueError::Corrupted`] or forged
//! records (it could write those anyway), never an out-of-bounds access or
//! an endless loop.
//!
//! # Keeping the ring small
//!
//! The ring is large (the default budget is 128 MiB of virtual memory), but
//! a producer past the first [`soft_limit`] bytes of a lap (eight records
//! of the size it puts, 1 to 8 MiB) that finds the consumers less than half
//! of that, and at most [`restart_backlog`] bytes, behind (and in this lap)
//! commits a `WRAP` record so that the next record starts the next lap at
//! offset 0. So a queue whose consumers keep up cycles through its first
//! MiBs, which stay in cache, and touches more pages only while a backlog
//! needs them. A producer that runs out of room before the consumers pass
//! that WRAP (they stopped) moves the few records before it to the end of
//! its filler and the head with them (`reclaim_lap`), so the rest of that
//! lap is never out of reach: a put still blocks only when the ring is
//! full (all but the cleared header slot after the last record). The
//! producer looks at the consumers' position once every
//! [`LAP_PROBE_EVERY`] bytes at most.
//!
//! # Waiting
//!
//! Three eventcounts ([`Signal`]): `not_empty` (consumers), `not_full`
//! (producers), `all_done` (`join`). A waiter registers (`sleepers + 1`,
//! barrier), reads the sequence, re-checks its condition and sleeps on the
//! sequence; a notifier changes the condition, barrier, and bumps the
//! sequence and wakes only when `sleepers > 0`. Either the waiter sees the
//! change or the notifier sees the waiter, so no wake-up is lost and no wake
//! system call is made when nobody sleeps. The barriers are asymmetric
//! where the [`Env`] allows ([`Env::heavy_barrier`]): the rare waiter runs
//! `membarrier(2)`, which fences every CPU running a registered process, so
//! the notifier (every put and get) needs only a compiler barrier instead of
//! a full fence that waits for its stores to drain. The loom models check
//! the protocol with full fences on both sides. Consumers spin briefly on
//! `tail` (a hint; the header decides) before they register. A get wakes
//! producers asleep for bytes only once [`wake_room`] bytes are free, at a
//! WRAP or at the last record (`room_worth_a_wake`), so a producer far
//! ahead runs in strides; producers waiting for item slots or out-of-line
//! budget wake at every get as before. Locks are never held while waiting.
//!
//! # Side channel
//!
//! A [`KIND_SIDE`] record carries a sequence number: its descriptors (a
//! payload too large for the ring, or handles inside the item) travel in a
//! socket message tagged with the same number. Producers send before they
//! commit and consumers receive after they commit, both under their lock, so
//! messages are in record order; a message whose record was never committed
//! (its producer died) or whose consumer died before receiving it is an
//! orphan with a lower number, which the next consumer discards.

use std::time::Instant;

use crate::bias::BiasLock;
use crate::env::{self, Env};
use crate::lock::{Acquired, LockError};
use crate::sync::{AtomicU32, AtomicU64, Ordering, compiler_fence, fence};

/// A record whose body is the payload.
pub const KIND_INLINE: u32 = 1;
/// A record whose body starts with a side-channel sequence number and the
/// size of an out-of-line payload (`[seq: u64][ool: u64][meta…]`).
pub const KIND_SIDE: u32 = 2;
/// Filler to the end of the lap.
pub const KIND_WRAP: u32 = 3;

/// Bytes `put_many` writes under one lock hold before it commits them (at
/// least one record).
pub const PUT_MANY_BYTES: u32 = 64 << 10;
/// Bytes a get of many records copies out under one lock hold (at least one
/// record): more would only make the caller's buffer grow, not the queue
/// faster.
pub const TAKE_BYTES: usize = 4 << 20;

/// Bytes of a record header.
pub const HEADER: u32 = 8;
/// Bytes a side record's body starts with (sequence number, out-of-line size).
pub const SIDE_PREFIX: usize = 16;
/// Consumer processes whose held tasks a JoinableQueue tracks.
pub const TAKERS: usize = 64;
/// The most a queue's ring may hold, in bytes.
pub const MAX_CAPACITY: u32 = 1 << 31;
/// The least a queue's ring may hold, in bytes (the algorithm works down to
/// [`MIN_RING`]; queues use at least a page).
pub const MIN_CAPACITY: u32 = 4096;
/// The least ring the algorithm works with (tests and models use it).
pub const MIN_RING: u32 = 64;

/// Bytes a record whose header says `len` spans (as `u64`: a hostile `len`
/// near `u32::MAX` must not overflow).
#[inline]
fn record_span(len: u32) -> u64 {
    u64::from(HEADER) + u64::from(pad8(len.min(u32::MAX - 7)))
}

/// Bytes a record with a body of `len` bytes occupies, if it can exist.
#[inline]
pub fn record_size(len: usize) -> Option<u32> {
    let len = u32::try_from(len).ok()?;
    len.checked_add(HEADER + 7).map(|n| n & !7)
}

/// The most bytes a lap restart leaves pending behind it (a quarter of the
/// ring, at most 4 MiB): what [`RawQueue`] may copy once to free the rest of
/// that lap when a producer runs short of room before the consumers pass it.
#[inline]
pub fn restart_backlog(cap: u32) -> u32 {
    (cap / 4).min(4 << 20)
}

/// Free bytes that make a get wake producers asleep for room (a quarter of
/// the ring, at most 8 MiB; see `room_worth_a_wake`).
#[inline]
pub fn wake_room(cap: u32) -> u32 {
    (cap / 4).min(8 << 20)
}

/// Bytes a producer past the soft limit writes between two looks at the
/// consumers' position (each look is a cache miss on their cache line).
pub const LAP_PROBE_EVERY: u32 = 4096;

/// Where a producer that finds the queue (nearly) empty starts the next lap
/// over, for records of `size` bytes: eight records, at least 1 MiB and at
/// most 8 MiB (and a quarter of the ring). Small records cycle through
/// cache-sized laps; large ones through laps long enough that the consumer's
/// private cache has let go of a line before the producer writes it again
/// (measured: 1 MiB records stream 1.4x faster through 8 MiB laps than
/// through 1 MiB ones, 64 B records 1.4x slower).
#[inline]
pub fn soft_limit(cap: u32, size: u32) -> u32 {
    let lap = size.saturating_mul(8).clamp(1 << 20, 8 << 20);
    (cap / 4).min(lap)
}

/// The bytes of a queue's ring.
///
/// # Safety
///
/// - `capacity()` is a power of two between [`MIN_RING`] and
///   [`MAX_CAPACITY`] and never changes;
/// - `read` and `write` are sound for every range inside
///   `0..capacity()`, for as long as the region is used (the algorithm only
///   ever passes such ranges, and only ranges no live process accesses at
///   the same time except a hostile one).
pub unsafe trait Region {
    /// The ring's size in bytes.
    fn capacity(&self) -> u32;
    /// Copy `out.len()` bytes from offset `at`.
    fn read(&self, at: u32, out: &mut [u8]);
    /// Copy `src` to offset `at`.
    fn write(&self, at: u32, src: &[u8]);
    /// Load the 8-byte record header at `at` (8-aligned) atomically, with
    /// Acquire ordering.
    fn load_header(&self, at: u32) -> u64;
    /// Store the 8-byte record header at `at` (8-aligned) atomically, with
    /// Release ordering: the bytes written before it are visible to a
    /// process whose [`load_header`](Self::load_header) sees it.
    fn store_header(&self, at: u32, header: u64);
    /// Append `len` bytes from offset `at` to `out`. The default fills with
    /// zeros and then copies; an implementation can copy into the spare
    /// capacity directly.
    fn append(&self, at: u32, len: usize, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + len, 0);
        self.read(at, &mut out[start..]);
    }
}

/// A position in the ring and the number of records before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    at: u32,
    items: u32,
}

impl Pos {
    #[inline]
    fn pack(self) -> u64 {
        u64::from(self.at) | (u64::from(self.items) << 32)
    }
    #[inline]
    fn unpack(w: u64) -> Pos {
        Pos {
            at: w as u32,
            items: (w >> 32) as u32,
        }
    }
}

/// An eventcount: a sequence number to sleep on and a count of sleepers.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct Signal {
    seq: AtomicU32,
    sleepers: AtomicU32,
}

impl Signal {
    fn new() -> Self {
        Signal {
            seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        }
    }

    /// Register as a sleeper; then re-check the condition, and either
    /// [`cancel`](Self::cancel) or [`park`](Self::park).
    #[inline]
    fn prepare<E: Env + ?Sized>(&self, env: &E) -> Ticket {
        // Ordering::Relaxed: ordered by the barrier, which is one half of the
        // Dekker pair with `notify` (store sleepers, barrier, load
        // condition). The waiter's half is the heavy one (Env docs).
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        let covered = env.heavy_barrier();
        Ticket {
            // SYNC POINT: read. Acquire pairs with the Release bump in
            // `notify`: a waiter that sees the bump sees the condition
            // change before it.
            seen: self.seq.load(Ordering::Acquire),
            covered,
        }
    }

    #[inline]
    fn cancel(&self) {
        // Ordering::Relaxed: a count, read only as a hint by notifiers.
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sleep until notified after `ticket` or `deadline`; whether notified.
    /// An uncovered waiter (see [`Env::heavy_barrier`]) returns after
    /// [`UNCOVERED_RECHECK`] at most, so that its caller re-checks.
    fn park<E: Env + ?Sized>(&self, env: &E, ticket: Ticket, deadline: Option<Instant>) -> bool {
        let deadline = if ticket.covered {
            deadline
        } else {
            let recheck = Instant::now() + env::UNCOVERED_RECHECK;
            Some(deadline.map_or(recheck, |d| d.min(recheck)))
        };
        let seen = ticket.seen;
        let notified = loop {
            if self.seq.load(Ordering::Acquire) != seen {
                break true;
            }
            if !env.wait(&self.seq, seen, deadline) || env::expired(deadline) {
                break self.seq.load(Ordering::Acquire) != seen;
            }
        };
        self.cancel();
        notified
    }

    /// Call after changing the condition: wake up to `n` sleepers, making no
    /// system call when there are none.
    #[inline]
    fn notify<E: Env + ?Sized>(&self, env: &E, n: u32) {
        self.notify_if(env, n, || true);
    }

    /// [`notify`](Self::notify), but with sleepers, wake them only if
    /// `worth` says the change is worth a wake-up. A `worth` that says no
    /// must say yes to some later change before the sleepers' condition can
    /// hold, or a wake-up is lost.
    #[inline]
    fn notify_if<E: Env + ?Sized>(&self, env: &E, n: u32, worth: impl FnOnce() -> bool) {
        // The other half of the Dekker pair: store condition, barrier, load
        // sleepers. The light form is only a compiler barrier: the waiters'
        // heavy barrier (membarrier) orders this side for them.
        if env.light_barriers() {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
        if self.sleepers.load(Ordering::Relaxed) > 0 && worth() {
            // SYNC POINT: write. Pairs with the Acquire loads in `prepare`
            // and `park`.
            self.seq.fetch_add(1, Ordering::Release);
            env.wake(&self.seq, n);
        }
    }
}

/// What [`Signal::prepare`] saw: the sequence number, and whether the
/// waiter's barrier covers light notifiers.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    seen: u32,
    covered: bool,
}

#[derive(Debug)]
#[repr(C, align(128))]
struct Config {
    /// Item limit (0: none).
    maxsize: AtomicU32,
    /// 1 once closed.
    closed: AtomicU32,
    /// 1 for a JoinableQueue.
    joinable: AtomicU32,
    _reserved: AtomicU32,
    /// Out-of-line bytes that may be pending.
    budget: AtomicU64,
}

#[derive(Debug)]
#[repr(C, align(128))]
struct Producers {
    lock: BiasLock,
    /// The last `head` a producer loaded (a lower bound of the real one).
    head_seen: AtomicU64,
    /// The next side-channel sequence number.
    side_seq: AtomicU64,
    /// Out-of-line bytes put, ever (added after the commit: a producer that
    /// dies in between makes the budget a little looser, never tighter).
    ool_put: AtomicU64,
    /// The `tail` position from which a producer past the soft limit looks
    /// at the consumers again to restart the lap ([`LAP_PROBE_EVERY`]).
    lap_probe: AtomicU32,
    /// Where the last lap restart wrote its WRAP (`1 << 32 | at`; 0: none
    /// yet): only records before it can strand a lap (`reclaim_lap`).
    restart_wrap: AtomicU64,
}

#[derive(Debug)]
#[repr(C, align(128))]
struct Consumers {
    lock: BiasLock,
    /// Out-of-line bytes taken, ever (added before the commit, for the same
    /// reason as `ool_put`).
    ool_got: AtomicU64,
    /// JoinableQueue: `task_done` calls made before the matching `get`.
    credit: AtomicU32,
    /// JoinableQueue: tasks taken by processes that found no row free in
    /// the takers table (never counted as abandoned).
    untracked: AtomicU32,
}

#[derive(Debug)]
#[repr(C, align(128))]
struct Word(AtomicU64);

/// A consumer process and the tasks it took but has not marked done.
#[derive(Debug)]
#[repr(C)]
struct Taker {
    /// `pid | start << 32`; 0 = free.
    id: AtomicU64,
    held: AtomicU32,
    _reserved: AtomicU32,
}

/// The queue's shared state (2 KiB, 128-byte aligned, all zero when fresh
/// but for [`init`](RawQueue::init)).
#[derive(Debug)]
#[repr(C)]
pub struct RawQueue {
    config: Config,
    prod: Producers,
    tail: Word,
    cons: Consumers,
    head: Word,
    not_empty: Signal,
    not_full: Signal,
    all_done: Signal,
    takers: [Taker; TAKERS],
}

#[cfg(not(multiproc_loom))]
const _: () = assert!(core::mem::size_of::<RawQueue>() == 8 * 128 + TAKERS * 16);

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
    last: Option<(i64, Instant)>,
    /// Tasks found abandoned by the last `join` that returned
    /// [`QueueError::Abandoned`].
    abandoned: u32,
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
    fn body_len(&self) -> usize {
        match self {
            Rec::Inline(b) => b.len(),
            Rec::Side { meta, .. } => SIDE_PREFIX + meta.len(),
        }
    }
}

/// A record taken by a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// [`KIND_INLINE`] or [`KIND_SIDE`].
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
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(20);

#[inline]
fn lock_deadline(deadline: Option<Instant>) -> Option<Instant> {
    deadline.map(|d| d.max(Instant::now() + LOCK_GRACE))
}

#[inline]
fn pad8(n: u32) -> u32 {
    (n + 7) & !7
}

#[inline]
fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// What `append_one` did.
enum Appended {
    /// The record is committed.
    Yes,
    /// No room in the ring now.
    NoRoom,
    /// The out-of-line budget is used up now.
    NoBudget,
}

/// Room for records after a producer's position: bytes and item slots.
#[derive(Debug, Clone, Copy)]
struct Space {
    free: u32,
    slots: u32,
}

/// Bytes a record of `size` needs at `at`: a WRAP filler first (its size,
/// or 0) when it does not fit before the end of the ring; and in all.
#[inline]
fn placement(cap: u32, at: u32, size: u32) -> (u32, u32) {
    let to_end = cap - (at & (cap - 1));
    if size > to_end {
        (to_end, to_end + size)
    } else {
        (0, size)
    }
}

impl Space {
    #[inline]
    fn takes(&self, need: u32) -> bool {
        need <= self.free && self.slots > 0
    }

    #[inline]
    fn take(&mut self, need: u32) {
        self.free -= need;
        self.slots -= 1;
    }
}

impl RawQueue {
    /// A fresh queue state (heap use: loom models and tests).
    pub fn new(maxsize: u32, budget: u64, joinable: bool) -> Self {
        let q = RawQueue {
            config: Config {
                maxsize: AtomicU32::new(0),
                closed: AtomicU32::new(0),
                joinable: AtomicU32::new(0),
                _reserved: AtomicU32::new(0),
                budget: AtomicU64::new(0),
            },
            prod: Producers {
                lock: BiasLock::new(),
                head_seen: AtomicU64::new(0),
                side_seq: AtomicU64::new(0),
                ool_put: AtomicU64::new(0),
                lap_probe: AtomicU32::new(0),
                restart_wrap: AtomicU64::new(0),
            },
            tail: Word(AtomicU64::new(0)),
            cons: Consumers {
                lock: BiasLock::new(),
                ool_got: AtomicU64::new(0),
                credit: AtomicU32::new(0),
                untracked: AtomicU32::new(0),
            },
            head: Word(AtomicU64::new(0)),
            not_empty: Signal::new(),
            not_full: Signal::new(),
            all_done: Signal::new(),
            takers: core::array::from_fn(|_| Taker {
                id: AtomicU64::new(0),
                held: AtomicU32::new(0),
                _reserved: AtomicU32::new(0),
            }),
        };
        q.init(maxsize, budget, joinable);
        q
    }

    /// Initialize zeroed shared memory (before the segment is published).
    pub fn init(&self, maxsize: u32, budget: u64, joinable: bool) {
        // Ordering::Relaxed: published by the segment header's Release.
        self.config.maxsize.store(maxsize, Ordering::Relaxed);
        self.config.budget.store(budget, Ordering::Relaxed);
        self.config
            .joinable
            .store(u32::from(joinable), Ordering::Relaxed);
    }

    // Fields of the producer group are read and written with the P lock
    // held, those of the consumer group with the C lock held
    // (Ordering::Relaxed: the lock's Acquire/Release order them); `tail`
    // and `head` are the SYNC POINTs described in the module docs.

    /// Take the P lock; from a dead producer, first move `tail` over what
    /// it committed ([`roll_forward`](Self::roll_forward)).
    #[inline]
    fn lock_producers<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        deadline: Option<Instant>,
    ) -> Result<(), QueueError> {
        if self.lock(&self.prod.lock, env, deadline, false)? {
            self.roll_forward(ring);
        }
        Ok(())
    }

    /// With the P lock taken over from a dead producer: move `tail` over
    /// the records that producer committed (their headers are written) but
    /// did not yet count in `tail`. The walk stops at the first cleared
    /// header slot, and at anything insane.
    #[cold]
    fn roll_forward<R: Region + ?Sized>(&self, ring: &R) {
        let cap = ring.capacity();
        let start = Pos::unpack(self.tail.0.load(Ordering::Relaxed));
        let mut t = start;
        let mut walked = 0u32;
        while t.at % 8 == 0 && walked < cap {
            let off = t.at & (cap - 1);
            let (len, kind) = Self::read_header(ring, off);
            let step = match kind {
                KIND_WRAP => cap - off,
                KIND_INLINE | KIND_SIDE if record_span(len) <= u64::from(cap - off) => {
                    record_span(len) as u32
                }
                _ => break,
            };
            t.at = t.at.wrapping_add(step);
            if kind != KIND_WRAP {
                t.items = t.items.wrapping_add(1);
            }
            walked = walked.saturating_add(step);
        }
        if t != start {
            // SYNC POINT: write, as in `append_one`.
            self.tail.0.store(t.pack(), Ordering::Release);
        }
    }

    /// Take `lock` (`aside`: an occasional taker, see
    /// [`BiasLock::lock_aside`]); whether it was taken over from a dead
    /// holder (marked consistent: the caller repairs what needs it).
    #[inline]
    fn lock<E: Env + ?Sized>(
        &self,
        lock: &BiasLock,
        env: &E,
        deadline: Option<Instant>,
        aside: bool,
    ) -> Result<bool, QueueError> {
        let deadline = lock_deadline(deadline);
        let taken = if aside {
            lock.lock_aside(env, deadline)
        } else {
            lock.lock(env, deadline)
        };
        match taken {
            Ok(Acquired::OwnerDied) => {
                // Every change commits with one store (module docs); the
                // only repair is the producers' `tail`, which the P lock's
                // caller rolls forward.
                lock.mark_consistent();
                Ok(true)
            }
            Ok(_) => Ok(false),
            // Only a hostile process can make a queue lock unrecoverable:
            // this code always marks it consistent.
            Err(LockError::NotRecoverable) => Err(QueueError::Corrupted),
            Err(LockError::WouldBlock) => Err(QueueError::Timeout),
        }
    }

    #[inline]
    fn unlock<E: Env + ?Sized>(lock: &BiasLock, env: &E) {
        // Only fails if another process released our lock: nothing to do.
        let _ = lock.unlock(env);
    }

    #[inline]
    fn maxsize(&self) -> u32 {
        // Ordering::Relaxed: set before publication, never changed.
        self.config.maxsize.load(Ordering::Relaxed)
    }

    #[inline]
    fn joinable(&self) -> bool {
        self.config.joinable.load(Ordering::Relaxed) != 0
    }

    // ----- put ------------------------------------------------------------------

    /// With the P lock held: the room after `t`, judged by the cached head
    /// (a lower bound of the real one) or, with `fresh`, by `head` itself.
    #[inline]
    fn space<R: Region + ?Sized>(
        &self,
        ring: &R,
        t: Pos,
        fresh: bool,
    ) -> Result<Space, QueueError> {
        let cap = ring.capacity();
        let h = if fresh {
            // SYNC POINT: read. Acquire pairs with the consumers' Release of
            // `head`: the bytes they copied out are free to overwrite.
            let h = Pos::unpack(self.head.0.load(Ordering::Acquire));
            self.prod.head_seen.store(h.pack(), Ordering::Relaxed);
            h
        } else {
            Pos::unpack(self.prod.head_seen.load(Ordering::Relaxed))
        };
        let used = t.at.wrapping_sub(h.at);
        if used > cap || h.at % 8 != 0 {
            return Err(QueueError::Corrupted);
        }
        let maxsize = self.maxsize();
        let slots = if maxsize == 0 {
            u32::MAX
        } else {
            maxsize.saturating_sub(t.items.wrapping_sub(h.items))
        };
        Ok(Space {
            free: cap - used,
            slots,
        })
    }

    /// With the P lock held: whether a record of `size` fits at `t`; the
    /// filler it needs first. Looks at `head` itself only when the cached
    /// one says no.
    #[inline]
    fn fits<R: Region + ?Sized>(
        &self,
        ring: &R,
        t: Pos,
        size: u32,
    ) -> Result<Option<u32>, QueueError> {
        let (wrap, need) = placement(ring.capacity(), t.at, size);
        // The record, and the header slot after it (cleared at the commit).
        let need = need + HEADER;
        if self.space(ring, t, false).is_ok_and(|s| s.takes(need))
            || self.space(ring, t, true)?.takes(need)
        {
            Ok(Some(wrap))
        } else {
            Ok(None)
        }
    }

    /// With the P lock held and the queue looking empty far into the lap:
    /// commit a WRAP record so that the next record starts the next lap at
    /// offset 0, and the ring's first pages are reused. Consumers skip the
    /// WRAP on their next get; a producer that runs out of room while it
    /// is still there skips it itself ([`skip_wraps`](Self::skip_wraps)).
    #[inline]
    fn restart_lap<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        t: Pos,
        size: u32,
    ) -> Pos {
        let cap = ring.capacity();
        let soft = soft_limit(cap, size);
        if t.at & (cap - 1) < soft {
            return t;
        }
        self.restart_lap_slow(env, ring, t, soft)
    }

    #[cold]
    fn restart_lap_slow<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        t: Pos,
        soft: u32,
    ) -> Pos {
        // Look at the consumers at most once every LAP_PROBE_EVERY bytes
        // (the `head` load below is a cache miss). Only `tail` positions up
        // to that far before the probe wait, so a stale probe never stops
        // the looks for good.
        let cap = ring.capacity();
        let every = LAP_PROBE_EVERY.min(soft);
        let wait = self
            .prod
            .lap_probe
            .load(Ordering::Relaxed)
            .wrapping_sub(t.at);
        if wait != 0 && wait <= every {
            return t;
        }
        let off = t.at & (cap - 1);
        // SYNC POINT: read, as in `space`.
        let h = Pos::unpack(self.head.0.load(Ordering::Acquire));
        // Restart when what is pending is all in this lap, small, and no
        // larger than the filler: then a producer short of room in the next
        // lap can always move it into the filler's end and free the rest of
        // this lap ([`reclaim_lap`](Self::reclaim_lap)). A stream whose
        // consumers keep pace is rarely empty at a put, only a record or two
        // behind, and without this would walk the whole ring.
        let pending = t.at.wrapping_sub(h.at);
        // (The move keeps the WRAP header: it needs `pending + HEADER`.)
        // The header slot at offset 0, which the WRAP's commit clears, must
        // be consumed: hence `pending + HEADER <= off`. And at most half a
        // lap pending: with more, a producer faster than its consumers
        // would reach them in the next lap before they pass the WRAP, and
        // copy what is pending at every lap (`reclaim_lap`); measured, a
        // 64 B stream runs 1.7x faster than with up to 4 MiB pending.
        let restart = pending + HEADER <= off
            && pending <= restart_backlog(cap).min(soft / 2)
            && pending + HEADER <= cap - off;
        if !restart {
            self.prod
                .lap_probe
                .store(t.at.wrapping_add(every), Ordering::Relaxed);
            return t;
        }
        // The hint first: a producer killed before the commit leaves a hint
        // that `records_before_wrap` finds false, nothing worse.
        self.prod
            .restart_wrap
            .store(1 << 32 | u64::from(t.at), Ordering::Relaxed);
        Self::clear_header(ring, 0);
        Self::write_header(ring, off, 0, KIND_WRAP);
        let t = Pos {
            at: t.at.wrapping_add(cap - off),
            items: t.items,
        };
        // SYNC POINT: write, as in `append_one`.
        self.tail.0.store(t.pack(), Ordering::Release);
        env.failpoint("restart.committed");
        t
    }

    /// Whether the record at `head` is a WRAP (a hint for a waiting
    /// producer: [`reclaim_lap`](Self::reclaim_lap) frees its lap).
    fn wrap_at_head<R: Region + ?Sized>(&self, ring: &R) -> bool {
        let h = Pos::unpack(self.head.0.load(Ordering::Acquire));
        let t = Pos::unpack(self.tail.0.load(Ordering::Acquire));
        if h.at == t.at || h.at % 8 != 0 {
            return false;
        }
        Self::read_header(ring, h.at & (ring.capacity() - 1)).1 == KIND_WRAP
    }

    /// With the P lock held and no room: free the rest of a lap that a
    /// WRAP ahead of the consumers holds. If the records before the first
    /// WRAP after the head are few (at most [`restart_backlog`] bytes, as a
    /// lap restart leaves them) and fit in its filler, copy them to the end
    /// of the filler and move `head` to the copy with one store, under the
    /// C lock: the rest of the lap is free, the records and their order
    /// unchanged. A WRAP right at the head (consumers idle) is simply
    /// consumed. Returns whether `head` moved.
    ///
    /// A producer killed before the `head` store leaves only bytes inside
    /// the filler, which nobody reads; after it, the copy is the queue.
    fn reclaim_lap<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        deadline: Option<Instant>,
    ) -> Result<bool, QueueError> {
        let cap = ring.capacity();
        // Without the C lock first, so that a ring that is simply full costs
        // no lock and no walk: there is something to do only with a WRAP at
        // the head, or the consumers before the last restart's WRAP (by at
        // most what a restart leaves) — and never when the item limit, not
        // the room, is what is short.
        let h = Pos::unpack(self.head.0.load(Ordering::Acquire));
        let t = Pos::unpack(self.tail.0.load(Ordering::Relaxed));
        let maxsize = self.maxsize();
        if maxsize != 0 && t.items.wrapping_sub(h.items) >= maxsize {
            return Ok(false);
        }
        let w = self.prod.restart_wrap.load(Ordering::Relaxed);
        let behind_restart = w >> 32 == 1 && (w as u32).wrapping_sub(h.at) <= restart_backlog(cap);
        if !behind_restart && !self.wrap_at_head(ring) {
            return Ok(false);
        }
        // Lock order is always P then C.
        self.lock(&self.cons.lock, env, deadline, true)?;
        let start = Pos::unpack(self.head.0.load(Ordering::Relaxed));
        let mut h = start;
        while let Some(before) = self.records_before_wrap(ring, h) {
            let w = h.at.wrapping_add(before);
            let lap_end = w.wrapping_add(cap - (w & (cap - 1)));
            if before > 0 {
                let from = h.at & (cap - 1);
                let to = cap - before;
                if to < (w & (cap - 1)) + HEADER {
                    break;
                }
                Self::copy_records(ring, from, to, before);
                env.failpoint("reclaim.copied");
            }
            h.at = lap_end.wrapping_sub(before);
            // SYNC POINT: write, as in `take`: consumers that see the new
            // head read the copy (the bytes were written before).
            self.head.0.store(h.pack(), Ordering::Release);
            if before > 0 {
                break;
            }
        }
        if h != start {
            self.prod.head_seen.store(h.pack(), Ordering::Relaxed);
        }
        Self::unlock(&self.cons.lock, env);
        Ok(h != start)
    }

    /// With both locks held: copy the `len` bytes of sane records at `from`
    /// to `to` (no overlap), bodies first and each header after its body.
    fn copy_records<R: Region + ?Sized>(ring: &R, from: u32, to: u32, len: u32) {
        let mut done = 0u32;
        let mut body = Vec::new();
        while done < len {
            let (n, kind) = Self::read_header(ring, from + done);
            let size = record_span(n).min(u64::from(len - done)) as u32;
            body.clear();
            body.resize((size - HEADER) as usize, 0);
            ring.read(from + done + HEADER, &mut body);
            ring.write(to + done + HEADER, &body);
            Self::write_header(ring, to + done, n, kind);
            done += size;
        }
    }

    /// Bytes of the records from `h` to the first WRAP after it, if that
    /// WRAP is committed, they are at most [`restart_backlog`] bytes and in
    /// `h`'s lap, and the headers on the way are sane.
    fn records_before_wrap<R: Region + ?Sized>(&self, ring: &R, h: Pos) -> Option<u32> {
        let cap = ring.capacity();
        let t = Pos::unpack(self.tail.0.load(Ordering::Acquire));
        let avail = t.at.wrapping_sub(h.at);
        if avail > cap || h.at % 8 != 0 {
            return None;
        }
        let limit = restart_backlog(cap).min(avail);
        let mut before = 0u32;
        loop {
            if before >= avail {
                return None;
            }
            let off = h.at.wrapping_add(before) & (cap - 1);
            let (len, kind) = Self::read_header(ring, off);
            if kind == KIND_WRAP {
                return (cap - off <= avail - before).then_some(before);
            }
            let size = record_span(len);
            if size > u64::from(cap - off) || size > u64::from(limit - before.min(limit)) {
                return None;
            }
            before += size as u32;
        }
    }

    /// The header at `off`: `(len, kind)`, as written (unvalidated; kind 0:
    /// nothing committed there). SYNC POINT: read (Acquire, in
    /// [`Region::load_header`]): pairs with the Release in `write_header`,
    /// so a record's bytes are visible once its header is.
    #[inline]
    fn read_header<R: Region + ?Sized>(ring: &R, off: u32) -> (u32, u32) {
        let w = ring.load_header(off);
        (w as u32, (w >> 32) as u32)
    }

    /// Commit a header at `off`. SYNC POINT: write (Release, in
    /// [`Region::store_header`]): the record's body, and the cleared header
    /// after it, are written first.
    #[inline]
    fn write_header<R: Region + ?Sized>(ring: &R, off: u32, len: u32, kind: u32) {
        ring.store_header(off, u64::from(len) | u64::from(kind) << 32);
    }

    /// Clear the header slot at `off` (the one after a record about to be
    /// committed), so that consumers reaching it see "nothing yet".
    #[inline]
    fn clear_header<R: Region + ?Sized>(ring: &R, off: u32) {
        ring.store_header(off, 0);
    }

    /// With the P lock held and room found (for `wrap` bytes of filler, the
    /// record, and the header slot after it): write a record at `t` and
    /// commit it (consumers can take it from then on); returns the position
    /// after it. The caller then moves `tail` there.
    ///
    /// Order: body, the next header slot cleared, the record's header
    /// (Release), and with a filler the filler's header last, since
    /// consumers reach the record only through it.
    #[inline]
    fn write_record<E: Env + ?Sized, R: Region + ?Sized>(
        env: &E,
        ring: &R,
        t: Pos,
        wrap: u32,
        kind: u32,
        prefix: &[u8],
        body: &[u8],
    ) -> Pos {
        let cap = ring.capacity();
        let at = t.at.wrapping_add(wrap);
        let off = at & (cap - 1);
        let len = (prefix.len() + body.len()) as u32;
        let o = off + HEADER;
        if !prefix.is_empty() {
            ring.write(o, prefix);
        }
        let o = o + prefix.len() as u32;
        if env.failpoints_armed() && body.len() >= 2 {
            // A failpoint halfway through the body: a producer killed here
            // leaves a torn record beyond `tail`.
            let half = body.len() / 2;
            ring.write(o, &body[..half]);
            env.failpoint("put.half");
            ring.write(o + half as u32, &body[half..]);
        } else {
            ring.write(o, body);
        }
        let next = at.wrapping_add(HEADER + pad8(len));
        Self::clear_header(ring, next & (cap - 1));
        Self::write_header(ring, off, len, kind);
        if wrap != 0 {
            Self::write_header(ring, t.at & (cap - 1), 0, KIND_WRAP);
        }
        Pos {
            at: next,
            items: t.items.wrapping_add(1),
        }
    }

    /// Whether the out-of-line budget lets `ool` more bytes in (P lock held).
    #[inline]
    fn budget_allows(&self, ool: u64, t: Pos) -> bool {
        if ool == 0 {
            return true;
        }
        // Ordering::Relaxed: `ool_got` is a counter whose staleness only
        // delays a put; `ool_put` is ours under the P lock.
        let pending = self
            .prod
            .ool_put
            .load(Ordering::Relaxed)
            .saturating_sub(self.cons.ool_got.load(Ordering::Relaxed));
        let budget = self.config.budget.load(Ordering::Relaxed);
        // An empty queue takes any one payload, so no payload is refused for
        // good.
        let empty = Pos::unpack(self.head.0.load(Ordering::Acquire)).items == t.items;
        pending.saturating_add(ool) <= budget || (pending == 0 && empty)
    }

    /// Put one record, waiting for room until `deadline` (`try_`: a deadline
    /// of now). For a side record, `send` hands the socket message over
    /// before the record is committed.
    pub fn put<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        rec: Rec<'_>,
        deadline: Option<Instant>,
        send: Option<SendSide<'_>>,
    ) -> Result<(), QueueError> {
        let size = record_size(rec.body_len()).ok_or(QueueError::TooLarge)?;
        if size > ring.capacity() / 2 {
            return Err(QueueError::TooLarge);
        }
        let mut send = send;
        loop {
            self.lock_producers(env, ring, deadline)?;
            env.failpoint("put.locked");
            let r = self.append_one(env, ring, rec, size, deadline, &mut send);
            Self::unlock(&self.prod.lock, env);
            match r? {
                Appended::Yes => {
                    env.failpoint("put.unlocked");
                    self.not_empty.notify(env, 1);
                    return Ok(());
                }
                Appended::NoRoom => self.wait_for(env, deadline, || self.room_hint(ring, size))?,
                Appended::NoBudget => {
                    let ool = match rec {
                        Rec::Side { ool, .. } => ool,
                        Rec::Inline(_) => 0,
                    };
                    self.wait_for(env, deadline, || {
                        let t = Pos::unpack(self.tail.0.load(Ordering::Acquire));
                        self.budget_allows(ool, t)
                    })?;
                }
            }
        }
    }

    /// With the P lock held: append `rec` if there is room (`Ok(false)`
    /// if not).
    fn append_one<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        rec: Rec<'_>,
        size: u32,
        deadline: Option<Instant>,
        send: &mut Option<SendSide<'_>>,
    ) -> Result<Appended, QueueError> {
        if self.is_closed() {
            return Err(QueueError::Closed);
        }
        let t = Pos::unpack(self.tail.0.load(Ordering::Relaxed));
        let t = self.restart_lap(env, ring, t, size);
        let wrap = match self.fits(ring, t, size)? {
            Some(wrap) => wrap,
            None if self.reclaim_lap(env, ring, deadline)? => match self.fits(ring, t, size)? {
                Some(wrap) => wrap,
                None => return Ok(Appended::NoRoom),
            },
            None => return Ok(Appended::NoRoom),
        };
        let next = match rec {
            Rec::Inline(body) => Self::write_record(env, ring, t, wrap, KIND_INLINE, &[], body),
            Rec::Side { meta, ool } => {
                if !self.budget_allows(ool, t) {
                    return Ok(Appended::NoBudget);
                }
                let send = send.as_mut().ok_or(QueueError::Corrupted)?;
                // The number is used up even if the send fails: numbers only
                // need to increase.
                let seq = self.prod.side_seq.load(Ordering::Relaxed);
                self.prod.side_seq.store(seq + 1, Ordering::Relaxed);
                if !send(seq)? {
                    return Err(QueueError::SideFull);
                }
                env.failpoint("put.sent");
                let mut prefix = [0u8; SIDE_PREFIX];
                prefix[..8].copy_from_slice(&seq.to_le_bytes());
                prefix[8..].copy_from_slice(&ool.to_le_bytes());
                Self::write_record(env, ring, t, wrap, KIND_SIDE, &prefix, meta)
            }
        };
        // Consumers can take the record now (its header is the commit); a
        // producer killed here leaves `tail` behind it, which the next
        // producer rolls forward.
        env.failpoint("put.published");
        // SYNC POINT: write. Release pairs with the Acquire loads of `tail`
        // by producers (and `len`): the record's bytes are written first.
        self.tail.0.store(next.pack(), Ordering::Release);
        env.failpoint("put.committed");
        if let Rec::Side { ool, .. } = rec {
            if ool != 0 {
                let v = self.prod.ool_put.load(Ordering::Relaxed);
                self.prod
                    .ool_put
                    .store(v.wrapping_add(ool), Ordering::Relaxed);
            }
        }
        Ok(Appended::Yes)
    }

    /// Without a lock: sleep until a consumer's get makes `ready` true (or
    /// the queue closes, or the deadline passes). Returns early (spuriously)
    /// at times; the caller re-checks under its lock.
    fn wait_for<E: Env + ?Sized>(
        &self,
        env: &E,
        deadline: Option<Instant>,
        ready: impl Fn() -> bool,
    ) -> Result<(), QueueError> {
        if env::expired(deadline) {
            return Err(QueueError::Timeout);
        }
        let seen = self.not_full.prepare(env);
        // Re-check after registering (Dekker with the consumers' notify).
        if self.is_closed() || ready() {
            self.not_full.cancel();
            return Ok(());
        }
        self.not_full.park(env, seen, deadline);
        Ok(())
    }

    /// Whether a record of `size` bytes would fit now (no lock; a hint).
    fn room_hint<R: Region + ?Sized>(&self, ring: &R, size: u32) -> bool {
        let t = Pos::unpack(self.tail.0.load(Ordering::Acquire));
        let (_, need) = placement(ring.capacity(), t.at, size);
        self.space(ring, t, true)
            .map_or(true, |s| s.takes(need + HEADER))
            || self.wrap_at_head(ring)
    }

    /// Put inline records under one lock hold while they fit, committing
    /// them with one store; waits for room for the rest. Returns how many
    /// went in (all of them, or those before an error).
    ///
    /// Records are committed every [`PUT_MANY_BYTES`], so a batch of large
    /// records streams to consumers instead of arriving all at once.
    pub fn put_many<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        items: &[&[u8]],
        deadline: Option<Instant>,
    ) -> Result<usize, (usize, QueueError)> {
        let fits = |b: &[u8]| record_size(b.len()).filter(|&s| s <= ring.capacity() / 2);
        let mut n = 0usize;
        while n < items.len() {
            let size = fits(items[n]).ok_or((n, QueueError::TooLarge))?;
            self.lock_producers(env, ring, deadline)
                .map_err(|e| (n, e))?;
            if self.is_closed() {
                Self::unlock(&self.prod.lock, env);
                return Err((n, QueueError::Closed));
            }
            let t0 = Pos::unpack(self.tail.0.load(Ordering::Relaxed));
            let mut t = self.restart_lap(env, ring, t0, size);
            let cap = ring.capacity();
            let mut added = 0u32;
            let mut space = match self.space(ring, t, false) {
                Ok(sp) => sp,
                Err(_) => Space { free: 0, slots: 0 },
            };
            let mut fresh = false;
            let mut skipped = false;
            let mut i = n;
            while i < items.len() {
                let body = items[i];
                let Some(size) = fits(body) else { break };
                let (wrap, need) = placement(cap, t.at, size);
                // (Room for the header slot after it too, as in `fits`.)
                if !space.takes(need + HEADER) {
                    // Look at the real head once; then try to skip a WRAP
                    // left at the head once.
                    let refreshed = if !fresh {
                        fresh = true;
                        self.space(ring, t, true)
                    } else if !skipped && added == 0 {
                        skipped = true;
                        match self.reclaim_lap(env, ring, deadline) {
                            Ok(true) => self.space(ring, t, true),
                            Ok(false) => break,
                            Err(e) => Err(e),
                        }
                    } else {
                        break;
                    };
                    match refreshed {
                        Ok(sp) => space = sp,
                        Err(e) => {
                            Self::unlock(&self.prod.lock, env);
                            return Err((n, e));
                        }
                    }
                    continue;
                }
                t = Self::write_record(env, ring, t, wrap, KIND_INLINE, &[], body);
                space.take(need);
                added += 1;
                i += 1;
                if t.at.wrapping_sub(t0.at) >= PUT_MANY_BYTES {
                    // Commit what is written, so consumers copy it out while
                    // we write the rest (and other producers get a turn).
                    break;
                }
            }
            if added > 0 {
                // SYNC POINT: write, as in `append_one`.
                self.tail.0.store(t.pack(), Ordering::Release);
            }
            Self::unlock(&self.prod.lock, env);
            if added > 0 {
                self.not_empty.notify(env, added);
                n += added as usize;
            } else if let Err(e) = self.wait_for(env, deadline, || self.room_hint(ring, size)) {
                return Err((n, e));
            }
        }
        Ok(n)
    }

    // ----- get ------------------------------------------------------------------

    /// Take up to `max` records (at least one, waiting until `deadline`),
    /// each appended to `buf` and passed to `sink`. Returns how many.
    pub fn get<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        max: usize,
        deadline: Option<Instant>,
        scratch: &mut Vec<u8>,
        sink: Sink<'_>,
    ) -> Result<usize, QueueError> {
        loop {
            self.lock(&self.cons.lock, env, deadline, false)?;
            env.failpoint("get.locked");
            let mut side = false;
            let r = self.take(env, ring, max.max(1), scratch, &mut side, sink);
            Self::unlock(&self.cons.lock, env);
            match r {
                Ok(0) => {}
                Ok(n) => {
                    self.not_full
                        .notify_if(env, u32::MAX, || side || self.room_worth_a_wake(ring));
                    return Ok(n);
                }
                Err(e) => return Err(e),
            }
            if env::expired(deadline) {
                return Err(QueueError::Timeout);
            }
            // Spin briefly on `tail`, then sleep on `not_empty`.
            // Ordering::Relaxed: only a hint; `take` decides.
            let seen = self.tail.0.load(Ordering::Relaxed);
            if env::spin_until(|| self.tail.0.load(Ordering::Relaxed) != seen || self.is_closed()) {
                continue;
            }
            let ticket = self.not_empty.prepare(env);
            // Re-check after registering (Dekker with the producers' notify).
            if self.has_items(ring) || self.is_closed() {
                self.not_empty.cancel();
                continue;
            }
            self.not_empty.park(env, ticket, deadline);
        }
    }

    /// After a get, with producers asleep for room: whether to wake them.
    /// Producers waiting for item slots always; producers waiting for bytes
    /// once [`wake_room`] bytes are free (a producer far ahead of its
    /// consumers then runs in long strides instead of one wake-up per get),
    /// or when the head reaches a WRAP (the producer may free its lap) or
    /// the last record. Every sleeper's condition needs one of these first:
    /// a record fits in at most half the ring, so it fits in an empty ring.
    /// (Side records, whose budget producers may wait for, always wake:
    /// the caller checks.)
    fn room_worth_a_wake<R: Region + ?Sized>(&self, ring: &R) -> bool {
        if self.maxsize() != 0 {
            return true;
        }
        let cap = ring.capacity();
        let h = Pos::unpack(self.head.0.load(Ordering::Relaxed));
        let t = Pos::unpack(self.tail.0.load(Ordering::Relaxed));
        let used = t.at.wrapping_sub(h.at);
        used > cap
            || cap - used >= wake_room(cap)
            || matches!(Self::read_header(ring, h.at & (cap - 1)).1, 0 | KIND_WRAP)
    }

    /// Whether a record (or a WRAP) is committed at the head (no lock; a
    /// hint).
    #[inline]
    fn has_items<R: Region + ?Sized>(&self, ring: &R) -> bool {
        let h = Pos::unpack(self.head.0.load(Ordering::Acquire));
        // SYNC POINT: read (Acquire), as in `take`.
        Self::read_header(ring, h.at & (ring.capacity() - 1)).1 != 0
    }

    /// With the C lock held: take up to `max` records. `Ok(0)`: empty (and
    /// not closed). An error after some records were taken is left for the
    /// next call to meet again (the bad record stays at the head).
    fn take<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        max: usize,
        scratch: &mut Vec<u8>,
        side: &mut bool,
        sink: Sink<'_>,
    ) -> Result<usize, QueueError> {
        let fail = |n: usize, e: QueueError| if n > 0 { Ok(n) } else { Err(e) };
        let cap = ring.capacity();
        let mut h = Pos::unpack(self.head.0.load(Ordering::Relaxed));
        let mut n = 0usize;
        let joinable = self.joinable();
        let mut slot = None;
        let base = scratch.len();
        // WRAPs skipped since the last record: a sane ring never has two in
        // a row, so a second one means a hostile ring (and no endless loop).
        let mut wraps = 0;
        while n < max {
            if h.at % 8 != 0 {
                return fail(n, QueueError::Corrupted);
            }
            let off = h.at & (cap - 1);
            // The header is the record's commit (module docs): kind 0 is the
            // cleared slot after the last committed record.
            let (len, kind) = Self::read_header(ring, off);
            if kind == 0 {
                if n > 0 {
                    break;
                }
                // Closed and drained? A put that happened before the close
                // is visible once the close is (Acquire), so look at the
                // header once more after seeing it.
                if self.config.closed.load(Ordering::Acquire) != 0 {
                    if Self::read_header(ring, off).1 == 0 {
                        return Err(QueueError::Closed);
                    }
                    continue;
                }
                return Ok(0);
            }
            if kind == KIND_WRAP {
                wraps += 1;
                if wraps > 1 {
                    return fail(n, QueueError::Corrupted);
                }
                h.at = h.at.wrapping_add(cap - off);
                // SYNC POINT: write, as below (the filler is consumed).
                self.head.0.store(h.pack(), Ordering::Release);
                continue;
            }
            wraps = 0;
            let size = record_span(len);
            let valid_kind =
                kind == KIND_INLINE || (kind == KIND_SIDE && len as usize >= SIDE_PREFIX);
            if !valid_kind || size > u64::from(cap - off) {
                return fail(n, QueueError::Corrupted);
            }
            let start = scratch.len();
            ring.append(off + HEADER, len as usize, scratch);
            let mut taken = Taken {
                kind,
                seq: 0,
                ool: 0,
            };
            if kind == KIND_SIDE {
                *side = true;
                taken.seq = read_u64(scratch, start);
                taken.ool = read_u64(scratch, start + 8);
                scratch.drain(start..start + SIDE_PREFIX);
                if taken.ool != 0 {
                    // Before the commit: a consumer dying in between makes
                    // the budget looser, never tighter.
                    let v = self.cons.ool_got.load(Ordering::Relaxed);
                    self.cons
                        .ool_got
                        .store(v.wrapping_add(taken.ool), Ordering::Relaxed);
                }
            }
            let use_credit = joinable && self.cons.credit.load(Ordering::Relaxed) > 0;
            if joinable && !use_credit {
                // Before the commit: a consumer dying in between holds one
                // task too many, which is forgiven with the rest of its
                // tasks when its death is noticed.
                self.count_task_taken(env, &mut slot);
            }
            env.failpoint("get.copied");
            h.at = h.at.wrapping_add(size as u32);
            h.items = h.items.wrapping_add(1);
            // The commit point. SYNC POINT: write. Release pairs with the
            // producers' Acquire of `head`: our reads are done before they
            // overwrite the bytes.
            self.head.0.store(h.pack(), Ordering::Release);
            env.failpoint("get.committed");
            if use_credit {
                // After the commit: a consumer dying in between leaves the
                // credit unused, so `join` may return early, never late.
                let c = self.cons.credit.load(Ordering::Relaxed);
                self.cons
                    .credit
                    .store(c.saturating_sub(1), Ordering::Relaxed);
            }
            n += 1;
            if !sink(taken, scratch, start) || scratch.len().saturating_sub(base) >= TAKE_BYTES {
                break;
            }
        }
        Ok(n)
    }

    // ----- state ------------------------------------------------------------------

    /// Close: later puts fail; gets drain what is left, then fail. Wakes
    /// every waiter.
    pub fn close<E: Env + ?Sized>(&self, env: &E) {
        // SYNC POINT: write. Release pairs with the Acquire load in `take`:
        // puts committed before the close are seen by a consumer that sees
        // the close.
        self.config.closed.store(1, Ordering::Release);
        self.not_empty.notify(env, u32::MAX);
        self.not_full.notify(env, u32::MAX);
    }

    /// Whether the queue is closed.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.config.closed.load(Ordering::Acquire) != 0
    }

    /// Items in the queue (a snapshot; Python's `qsize()`).
    #[inline]
    pub fn len(&self) -> u32 {
        // `head` first: both only grow. Consumers can take a committed
        // record before its producer moves `tail` over it, so the difference
        // can be briefly negative: that counts as empty.
        let h = Pos::unpack(self.head.0.load(Ordering::Acquire));
        let t = Pos::unpack(self.tail.0.load(Ordering::Acquire));
        (t.items.wrapping_sub(h.items) as i32).max(0) as u32
    }

    /// Whether the queue holds no item (a snapshot).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `maxsize` items are queued (a snapshot).
    pub fn is_full(&self) -> bool {
        let m = self.maxsize();
        m != 0 && self.len() >= m
    }

    /// The item limit (0: unbounded).
    pub fn item_limit(&self) -> u32 {
        self.maxsize()
    }

    /// Whether this is a JoinableQueue's state.
    pub fn is_joinable(&self) -> bool {
        self.joinable()
    }

    /// Bytes of the ring in use (a snapshot).
    pub fn used_bytes(&self) -> u32 {
        let h = Pos::unpack(self.head.0.load(Ordering::Acquire));
        let t = Pos::unpack(self.tail.0.load(Ordering::Acquire));
        (t.at.wrapping_sub(h.at) as i32).max(0) as u32
    }

    /// Processes registered as sleeping: (in `get`, in `put`). A waiter
    /// registers only after its brief spin, so a count above zero means
    /// someone is blocked (tests wait for it instead of sleeping).
    pub fn sleepers(&self) -> (u32, u32) {
        // Ordering::Relaxed: a snapshot for diagnostics and tests.
        (
            self.not_empty.sleepers.load(Ordering::Relaxed),
            self.not_full.sleepers.load(Ordering::Relaxed),
        )
    }

    /// The commit words and wait state, for diagnostics.
    pub fn debug_state(&self) -> String {
        let r = |a: &AtomicU64| Pos::unpack(a.load(Ordering::Acquire));
        let w = |a: &AtomicU32| a.load(Ordering::Acquire);
        format!(
            "head {:?} tail {:?} head_seen {:?} P {:?} C {:?} P-bias {} C-bias {} not_empty {}/{} not_full {}/{} closed {}",
            r(&self.head.0),
            r(&self.tail.0),
            r(&self.prod.head_seen),
            self.prod.lock.owner(),
            self.cons.lock.owner(),
            self.prod.lock.bias().is_some(),
            self.cons.lock.bias().is_some(),
            w(&self.not_empty.seq),
            w(&self.not_empty.sleepers),
            w(&self.not_full.seq),
            w(&self.not_full.sleepers),
            w(&self.config.closed),
        )
    }

    // ----- JoinableQueue ------------------------------------------------------------

    fn my_id<E: Env + ?Sized>(env: &E) -> u64 {
        let me = env.me();
        u64::from(me.pid) | (u64::from(me.start) << 32)
    }

    fn id_is_dead<E: Env + ?Sized>(env: &E, id: u64) -> bool {
        id != 0 && env.is_dead(id as u32, Some((id >> 32) as u32))
    }

    /// With the C lock held, in a `get` of a joinable queue: the item taken
    /// is a task this process holds. Out of line: plain queues never pay
    /// for it.
    #[inline(never)]
    fn count_task_taken<E: Env + ?Sized>(&self, env: &E, slot: &mut Option<Option<usize>>) {
        // Ordering::Relaxed: C lock held.
        match *slot.get_or_insert_with(|| self.taker_slot(env)) {
            Some(s) => self.takers[s].held.fetch_add(1, Ordering::Relaxed),
            None => self.cons.untracked.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// With the C lock held: this process's row in the takers table,
    /// claiming a free one (or one of a dead process) if needed. `None` when
    /// the table is full of live processes: this process's tasks are then
    /// not tracked for death.
    fn taker_slot<E: Env + ?Sized>(&self, env: &E) -> Option<usize> {
        let id = Self::my_id(env);
        // Ordering::Relaxed throughout: the table is only written with the
        // C lock held.
        if let Some(i) = self
            .takers
            .iter()
            .position(|t| t.id.load(Ordering::Relaxed) == id)
        {
            return Some(i);
        }
        let free = self
            .takers
            .iter()
            .position(|t| t.id.load(Ordering::Relaxed) == 0)
            .or_else(|| {
                self.takers.iter().position(|t| {
                    Self::id_is_dead(env, t.id.load(Ordering::Relaxed))
                        && t.held.load(Ordering::Relaxed) == 0
                })
            })?;
        self.takers[free].id.store(id, Ordering::Relaxed);
        Some(free)
    }

    /// With the C lock held: tasks put and not yet marked done.
    fn unfinished_locked(&self) -> i64 {
        let h = Pos::unpack(self.head.0.load(Ordering::Relaxed));
        let t = Pos::unpack(self.tail.0.load(Ordering::Acquire));
        // Never negative: a record taken before its producer moved `tail`
        // over it is counted in `held` already (see `len`).
        let queued = i64::from((t.items.wrapping_sub(h.items) as i32).max(0));
        let held: i64 = self
            .takers
            .iter()
            .map(|t| i64::from(t.held.load(Ordering::Relaxed)))
            .sum::<i64>()
            + i64::from(self.cons.untracked.load(Ordering::Relaxed));
        queued + held - i64::from(self.cons.credit.load(Ordering::Relaxed))
    }

    /// Mark one task done (Python's `task_done`).
    pub fn task_done<E: Env + ?Sized>(&self, env: &E) -> Result<(), QueueError> {
        self.lock(&self.cons.lock, env, None, false)?;
        let unfinished = self.unfinished_locked();
        if unfinished <= 0 {
            Self::unlock(&self.cons.lock, env);
            return Err(QueueError::TooManyTaskDone);
        }
        let id = Self::my_id(env);
        // Ordering::Relaxed: C lock held. Python counts tasks, not who took
        // them: prefer this process's own tasks, then those of processes
        // that died (only others can finish them, and `join` tells them
        // apart), then any process's, then untracked ones, then an item not
        // yet taken (credit, used up by the get that takes it).
        let held = |t: &&Taker| t.held.load(Ordering::Relaxed) > 0;
        let mine = || {
            self.takers
                .iter()
                .filter(held)
                .find(|t| t.id.load(Ordering::Relaxed) == id)
        };
        let dead = || {
            self.takers
                .iter()
                .filter(held)
                .find(|t| Self::id_is_dead(env, t.id.load(Ordering::Relaxed)))
        };
        let any = || self.takers.iter().find(held);
        if let Some(t) = mine().or_else(dead).or_else(any) {
            t.held.fetch_sub(1, Ordering::Relaxed);
        } else if self.cons.untracked.load(Ordering::Relaxed) > 0 {
            self.cons.untracked.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.cons.credit.fetch_add(1, Ordering::Relaxed);
        }
        if unfinished == 1 {
            self.all_done.notify(env, u32::MAX);
        }
        Self::unlock(&self.cons.lock, env);
        Ok(())
    }

    /// With the C lock held: tasks held by processes that died.
    fn dead_held<E: Env + ?Sized>(&self, env: &E) -> i64 {
        self.takers
            .iter()
            .filter(|t| t.held.load(Ordering::Relaxed) > 0)
            .filter(|t| Self::id_is_dead(env, t.id.load(Ordering::Relaxed)))
            .map(|t| i64::from(t.held.load(Ordering::Relaxed)))
            .sum()
    }

    /// Wait until every item put has been marked done, or `deadline`.
    ///
    /// Tasks held by a process that died are not forgiven: another process
    /// may still mark them done (the taker may have handed them on before
    /// it exited). When every unfinished task is held by dead processes
    /// and `progress` has seen no change for [`ABANDON_AFTER`], `join`
    /// returns [`QueueError::Abandoned`] with their number instead of
    /// waiting for good. Keep `progress` between calls that join in slices.
    pub fn join<E: Env + ?Sized>(
        &self,
        env: &E,
        deadline: Option<Instant>,
        progress: &mut JoinProgress,
    ) -> Result<(), QueueError> {
        let mut check_dead = false;
        loop {
            self.lock(&self.cons.lock, env, deadline, true)?;
            let unfinished = self.unfinished_locked();
            if unfinished <= 0 {
                Self::unlock(&self.cons.lock, env);
                progress.last = None;
                return Ok(());
            }
            let now = Instant::now();
            let since = match progress.last {
                Some((n, t)) if n == unfinished => t,
                _ => {
                    progress.last = Some((unfinished, now));
                    now
                }
            };
            if check_dead && now.duration_since(since) >= ABANDON_AFTER {
                let dead = self.dead_held(env);
                if dead > 0 && unfinished <= dead {
                    Self::unlock(&self.cons.lock, env);
                    progress.abandoned = dead.clamp(0, i64::from(u32::MAX)) as u32;
                    return Err(QueueError::Abandoned);
                }
            }
            if env::expired(deadline) {
                Self::unlock(&self.cons.lock, env);
                return Err(QueueError::Timeout);
            }
            // Notifiers (task_done) hold the C lock: preparing under it is
            // enough.
            let ticket = self.all_done.prepare(env);
            Self::unlock(&self.cons.lock, env);
            check_dead = !self.all_done.park(env, ticket, env::slice(deadline));
        }
    }

    /// Tasks put and not marked done (a snapshot; takes the C lock).
    pub fn unfinished<E: Env + ?Sized>(&self, env: &E) -> Result<u32, QueueError> {
        self.lock(&self.cons.lock, env, None, true)?;
        let n = self.unfinished_locked();
        Self::unlock(&self.cons.lock, env);
        Ok(n.clamp(0, i64::from(u32::MAX)) as u32)
    }
}
