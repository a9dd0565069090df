//! Stream sockets for listeners and clients: Unix-domain paths and TCP.
//!
//! Every descriptor is close-on-exec; every call is retried on `EINTR`.
//! Listening sockets are non-blocking (accept polls first, so a connection
//! taken by another process holding the same listener never blocks the
//! caller); connected sockets are blocking, as multiproc's connections expect.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use rustix::fs::{FlockOperation, Mode};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// The longest path (in bytes, without the terminating NUL) that fits a
/// `sockaddr_un` on Linux.
pub const UNIX_PATH_MAX: usize = 107;

fn unix_addr(path: &Path) -> io::Result<SocketAddrUnix> {
    use std::os::unix::ffi::OsStrExt;
    let len = path.as_os_str().as_bytes().len();
    if len > UNIX_PATH_MAX || len == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a Unix socket path must have 1 to {UNIX_PATH_MAX} bytes, not {len}"),
        ));
    }
    Ok(SocketAddrUnix::new(path)?)
}

/// Create a Unix stream socket bound to `path` with mode `mode` and listening.
///
/// The file is created under `umask(!mode & 0o777)`, so it never exists with
/// looser bits, and is checked with `lstat` before `listen` (no `chmod`,
/// which would follow a symlink swapped in for the socket). The umask is
/// process-wide: a file another thread creates in that instant gets at most
/// the same bits. An existing file at `path` is `AddrInUse`.
pub fn unix_listen(path: &Path, mode: u32, backlog: i32) -> io::Result<OwnedFd> {
    let addr = unix_addr(path)?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    let old = rustix::process::umask(Mode::from_bits_truncate(!mode & 0o777));
    let bound = retry(|| rustix::net::bind(&fd, &addr));
    rustix::process::umask(old);
    bound?;
    let st = rustix::fs::lstat(path)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Socket
        || st.st_mode & 0o777 & !mode != 0
    {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the socket file was replaced or has looser permissions than asked",
        ));
    }
    rustix::net::listen(&fd, backlog)?;
    Ok(fd)
}

/// Connect a blocking Unix stream socket to `path`.
pub fn unix_connect(path: &Path) -> io::Result<OwnedFd> {
    connect_unix_addr(&unix_addr(path)?)
}

/// Connect a blocking Unix stream socket to `addr` (a path or an abstract
/// name).
fn connect_unix_addr(addr: &SocketAddrUnix) -> io::Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    match rustix::net::connect(&fd, addr) {
        Ok(()) => Ok(fd),
        // A connect interrupted by a signal goes on in the background.
        Err(Errno::INTR) => finish_connect(&fd, None).map(|()| fd),
        Err(e) => Err(e.into()),
    }
}

/// The longest abstract-namespace name (in bytes, without the leading NUL).
pub const ABSTRACT_NAME_MAX: usize = 107;

fn abstract_addr(name: &[u8]) -> io::Result<SocketAddrUnix> {
    if name.is_empty() || name.len() > ABSTRACT_NAME_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "an abstract socket name must have 1 to {ABSTRACT_NAME_MAX} bytes, not {}",
                name.len()
            ),
        ));
    }
    Ok(SocketAddrUnix::new_abstract_name(name)?)
}

/// Create a Unix stream socket bound to the Linux abstract-namespace name
/// `name` (the address `"\0name"`; no file, no permissions: whoever can
/// reach the network namespace can connect, so the caller checks its peers
/// with [`peer_uid`]) and listening. A name in use is `AddrInUse`.
pub fn abstract_listen(name: &[u8], backlog: i32) -> io::Result<OwnedFd> {
    let addr = abstract_addr(name)?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    retry(|| rustix::net::bind(&fd, &addr))?;
    rustix::net::listen(&fd, backlog)?;
    Ok(fd)
}

/// Connect a blocking Unix stream socket to the abstract-namespace name
/// `name`.
pub fn abstract_connect(name: &[u8]) -> io::Result<OwnedFd> {
    connect_unix_addr(&abstract_addr(name)?)
}

/// The effective uid of the process at the other end of a connected Unix
/// socket, as the kernel recorded it at `connect` (`SO_PEERCRED`).
pub fn peer_uid(fd: impl AsFd) -> io::Result<u32> {
    Ok(rustix::net::sockopt::socket_peercred(fd)?.uid.as_raw())
}

/// The peer's IP address of a TCP socket (`getpeername`); `None` for other
/// sockets.
pub fn peer_ip(fd: impl AsFd) -> Option<std::net::IpAddr> {
    match rustix::net::getpeername(fd).ok()? {
        Some(a) => std::net::SocketAddr::try_from(a).ok().map(|a| a.ip()),
        None => None,
    }
}

/// Create a TCP socket bound to `addr` (`SO_REUSEADDR`, as Python's
/// `Listener`) and listening.
pub fn tcp_listen(addr: SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
    retry(|| rustix::net::bind(&fd, &addr))?;
    rustix::net::listen(&fd, backlog)?;
    Ok(fd)
}

/// Wait for a connect in progress on `fd` and report its outcome.
fn finish_connect(fd: &OwnedFd, deadline: Option<Instant>) -> io::Result<()> {
    if !crate::poll::wait_writable(fd.as_fd(), deadline)? {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "timed out connecting",
        ));
    }
    match rustix::net::sockopt::socket_error(fd)? {
        Ok(()) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Connect a TCP socket to `addr`, waiting until `deadline` (`None`: as
/// long as the kernel tries), with `TCP_NODELAY` set. The returned socket
/// is blocking.
pub fn tcp_connect(addr: SocketAddr, deadline: Option<Instant>) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    match rustix::net::connect(&fd, &addr) {
        Ok(()) => {}
        Err(Errno::INPROGRESS | Errno::INTR) => finish_connect(&fd, deadline)?,
        Err(e) => return Err(e.into()),
    }
    crate::fd::set_nonblocking(&fd, false)?;
    rustix::net::sockopt::set_tcp_nodelay(&fd, true)?;
    Ok(fd)
}

/// `shutdown(fd, SHUT_WR)`: the peer reads end of file after what was sent,
/// and can still write to this end.
pub fn shutdown_write(fd: impl AsFd) -> io::Result<()> {
    rustix::net::shutdown(fd, rustix::net::Shutdown::Write)?;
    Ok(())
}

/// Set `TCP_NODELAY` on a TCP socket.
pub fn set_nodelay(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::net::sockopt::set_tcp_nodelay(fd, true)?)
}

/// Turn on TCP keepalive: probe after `idle` without traffic, every
/// `interval`, and give up (the next read fails with `ETIMEDOUT`) after
/// `count` unanswered probes, so a peer that vanished is noticed.
pub fn set_keepalive(
    fd: impl AsFd,
    idle: std::time::Duration,
    interval: std::time::Duration,
    count: u32,
) -> io::Result<()> {
    let fd = fd.as_fd();
    rustix::net::sockopt::set_socket_keepalive(fd, true)?;
    rustix::net::sockopt::set_tcp_keepidle(fd, idle)?;
    rustix::net::sockopt::set_tcp_keepintvl(fd, interval)?;
    rustix::net::sockopt::set_tcp_keepcnt(fd, count)?;
    Ok(())
}

/// Accept one connection on a non-blocking listening socket, waiting until
/// `deadline` (`None`: forever). `Ok(None)`: the deadline passed. The new
/// socket is blocking and close-on-exec.
pub fn accept(listener: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<Option<OwnedFd>> {
    loop {
        match rustix::net::accept_with(listener, SocketFlags::CLOEXEC) {
            Ok(fd) => return Ok(Some(fd)),
            Err(Errno::INTR | Errno::CONNABORTED) => continue,
            Err(Errno::AGAIN) => {
                if !crate::poll::wait_readable(listener, deadline)?.readable {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The local address of a TCP socket (`getsockname`), e.g. to learn the port
/// the kernel chose for port 0.
pub fn local_inet_addr(fd: impl AsFd) -> io::Result<SocketAddr> {
    let any = rustix::net::getsockname(fd)?;
    SocketAddr::try_from(any)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not an IPv4 or IPv6 socket"))
}

/// Whether `fd` is an IPv4 or IPv6 socket (not a Unix-domain one).
pub fn is_inet_socket(fd: impl AsFd) -> bool {
    rustix::net::getsockname(fd)
        .map(|a| {
            matches!(
                a.address_family(),
                AddressFamily::INET | AddressFamily::INET6
            )
        })
        .unwrap_or(false)
}

/// Try to take an exclusive `flock` on `fd` without blocking; whether it was
/// taken.
pub fn try_lock_exclusive(fd: impl AsFd) -> io::Result<bool> {
    match retry(|| rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

/// Open (creating with mode 0600 if missing) a lock file, refusing symlinks.
pub fn open_lock_file(path: &Path) -> io::Result<OwnedFd> {
    use rustix::fs::OFlags;
    retry(|| {
        rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_bits_truncate(0o600),
        )
    })
}

/// Replace the contents of a lock file (opened with [`open_lock_file`]) by
/// `note`: what a cleaner should know about the listener that holds it.
pub fn write_lock_note(lock: &OwnedFd, note: &[u8]) -> io::Result<()> {
    retry(|| rustix::fs::ftruncate(lock, 0))?;
    let mut at = 0;
    while at < note.len() {
        let n = retry(|| rustix::io::pwrite(lock, &note[at..], at as u64))?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        at += n;
    }
    Ok(())
}

/// What `lstat` says about a directory that is to hold private sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirInfo {
    /// It is a directory (a symlink is not).
    pub is_dir: bool,
    /// Its owner is this process's effective uid.
    pub owned_by_me: bool,
    /// Its permission bits.
    pub mode: u32,
}

/// `lstat(path)` reduced to what a private-directory check needs.
pub fn dir_info(path: &Path) -> io::Result<DirInfo> {
    let st = rustix::fs::lstat(path)?;
    Ok(DirInfo {
        is_dir: rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory,
        owned_by_me: st.st_uid == rustix::process::geteuid().as_raw(),
        mode: st.st_mode & 0o7777,
    })
}

/// Create directory `path` with mode 0700 (`mkdir` is not affected by a
/// looser umask than that).
pub fn mkdir_private(path: &Path) -> io::Result<()> {
    Ok(rustix::fs::mkdir(path, Mode::from_bits_truncate(0o700))?)
}

/// Whether `path` is a socket file (`lstat`, symlinks are not followed).
pub fn is_socket_file(path: &Path) -> io::Result<bool> {
    let st = rustix::fs::lstat(path)?;
    Ok(rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket)
}
