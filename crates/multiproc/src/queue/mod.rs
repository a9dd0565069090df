//! Queues in shared memory: Python's `multiprocessing.Queue`, `SimpleQueue`
//! and `JoinableQueue`, multi-producer multi-consumer across processes.
//!
//! ```no_run
//! use multiproc::{Process, Queue};
//!
//! fn consumer(q: Queue<Option<String>>) -> usize {
//!     let mut n = 0;
//!     while let Some(msg) = q.get().unwrap() { // `None` is the sentinel
//!         println!("got {msg}");
//!         n += 1;
//!     }
//!     n
//! }
//!
//! fn main() {
//!     multiproc::init();
//!     let q = Queue::new().unwrap();
//!     let mut child = Process::spawn(consumer, q.clone()).unwrap();
//!     for i in 0..10 {
//!         q.put(Some(format!("message {i}"))).unwrap();
//!     }
//!     q.put(None).unwrap();
//!     assert_eq!(child.join().unwrap(), 10);
//! }
//! ```
//!
//! # How it works
//!
//! A queue is a sealed memfd holding a ring of variable-length records
//! ([`multiproc_shm::RawQueue`]): producers copy an item in and commit it
//! with one store, consumers copy it out and commit with one store, each
//! side under its own robust lock, so a producer and a consumer never wait
//! for each other. Nothing goes through the kernel unless a side has to
//! sleep. Items larger than a quarter of the ring travel out of line, in
//! their own memfd, and items holding handles (a [`Connection`], a
//! [`Lock`], another queue, …) carry their descriptors; both go over a
//! private socket pair alongside the ring, in order with the rest. The
//! memfd and the sockets are the queue's handle: a queue passes to spawned
//! and forked children and inside messages, and the kernel frees everything
//! with its last user, however the processes end.
//!
//! Items are serde values (postcard); the `*_bytes` methods skip the codec.
//!
//! # Capacity
//!
//! [`Queue::new`] is unbounded in items, as in Python, within a memory
//! budget: its ring holds 128 MiB of records (each record is its payload
//! plus 8 to 15 bytes, so at least 64 MiB of payload for any item of 8
//! bytes or more), and out-of-line items may add 128 MiB more. `put` blocks
//! only when that is used up. The ring is virtual memory that is touched
//! only as far as a backlog reaches: a queue whose consumers keep up reuses
//! the first few hundred KiB. [`Queue::bounded`] also limits the number of
//! items; [`Queue::builder`] sets the ring size and budget.
//!
//! # Crash safety
//!
//! A producer killed in the middle of a `put` leaves its half-written record
//! beyond the ring's commit point, where the next put overwrites it: nobody
//! waits for it and nobody reads it. A consumer killed inside `get` either
//! left the item in the queue (killed before its commit) or took it with it
//! (after): no item whose `put` returned is lost while live consumers drain
//! the queue, and none is delivered twice. A process killed while holding
//! one of the queue's two locks delays the others by about
//! [`LIVENESS_CHECK`](multiproc_shm::LIVENESS_CHECK) at most.
//!
//! An item a consumer took and then died with is gone, as in Python.
//! [`JoinableQueue::join`] does not wait for it forever: the queue records
//! how many tasks each consumer process holds, and every
//! [`LIVENESS_CHECK`](multiproc_shm::LIVENESS_CHECK) a waiting `join`
//! counts the tasks of consumers that died as done.
//!
//! [`Connection`]: crate::Connection
//! [`Lock`]: crate::Lock

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use multiproc_shm::queue::{KIND_SIDE, MAX_CAPACITY, MIN_CAPACITY};
use multiproc_shm::{QueueError, RawQueue, Rec, Region, Taken};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::codec::{self, DecodeError, EncodeError, Fd};
use crate::env::ProcessEnv;
use crate::shared::segment::{self, Segment};

const ENV: ProcessEnv = ProcessEnv;
/// Where the queue state starts in the payload: 128 bytes into the mapping,
/// the state's alignment.
const RAW_AT: usize = 64;
/// Where the ring starts in the payload: 4096 bytes into the mapping.
const RING_AT: usize = 4096 - segment::PAYLOAD;
const _: () = assert!(RAW_AT + std::mem::size_of::<RawQueue>() <= RING_AT);
const LAYOUT: u64 = segment::layout_hash(
    "multiproc::Queue/4",
    std::mem::size_of::<RawQueue>(),
    std::mem::align_of::<RawQueue>(),
);
/// How long `JoinableQueue::join` waits without progress on tasks held only
/// by dead processes before it reports them ([`JoinError::Abandoned`]).
pub use multiproc_shm::ABANDON_AFTER;
/// Default ring size in bytes.
pub const DEFAULT_CAPACITY: usize = 128 << 20;
/// Default budget of out-of-line bytes pending.
pub const DEFAULT_BUDGET: u64 = 128 << 20;
/// A side record's metadata: handle count, flags.
const META: usize = 8;
/// Flag: the payload is in the last descriptor (out of line).
const FLAG_OOL: u32 = 1;
/// How long a producer waits for the side channel before re-checking.
const SIDE_POLL: Duration = Duration::from_millis(10);

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The scratch buffer keeps its capacity between items, up to this much.
const SCRATCH_KEEP: usize = 1 << 20;

/// Run `f` with this thread's scratch buffer; drop the buffer's memory
/// afterwards if a large item made it grow.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|s| {
        let mut buf = s.borrow_mut();
        let r = f(&mut buf);
        if buf.capacity() > SCRATCH_KEEP {
            *buf = Vec::new();
        }
        r
    })
}

// ----- errors -------------------------------------------------------------------

/// Why an item was not put. Every variant hands the item back
/// ([`into_inner`](PutError::into_inner)).
#[non_exhaustive]
pub enum PutError<T> {
    /// `try_put`: no room now (Python's `queue.Full`).
    Full(T),
    /// `put_timeout`: no room before the timeout (Python's `queue.Full`).
    Timeout(T),
    /// The queue is closed.
    Closed(T),
    /// The item could not be encoded.
    Encode(EncodeError, T),
    /// The queue's shared state is inconsistent (written by a hostile or
    /// buggy process).
    Corrupted(T),
    /// The OS refused (an out-of-line payload or a handle).
    Io(io::Error, T),
}

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(t)
            | PutError::Timeout(t)
            | PutError::Closed(t)
            | PutError::Encode(_, t)
            | PutError::Corrupted(t)
            | PutError::Io(_, t) => t,
        }
    }

    /// Whether the queue had no room (`Full` or `Timeout`).
    pub fn is_full(&self) -> bool {
        matches!(self, PutError::Full(_) | PutError::Timeout(_))
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Timeout(_) => f.write_str("Timeout(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
            PutError::Encode(e, _) => write!(f, "Encode({e:?}, ..)"),
            PutError::Corrupted(_) => f.write_str("Corrupted(..)"),
            PutError::Io(e, _) => write!(f, "Io({e:?}, ..)"),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("the queue is full"),
            PutError::Timeout(_) => f.write_str("timed out waiting for room in the queue"),
            PutError::Closed(_) => f.write_str("the queue is closed"),
            PutError::Encode(e, _) => write!(f, "cannot encode the item: {e}"),
            PutError::Corrupted(_) => f.write_str("the queue's shared state is corrupted"),
            PutError::Io(e, _) => write!(f, "cannot put the item: {e}"),
        }
    }
}

impl<T> std::error::Error for PutError<T> {}

/// Why no item was got.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// `try_get`: nothing in the queue now (Python's `queue.Empty`).
    #[error("the queue is empty")]
    Empty,
    /// `get_timeout`: nothing before the timeout (Python's `queue.Empty`).
    #[error("timed out waiting for an item")]
    Timeout,
    /// The queue is closed and drained.
    #[error("the queue is closed and empty")]
    Closed,
    /// The item is not a valid encoding of `T` (it is consumed).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The shared state is inconsistent (written by a hostile or buggy
    /// process).
    #[error("the queue's shared state is corrupted")]
    Corrupted,
    /// The item's out-of-line payload or handles could not be received (it
    /// is consumed).
    #[error("cannot receive the item: {0}")]
    Io(#[from] io::Error),
}

impl GetError {
    /// Whether there was no item (`Empty` or `Timeout`: Python's
    /// `queue.Empty`).
    pub fn is_empty(&self) -> bool {
        matches!(self, GetError::Empty | GetError::Timeout)
    }
}

/// `task_done` was called more times than items were put (Python's
/// `ValueError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskDoneError {
    /// More calls than items put.
    #[error("task_done() called too many times")]
    TooManyCalls,
    /// The queue's shared state is inconsistent.
    #[error("the queue's shared state is corrupted")]
    Corrupted,
}

/// Why `join` returned without every task done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// `join_timeout`: tasks are still unfinished.
    #[error("timed out waiting for the tasks to be done")]
    Timeout,
    /// Every unfinished task is held by processes that died (killed, or
    /// exited without handing their tasks on), and none was marked done
    /// for [`ABANDON_AFTER`] (two seconds). The tasks stay
    /// unfinished: a later `task_done` counts them, a later `join` waits
    /// again. (Python's `join` would wait for good.)
    #[error("{tasks} tasks are held by processes that died and were never marked done")]
    Abandoned {
        /// How many.
        tasks: u32,
    },
    /// The queue's shared state is inconsistent.
    #[error("the queue's shared state is corrupted")]
    Corrupted,
}

/// What went wrong inside a put, before it is turned into a [`PutError`].
enum Fail {
    Queue(QueueError),
    Encode(EncodeError),
    Io(io::Error),
}

impl Fail {
    fn with<T>(self, item: T, try_form: bool) -> PutError<T> {
        match self {
            Fail::Queue(QueueError::Timeout) if try_form => PutError::Full(item),
            Fail::Queue(QueueError::Timeout) => PutError::Timeout(item),
            Fail::Queue(QueueError::Closed) => PutError::Closed(item),
            Fail::Queue(_) => PutError::Corrupted(item),
            Fail::Encode(e) => PutError::Encode(e, item),
            Fail::Io(e) => PutError::Io(e, item),
        }
    }
}

fn get_error(e: QueueError, try_form: bool) -> GetError {
    match e {
        QueueError::Timeout if try_form => GetError::Empty,
        QueueError::Timeout => GetError::Timeout,
        QueueError::Closed => GetError::Closed,
        _ => GetError::Corrupted,
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

// ----- the shared parts -----------------------------------------------------------

/// The ring in the segment, for the shared algorithm.
struct Ring {
    base: *mut u8,
    cap: u32,
}

// SAFETY: `capacity()` is a power of two in MIN_CAPACITY..=MAX_CAPACITY
// (checked when the queue is made or received) and `base..base + cap` is
// inside the segment, which the `Inner` that makes the `Ring` keeps mapped.
// The ranges are checked again below, so no call can leave the ring.
unsafe impl Region for Ring {
    fn capacity(&self) -> u32 {
        self.cap
    }

    fn read(&self, at: u32, out: &mut [u8]) {
        if at as usize + out.len() > self.cap as usize {
            return; // never asked by the algorithm; no access outside the ring
        }
        // SAFETY: in bounds (checked above); `out` is private memory that
        // does not overlap the shared ring.
        unsafe {
            copy_from_ring(self.base.add(at as usize), out.as_mut_ptr(), out.len());
        }
    }

    fn append(&self, at: u32, len: usize, out: &mut Vec<u8>) {
        if at as usize + len > self.cap as usize {
            return; // never asked by the algorithm; no access outside the ring
        }
        out.reserve(len);
        let start = out.len();
        // SAFETY: in bounds (checked above); `reserve` made room for `len`
        // more bytes in `out`, which the copy initializes before `set_len`
        // exposes them; `out` does not overlap the shared ring.
        unsafe {
            copy_from_ring(self.base.add(at as usize), out.as_mut_ptr().add(start), len);
            out.set_len(start + len);
        }
    }

    fn write(&self, at: u32, src: &[u8]) {
        if at as usize + src.len() > self.cap as usize {
            return; // never asked by the algorithm; no access outside the ring
        }
        // SAFETY: in bounds (checked above); the ring is writable shared
        // memory that no Rust reference covers.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(at as usize), src.len());
        }
    }

    fn load_header(&self, at: u32) -> u64 {
        self.header_word(at)
            .map_or(0, |w| w.load(std::sync::atomic::Ordering::Acquire))
    }

    fn store_header(&self, at: u32, header: u64) {
        if let Some(w) = self.header_word(at) {
            w.store(header, std::sync::atomic::Ordering::Release);
        }
    }
}

impl Ring {
    /// The header word at `at`, if `at` is 8-aligned and inside the ring
    /// (the algorithm never asks for another).
    #[inline]
    fn header_word(&self, at: u32) -> Option<&std::sync::atomic::AtomicU64> {
        if at % 8 != 0 || u64::from(at) + 8 > u64::from(self.cap) {
            return None;
        }
        // SAFETY: in bounds (checked above) and 8-aligned (the ring starts on
        // a page boundary and `at` is a multiple of 8); every process
        // accesses header words only atomically, through this function
        // (bodies are never copied over a header a consumer may be reading
        // at the same time), and the segment outlives `self`.
        Some(unsafe { std::sync::atomic::AtomicU64::from_ptr(self.base.add(at as usize).cast()) })
    }
}

/// Records at least this large are copied out page by page with a
/// prefetch of the next page ([`copy_from_ring`]).
const PREFETCH_FROM: usize = 64 << 10;

/// Copy `len` bytes out of the ring. A large record is copied 4 KiB at a
/// time, each step first prefetching the next 4 KiB of the source: its lines
/// were just written by another core (each one a cross-core transfer), and
/// the hardware prefetcher stops at every page boundary. Measured with
/// `multiproc bench --filter queue-bytes,memcpy --size 1048576`: 1 MiB
/// records stream 1.2x faster than with one `memcpy`.
///
/// # Safety
///
/// `src..src + len` is readable, `dst..dst + len` writable, and they do not
/// overlap.
unsafe fn copy_from_ring(src: *const u8, dst: *mut u8, len: usize) {
    const PAGE: usize = 4096;
    if len < PREFETCH_FROM || !cfg!(target_arch = "x86_64") {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
        return;
    }
    let mut done = 0;
    while done < len {
        let n = (len - done).min(PAGE);
        #[cfg(target_arch = "x86_64")]
        {
            let next = done + PAGE;
            let mut k = next;
            while k < len.min(next + PAGE) {
                // SAFETY: a prefetch is only a hint: it never faults and
                // changes no memory; `src + k` is inside the source (k < len).
                // SSE, which `_mm_prefetch` needs, is part of x86_64.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        src.add(k).cast(),
                    )
                };
                k += 64;
            }
        }
        // SAFETY: `done + n <= len`: inside both ranges (caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(src.add(done), dst.add(done), n) };
        done += n;
    }
}

/// What every handle of one queue shares.
struct Inner {
    seg: Segment,
    /// Side channel: producers send on `side_tx`, consumers receive on
    /// `side_rx`, each under its lock.
    side_tx: OwnedFd,
    side_rx: OwnedFd,
    cap: u32,
    /// JoinableQueue: what this process's joins saw last (progress or a
    /// stall), kept across calls that join in slices.
    join_progress: std::sync::Mutex<multiproc_shm::JoinProgress>,
}

impl Inner {
    fn new(seg: Segment, side_tx: OwnedFd, side_rx: OwnedFd) -> io::Result<Inner> {
        let ring_len = seg.payload_len().saturating_sub(RING_AT);
        let cap = u32::try_from(ring_len).unwrap_or(0);
        if !cap.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) {
            return Err(invalid("queue segment has an invalid ring size"));
        }
        // The state's alignment holds because mappings are page-aligned.
        debug_assert_eq!(seg.payload() as usize % 4096, segment::PAYLOAD);
        Ok(Inner {
            seg,
            side_tx,
            side_rx,
            cap,
            join_progress: Default::default(),
        })
    }

    fn raw(&self) -> &RawQueue {
        // SAFETY: the state lies at RAW_AT, inside the payload (checked at
        // compile time against RING_AT, and the ring size was checked), at
        // an address aligned to 128 (the mapping is page-aligned and
        // PAYLOAD + RAW_AT = 128); it is made only of atomics, valid for any
        // bit pattern and for concurrent access, and lives as long as `self`.
        unsafe { &*self.seg.payload().add(RAW_AT).cast::<RawQueue>() }
    }

    fn ring(&self) -> Ring {
        Ring {
            // SAFETY: RING_AT + cap is the payload's length (checked in
            // `new`).
            base: unsafe { self.seg.payload().add(RING_AT) },
            cap: self.cap,
        }
    }

    fn max_inline(&self) -> usize {
        (self.cap / 4) as usize
    }

    // ----- put -----------------------------------------------------------------

    /// Put one item: its encoded bytes and the handles inside it.
    fn put(
        &self,
        bytes: &[u8],
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
    ) -> Result<(), Fail> {
        if fds.is_empty() && bytes.len() <= self.max_inline() {
            return self
                .raw()
                .put(&ENV, &self.ring(), Rec::Inline(bytes), deadline, None)
                .map_err(Fail::Queue);
        }
        self.put_side(bytes, fds, deadline)
    }

    /// Put a side record: the handles and, if large, the payload travel on
    /// the side channel.
    fn put_side(
        &self,
        bytes: &[u8],
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
    ) -> Result<(), Fail> {
        let ool = bytes.len() > self.max_inline();
        if fds.len() + usize::from(ool) > codec::MAX_HANDLES {
            return Err(Fail::Encode(EncodeError::TooManyHandles {
                count: fds.len(),
                max: codec::MAX_HANDLES - usize::from(ool),
            }));
        }
        let mut meta = Vec::with_capacity(META + if ool { 0 } else { bytes.len() });
        meta.extend_from_slice(&(fds.len() as u32).to_le_bytes());
        meta.extend_from_slice(&(if ool { FLAG_OOL } else { 0 }).to_le_bytes());
        let payload = if ool {
            let fd = multiproc_sys::shm::memfd("multiproc-queue-item", 0).map_err(Fail::Io)?;
            multiproc_sys::io::write_all(&fd, bytes).map_err(Fail::Io)?;
            Some(fd)
        } else {
            meta.extend_from_slice(bytes);
            None
        };
        let mut all: Vec<BorrowedFd<'_>> = fds.to_vec();
        all.extend(payload.as_ref().map(|f| f.as_fd()));
        let rec = Rec::Side {
            meta: &meta,
            ool: if ool { bytes.len() as u64 } else { 0 },
        };
        loop {
            let mut io_err = None;
            let r = {
                let mut send = |seq: u64| {
                    multiproc_sys::io::send_datagram_nonblocking(
                        self.side_tx.as_fd(),
                        &seq.to_le_bytes(),
                        &all,
                    )
                    .map_err(|e| {
                        io_err = Some(e);
                        QueueError::Corrupted
                    })
                };
                self.raw()
                    .put(&ENV, &self.ring(), rec, deadline, Some(&mut send))
            };
            match r {
                Ok(()) => return Ok(()),
                Err(QueueError::SideFull) => {
                    let slice = Instant::now() + SIDE_POLL;
                    let until = deadline.map_or(slice, |d| d.min(slice));
                    multiproc_sys::poll::wait_writable(self.side_tx.as_fd(), Some(until))
                        .map_err(Fail::Io)?;
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(Fail::Queue(QueueError::Timeout));
                    }
                }
                Err(e) => return Err(io_err.map_or(Fail::Queue(e), Fail::Io)),
            }
        }
    }

    /// Put several items (byte slices), each run of ring-sized ones with as
    /// few lock holds as room allows; a large one goes out of line on its
    /// own. Returns how many went in, or the count and the error.
    fn put_many<'a>(
        &self,
        items: impl Iterator<Item = &'a [u8]>,
        deadline: Option<Instant>,
    ) -> Result<usize, (usize, Fail)> {
        const RUN: usize = 256;
        let max = self.max_inline();
        let mut items = items.peekable();
        let mut run: Vec<&[u8]> = Vec::with_capacity(RUN.min(items.size_hint().0.max(1)));
        let mut n = 0;
        while items.peek().is_some() {
            run.clear();
            while run.len() < RUN {
                match items.next_if(|b| b.len() <= max) {
                    Some(b) => run.push(b),
                    None => break,
                }
            }
            if !run.is_empty() {
                n += self
                    .raw()
                    .put_many(&ENV, &self.ring(), &run, deadline)
                    .map_err(|(k, e)| (n + k, Fail::Queue(e)))?;
            } else if let Some(big) = items.next() {
                self.put_side(big, &[], deadline).map_err(|e| (n, e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    // ----- get -----------------------------------------------------------------

    /// With the C lock held, for a side record whose body starts at `start`
    /// in `buf`: strip its metadata and take its socket message.
    fn fetch_side(&self, taken: Taken, buf: &mut Vec<u8>, start: usize) -> Result<Side, GetError> {
        if buf.len() < start + META {
            return Err(GetError::Corrupted);
        }
        let word = |at: usize| u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
        let (nfds, flags) = (word(start) as usize, word(start + 4));
        buf.drain(start..start + META);
        let ool = flags & FLAG_OOL != 0;
        let rx = self.side_rx.as_fd();
        let mut tag = [0u8; 8];
        loop {
            match multiproc_sys::io::peek_datagram(rx, &mut tag)? {
                None => return Err(invalid("an item's side-channel message is missing").into()),
                // Orphans of producers or consumers that died, and anything
                // malformed: drop them (the kernel closes their descriptors).
                Some(n) if n != 8 || u64::from_le_bytes(tag) < taken.seq => {
                    multiproc_sys::io::discard_datagram(rx)?;
                }
                Some(_) if u64::from_le_bytes(tag) > taken.seq => {
                    return Err(invalid("an item's side-channel message is missing").into());
                }
                Some(_) => break,
            }
        }
        let mut fds = Vec::new();
        multiproc_sys::io::recv_datagram_nonblocking(rx, &mut tag, &mut fds)?;
        if fds.len() != nfds + usize::from(ool) {
            return Err(invalid("an item arrived with the wrong number of handles").into());
        }
        let payload = if ool {
            Some((fds.pop().expect("counted above"), taken.ool))
        } else {
            None
        };
        Ok(Side { fds, payload })
    }

    /// Take up to `max` items into `batch` (at least one, waiting until
    /// `deadline`).
    fn get(
        &self,
        batch: &mut Batch,
        max: usize,
        deadline: Option<Instant>,
        try_form: bool,
    ) -> Result<(), GetError> {
        batch.clear();
        let Batch { data, ends, extras } = batch;
        let mut sink = |taken: Taken, buf: &mut Vec<u8>, start: usize| {
            if taken.kind == KIND_SIDE {
                let mut extra = Extra {
                    index: ends.len(),
                    fds: Vec::new(),
                    payload: None,
                    err: None,
                };
                match self.fetch_side(taken, buf, start) {
                    Ok(side) => {
                        extra.fds = side.fds;
                        extra.payload = side.payload.map(Payload::Pending);
                    }
                    Err(e) => extra.err = Some(e),
                }
                extras.push(extra);
            }
            ends.push(buf.len());
            true
        };
        self.raw()
            .get(&ENV, &self.ring(), max, deadline, data, &mut sink)
            .map_err(|e| get_error(e, try_form))?;
        // Out-of-line payloads, read outside the lock.
        for extra in extras.iter_mut() {
            if let Some(Payload::Pending((fd, len))) = extra.payload.take() {
                match read_payload(&fd, len) {
                    Ok(bytes) => extra.payload = Some(Payload::Read(bytes)),
                    Err(e) => extra.err = Some(e.into()),
                }
            }
        }
        Ok(())
    }
}

impl Inner {
    /// Take one item: its inline bytes replace `buf`'s contents; the handles
    /// it carried are returned, and an out-of-line payload is read into
    /// `buf` once the lock is released. The fast path for single gets: no
    /// batch bookkeeping, no allocation once `buf` has grown to size.
    fn get_one(
        &self,
        buf: &mut Vec<u8>,
        deadline: Option<Instant>,
        try_form: bool,
    ) -> Result<Vec<OwnedFd>, GetError> {
        buf.clear();
        let mut side = None;
        let mut sink = |taken: Taken, buf: &mut Vec<u8>, start: usize| {
            if taken.kind == KIND_SIDE {
                side = Some(self.fetch_side(taken, buf, start));
            }
            true
        };
        self.raw()
            .get(&ENV, &self.ring(), 1, deadline, buf, &mut sink)
            .map_err(|e| get_error(e, try_form))?;
        let Some(side) = side else {
            return Ok(Vec::new());
        };
        let side = side?;
        if let Some((fd, len)) = side.payload {
            *buf = read_payload(&fd, len)?;
        }
        Ok(side.fds)
    }
}

/// Read an out-of-line payload of `len` bytes from its memfd. `pread`, not
/// a mapping: a sender that truncates the file gives a short read, never a
/// `SIGBUS`, and an absurd size fails the allocation instead of aborting.
fn read_payload(fd: &OwnedFd, len: u64) -> io::Result<Vec<u8>> {
    let size = multiproc_sys::shm::file_info(fd)?.size;
    let n = usize::try_from(len).map_err(|_| invalid("out-of-line payload too large"))?;
    if size != len {
        return Err(invalid("out-of-line payload has the wrong size"));
    }
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "out-of-line payload too large"))?;
    v.resize(n, 0);
    multiproc_sys::io::pread_exact(fd.as_fd(), &mut v, 0)?;
    Ok(v)
}

/// What a side record brought.
struct Side {
    fds: Vec<OwnedFd>,
    payload: Option<(OwnedFd, u64)>,
}

enum Payload {
    /// The memfd and size, to read once the lock is released.
    Pending((OwnedFd, u64)),
    /// The bytes.
    Read(Vec<u8>),
}

/// What a batch item brought besides its inline bytes (items with handles
/// or an out-of-line payload, and items that failed: rare).
struct Extra {
    index: usize,
    fds: Vec<OwnedFd>,
    payload: Option<Payload>,
    err: Option<GetError>,
}

/// Items taken at once: their inline bytes in one buffer, item `i` ending
/// at `ends[i]`; `extras` (sorted by index) for the few that brought more.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    ends: Vec<usize>,
    extras: Vec<Extra>,
}

impl Batch {
    fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.extras.clear();
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn extra(&self, i: usize) -> Option<&Extra> {
        if self.extras.is_empty() {
            return None;
        }
        self.extras
            .binary_search_by_key(&i, |e| e.index)
            .ok()
            .map(|k| &self.extras[k])
    }

    fn bytes(&self, i: usize) -> &[u8] {
        if let Some(Extra {
            payload: Some(Payload::Read(v)),
            ..
        }) = self.extra(i)
        {
            return v;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }

    fn take_fds(&mut self, i: usize) -> Vec<OwnedFd> {
        match self.extras.binary_search_by_key(&i, |e| e.index) {
            Ok(k) => std::mem::take(&mut self.extras[k].fds),
            Err(_) => Vec::new(),
        }
    }

    /// Remove the items that failed; the first error, if any.
    fn drop_failed(&mut self) -> Option<GetError> {
        if self.extras.iter().all(|e| e.err.is_none()) {
            return None;
        }
        let mut first = None;
        let mut kept = Batch::default();
        let old = std::mem::take(self);
        let mut extras = old.extras.into_iter().peekable();
        for i in 0..old.ends.len() {
            let start = if i == 0 { 0 } else { old.ends[i - 1] };
            let mut extra = extras.next_if(|e| e.index == i);
            if let Some(e) = extra.as_mut().and_then(|e| e.err.take()) {
                first.get_or_insert(e);
                continue;
            }
            kept.data.extend_from_slice(&old.data[start..old.ends[i]]);
            if let Some(mut e) = extra {
                e.index = kept.ends.len();
                kept.extras.push(e);
            }
            kept.ends.push(kept.data.len());
        }
        *self = kept;
        first
    }
}

/// Messages got at once with [`Queue::get_many_bytes`]: their bytes in one
/// buffer, reused from call to call.
#[derive(Default)]
pub struct ByteBatch {
    batch: Batch,
}

impl fmt::Debug for ByteBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteBatch")
            .field("len", &self.len())
            .finish()
    }
}

impl ByteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// Whether the batch holds no message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Message `i`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        (i < self.batch.len()).then(|| self.batch.bytes(i))
    }

    /// The messages, in queue order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.batch.len()).map(|i| self.batch.bytes(i))
    }
}

fn deadline(t: Duration) -> Option<Instant> {
    crate::deadline::after(t)
}

fn now() -> Option<Instant> {
    Some(Instant::now())
}

// ----- Queue -----------------------------------------------------------------------

/// A multi-producer multi-consumer queue of `T` across processes (Python's
/// `multiprocessing.Queue`).
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let q = multiproc::Queue::<i32>::bounded(2)?;
/// q.put(1)?;
/// q.put(2)?;
/// assert_eq!(q.qsize(), 2);
/// assert!(q.try_put(3).unwrap_err().is_full()); // Python's queue.Full
/// assert_eq!(q.get()?, 1);
/// assert_eq!(q.get()?, 2);
/// # Ok(()) }
/// ```
pub struct Queue<T> {
    inner: Arc<Inner>,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            inner: self.inner.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = self.inner.raw();
        f.debug_struct("Queue")
            .field("qsize", &raw.len())
            .field("maxsize", &raw.item_limit())
            .field("capacity", &self.inner.cap)
            .field("closed", &raw.is_closed())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Queue`], [`SimpleQueue`] or [`JoinableQueue`] with an item
/// limit, a ring size and an out-of-line budget.
#[derive(Debug, Clone)]
pub struct QueueBuilder {
    maxsize: u32,
    capacity: usize,
    budget: u64,
}

impl Default for QueueBuilder {
    fn default() -> Self {
        QueueBuilder {
            maxsize: 0,
            capacity: DEFAULT_CAPACITY,
            budget: DEFAULT_BUDGET,
        }
    }
}

impl QueueBuilder {
    /// Limit the queue to `maxsize` items (0: unbounded, as in Python).
    pub fn maxsize(mut self, maxsize: usize) -> Self {
        self.maxsize = u32::try_from(maxsize).unwrap_or(u32::MAX);
        self
    }

    /// Bytes of the ring (default 128 MiB; rounded up to a power of two
    /// between 4 KiB and 2 GiB). Items larger than a quarter of it travel
    /// out of line.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// Bytes of out-of-line items that may be pending (default 128 MiB;
    /// an empty queue takes one item of any size).
    pub fn budget(mut self, bytes: u64) -> Self {
        self.budget = bytes;
        self
    }

    fn build_inner(&self, joinable: bool) -> io::Result<Arc<Inner>> {
        let cap = self
            .capacity
            .clamp(MIN_CAPACITY as usize, MAX_CAPACITY as usize)
            .next_power_of_two();
        let (maxsize, budget) = (self.maxsize, self.budget);
        let seg = Segment::anonymous("queue", LAYOUT, RING_AT + cap, |p| {
            // SAFETY: the payload is zeroed, not yet shared, and has room
            // for the state at RAW_AT (an address aligned to 128, see
            // `Inner::raw`).
            let q = unsafe { &*p.add(RAW_AT).cast::<RawQueue>() };
            q.init(maxsize, budget, joinable);
        })?;
        let seg = Arc::into_inner(seg).ok_or_else(|| invalid("segment is shared already"))?;
        let (side_tx, side_rx) = multiproc_sys::fd::socketpair_seqpacket()?;
        Ok(Arc::new(Inner::new(seg, side_tx, side_rx)?))
    }

    /// A [`Queue`] of `T`.
    pub fn build<T>(&self) -> io::Result<Queue<T>> {
        Ok(Queue::from_inner(self.build_inner(false)?))
    }

    /// A [`SimpleQueue`] of `T`.
    pub fn build_simple<T>(&self) -> io::Result<SimpleQueue<T>> {
        Ok(SimpleQueue { q: self.build()? })
    }

    /// A [`JoinableQueue`] of `T`.
    pub fn build_joinable<T>(&self) -> io::Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            q: Queue::from_inner(self.build_inner(true)?),
        })
    }
}

impl<T> Queue<T> {
    fn from_inner(inner: Arc<Inner>) -> Self {
        Queue {
            inner,
            _t: PhantomData,
        }
    }

    /// An unbounded queue (within the memory budget: see the module docs).
    pub fn new() -> io::Result<Self> {
        QueueBuilder::default().build()
    }

    /// A queue of at most `maxsize` items (Python's `Queue(maxsize)`).
    pub fn bounded(maxsize: usize) -> io::Result<Self> {
        QueueBuilder::default().maxsize(maxsize).build()
    }

    /// A builder for the item limit, ring size and budget.
    pub fn builder() -> QueueBuilder {
        QueueBuilder::default()
    }

    /// Items in the queue now (Python's `qsize()`; other processes may change
    /// it at any moment).
    pub fn qsize(&self) -> usize {
        self.inner.raw().len() as usize
    }

    /// Whether the queue holds no item now (Python's `empty()`).
    pub fn is_empty(&self) -> bool {
        self.inner.raw().is_empty()
    }

    /// Whether the queue holds `maxsize` items now (Python's `full()`).
    pub fn is_full(&self) -> bool {
        self.inner.raw().is_full()
    }

    /// The item limit (0: unbounded).
    pub fn maxsize(&self) -> usize {
        self.inner.raw().item_limit() as usize
    }

    /// The ring's size in bytes.
    pub fn capacity(&self) -> usize {
        self.inner.cap as usize
    }

    #[doc(hidden)]
    /// The shared state, for diagnostics.
    pub fn debug_state(&self) -> String {
        self.inner.raw().debug_state()
    }

    #[doc(hidden)]
    /// Processes blocked now: (in a get, in a put). For tests.
    pub fn sleepers(&self) -> (u32, u32) {
        self.inner.raw().sleepers()
    }

    /// Close the queue for every process: later puts fail with `Closed`,
    /// gets drain what is left and then fail with [`GetError::Closed`].
    /// Wakes every waiter.
    pub fn close(&self) {
        self.inner.raw().close(&ENV);
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.inner.raw().is_closed()
    }

    // ----- bytes ---------------------------------------------------------------

    fn put_bytes_deadline(
        &self,
        bytes: &[u8],
        deadline: Option<Instant>,
        try_form: bool,
    ) -> Result<(), PutError<()>> {
        self.inner
            .put(bytes, &[], deadline)
            .map_err(|f| f.with((), try_form))
    }

    /// Put one message of raw bytes, blocking while the queue is full.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(), PutError<()>> {
        self.put_bytes_deadline(bytes, None, false)
    }

    /// [`put_bytes`](Self::put_bytes) if there is room now
    /// ([`PutError::Full`] otherwise).
    pub fn try_put_bytes(&self, bytes: &[u8]) -> Result<(), PutError<()>> {
        self.put_bytes_deadline(bytes, now(), true)
    }

    /// [`put_bytes`](Self::put_bytes), waiting at most `timeout` for room.
    pub fn put_bytes_timeout(&self, bytes: &[u8], timeout: Duration) -> Result<(), PutError<()>> {
        self.put_bytes_deadline(bytes, deadline(timeout), false)
    }

    /// Put several byte messages, each its own item, taking the producers'
    /// lock once per run that fits and committing each run with one store;
    /// blocks for room as needed. Returns how many went in (all, unless an
    /// error stopped it: then the count so far and the error).
    pub fn put_many_bytes<'a, I>(&self, messages: I) -> Result<usize, (usize, PutError<()>)>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        self.inner
            .put_many(messages.into_iter(), None)
            .map_err(|(n, f)| (n, f.with((), false)))
    }

    fn get_bytes_deadline(
        &self,
        buf: &mut Vec<u8>,
        deadline: Option<Instant>,
        try_form: bool,
    ) -> Result<(), GetError> {
        // Handles the item carried are closed here.
        self.inner.get_one(buf, deadline, try_form).map(drop)
    }

    /// Get one message into `buf` (replacing its contents), blocking while
    /// the queue is empty: no allocation once `buf` has grown to size.
    pub fn get_bytes_into(&self, buf: &mut Vec<u8>) -> Result<(), GetError> {
        self.get_bytes_deadline(buf, None, false)
    }

    /// [`get_bytes_into`](Self::get_bytes_into) if there is an item now
    /// ([`GetError::Empty`] otherwise).
    pub fn try_get_bytes_into(&self, buf: &mut Vec<u8>) -> Result<(), GetError> {
        self.get_bytes_deadline(buf, now(), true)
    }

    /// [`get_bytes_into`](Self::get_bytes_into), waiting at most `timeout`
    /// ([`GetError::Timeout`] then).
    pub fn get_bytes_into_timeout(
        &self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<(), GetError> {
        self.get_bytes_deadline(buf, deadline(timeout), false)
    }

    /// Get one message as raw bytes, blocking while the queue is empty. Any
    /// handles the item carried are closed.
    pub fn get_bytes(&self) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.get_bytes_deadline(&mut v, None, false).map(|()| v)
    }

    /// [`get_bytes`](Self::get_bytes) if there is an item now
    /// ([`GetError::Empty`] otherwise).
    pub fn try_get_bytes(&self) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.get_bytes_deadline(&mut v, now(), true).map(|()| v)
    }

    /// [`get_bytes`](Self::get_bytes), waiting at most `timeout`.
    pub fn get_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.get_bytes_deadline(&mut v, deadline(timeout), false)
            .map(|()| v)
    }

    /// Get up to `max` messages at once into `batch` (replacing what it
    /// held): waits (at most `timeout`, if given) for the first, then takes
    /// what is there under the same lock hold. No allocation once the
    /// batch has grown to size. A message that could not be received (a
    /// hostile sender) is left out; if that was every message, its error is
    /// returned.
    pub fn get_many_bytes(
        &self,
        batch: &mut ByteBatch,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, GetError> {
        let b = &mut batch.batch;
        self.inner.get(b, max, timeout.and_then(deadline), false)?;
        match b.drop_failed() {
            Some(e) if b.len() == 0 => Err(e),
            _ => Ok(b.len()),
        }
    }
}

impl<T: Serialize> Queue<T> {
    /// Encode `item` (in this thread's scratch buffer) and put it.
    fn put_item(
        &self,
        item: T,
        deadline: Option<Instant>,
        try_form: bool,
    ) -> Result<(), PutError<T>> {
        let r = with_scratch(|buf| {
            buf.clear();
            let raw_fds = codec::encode(&item, buf).map_err(Fail::Encode)?;
            let fds = borrow_fds(&raw_fds);
            self.inner.put(buf, &fds, deadline)
        });
        r.map_err(|f| f.with(item, try_form))
    }

    /// Put an item, blocking while the queue is full.
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_item(item, None, false)
    }

    /// Put an item if there is room now ([`PutError::Full`] otherwise;
    /// Python's `put_nowait`).
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_item(item, now(), true)
    }

    /// Put an item, waiting at most `timeout` for room
    /// ([`PutError::Timeout`] then).
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_item(item, deadline(timeout), false)
    }

    /// Put several items, taking the producers' lock once per run that fits
    /// and committing each run with one store; blocks for room as needed.
    /// Returns how many went in, or the count so far and the error (with the
    /// item that failed).
    pub fn put_many<I: IntoIterator<Item = T>>(
        &self,
        items: I,
    ) -> Result<usize, (usize, PutError<T>)> {
        let mut n = 0;
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        let mut held: Vec<T> = Vec::new();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            // Encode a run of plain items (no handles) into one buffer.
            buf.clear();
            ends.clear();
            held.clear();
            let mut special = None;
            for item in items.by_ref() {
                match codec::encode(&item, &mut buf) {
                    Ok(fds) if fds.is_empty() => {
                        ends.push(buf.len());
                        held.push(item);
                        if held.len() == 256 {
                            break;
                        }
                    }
                    Ok(_) => {
                        // Holds handles: it goes on its own, after the run.
                        let start = ends.last().copied().unwrap_or(0);
                        buf.truncate(start);
                        special = Some(item);
                        break;
                    }
                    Err(e) => {
                        // Put what came before it, then report it.
                        let start = ends.last().copied().unwrap_or(0);
                        buf.truncate(start);
                        n += self
                            .put_run(&buf, &ends, &mut held)
                            .map_err(|(k, e)| (n + k, e))?;
                        return Err((n, PutError::Encode(e, item)));
                    }
                }
            }
            n += self
                .put_run(&buf, &ends, &mut held)
                .map_err(|(k, e)| (n + k, e))?;
            if let Some(item) = special {
                self.put(item).map_err(|e| (n, e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Put the encoded run `buf` (items ending at `ends`; `held` are the
    /// items themselves, to hand back on error).
    fn put_run(
        &self,
        buf: &[u8],
        ends: &[usize],
        held: &mut Vec<T>,
    ) -> Result<usize, (usize, PutError<T>)> {
        let mut start = 0;
        let mut slices = ends.iter().map(|&end| {
            let s = &buf[start..end];
            start = end;
            s
        });
        match self.inner.put_many(&mut slices, None) {
            Ok(k) => Ok(k),
            Err((k, f)) => {
                let item = held
                    .drain(k..)
                    .next()
                    .expect("the failed item is in the run");
                Err((k, f.with(item, false)))
            }
        }
    }
}

/// The raw descriptors from [`codec::encode`] as borrowed descriptors.
fn borrow_fds(raw: &[RawFd]) -> Vec<BorrowedFd<'_>> {
    raw.iter()
        // SAFETY: the descriptors belong to the item being put, which lives
        // (borrowed by the caller) until the put returns.
        .map(|&fd| unsafe { BorrowedFd::borrow_raw(fd) })
        .collect()
}

impl<T: DeserializeOwned> Queue<T> {
    fn get_item(&self, deadline: Option<Instant>, try_form: bool) -> Result<T, GetError> {
        with_scratch(|buf| {
            let fds = self.inner.get_one(buf, deadline, try_form)?;
            Ok(codec::decode(buf, fds)?)
        })
    }

    /// Get an item, blocking while the queue is empty.
    pub fn get(&self) -> Result<T, GetError> {
        self.get_item(None, false)
    }

    /// Get an item if there is one now ([`GetError::Empty`] otherwise;
    /// Python's `get_nowait`).
    pub fn try_get(&self) -> Result<T, GetError> {
        self.get_item(now(), true)
    }

    /// Get an item, waiting at most `timeout` ([`GetError::Timeout`] then).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_item(deadline(timeout), false)
    }

    /// Get up to `max` items at once: waits (at most `timeout`, if given)
    /// for the first, then takes what is there under the same lock hold.
    /// An item that is not a valid `T` (or could not be received) is consumed
    /// and left out; if that was every item, its error is returned.
    pub fn get_many(&self, max: usize, timeout: Option<Duration>) -> Result<Vec<T>, GetError> {
        let mut batch = Batch::default();
        self.inner
            .get(&mut batch, max, timeout.and_then(deadline), false)?;
        let mut first_err = batch.drop_failed();
        let mut out = Vec::with_capacity(batch.len());
        for i in 0..batch.len() {
            let fds = batch.take_fds(i);
            match codec::decode(batch.bytes(i), fds) {
                Ok(v) => out.push(v),
                Err(e) => {
                    first_err.get_or_insert(e.into());
                }
            }
        }
        match first_err {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    /// Iterate over items until the queue is closed and drained (items that
    /// do not decode are skipped).
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { q: self }
    }
}

/// Blocking iterator over a queue's items; ends when the queue is closed and
/// drained (or its state is corrupted). Items that do not decode as `T` are
/// skipped.
#[derive(Debug)]
pub struct Iter<'a, T> {
    q: &'a Queue<T>,
}

impl<T: DeserializeOwned> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        loop {
            match self.q.get() {
                Ok(v) => return Some(v),
                Err(GetError::Decode(_) | GetError::Io(_)) => continue,
                Err(_) => return None,
            }
        }
    }
}

impl<'a, T: DeserializeOwned> IntoIterator for &'a Queue<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

// ----- handles ---------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct Wire<F> {
    seg: F,
    side_tx: F,
    side_rx: F,
}

/// A borrowed descriptor that serializes as a handle.
struct FdRef<'a>(BorrowedFd<'a>);

impl Serialize for FdRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        codec::serialize_fd(self.0, s)
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            seg: FdRef(self.inner.seg.as_fd()),
            side_tx: FdRef(self.inner.side_tx.as_fd()),
            side_rx: FdRef(self.inner.side_rx.as_fd()),
        }
        .serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let w = Wire::<Fd>::deserialize(d)?;
        let seg = Segment::from_fd(w.seg.0, LAYOUT)
            .map_err(|e| crate::connection::codec::handle_error_de(e.to_string()))?;
        let inner = Inner::new(seg, w.side_tx.0, w.side_rx.0).map_err(D::Error::custom)?;
        Ok(Queue::from_inner(Arc::new(inner)))
    }
}

// ----- SimpleQueue -------------------------------------------------------------------

/// Python's `multiprocessing.SimpleQueue`: `put`, `get`, `is_empty`,
/// `close` (an unbounded [`Queue`] with the short interface).
pub struct SimpleQueue<T> {
    q: Queue<T>,
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue { q: self.q.clone() }
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SimpleQueue").field(&self.q).finish()
    }
}

impl<T> SimpleQueue<T> {
    /// A new simple queue.
    pub fn new() -> io::Result<Self> {
        QueueBuilder::default().build_simple()
    }

    /// Whether the queue is empty now (Python's `empty()`).
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Close the queue: later puts fail, gets drain what is left.
    pub fn close(&self) {
        self.q.close()
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.q.is_closed()
    }
}

impl<T: Serialize> SimpleQueue<T> {
    /// Put an item.
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.q.put(item)
    }
}

impl<T: DeserializeOwned> SimpleQueue<T> {
    /// Get an item, blocking while the queue is empty.
    pub fn get(&self) -> Result<T, GetError> {
        self.q.get()
    }
}

impl<T> Serialize for SimpleQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.q.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SimpleQueue {
            q: Queue::deserialize(d)?,
        })
    }
}

// ----- JoinableQueue -------------------------------------------------------------------

/// Python's `multiprocessing.JoinableQueue`: a [`Queue`] (all of its methods,
/// through `Deref`) whose puts count tasks that consumers mark done with
/// [`task_done`](Self::task_done); [`join`](Self::join) waits for all of
/// them. Tasks held by a consumer process that died count as done, so
/// `join` never waits forever for them.
pub struct JoinableQueue<T> {
    q: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue { q: self.q.clone() }
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JoinableQueue").field(&self.q).finish()
    }
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.q
    }
}

impl<T> JoinableQueue<T> {
    /// An unbounded joinable queue.
    pub fn new() -> io::Result<Self> {
        QueueBuilder::default().build_joinable()
    }

    /// A joinable queue of at most `maxsize` items.
    pub fn bounded(maxsize: usize) -> io::Result<Self> {
        QueueBuilder::default().maxsize(maxsize).build_joinable()
    }

    /// Mark one task done: call once for each item got, when its processing
    /// is complete. More calls than items put is an error (Python's
    /// `ValueError`).
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        self.q.inner.raw().task_done(&ENV).map_err(|e| match e {
            QueueError::TooManyTaskDone => TaskDoneError::TooManyCalls,
            _ => TaskDoneError::Corrupted,
        })
    }

    fn join_deadline(&self, deadline: Option<Instant>) -> Result<(), JoinError> {
        let inner = &self.q.inner;
        // Copied out and back: a join waiting forever must not block
        // another thread's timed join on the mutex.
        let saved = || {
            inner
                .join_progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        };
        let mut progress = *saved();
        let r = inner.raw().join(&ENV, deadline, &mut progress);
        *saved() = progress;
        r.map_err(|e| match e {
            QueueError::Timeout => JoinError::Timeout,
            QueueError::Abandoned => JoinError::Abandoned {
                tasks: progress.abandoned(),
            },
            _ => JoinError::Corrupted,
        })
    }

    /// Wait until every item put has been marked done, by any process.
    /// Tasks whose taker died are not forgiven; if they are all that is
    /// left and nobody marks one done for two seconds, `join` returns
    /// [`JoinError::Abandoned`] rather than waiting for good.
    pub fn join(&self) -> Result<(), JoinError> {
        self.join_deadline(None)
    }

    /// [`join`](Self::join), waiting at most `timeout` ([`JoinError::Timeout`]
    /// then).
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), JoinError> {
        self.join_deadline(deadline(timeout))
    }

    /// Tasks put and not yet marked done.
    pub fn unfinished(&self) -> usize {
        self.q.inner.raw().unfinished(&ENV).unwrap_or(0) as usize
    }
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.q.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let q = Queue::deserialize(d)?;
        if !q.inner.raw().is_joinable() {
            return Err(serde::de::Error::custom("not a joinable queue"));
        }
        Ok(JoinableQueue { q })
    }
}
