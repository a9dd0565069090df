//! Shared segments: a mapping with the [`Header`] at offset 0, an owner
//! record for named segments, and the object's state from [`PAYLOAD`] on.
//!
//! | offset | bytes | what |
//! |--------|-------|------|
//! | 0      | 32    | [`Header`]: magic, layout hash, ABI version, init state, size |
//! | 32     | 4     | owner pid (named segments; 0 for anonymous) |
//! | 36     | 4     | owner start time, low 32 bits |
//! | 40     | 24    | reserved (zero) |
//! | 64     | ...   | payload |
//!
//! An anonymous segment is a sealed memfd: its descriptor is the handle, and
//! the kernel frees it with the last descriptor or mapping, whatever killed
//! the processes. Openers check the header before anything else and get
//! [`SegmentError::Incompatible`] for another layout or version.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use multiproc_shm::{Header, HeaderError, SharedState};
use multiproc_sys::shm::{MappedBytes, Mapping};
use serde::{Serialize, Serializer};

use crate::connection::codec;
use crate::deadline::Backoff;
use crate::names::kind::Kind;
use crate::names::object::{NamedKind, NamedObject};

/// Where the payload starts.
pub const PAYLOAD: usize = 64;
/// Prefix of the OS names of named objects (`/dev/shm/multiproc.NAME`).
pub const NAME_PREFIX: &str = "multiproc.";

/// Why a segment could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// The header does not match this type and build (another layout, ABI
    /// version, or not a multiproc segment).
    #[error(transparent)]
    Incompatible(HeaderError),
    /// The creator has not finished initializing (or died before it did).
    #[error("shared segment was never published by its creator")]
    NotReady,
    /// A named object exists but is owned by another user or is accessible
    /// to group or others.
    #[error(
        "named segment has owner uid {uid} and mode {mode:o}; expected uid {expected_uid} and no group/other access"
    )]
    PermissionMismatch {
        /// Owner of the object.
        uid: u32,
        /// Its permission bits.
        mode: u32,
        /// Our effective uid.
        expected_uid: u32,
    },
    /// A received descriptor's size is not sealed against shrinking: its
    /// sender (or anyone holding it) could truncate it under our mapping,
    /// and the next access would kill this process with `SIGBUS`.
    #[error("received shared memory whose size is not sealed (it could be truncated under us)")]
    Unsealed,
    /// The name is not usable (empty, too long, or containing `/`).
    #[error("invalid shared memory name {0:?}")]
    InvalidName(String),
    /// The OS reported an error (`AlreadyExists` when a name is taken).
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<SegmentError> for io::Error {
    fn from(e: SegmentError) -> io::Error {
        match e {
            SegmentError::Io(e) => e,
            SegmentError::PermissionMismatch { .. } => {
                io::Error::new(io::ErrorKind::PermissionDenied, e)
            }
            e => io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }
}

/// A mapped shared segment.
pub(crate) struct Segment {
    fd: OwnedFd,
    map: Mapping,
    /// The OS name of a named segment.
    name: Option<String>,
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("len", &self.map.len())
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A stable hash of a type's layout description (FNV-1a).
pub(crate) const fn layout_hash(desc: &str, size: usize, align: usize) -> u64 {
    let bytes = desc.as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h ^= size as u64;
    h = h.wrapping_mul(0x0100_0000_01b3);
    h ^= align as u64;
    h.wrapping_mul(0x0100_0000_01b3)
}

impl Segment {
    fn header(&self) -> &Header {
        self.view_at(0).expect("every segment holds its header")
    }

    fn owner_words(&self) -> (&AtomicU32, &AtomicU32) {
        let word = |at| self.view_at(at).expect("the owner record is in the prefix");
        (word(32), word(36))
    }

    /// The `T` at byte `at` of the mapping, if it lies inside it at `T`'s
    /// alignment.
    fn view_at<T: SharedState>(&self, at: usize) -> Option<&T> {
        self.map.view(at)
    }

    /// The `T` at `offset` in the payload, if it lies inside the payload at
    /// `T`'s alignment.
    #[inline]
    pub(crate) fn view<T: SharedState>(&self, offset: usize) -> Option<&T> {
        self.view_at(PAYLOAD.checked_add(offset)?)
    }

    /// The `n` values of `T` from `offset` in the payload, if they lie
    /// inside it at `T`'s alignment.
    #[inline]
    pub(crate) fn view_slice<T: SharedState>(&self, offset: usize, n: usize) -> Option<&[T]> {
        self.map.view_slice(PAYLOAD.checked_add(offset)?, n)
    }

    /// A new anonymous segment with `payload` bytes after the prefix;
    /// `init` fills the (zeroed) payload before the header is published.
    pub(crate) fn anonymous(
        kind: &str,
        layout: u64,
        payload: usize,
        init: impl FnOnce(&Segment),
    ) -> io::Result<Arc<Segment>> {
        let len = PAYLOAD + payload;
        let fd = multiproc_sys::shm::memfd(&format!("multiproc-{kind}"), len as u64)?;
        multiproc_sys::shm::seal_size(&fd)?;
        let map = Mapping::new(&fd, len, true)?;
        let seg = Segment {
            fd,
            map,
            name: None,
        };
        seg.header().begin_init();
        init(&seg);
        seg.header().publish(layout, len as u64);
        Ok(Arc::new(seg))
    }

    fn os_name(name: &str) -> Result<String, SegmentError> {
        if name.is_empty() || name.len() > 200 || name.contains('/') || name.contains('\0') {
            return Err(SegmentError::InvalidName(name.to_owned()));
        }
        Ok(format!("/{NAME_PREFIX}{name}"))
    }

    /// Create a named segment (`O_CREAT | O_EXCL`, mode 0600): fails with
    /// `AlreadyExists` if the name is taken, and never attaches to it.
    pub(crate) fn create_named(
        name: &str,
        layout: u64,
        payload: usize,
        init: impl FnOnce(&Segment),
    ) -> Result<Arc<Segment>, SegmentError> {
        let os_name = Self::os_name(name)?;
        let len = PAYLOAD + payload;
        let fd = multiproc_sys::shm::shm_create(&os_name, 0o600, len as u64)?;
        let map = match Mapping::new(&fd, len, true) {
            Ok(m) => m,
            Err(e) => {
                let _ = multiproc_sys::shm::shm_unlink(&os_name);
                return Err(e.into());
            }
        };
        let seg = Segment {
            fd,
            map,
            name: Some(os_name),
        };
        seg.header().begin_init();
        let (pid, start) = seg.owner_words();
        let me = multiproc_shm::Env::me(&crate::env::ProcessEnv);
        // Ordering::Relaxed: published by the header's Release below.
        pid.store(me.pid, Ordering::Relaxed);
        start.store(me.start, Ordering::Relaxed);
        init(&seg);
        seg.header().publish(layout, len as u64);
        Ok(Arc::new(seg))
    }

    /// Open a named segment created by [`create_named`](Self::create_named),
    /// after checking its owner and mode, then its header.
    pub(crate) fn open_named(name: &str, layout: u64) -> Result<Arc<Segment>, SegmentError> {
        let os_name = Self::os_name(name)?;
        let fd = multiproc_sys::shm::shm_open(&os_name, true)?;
        let info = multiproc_sys::shm::file_info(&fd)?;
        let euid = multiproc_sys::shm::euid();
        if info.uid != euid || info.mode & 0o077 != 0 {
            return Err(SegmentError::PermissionMismatch {
                uid: info.uid,
                mode: info.mode,
                expected_uid: euid,
            });
        }
        let mut seg = Self::from_fd_wait(fd, layout, Duration::from_secs(1))?;
        seg.name = Some(os_name);
        Ok(Arc::new(seg))
    }

    /// Map a received descriptor and check its header.
    ///
    /// The descriptor came from another process: it is mapped only if its
    /// size is sealed against shrinking ([`SegmentError::Unsealed`]
    /// otherwise), so no one can truncate it under the mapping.
    pub(crate) fn from_fd(fd: OwnedFd, layout: u64) -> Result<Segment, SegmentError> {
        if !multiproc_sys::shm::is_shrink_sealed(&fd).unwrap_or(false) {
            return Err(SegmentError::Unsealed);
        }
        Self::from_fd_wait(fd, layout, Duration::ZERO)
    }

    fn from_fd_wait(fd: OwnedFd, layout: u64, wait: Duration) -> Result<Segment, SegmentError> {
        let info = multiproc_sys::shm::file_info(&fd)?;
        let len = usize::try_from(info.size).unwrap_or(0);
        if len < PAYLOAD {
            return Err(SegmentError::Incompatible(HeaderError::SizeMismatch {
                mapped: info.size,
                recorded: 0,
            }));
        }
        let map = Mapping::new(&fd, len, true)?;
        let seg = Segment {
            fd,
            map,
            name: None,
        };
        let deadline = crate::deadline::after(wait);
        let mut backoff = Backoff::new(Duration::from_micros(50), Duration::from_millis(1));
        loop {
            match seg.header().check(layout, len as u64) {
                Ok(()) => return Ok(seg),
                Err(HeaderError::NotReady) if backoff.sleep(deadline) => {}
                Err(HeaderError::NotReady) => return Err(SegmentError::NotReady),
                Err(e) => return Err(SegmentError::Incompatible(e)),
            }
        }
    }

    /// The mapped bytes (the prefix, then the payload from [`PAYLOAD`]).
    #[inline]
    pub(crate) fn bytes(&self) -> &MappedBytes {
        &self.map
    }

    /// Payload length in bytes.
    pub(crate) fn payload_len(&self) -> usize {
        self.map.len() - PAYLOAD
    }

    /// The OS name, for named segments.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Serialize the segment as its descriptor.
    pub(crate) fn serialize_fd<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        codec::serialize_fd(self.fd.as_fd(), s)
    }
}

impl AsFd for Segment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Serialize helper for types that are one segment.
pub(crate) struct SegRef<'a>(pub(crate) &'a Segment);

impl Serialize for SegRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_fd(s)
    }
}

/// Named segments in `/dev/shm`, for [`crate::names`]. Their owner record
/// is in the segment's own header, so they are listed from `/dev/shm`, not
/// from the registry.
pub(crate) struct NamedSegments;

/// The table entry of named segments.
pub(crate) static NAMED_SEGMENTS: NamedSegments = NamedSegments;

impl NamedKind for NamedSegments {
    fn kind(&self) -> Kind {
        Kind::Shm
    }
    fn exists(&self, name: &str) -> bool {
        Segment::os_name(name).is_ok_and(|os| multiproc_sys::shm::shm_open(&os, false).is_ok())
    }
    /// `shm_unlink`: processes that have it open keep their mapping.
    fn remove(&self, name: &str) -> io::Result<()> {
        unlink_named(name).map_err(|e| match e {
            SegmentError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
        })
    }
    fn list(&self) -> io::Result<Vec<NamedObject>> {
        let mut out = Vec::new();
        let dir = match std::fs::read_dir("/dev/shm") {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in dir {
            let entry = entry?;
            let file = entry.file_name();
            let Some(name) = file.to_str().and_then(|f| f.strip_prefix(NAME_PREFIX)) else {
                continue;
            };
            out.push(inspect_named(name));
        }
        Ok(out)
    }
}

fn inspect_named(name: &str) -> NamedObject {
    let mut info = NamedObject {
        kind: Kind::Shm,
        name: name.to_owned(),
        size: Some(0),
        owner_pid: 0,
        owner_alive: false,
        valid: false,
    };
    let Ok(fd) = multiproc_sys::shm::shm_open(&format!("/{NAME_PREFIX}{name}"), false) else {
        return info;
    };
    let Ok(st) = multiproc_sys::shm::file_info(&fd) else {
        return info;
    };
    info.size = Some(st.size);
    if st.size < PAYLOAD as u64 {
        return info;
    }
    let Ok(map) = Mapping::new(&fd, PAYLOAD, false) else {
        return info;
    };
    let (Some(header), Some(pid), Some(start)) = (
        map.view::<Header>(0),
        map.view::<AtomicU32>(32),
        map.view::<AtomicU32>(36),
    ) else {
        return info;
    };
    info.valid = header.is_published();
    info.owner_pid = pid.load(Ordering::Relaxed);
    info.owner_alive = info.owner_pid != 0
        && multiproc_sys::process::liveness(info.owner_pid, Some(start.load(Ordering::Relaxed)))
            == multiproc_sys::process::Liveness::Alive;
    info
}

/// Remove a named segment (`shm_unlink`). Processes that have it open keep
/// their mapping.
pub(crate) fn unlink_named(name: &str) -> Result<(), SegmentError> {
    let os = Segment::os_name(name)?;
    multiproc_sys::shm::shm_unlink(&os)?;
    Ok(())
}
