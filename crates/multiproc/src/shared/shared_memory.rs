//! Raw shared memory: Python's `multiprocessing.shared_memory.SharedMemory`,
//! and the seeds' `mmap` of a file.
//!
//! Access is by copy ([`SharedMemory::read`], [`SharedMemory::write`]) or
//! through a raw pointer behind `unsafe`: other processes may write the
//! bytes at any time, so no `&[u8]` over them is ever handed out.
//!
//! - [`SharedMemory::new`]: anonymous (a sealed memfd). Its handle passes to
//!   children and in messages; the kernel frees it when the last process
//!   lets go, however the processes end.
//! - [`SharedMemory::create`] / [`open`](SharedMemory::open): named, for
//!   unrelated processes. `create` uses `O_CREAT | O_EXCL` with mode 0600
//!   (a name someone else took is an `AlreadyExists` error, never an
//!   attach); `open` checks the owner and mode, then the header
//!   ([`SegmentError::Incompatible`] for anything that is not this kind of
//!   segment). The name lives until [`unlink`](SharedMemory::unlink), like
//!   POSIX shared memory; `multiproc ls`/`clean` find the ones whose creator
//!   is dead.
//! - [`SharedMemory::map_file`]: a file mapped shared (the seeds' `mmap`
//!   example), written back with [`flush`](SharedMemory::flush).
//! - [`SharedMemory::open_foreign`]: a POSIX shared memory object another
//!   library made (`/dev/shm/NAME`, e.g. by Python's
//!   `multiprocessing.shared_memory`), mapped whole, with no header. It is
//!   opened `O_NOFOLLOW` and checked with `fstat` before mapping: a regular
//!   file owned by the effective uid that neither group nor others may write
//!   ([`SegmentError::PermissionMismatch`] otherwise);
//!   [`unlink`](SharedMemory::unlink) removes the name (`shm_unlink(NAME)`).
//! - [`SharedMemory::create_foreign`]: such an object made by multiproc, at
//!   the name the standard library expects and with the bytes at offset 0,
//!   for Python's `SharedMemory(create=True)`; no owner record (Python's
//!   resource tracker unlinks it, as the standard library's).

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;

use multiproc_sys::shm::{MappedBytes, Mapping};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::codec::{self, Fd};
use crate::shared::segment::{self, Segment, SegmentError};

const LAYOUT: u64 = segment::layout_hash("multiproc::SharedMemory", 0, 1);

/// A foreign object's name without its leading `/`s (glibc's `shm_open`
/// skips them too, so `"//x"` is `x`), or why it is not one: empty, too
/// long, with `/` or NUL inside, `.`/`..`, or multiproc's own prefix.
fn foreign_name(name: &str) -> Result<&str, SegmentError> {
    let bare = name.trim_start_matches('/');
    if bare.is_empty()
        || bare.len() > 255
        || bare.contains(['/', '\0'])
        || bare == "."
        || bare == ".."
        || bare.starts_with(segment::NAME_PREFIX)
    {
        return Err(SegmentError::InvalidName(name.to_owned()));
    }
    Ok(bare)
}

#[derive(Clone)]
enum Backing {
    Segment(Arc<Segment>),
    File {
        map: Arc<Mapping>,
        file: Arc<std::fs::File>,
    },
    /// Another library's named object (no header), with its OS name.
    Foreign {
        map: Arc<Mapping>,
        file: Arc<std::fs::File>,
        name: Arc<str>,
    },
}

/// A block of shared memory.
#[derive(Clone)]
pub struct SharedMemory {
    backing: Backing,
    /// Where the block starts in the mapping.
    start: usize,
    len: usize,
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name())
            .field("size", &self.len)
            .finish_non_exhaustive()
    }
}

pub use multiproc_sys::shm::OutOfRange;

impl SharedMemory {
    fn from_segment(seg: Arc<Segment>) -> Self {
        SharedMemory {
            start: segment::PAYLOAD,
            len: seg.payload_len(),
            backing: Backing::Segment(seg),
        }
    }

    /// The mapping the block is in, from [`start`](Self::start).
    fn bytes(&self) -> &MappedBytes {
        match &self.backing {
            Backing::Segment(seg) => seg.bytes(),
            Backing::File { map, .. } | Backing::Foreign { map, .. } => map,
        }
    }

    /// Anonymous shared memory of `size` bytes, zero-filled.
    pub fn new(size: usize) -> io::Result<Self> {
        let seg = Segment::anonymous("shared-memory", LAYOUT, size.max(1), |_| {})?;
        let mut m = Self::from_segment(seg);
        m.len = size;
        Ok(m)
    }

    /// Create named shared memory (`/dev/shm/multiproc.NAME`), mode 0600.
    /// A taken name is an error ([`SegmentError::Io`] with `AlreadyExists`).
    pub fn create(name: &str, size: usize) -> Result<Self, SegmentError> {
        Ok(Self::from_segment(Segment::create_named(
            name,
            LAYOUT,
            size.max(1),
            |_| {},
        )?))
    }

    /// Open named shared memory made by [`create`](Self::create), checking
    /// that it belongs to this user, is private to it, and is a multiproc
    /// shared memory segment.
    pub fn open(name: &str) -> Result<Self, SegmentError> {
        Ok(Self::from_segment(Segment::open_named(name, LAYOUT)?))
    }

    /// Open a POSIX shared memory object named `name` (`/dev/shm/NAME`, a
    /// leading `/` optional) that another library created, such as Python's
    /// `multiprocessing.shared_memory.SharedMemory(create=True)`: the whole
    /// object, raw (no multiproc header), at its current size.
    ///
    /// Refused: a symlink at the name (`O_NOFOLLOW`), anything but a regular
    /// file, an owner other than the effective uid, and group or other write
    /// permission ([`SegmentError::PermissionMismatch`]); a missing name is
    /// [`SegmentError::Io`] with `NotFound`; an empty object, or a name
    /// with `/` inside or that is multiproc's own (`multiproc.…`, use
    /// [`open`](Self::open)), is [`SegmentError::InvalidName`].
    pub fn open_foreign(name: &str) -> Result<Self, SegmentError> {
        let bare = foreign_name(name)?;
        let os_name = format!("/{bare}");
        let fd = multiproc_sys::shm::shm_open_nofollow(&os_name)?;
        let info = multiproc_sys::shm::file_info(&fd)?;
        let euid = multiproc_sys::shm::euid();
        if !foreign_allowed(info, euid) {
            return Err(SegmentError::PermissionMismatch {
                uid: info.uid,
                mode: info.mode,
                expected_uid: euid,
            });
        }
        let len = usize::try_from(info.size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "object too large"))?;
        if len == 0 {
            return Err(SegmentError::InvalidName(format!("{name} (empty object)")));
        }
        Self::map_foreign(fd, len, bare)
    }

    /// Create a POSIX shared memory object as the standard library does
    /// (`/dev/shm/NAME`, leading `/`s optional; `O_CREAT | O_EXCL`, mode
    /// 0600, `size` zero bytes at offset 0, no header), so that any other
    /// library can open it by name; it is then used as an
    /// [`open_foreign`](Self::open_foreign) object. A taken name is
    /// [`SegmentError::Io`] with `AlreadyExists`, never an attach; names
    /// as for `open_foreign`. Nothing records its owner: it lives until
    /// [`unlink`](Self::unlink) (Python registers it with its resource
    /// tracker, as the standard library does).
    pub fn create_foreign(name: &str, size: usize) -> Result<Self, SegmentError> {
        let bare = foreign_name(name)?;
        if size == 0 {
            return Err(SegmentError::InvalidName(format!("{name} (size 0)")));
        }
        let os_name = format!("/{bare}");
        let fd = multiproc_sys::shm::shm_create(&os_name, 0o600, size as u64)?;
        Self::map_foreign(fd, size, bare).inspect_err(|_| {
            let _ = multiproc_sys::shm::shm_unlink(&os_name);
        })
    }

    fn map_foreign(fd: std::os::fd::OwnedFd, len: usize, bare: &str) -> Result<Self, SegmentError> {
        let file = std::fs::File::from(fd);
        let map = Mapping::new(file.as_fd(), len, true)?;
        Ok(SharedMemory {
            start: 0,
            len,
            backing: Backing::Foreign {
                map: Arc::new(map),
                file: Arc::new(file),
                name: bare.into(),
            },
        })
    }

    /// Remove a foreign object's name (`shm_unlink(NAME)`, a leading `/`
    /// optional) without opening it.
    pub fn unlink_foreign_name(name: &str) -> Result<(), SegmentError> {
        let bare = foreign_name(name)?;
        multiproc_sys::shm::shm_unlink(&format!("/{bare}"))?;
        Ok(())
    }

    /// Whether this is another library's object ([`open_foreign`](Self::open_foreign)).
    pub fn is_foreign(&self) -> bool {
        matches!(self.backing, Backing::Foreign { .. })
    }

    /// Remove the name (Python's `unlink()`); mappings stay valid.
    pub fn unlink(&self) -> Result<(), SegmentError> {
        match (&self.backing, self.name()) {
            (Backing::Foreign { name, .. }, _) => Self::unlink_foreign_name(name),
            (_, Some(n)) => segment::unlink_named(n),
            (_, None) => Err(SegmentError::InvalidName(String::new())),
        }
    }

    /// Remove a name without opening it.
    pub fn unlink_name(name: &str) -> Result<(), SegmentError> {
        segment::unlink_named(name)
    }

    /// Map a whole existing file shared and writable (the seeds' `mmap`).
    pub fn map_file(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large"))?;
        let map = Mapping::new(file.as_fd(), len, true)?;
        Ok(SharedMemory {
            start: 0,
            len,
            backing: Backing::File {
                map: Arc::new(map),
                file: Arc::new(file),
            },
        })
    }

    /// The name given to [`create`](Self::create)/[`open`](Self::open)
    /// (or [`open_foreign`](Self::open_foreign), without a leading `/`).
    pub fn name(&self) -> Option<&str> {
        match &self.backing {
            Backing::Segment(s) => s
                .name()
                .and_then(|n| n.strip_prefix('/'))
                .and_then(|n| n.strip_prefix(segment::NAME_PREFIX)),
            Backing::Foreign { name, .. } => Some(name),
            Backing::File { .. } => None,
        }
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.len
    }

    /// Copy `out.len()` bytes from `offset` into `out`.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfRange> {
        OutOfRange::check(offset, out.len(), self.len)?;
        self.bytes().copy_out(self.start + offset, out)
    }

    /// `len` bytes from `offset`, copied out.
    pub fn read_vec(&self, offset: usize, len: usize) -> Result<Vec<u8>, OutOfRange> {
        let mut v = vec![0; len];
        self.read(offset, &mut v)?;
        Ok(v)
    }

    /// Copy `src` into the block at `offset`.
    pub fn write(&self, offset: usize, src: &[u8]) -> Result<(), OutOfRange> {
        OutOfRange::check(offset, src.len(), self.len)?;
        self.bytes().copy_in(self.start + offset, src)
    }

    /// The first byte, for code that synchronizes on its own. Dereferencing
    /// it is `unsafe`: other processes may write these bytes at any time.
    pub fn as_ptr(&self) -> *mut u8 {
        self.bytes().as_ptr().wrapping_add(self.start)
    }

    /// Write a file mapping back to its file (`msync`); no-op otherwise.
    pub fn flush(&self) -> io::Result<()> {
        match &self.backing {
            Backing::File { map, .. } => map.flush(),
            Backing::Segment(_) | Backing::Foreign { .. } => Ok(()),
        }
    }

    /// Whether the size is sealed against shrinking (anonymous blocks).
    pub fn is_size_sealed(&self) -> bool {
        match &self.backing {
            Backing::Segment(s) => multiproc_sys::shm::is_shrink_sealed(s.as_fd()).unwrap_or(false),
            Backing::File { .. } | Backing::Foreign { .. } => false,
        }
    }
}

/// Whether another library's shared memory object described by `info` may
/// be mapped by a process of effective uid `euid`: a regular file of ours
/// that no one else may write (Python creates them with mode 0600).
fn foreign_allowed(info: multiproc_sys::shm::FileInfo, euid: u32) -> bool {
    info.is_regular && info.uid == euid && info.mode & 0o022 == 0
}

#[derive(Serialize, Deserialize)]
enum Wire<F> {
    /// An anonymous segment (a sealed memfd).
    Segment { fd: F, size: u64 },
    /// A mapped file or another library's segment.
    File { fd: F, size: u64 },
    /// A named multiproc segment: POSIX shared memory cannot be sealed, so
    /// it travels by name and the receiver opens it with the usual owner
    /// and mode checks.
    Named { name: String, size: u64 },
}

impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.backing {
            Backing::Segment(_) if self.name().is_some() => Wire::<FileRef<'_>>::Named {
                name: self.name().unwrap_or_default().to_owned(),
                size: self.len as u64,
            }
            .serialize(s),
            Backing::Segment(seg) => Wire::Segment {
                fd: segment::SegRef(seg),
                size: self.len as u64,
            }
            .serialize(s),
            // Sent as the descriptor it is: the receiver maps it whole.
            Backing::File { file, .. } | Backing::Foreign { file, .. } => Wire::File {
                fd: FileRef(file),
                size: self.len as u64,
            }
            .serialize(s),
        }
    }
}

struct FileRef<'a>(&'a std::fs::File);

impl Serialize for FileRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::connection::codec::serialize_fd(self.0.as_fd(), s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        match Wire::<Fd>::deserialize(d)? {
            Wire::Segment { fd, size } => {
                let seg = Segment::from_fd(fd.0, LAYOUT)
                    .map_err(|e| codec::handle_error_de(codec::HandleError::wrong_object(e)))?;
                let mut m = SharedMemory::from_segment(Arc::new(seg));
                m.len = usize::try_from(size).unwrap_or(usize::MAX).min(m.len);
                Ok(m)
            }
            Wire::Named { name, size } => {
                let mut m = SharedMemory::open(&name).map_err(D::Error::custom)?;
                m.len = usize::try_from(size).unwrap_or(usize::MAX).min(m.len);
                Ok(m)
            }
            Wire::File { fd, size } => {
                // Truncating the file under our mapping would kill us with
                // SIGBUS: only a sealed size, or a file of ours that no
                // one else may write, is mapped.
                let info = multiproc_sys::shm::file_info(&fd.0).map_err(D::Error::custom)?;
                if !multiproc_sys::shm::is_shrink_sealed(&fd.0).unwrap_or(false)
                    && !foreign_allowed(info, multiproc_sys::shm::euid())
                {
                    return Err(codec::handle_error_de(codec::HandleError::wrong_object(
                        segment::SegmentError::Unsealed,
                    )));
                }
                let file = std::fs::File::from(fd.0);
                let actual = file.metadata().map_err(D::Error::custom)?.len();
                let len = usize::try_from(size.min(actual)).map_err(D::Error::custom)?;
                let map = Mapping::new(file.as_fd(), len, true).map_err(D::Error::custom)?;
                Ok(SharedMemory {
                    start: 0,
                    len,
                    backing: Backing::File {
                        map: Arc::new(map),
                        file: Arc::new(file),
                    },
                })
            }
        }
    }
}
