//! File-descriptor flags and creation of pipes and socketpairs.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

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

/// Make the child that `cmd` starts inherit descriptor number `fd`: its
/// close-on-exec flag is cleared in the child only, between `fork` and
/// `exec`, so children other threads spawn meanwhile do not get it. The
/// parent keeps `fd` open until the spawn; a number that is not open in the
/// child fails the spawn with `EBADF`.
pub fn inherit_on_exec(cmd: &mut std::process::Command, fd: RawFd) {
    use std::os::unix::process::CommandExt as _;
    let hook = move || {
        // SAFETY: `fcntl(F_GETFD)` and `fcntl(F_SETFD)` take any integer and
        // touch only the descriptor table's flags: a number that is not open
        // fails with EBADF.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        // SAFETY: as above.
        if flags == -1 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } == -1
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the hook runs in the child between fork and exec, where only
    // async-signal-safe work is allowed: it makes two `fcntl` calls
    // (async-signal-safe), allocates nothing (an errno error is stored
    // inline), and takes no lock.
    unsafe { cmd.pre_exec(hook) };
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

/// Take ownership of descriptor number `fd`, inherited from the parent
/// across `exec` for this process to own (the spawn bootstrap's socket).
/// The number is checked first: a negative number or one that is not open
/// is `EBADF`, never an `OwnedFd`.
///
/// # Safety
///
/// Nothing else in this process may own or use `fd`: the caller received
/// the number as a hand-over (a command-line argument naming a descriptor
/// the parent left open for it).
pub unsafe fn claim_inherited(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(
            rustix::io::Errno::BADF.raw_os_error(),
        ));
    }
    // SAFETY: the borrow lives only for this `fcntl(F_GETFD)`, which reads
    // the descriptor-table entry and changes nothing; on a number that is
    // not open it fails with EBADF.
    rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) })?;
    // SAFETY: `fd` is open (checked just above, and nothing in this process
    // closes it meanwhile: the caller's contract says no one else owns it),
    // and the caller hands its ownership to this `OwnedFd`.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An eventfd (close-on-exec, non-blocking, counter 0): a descriptor that
/// turns readable when [`eventfd_signal`] adds to it, for waking an event
/// loop (`asyncio`'s `add_reader`) from another thread.
pub fn eventfd() -> io::Result<OwnedFd> {
    use rustix::event::EventfdFlags;
    Ok(rustix::event::eventfd(
        0,
        EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK,
    )?)
}

/// Add 1 to an [`eventfd`]'s counter (it turns readable). A counter at its
/// maximum (`EAGAIN`) is readable already, so that is not an error.
pub fn eventfd_signal(fd: impl AsFd) -> io::Result<()> {
    match rustix::io::write(fd, &1u64.to_ne_bytes()) {
        Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reset an [`eventfd`]'s counter to 0 (it stops being readable); whether
/// it had been signalled.
pub fn eventfd_drain(fd: impl AsFd) -> io::Result<bool> {
    let mut b = [0u8; 8];
    match rustix::io::read(fd, &mut b) {
        Ok(_) => Ok(true),
        Err(rustix::io::Errno::AGAIN) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
