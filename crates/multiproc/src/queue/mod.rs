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
use std::time::{Duration, Instant};

use multiproc_shm::RawQueue;

use crate::env::ProcessEnv;
use crate::shared::segment::{self};

mod aio;
mod error;
mod inner;
mod joinable;
mod mpmc;
mod ring;
mod side;
mod simple;
#[cfg(feature = "tokio")]
mod stream;
mod wire;

pub use error::{
    GetError, GetTimeoutError, JoinError, PutError, PutTimeoutError, TaskDoneError, TryGetError,
    TryPutError,
};
pub use joinable::JoinableQueue;
pub use mpmc::{Iter, Queue, QueueBuilder};
pub use multiproc_shm::queue::{MAX_CAPACITY, MIN_CAPACITY};
pub use side::ByteBatch;
pub use simple::SimpleQueue;
#[cfg(feature = "tokio")]
pub use stream::{QueueSink, QueueStream};

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

pub(super) fn deadline(t: Duration) -> Option<Instant> {
    crate::deadline::after(t)
}

pub(super) fn now() -> Option<Instant> {
    Some(Instant::now())
}

/// A deadline that has passed, for the `try_` attempts of the async
/// operations: the first instant this process asked for, read once, so a
/// get that finds its item reads no clock (a `try_` call only asks whether
/// the deadline passed).
pub(super) fn passed() -> Option<Instant> {
    static FIRST: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    Some(*FIRST.get_or_init(Instant::now))
}
