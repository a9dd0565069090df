//! File-descriptor flags and creation of pipes and socketpairs.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::io::FdFlags;

/// Set or clear `FD_CLOEXEC` on `fd` (`fcntl(F_SETFD)`).
///
/// Every descriptor multiproc creates is close-on-exec; the spawn start method
/// clears the flag only in the child, between `fork` and `exec`, for the fds it
/// hands over.
pub fn set_cloexec(fd: impl AsFd, cloexec: bool) -> io::Result<()> {
    let flags = rustix::io::fcntl_getfd(&fd)?;
    let flags = if cloexec {
        flags | FdFlags::CLOEXEC
    } else {
        flags - FdFlags::CLOEXEC
    };
    rustix::io::fcntl_setfd(&fd, flags)?;
    Ok(())
}

/// Whether `FD_CLOEXEC` is set on `fd`.
pub fn is_cloexec(fd: impl AsFd) -> io::Result<bool> {
    Ok(rustix::io::fcntl_getfd(&fd)?.contains(FdFlags::CLOEXEC))
}

/// Set or clear `O_NONBLOCK` on the open file description behind `fd`.
///
/// Note that the flag is shared by every process holding a copy of the
/// description; multiproc keeps its fds blocking and uses `poll` for timeouts.
pub fn set_nonblocking(fd: impl AsFd, nonblocking: bool) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    let flags = if nonblocking {
        flags | rustix::fs::OFlags::NONBLOCK
    } else {
        flags - rustix::fs::OFlags::NONBLOCK
    };
    rustix::fs::fcntl_setfl(&fd, flags)?;
    Ok(())
}

/// `pipe2(O_CLOEXEC)`: returns `(read end, write end)`.
#[doc(alias = "pipe2")]
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// `dup(fd)` with `F_DUPFD_CLOEXEC`: a new descriptor for the same open file.
pub fn dup(fd: impl AsFd) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 0)?)
}

/// The kind of object behind a file descriptor, as `fstat` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FdKind {
    /// A pipe or FIFO.
    Fifo,
    /// A socket.
    Socket,
    /// Anything else.
    Other,
}

/// `fstat(fd)` reduced to the kind of file.
pub fn kind(fd: impl AsFd) -> io::Result<FdKind> {
    let st = rustix::fs::fstat(fd)?;
    Ok(match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::Fifo => FdKind::Fifo,
        rustix::fs::FileType::Socket => FdKind::Socket,
        _ => FdKind::Other,
    })
}

/// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`: message boundaries
/// kept, each message may carry descriptors.
pub fn socketpair_seqpacket() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}
