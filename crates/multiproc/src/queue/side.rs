//! The side channel: handles and out-of-line payloads that travel next to a
//! ring record, and the batches consumers take.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

#[cfg(doc)]
use super::Queue;
use super::error::{GetError, invalid};

/// Read an out-of-line payload of `len` bytes from its memfd. `pread`, not
/// a mapping: a sender that truncates the file gives a short read, never a
/// `SIGBUS`, and an absurd size fails the allocation instead of aborting.
pub(super) fn read_payload(fd: &OwnedFd, len: u64) -> io::Result<Vec<u8>> {
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
pub(super) struct Side {
    pub(super) fds: Vec<OwnedFd>,
    pub(super) payload: Option<(OwnedFd, u64)>,
}

pub(super) enum Payload {
    /// The memfd and size, to read once the lock is released.
    Pending((OwnedFd, u64)),
    /// The bytes.
    Read(Vec<u8>),
}

/// What a batch item brought besides its inline bytes (items with handles
/// or an out-of-line payload, and items that failed: rare).
pub(super) struct Extra {
    pub(super) index: usize,
    pub(super) fds: Vec<OwnedFd>,
    pub(super) payload: Option<Payload>,
    pub(super) err: Option<GetError>,
}

/// Items taken at once: their inline bytes in one buffer, item `i` ending
/// at `ends[i]`; `extras` (sorted by index) for the few that brought more.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) data: Vec<u8>,
    pub(super) ends: Vec<usize>,
    pub(super) extras: Vec<Extra>,
}

impl Batch {
    pub(super) fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.extras.clear();
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    #[inline]
    fn extra(&self, i: usize) -> Option<&Extra> {
        if self.extras.is_empty() {
            return None;
        }
        self.extras
            .binary_search_by_key(&i, |e| e.index)
            .ok()
            .map(|k| &self.extras[k])
    }

    #[inline]
    pub(super) fn bytes(&self, i: usize) -> &[u8] {
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

    pub(super) fn take_fds(&mut self, i: usize) -> Vec<OwnedFd> {
        match self.extras.binary_search_by_key(&i, |e| e.index) {
            Ok(k) => std::mem::take(&mut self.extras[k].fds),
            Err(_) => Vec::new(),
        }
    }

    /// Remove the items that failed; the first error, if any.
    pub(super) fn drop_failed(&mut self) -> Option<GetError> {
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
    pub(super) batch: Batch,
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
