//! Named pipes (FIFOs): `mknodat(S_IFIFO)`, `openat(O_NOFOLLOW)`, `fstat`.
//!
//! No policy: the `multiproc` crate decides what a refused path, a missing
//! reader or a timeout means.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;

/// What is at a path, as `lstat` reports it (symlinks are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathKind {
    /// Nothing (`ENOENT`).
    Missing,
    /// A FIFO.
    Fifo,
    /// A symbolic link (to anything).
    Symlink,
    /// Anything else.
    Other,
}

/// `lstat(path)` reduced to [`PathKind`].
pub fn path_kind(path: &Path) -> io::Result<PathKind> {
    match rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => Ok(PathKind::Missing),
        Err(e) => Err(e.into()),
        Ok(st) => Ok(match FileType::from_raw_mode(st.st_mode) {
            FileType::Fifo => PathKind::Fifo,
            FileType::Symlink => PathKind::Symlink,
            _ => PathKind::Other,
        }),
    }
}

/// `mknodat(AT_FDCWD, path, S_IFIFO | mode)`, then the permission bits set
/// to exactly `mode & 0o777` whatever the umask: the new FIFO is opened
/// (`O_RDONLY | O_NONBLOCK | O_NOFOLLOW`, which never blocks), checked with
/// `fstat` to be a FIFO, and `fchmod`ed through that descriptor, so a path
/// swapped in between is never changed.
///
/// `AlreadyExists` when something is at `path` already (nothing is changed).
pub fn create(path: &Path, mode: u32) -> io::Result<()> {
    let mode = Mode::from_raw_mode(mode & 0o777);
    rustix::fs::mknodat(CWD, path, FileType::Fifo, mode, 0)?;
    let fd = open(path, false, true)?;
    if super::fd::kind(&fd)? != super::fd::FdKind::Fifo {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the new FIFO was replaced before its mode was set",
        ));
    }
    rustix::fs::fchmod(&fd, mode)?;
    Ok(())
}

/// `openat(AT_FDCWD, path, O_RDONLY or O_WRONLY | O_NOFOLLOW | O_CLOEXEC |
/// O_NOCTTY [| O_NONBLOCK])`, retried on `EINTR`.
///
/// A symlink as the last component fails with `ELOOP`. A blocking open of a
/// FIFO waits for the other side; a non-blocking open for writing fails with
/// `ENXIO` while there is no reader. The caller checks what it opened
/// ([`crate::fd::kind`]).
pub fn open(path: &Path, write: bool, nonblocking: bool) -> io::Result<OwnedFd> {
    let mut flags = OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
    flags |= if write {
        OFlags::WRONLY
    } else {
        OFlags::RDONLY
    };
    if nonblocking {
        flags |= OFlags::NONBLOCK;
    }
    loop {
        match rustix::fs::openat(CWD, path, flags, Mode::empty()) {
            Err(Errno::INTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// The permission bits (`st_mode & 0o7777`) of what `path` names, without
/// following a symlink.
pub fn mode(path: &Path) -> io::Result<u32> {
    let st = rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(st.st_mode & 0o7777)
}

/// `unlinkat(AT_FDCWD, path, 0)`.
pub fn unlink(path: &Path) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(CWD, path, AtFlags::empty())?)
}

/// The absolute path of `path` with its directory resolved (symlinks and
/// `..` in the directory part followed, as `realpath`); the last component
/// is kept as given, so a FIFO that does not exist yet has a canonical name.
pub fn canonical(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "a FIFO path needs a file name")
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok(std::fs::canonicalize(dir)?.join(name))
}
