//! What every handle of one queue shares: the segment, the side channel and
//! the operations on raw records that the typed queues are built on.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use multiproc_shm::queue::{KIND_SIDE, MAX_CAPACITY, MIN_CAPACITY};
use multiproc_shm::{QueueError, RawQueue, Rec, Taken};

use crate::connection::codec::{self, EncodeError};
use crate::error::Waited;
use crate::shared::segment::Segment;

use super::error::{Fail, GetError, get_error, invalid};
use super::ring::Ring;
use super::side::{Batch, Extra, Payload, Side, read_payload};
use super::{ENV, FLAG_OOL, META, RAW_AT, RING_AT, SIDE_POLL};

/// What every handle of one queue shares.
pub(super) struct Inner {
    pub(super) seg: Segment,
    /// Side channel: producers send on `side_tx`, consumers receive on
    /// `side_rx`, each under its lock.
    pub(super) side_tx: OwnedFd,
    pub(super) side_rx: OwnedFd,
    pub(super) cap: u32,
    /// JoinableQueue: what this process's joins saw last (progress or a
    /// stall), kept across calls that join in slices.
    pub(super) join_progress: std::sync::Mutex<multiproc_shm::JoinProgress>,
}

impl Inner {
    pub(super) fn new(seg: Segment, side_tx: OwnedFd, side_rx: OwnedFd) -> io::Result<Inner> {
        let ring_len = seg.payload_len().saturating_sub(RING_AT);
        let cap = u32::try_from(ring_len).unwrap_or(0);
        if !cap.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) {
            return Err(invalid("queue segment has an invalid ring size"));
        }
        // The state's and the ring's alignment hold because mappings are
        // page-aligned.
        debug_assert_eq!(seg.bytes().as_ptr() as usize % 4096, 0);
        Ok(Inner {
            seg,
            side_tx,
            side_rx,
            cap,
            join_progress: Default::default(),
        })
    }

    /// What this process's joins saw last (a poisoned lock is taken as
    /// is: the value is a plain copy).
    pub(super) fn join_progress(&self) -> std::sync::MutexGuard<'_, multiproc_shm::JoinProgress> {
        self.join_progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[inline]
    pub(super) fn raw(&self) -> &RawQueue {
        // RAW_AT + size_of::<RawQueue>() <= RING_AT (checked at compile
        // time), 128-aligned (PAYLOAD + RAW_AT = 128 in a page-aligned
        // mapping): the view cannot fail for a segment `new` accepted.
        self.seg
            .view(RAW_AT)
            .expect("the queue state lies before the ring")
    }

    #[inline]
    fn ring(&self) -> Ring<'_> {
        // RING_AT + cap is the payload's length and RING_AT is page-aligned
        // in the mapping (checked in `new`): the ring cannot fail for a
        // segment `new` accepted.
        Ring::new(&self.seg, RING_AT, self.cap).expect("the ring is the end of the payload")
    }

    #[inline]
    fn max_inline(&self) -> usize {
        (self.cap / 4) as usize
    }

    // ----- put -----------------------------------------------------------------

    /// Put one item: its encoded bytes and the handles inside it.
    #[inline]
    pub(super) fn put(
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
    pub(super) fn put_many<'a>(
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
    pub(super) fn get(
        &self,
        batch: &mut Batch,
        max: usize,
        deadline: Option<Instant>,
    ) -> Result<(), Waited<GetError>> {
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
            .map_err(get_error)?;
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
    pub(super) fn get_one(
        &self,
        buf: &mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<Vec<OwnedFd>, Waited<GetError>> {
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
            .map_err(get_error)?;
        let Some(side) = side else {
            return Ok(Vec::new());
        };
        let side = side?;
        if let Some((fd, len)) = side.payload {
            *buf = read_payload(&fd, len).map_err(|e| Waited::Failed(e.into()))?;
        }
        Ok(side.fds)
    }
}
