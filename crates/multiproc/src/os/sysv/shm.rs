//! System V shared memory: `shmget`, `shmat`, `shmdt`, with bounds-checked access.

use std::fmt;
use std::io;

use multiproc_sys::sysv::{self as sys};
use serde::{Deserialize, Serialize};

use crate::names::kind::Kind;
use crate::names::registry::Registry;
use crate::shared::shared_memory::OutOfRange;

use super::{Builder, Key, OpenError, SysvObject, forget, is_gone, sealed};

// ----- shared memory ---------------------------------------------------------

/// A shared-memory operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShmError {
    /// A write through a read-only attachment.
    #[error("the attachment is read-only")]
    ReadOnly,
    /// An access outside the segment.
    #[error(transparent)]
    OutOfRange(#[from] OutOfRange),
    /// The segment was removed and has no attachments left (its id is
    /// gone).
    #[error("the shared-memory segment was removed")]
    Removed,
    /// Any other OS error.
    #[error(transparent)]
    Io(io::Error),
}

impl From<io::Error> for ShmError {
    fn from(e: io::Error) -> Self {
        if is_gone(&e) {
            ShmError::Removed
        } else {
            ShmError::Io(e)
        }
    }
}

/// What `shmctl(IPC_STAT)` says about a segment.
pub type SegmentStats = sys::ShmStat;

/// A System V shared-memory segment (`shmget`).
///
/// Its bytes are reached through an [`Attachment`] ([`attach`](Self::attach)
/// / [`attach_read_only`](Self::attach_read_only)). The handle is the
/// segment's id: it serializes as the id, and dropping it leaves the
/// segment in place until [`remove`](Self::remove) — after which it lives
/// until its last attachment, in any process, is detached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SharedMemory {
    id: i32,
    #[serde(skip)]
    registry: Option<Registry>,
}

impl sealed::Sealed for SharedMemory {}

impl SysvObject for SharedMemory {
    type Size = usize;
    const KIND: Kind = Kind::SysvShm;
    fn get(key: i32, size: usize, flags: i32) -> io::Result<i32> {
        sys::shmget(key, size, flags)
    }
    fn from_parts(id: i32, registry: Option<Registry>) -> io::Result<Self> {
        Ok(SharedMemory { id, registry })
    }
}

impl Builder<SharedMemory> {
    /// How many bytes a created segment has (zero-filled). Needed to
    /// create; [`create_or_open`](Builder::create_or_open) also checks an
    /// existing segment has at least this many.
    pub fn size(self, size: usize) -> Self {
        self.with_size(size)
    }
}

impl SharedMemory {
    /// Options for the segment named by `key`.
    pub fn builder(key: Key) -> Builder<SharedMemory> {
        Builder::new(key)
    }

    /// Create a new zero-filled segment of `size` bytes, mode 0600.
    pub fn create(key: Key, size: usize) -> Result<Self, OpenError> {
        Self::builder(key).size(size).create()
    }

    /// A new private segment (`IPC_PRIVATE`).
    pub fn private(size: usize) -> Result<Self, OpenError> {
        Self::create(Key::PRIVATE, size)
    }

    /// Open the existing segment named by `key`.
    pub fn open(key: Key) -> Result<Self, OpenError> {
        Self::builder(key).open()
    }

    /// Open the segment named by `key`, creating one of `size` if missing.
    pub fn create_or_open(key: Key, size: usize) -> Result<Self, OpenError> {
        Self::builder(key).size(size).create_or_open()
    }

    /// The kernel's id of the segment.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// `shmctl(IPC_STAT)`: size, attachments, creator, whether removed.
    pub fn stats(&self) -> Result<SegmentStats, ShmError> {
        Ok(sys::shm_stat(self.id)?)
    }

    /// The segment's size in bytes.
    pub fn size(&self) -> Result<u64, ShmError> {
        Ok(self.stats()?.size)
    }

    /// Attachments in every process (`shm_nattch`).
    pub fn attach_count(&self) -> Result<u64, ShmError> {
        Ok(self.stats()?.attached)
    }

    fn attach_raw(&self, read_only: bool) -> Result<Attachment, ShmError> {
        Ok(Attachment {
            inner: sys::Attachment::new(self.id, read_only)?,
            id: self.id,
        })
    }

    /// Attach the segment readable and writable (`shmat`).
    pub fn attach(&self) -> Result<Attachment, ShmError> {
        self.attach_raw(false)
    }

    /// Attach the segment read-only (`SHM_RDONLY`): writes through it are
    /// refused with [`ShmError::ReadOnly`].
    pub fn attach_read_only(&self) -> Result<Attachment, ShmError> {
        self.attach_raw(true)
    }

    /// Remove the segment (`IPC_RMID`): no new attachments, and the memory
    /// is freed when the last attachment is detached. Its registry record
    /// is forgotten.
    pub fn remove(&self) -> Result<(), ShmError> {
        sys::shm_remove(self.id)?;
        forget(&self.registry, Kind::SysvShm, self.id);
        Ok(())
    }
}

/// A segment attached to this process (`shmat`), detached (`shmdt`) on
/// drop.
///
/// Other processes may write the bytes at any time, so access is by copy
/// ([`read`](Self::read), [`write`](Self::write)) or through the raw
/// pointer ([`as_ptr`](Self::as_ptr)); no `&[u8]` over them is handed out.
pub struct Attachment {
    inner: sys::Attachment,
    id: i32,
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("id", &self.id)
            .field("len", &self.len())
            .field("read_only", &self.is_read_only())
            .finish_non_exhaustive()
    }
}

impl Attachment {
    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the segment is empty (never: the kernel refuses size 0).
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Whether writes are refused.
    pub fn is_read_only(&self) -> bool {
        !self.inner.is_writable()
    }

    /// Copy `out.len()` bytes from `offset` into `out`.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), ShmError> {
        Ok(self.inner.copy_out(offset, out)?)
    }

    /// `len` bytes from `offset`, copied out.
    pub fn read_vec(&self, offset: usize, len: usize) -> Result<Vec<u8>, ShmError> {
        OutOfRange::check(offset, len, self.len())?;
        let mut v = vec![0; len];
        self.read(offset, &mut v)?;
        Ok(v)
    }

    /// Copy `src` into the segment at `offset`; [`ShmError::ReadOnly`] on a
    /// read-only attachment.
    pub fn write(&self, offset: usize, src: &[u8]) -> Result<(), ShmError> {
        if self.is_read_only() {
            return Err(ShmError::ReadOnly);
        }
        Ok(self.inner.copy_in(offset, src)?)
    }

    /// The first byte, for code that synchronizes on its own.
    /// Dereferencing it is `unsafe`: other processes may write these bytes
    /// at any time, and writing through a read-only attachment faults.
    pub fn as_ptr(&self) -> *mut u8 {
        self.inner.as_ptr()
    }
}
