//! [`Queue`] and its builder.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use multiproc_shm::RawQueue;
use multiproc_shm::queue::{MAX_CAPACITY, MIN_CAPACITY};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::connection::borrow_all;
use crate::connection::codec::{self};
use crate::shared::segment::Segment;

use super::error::{
    Fail, GetError, GetTimeoutError, PutError, PutTimeoutError, TryGetError, TryPutError, invalid,
};
use super::inner::Inner;
use super::side::{Batch, ByteBatch};
use super::{
    DEFAULT_BUDGET, DEFAULT_CAPACITY, ENV, LAYOUT, RAW_AT, RING_AT, deadline, now, with_scratch,
};
use super::{JoinableQueue, SimpleQueue};
#[cfg(doc)]
use crate::error::{SendTimeoutError, TryError, TrySendError};
use crate::error::{TimeoutError, Waited, WaitedWith};

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
    pub(super) inner: Arc<Inner>,
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
    maxsize: usize,
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
    /// At most `u32::MAX`: a larger limit is refused when the queue is
    /// built (`InvalidInput`), not silently lowered.
    pub fn maxsize(mut self, maxsize: usize) -> Self {
        self.maxsize = maxsize;
        self
    }

    /// Bytes of the ring (default 128 MiB), from 4 KiB to 2 GiB
    /// ([`MIN_CAPACITY`], [`MAX_CAPACITY`]), rounded up to a power of two; a
    /// size outside those bounds is refused when the queue is built
    /// (`InvalidInput`), not clamped. Items larger than a quarter of it
    /// travel out of line.
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
        if !(MIN_CAPACITY as usize..=MAX_CAPACITY as usize).contains(&self.capacity) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "queue capacity {} bytes is outside {MIN_CAPACITY}..={MAX_CAPACITY}",
                    self.capacity
                ),
            ));
        }
        let cap = self.capacity.next_power_of_two();
        let maxsize = u32::try_from(self.maxsize).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "queue maxsize {} is over {} (use 0 for no limit)",
                    self.maxsize,
                    u32::MAX
                ),
            )
        })?;
        let budget = self.budget;
        let seg = Segment::anonymous("queue", LAYOUT, RING_AT + cap, |seg| {
            seg.view::<RawQueue>(RAW_AT)
                .expect("the state fits before the ring, 128-aligned")
                .init(maxsize, budget, joinable);
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
    pub(super) fn from_inner(inner: Arc<Inner>) -> Self {
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

    pub(super) fn put_bytes_until(
        &self,
        bytes: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), WaitedWith<PutError<()>>> {
        self.inner.put(bytes, &[], deadline).map_err(|f| f.with(()))
    }

    /// Put one message of raw bytes, blocking while the queue is full.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(), PutError<()>> {
        self.put_bytes_until(bytes, None)
            .map_err(WaitedWith::into_blocking)
    }

    /// [`put_bytes`](Self::put_bytes) if there is room now
    /// ([`TrySendError::Full`] otherwise).
    pub fn try_put_bytes(&self, bytes: &[u8]) -> Result<(), TryPutError<()>> {
        self.put_bytes_until(bytes, now())
            .map_err(WaitedWith::into_try)
    }

    /// [`put_bytes`](Self::put_bytes), waiting at most `timeout` for room.
    pub fn put_bytes_timeout(
        &self,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<(), PutTimeoutError<()>> {
        self.put_bytes_until(bytes, deadline(timeout))
            .map_err(WaitedWith::into_timeout)
    }

    /// [`put_bytes`](Self::put_bytes), waiting for room until `deadline`.
    pub fn put_bytes_deadline(
        &self,
        bytes: &[u8],
        deadline: Instant,
    ) -> Result<(), PutTimeoutError<()>> {
        self.put_bytes_until(bytes, Some(deadline))
            .map_err(WaitedWith::into_timeout)
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
            .map_err(|(n, f)| (n, f.with(()).into_blocking()))
    }

    pub(super) fn get_bytes_until(
        &self,
        buf: &mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<(), Waited<GetError>> {
        // Handles the item carried are closed here.
        self.inner.get_one(buf, deadline).map(drop)
    }

    /// Get one message into `buf` (replacing its contents), blocking while
    /// the queue is empty: no allocation once `buf` has grown to size.
    pub fn get_bytes_into(&self, buf: &mut Vec<u8>) -> Result<(), GetError> {
        self.get_bytes_until(buf, None)
            .map_err(Waited::into_blocking)
    }

    /// [`get_bytes_into`](Self::get_bytes_into) if there is an item now
    /// ([`TryError::WouldBlock`] otherwise).
    pub fn try_get_bytes_into(&self, buf: &mut Vec<u8>) -> Result<(), TryGetError> {
        self.get_bytes_until(buf, now()).map_err(Waited::into_try)
    }

    /// [`get_bytes_into`](Self::get_bytes_into), waiting at most `timeout`
    /// ([`TimeoutError::Timeout`] then).
    pub fn get_bytes_into_timeout(
        &self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<(), GetTimeoutError> {
        self.get_bytes_until(buf, deadline(timeout))
            .map_err(Waited::into_timeout)
    }

    /// [`get_bytes_into`](Self::get_bytes_into), waiting until `deadline`.
    pub fn get_bytes_into_deadline(
        &self,
        buf: &mut Vec<u8>,
        deadline: Instant,
    ) -> Result<(), GetTimeoutError> {
        self.get_bytes_until(buf, Some(deadline))
            .map_err(Waited::into_timeout)
    }

    /// Get one message as raw bytes, blocking while the queue is empty. Any
    /// handles the item carried are closed.
    pub fn get_bytes(&self) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.get_bytes_into(&mut v).map(|()| v)
    }

    /// [`get_bytes`](Self::get_bytes) if there is an item now
    /// ([`TryError::WouldBlock`] otherwise).
    pub fn try_get_bytes(&self) -> Result<Vec<u8>, TryGetError> {
        let mut v = Vec::new();
        self.try_get_bytes_into(&mut v).map(|()| v)
    }

    /// [`get_bytes`](Self::get_bytes), waiting at most `timeout`.
    pub fn get_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, GetTimeoutError> {
        let mut v = Vec::new();
        self.get_bytes_into_timeout(&mut v, timeout).map(|()| v)
    }

    /// [`get_bytes`](Self::get_bytes), waiting until `deadline`.
    pub fn get_bytes_deadline(&self, deadline: Instant) -> Result<Vec<u8>, GetTimeoutError> {
        let mut v = Vec::new();
        self.get_bytes_into_deadline(&mut v, deadline).map(|()| v)
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
    ) -> Result<usize, GetTimeoutError> {
        let b = &mut batch.batch;
        self.inner
            .get(b, max, timeout.and_then(deadline))
            .map_err(Waited::into_timeout)?;
        match b.drop_failed() {
            Some(e) if b.len() == 0 => Err(TimeoutError::Failed(e)),
            _ => Ok(b.len()),
        }
    }
}

impl<T: Serialize> Queue<T> {
    /// Encode `item` (in this thread's scratch buffer) and put it.
    pub(super) fn put_item(
        &self,
        item: T,
        deadline: Option<Instant>,
    ) -> Result<(), WaitedWith<PutError<T>>> {
        let r = with_scratch(|buf| {
            buf.clear();
            let fds = codec::encode(&item, buf).map_err(Fail::Encode)?;
            self.inner.put(buf, &borrow_all(&fds), deadline)
        });
        r.map_err(|f| f.with(item))
    }

    /// Put an item, blocking while the queue is full.
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_item(item, None).map_err(WaitedWith::into_blocking)
    }

    /// Put an item if there is room now ([`TrySendError::Full`], with the
    /// item, otherwise; Python's `put_nowait`).
    pub fn try_put(&self, item: T) -> Result<(), TryPutError<T>> {
        self.put_item(item, now()).map_err(WaitedWith::into_try)
    }

    /// Put an item, waiting at most `timeout` for room
    /// ([`SendTimeoutError::Timeout`], with the item, then).
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutTimeoutError<T>> {
        self.put_item(item, deadline(timeout))
            .map_err(WaitedWith::into_timeout)
    }

    /// Put an item, waiting for room until `deadline`
    /// ([`SendTimeoutError::Timeout`], with the item, then).
    pub fn put_deadline(&self, item: T, deadline: Instant) -> Result<(), PutTimeoutError<T>> {
        self.put_item(item, Some(deadline))
            .map_err(WaitedWith::into_timeout)
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
                Err((k, f.with(item).into_blocking()))
            }
        }
    }
}

impl<T: DeserializeOwned> Queue<T> {
    pub(super) fn get_item(&self, deadline: Option<Instant>) -> Result<T, Waited<GetError>> {
        with_scratch(|buf| {
            let fds = self.inner.get_one(buf, deadline)?;
            codec::decode(buf, fds).map_err(|e| Waited::Failed(e.into()))
        })
    }

    /// Get an item, blocking while the queue is empty.
    pub fn get(&self) -> Result<T, GetError> {
        self.get_item(None).map_err(Waited::into_blocking)
    }

    /// Get an item if there is one now ([`TryError::WouldBlock`] otherwise;
    /// Python's `get_nowait`).
    pub fn try_get(&self) -> Result<T, TryGetError> {
        self.get_item(now()).map_err(Waited::into_try)
    }

    /// Get an item, waiting at most `timeout` ([`TimeoutError::Timeout`]
    /// then).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetTimeoutError> {
        self.get_item(deadline(timeout))
            .map_err(Waited::into_timeout)
    }

    /// Get an item, waiting until `deadline` ([`TimeoutError::Timeout`]
    /// then).
    pub fn get_deadline(&self, deadline: Instant) -> Result<T, GetTimeoutError> {
        self.get_item(Some(deadline)).map_err(Waited::into_timeout)
    }

    /// Get up to `max` items at once: waits (at most `timeout`, if given)
    /// for the first, then takes what is there under the same lock hold.
    /// An item that is not a valid `T` (or could not be received) is consumed
    /// and left out; if that was every item, its error is returned.
    pub fn get_many(
        &self,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<T>, GetTimeoutError> {
        let mut batch = Batch::default();
        self.inner
            .get(&mut batch, max, timeout.and_then(deadline))
            .map_err(Waited::into_timeout)?;
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
            Some(e) if out.is_empty() => Err(TimeoutError::Failed(e)),
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
