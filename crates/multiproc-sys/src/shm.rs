//! Shared memory: memfd and POSIX shm objects, seals, and mappings.

use std::io;
use std::ops::Deref;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{MemfdFlags, Mode, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};

pub use crate::mapped::{MappedBytes, MappedWords, OutOfRange};

/// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`, sized to `len`
/// bytes (zero-filled). The kernel frees it when the last descriptor and
/// mapping are gone: nothing is left behind after any crash.
#[doc(alias = "memfd_create")]
pub fn memfd(name: &str, len: u64) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    rustix::fs::ftruncate(&fd, len)?;
    Ok(fd)
}

/// Seal a memfd's size (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`): no
/// process can truncate it under another's mapping (no `SIGBUS`).
pub fn seal_size(fd: impl AsFd) -> io::Result<()> {
    rustix::fs::fcntl_add_seals(fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
    Ok(())
}

/// Whether the size of `fd` is sealed against shrinking.
pub fn is_shrink_sealed(fd: impl AsFd) -> io::Result<bool> {
    Ok(rustix::fs::fcntl_get_seals(fd)?.contains(SealFlags::SHRINK))
}

/// `shm_open(name, O_RDWR | O_CREAT | O_EXCL, mode)`: create a new named
/// object, failing with `AlreadyExists` if the name is taken (never attaching
/// to someone else's object).
pub fn shm_create(name: &str, mode: u32, len: u64) -> io::Result<OwnedFd> {
    let fd = rustix::shm::open(
        name,
        rustix::shm::OFlags::RDWR | rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL,
        Mode::from_raw_mode(mode),
    )?;
    // The mode given to shm_open is filtered by the umask; set it exactly.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    if let Err(e) = rustix::fs::ftruncate(&fd, len) {
        let _ = rustix::shm::unlink(name);
        return Err(e.into());
    }
    Ok(fd)
}

/// `shm_open(name, O_RDWR)` (or `O_RDONLY`) of an existing named object.
pub fn shm_open(name: &str, writable: bool) -> io::Result<OwnedFd> {
    let flags = if writable {
        rustix::shm::OFlags::RDWR
    } else {
        rustix::shm::OFlags::RDONLY
    };
    Ok(rustix::shm::open(name, flags, Mode::empty())?)
}

/// `shm_open(name, O_RDWR | O_NOFOLLOW)` of an existing named object made
/// by another library (e.g. Python's `multiprocessing.shared_memory`): a
/// symlink at the name is refused (`ELOOP`), never followed. The caller
/// checks the object with [`file_info`] before mapping it.
pub fn shm_open_nofollow(name: &str) -> io::Result<OwnedFd> {
    let flags = rustix::shm::OFlags::RDWR
        | rustix::shm::OFlags::from_bits_retain(rustix::fs::OFlags::NOFOLLOW.bits());
    Ok(rustix::shm::open(name, flags, Mode::empty())?)
}

/// `shm_unlink(name)`.
pub fn shm_unlink(name: &str) -> io::Result<()> {
    Ok(rustix::shm::unlink(name)?)
}

/// What `fstat` says about a descriptor, reduced to what the checks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// Size in bytes.
    pub size: u64,
    /// Owner's user id.
    pub uid: u32,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Whether it is a regular file (shared memory objects are).
    pub is_regular: bool,
}

/// `fstat(fd)`.
pub fn file_info(fd: impl AsFd) -> io::Result<FileInfo> {
    let st = rustix::fs::fstat(fd)?;
    Ok(FileInfo {
        size: u64::try_from(st.st_size).unwrap_or(0),
        uid: st.st_uid,
        mode: st.st_mode & 0o7777,
        is_regular: rustix::fs::FileType::from_raw_mode(st.st_mode)
            == rustix::fs::FileType::RegularFile,
    })
}

/// `geteuid()`.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// A shared mapping of a descriptor (`mmap(MAP_SHARED)`), unmapped on drop.
///
/// Its bytes are reached through [`MappedBytes`] (`Deref`): bounds-checked
/// copies and [`SharedState`](multiproc_shm::SharedState) views; other
/// processes may write the memory at any time, so no `&[u8]` over it is
/// ever made.
#[derive(Debug)]
pub struct Mapping {
    bytes: MappedBytes,
}

impl Mapping {
    /// Map `len` bytes of `fd` from offset 0, shared, readable and (if
    /// `writable`) writable.
    pub fn new(fd: impl AsFd, len: usize, writable: bool) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map 0 bytes",
            ));
        }
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a fresh mapping at an address the kernel chooses (null
        // hint) cannot overlap or invalidate any existing Rust object.
        let ptr =
            unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0)? };
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null pointer"))?;
        // SAFETY: the range stays mapped, as `prot` says, until `drop`
        // below, which cannot run while the bytes are borrowed; nothing
        // else has its address.
        let bytes = unsafe { MappedBytes::new(ptr, len, writable) };
        Ok(Mapping { bytes })
    }

    /// `msync(MS_SYNC)`: write a file mapping back to its file.
    pub fn flush(&self) -> io::Result<()> {
        // SAFETY: the range is exactly this live mapping.
        unsafe {
            rustix::mm::msync(
                self.bytes.as_ptr().cast(),
                self.bytes.len(),
                rustix::mm::MsyncFlags::SYNC,
            )?;
        }
        Ok(())
    }
}

impl Deref for Mapping {
    type Target = MappedBytes;
    #[inline]
    fn deref(&self) -> &MappedBytes {
        &self.bytes
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range is a mapping this value created and nothing else
        // unmaps; every borrow of its bytes ended before `drop`.
        unsafe {
            let _ = rustix::mm::munmap(self.bytes.as_ptr().cast(), self.bytes.len());
        }
    }
}
