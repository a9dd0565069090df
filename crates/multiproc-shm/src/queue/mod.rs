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
//! Both locks are robust [`BiasLock`](crate::BiasLock)s (a process that
//! takes one again and again enters without a locked instruction): a waiter
//! takes a dead holder's lock over within
//! [`LIVENESS_CHECK`](crate::LIVENESS_CHECK); apart from the
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
//! system call is made when nobody sleeps. A notifier can die between its
//! change and its wake-up (a producer killed after publishing), so no wait
//! sleeps longer than [`LIVENESS_CHECK`](crate::LIVENESS_CHECK) before it
//! looks again. The barriers are asymmetric
//! where the [`Env`](crate::Env) allows
//! ([`Env::heavy_barrier`](crate::Env::heavy_barrier)): the rare waiter runs
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
//!
//! # What lives in this folder
//!
//! - `mod.rs`: the record kinds, sizes and limits, [`Region`] (the caller's
//!   ring), and the record arithmetic shared by both sides.
//! - `state.rs`: the shared layout ([`RawQueue`] and its 128-byte groups,
//!   [`Signal`]), positions, and what operations report ([`QueueError`],
//!   [`Rec`], [`Taken`], [`JoinProgress`]).
//! - `put.rs`: the producers: their lock, lap restarts and reclaims, and
//!   appending records.
//! - `get.rs`: the consumers: taking records under their lock.
//! - `tasks.rs`: closing, counters and diagnostics, and a JoinableQueue's
//!   `task_done` and `join` with the tasks of dead takers forgiven.
//!
//! What may not live here: a second copy of a wait/wake protocol (waiting
//! goes through the crate's one eventcount, `eventcount.rs`, wrapped as
//! [`Signal`]); a lock (the queue's locks are
//! [`BiasLock`](crate::BiasLock)s from `bias/`); anything that touches the
//! ring other than through [`Region`]; and any clock, sleep or yield other
//! than through [`Env`](crate::Env). A change to [`RawQueue`]'s layout is a
//! change of the wire format between processes.

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

mod get;
mod put;
mod state;
mod tasks;

pub use state::*;
