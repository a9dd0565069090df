//! POSIX message queues (`mq_open`, `mq_timedsend`, `mq_timedreceive`,
//! `mq_getattr`, `mq_setattr`, `mq_unlink`).
//!
//! rustix has no message-queue API, so these calls go through `libc`. On
//! Linux a message-queue descriptor (`mqd_t`) is a file descriptor: it is
//! held here as an [`OwnedFd`] (closed with `close`, which is what
//! `mq_close` does), can be polled (`POLLIN`: a message is there, `POLLOUT`:
//! there is room) and passed to other processes with `SCM_RIGHTS`.
//!
//! The kernel's timed calls take an absolute `CLOCK_REALTIME` time. The
//! waits here take a monotonic [`Instant`] instead, convert it anew before
//! each call, and retry on `EINTR` and on a `ETIMEDOUT` that came before the
//! monotonic deadline (the wall clock was set forward), so neither a signal
//! nor a clock change ends a wait early or loses a message.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::time::ClockId;

/// The attributes of a queue (`struct mq_attr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqAttr {
    /// Most messages the queue holds.
    pub maxmsg: i64,
    /// Largest message, in bytes.
    pub msgsize: i64,
    /// Messages in the queue now.
    pub curmsgs: i64,
    /// Whether the open file description is non-blocking (`O_NONBLOCK`).
    pub nonblocking: bool,
}

/// How long a send or receive may wait for room or for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Block until it can be done.
    Forever,
    /// Do not block: fail with `WouldBlock` at once.
    Never,
    /// Block until this monotonic deadline, then fail with `TimedOut`.
    Until(Instant),
}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "message queue name contains NUL",
        )
    })
}

fn fd_from(ret: libc::mqd_t) -> io::Result<OwnedFd> {
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on Linux `mqd_t` is a file descriptor; a successful `mq_open`
    // returned a new one that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// `mq_open(name, O_RDWR | O_CREAT [| O_EXCL] | O_CLOEXEC, mode, attr)`:
/// create a queue holding `maxmsg` messages of at most `msgsize` bytes
/// (with `exclusive`, failing with `AlreadyExists` if the name is taken;
/// otherwise opening an existing queue as it is). A queue this call made
/// gets exactly `mode` (the umask filtered what `mq_open` applied).
pub fn create(
    name: &str,
    exclusive: bool,
    mode: u32,
    maxmsg: i64,
    msgsize: i64,
) -> io::Result<OwnedFd> {
    let name = c_name(name)?;
    let mut flags = libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC;
    if exclusive {
        flags |= libc::O_EXCL;
    }
    // SAFETY: `mq_attr` is plain integers (and reserved padding) for which
    // all-zero is a valid value.
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    attr.mq_maxmsg = maxmsg as _;
    attr.mq_msgsize = msgsize as _;
    // SAFETY: `name` is NUL-terminated and lives across the call; with
    // `O_CREAT` the variadic arguments are the mode (as `mode_t`, promoted
    // as C does) and a pointer to a valid `mq_attr` that outlives the call.
    let ret = unsafe {
        libc::mq_open(
            name.as_ptr(),
            flags,
            mode as libc::mode_t,
            &mut attr as *mut libc::mq_attr,
        )
    };
    let fd = fd_from(ret)?;
    if exclusive {
        rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(mode))?;
    }
    Ok(fd)
}

/// `mq_open(name, O_RDWR | O_CLOEXEC)` (or `O_RDONLY`) of an existing queue.
pub fn open(name: &str, writable: bool) -> io::Result<OwnedFd> {
    let name = c_name(name)?;
    let access = if writable {
        libc::O_RDWR
    } else {
        libc::O_RDONLY
    };
    // SAFETY: `name` is NUL-terminated and lives across the call; without
    // `O_CREAT` no variadic argument is read.
    let ret = unsafe { libc::mq_open(name.as_ptr(), access | libc::O_CLOEXEC) };
    fd_from(ret)
}

/// `mq_unlink(name)`: remove the name; open descriptors stay usable and the
/// queue is freed when the last one closes.
pub fn unlink(name: &str) -> io::Result<()> {
    let name = c_name(name)?;
    // SAFETY: `name` is NUL-terminated and lives across the call.
    if unsafe { libc::mq_unlink(name.as_ptr()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `mq_getattr(fd)`.
pub fn getattr(fd: impl AsFd) -> io::Result<MqAttr> {
    // SAFETY: all-zero is a valid `mq_attr` (plain integers).
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is borrowed for the call; `attr` is a valid,
    // writable `mq_attr`.
    if unsafe { libc::mq_getattr(fd.as_fd().as_raw_fd(), &mut attr) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(MqAttr {
        maxmsg: attr.mq_maxmsg as i64,
        msgsize: attr.mq_msgsize as i64,
        curmsgs: attr.mq_curmsgs as i64,
        nonblocking: attr.mq_flags as i64 & i64::from(libc::O_NONBLOCK) != 0,
    })
}

/// `mq_setattr(fd)` with only `O_NONBLOCK` set or cleared. This changes the
/// open file description: every descriptor that shares it (duplicates,
/// copies passed to other processes) sees the change.
pub fn set_nonblocking(fd: impl AsFd, nonblocking: bool) -> io::Result<()> {
    // SAFETY: all-zero is a valid `mq_attr` (plain integers).
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    attr.mq_flags = if nonblocking {
        libc::O_NONBLOCK as _
    } else {
        0
    };
    // SAFETY: the descriptor is borrowed for the call; `attr` is a valid
    // `mq_attr`; the old attributes are not asked for (null).
    let ret = unsafe { libc::mq_setattr(fd.as_fd().as_raw_fd(), &attr, std::ptr::null_mut()) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The absolute `CLOCK_REALTIME` time that is `left` from now.
fn realtime_in(left: Duration) -> libc::timespec {
    let now = rustix::time::clock_gettime(ClockId::Realtime);
    let mut sec = now
        .tv_sec
        .saturating_add(i64::try_from(left.as_secs()).unwrap_or(i64::MAX));
    let mut nsec = now.tv_nsec + i64::from(left.subsec_nanos());
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec as _,
        tv_nsec: nsec as _,
    }
}

/// An absolute time that has passed: the kernel tries once and reports
/// `ETIMEDOUT` instead of blocking, whatever the descriptor's flags.
const PAST: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

/// Run `call` with the absolute timeout `wait` asks for, retried on `EINTR`
/// and on a wall-clock timeout before the monotonic deadline. A queue that
/// is full (send) or empty (receive) is `WouldBlock` for [`Wait::Never`],
/// `TimedOut` once a deadline has passed. On a non-blocking description
/// (`EAGAIN`) a waiting call polls `fd` for `ready` and tries again.
fn with_timeout<R>(
    fd: BorrowedFd<'_>,
    ready: PollFlags,
    wait: Wait,
    mut call: impl FnMut(*const libc::timespec) -> isize,
) -> io::Result<R>
where
    R: TryFrom<isize>,
{
    loop {
        let abs = match wait {
            Wait::Forever => None,
            Wait::Never => Some(PAST),
            Wait::Until(deadline) => Some(realtime_in(
                deadline.saturating_duration_since(Instant::now()),
            )),
        };
        let ret = call(abs.as_ref().map_or(std::ptr::null(), |t| t as *const _));
        if ret != -1 {
            return R::try_from(ret).map_err(|_| io::Error::other("negative result"));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => {
                let deadline = match wait {
                    Wait::Never => return Err(err),
                    Wait::Forever => None,
                    Wait::Until(d) if Instant::now() < d => Some(d),
                    Wait::Until(_) => return Err(io::ErrorKind::TimedOut.into()),
                };
                poll_until(fd, ready, deadline)?;
            }
            Some(libc::ETIMEDOUT) => match wait {
                Wait::Never => return Err(io::ErrorKind::WouldBlock.into()),
                Wait::Until(deadline) if Instant::now() < deadline => continue,
                _ => return Err(io::ErrorKind::TimedOut.into()),
            },
            _ => return Err(err),
        }
    }
}

/// Poll `fd` for `events` until one is ready or `deadline` passes (either
/// way the caller tries again), retried on `EINTR`.
fn poll_until(fd: BorrowedFd<'_>, events: PollFlags, deadline: Option<Instant>) -> io::Result<()> {
    let mut pfd = [PollFd::from_borrowed_fd(fd, events)];
    loop {
        let left = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            rustix::event::Timespec {
                tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(left.subsec_nanos()),
            }
        });
        match rustix::event::poll(&mut pfd, left.as_ref()) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(()),
        }
    }
}

/// `mq_timedsend(fd, msg, priority, …)`: put `msg` in the queue, waiting for
/// room as `wait` allows. Errors: `WouldBlock` (full, not waiting or a
/// non-blocking description), `TimedOut`, `EMSGSIZE` (longer than the
/// queue's `msgsize`), `EINVAL` (priority too high), `EBADF` (not open for
/// writing).
pub fn send(fd: impl AsFd, msg: &[u8], priority: u32, wait: Wait) -> io::Result<()> {
    let fd = fd.as_fd();
    let raw = fd.as_raw_fd();
    with_timeout::<isize>(fd, PollFlags::OUT, wait, |abs| {
        // SAFETY: the descriptor is borrowed for the call; `msg` is a valid
        // slice of `msg.len()` bytes; `abs` is null or points at a timespec
        // that lives until `with_timeout` returns.
        let r = unsafe { libc::mq_timedsend(raw, msg.as_ptr().cast(), msg.len(), priority, abs) };
        r as isize
    })
    .map(drop)
}

/// `mq_timedreceive(fd, buf, …)`: take the oldest message of the highest
/// priority into `buf`, waiting for one as `wait` allows; its length and
/// priority. Errors: `WouldBlock` (empty, not waiting or a non-blocking
/// description), `TimedOut`, `EMSGSIZE` (`buf` is shorter than the queue's
/// `msgsize`; the message stays queued), `EBADF` (not open for reading).
pub fn recv(fd: impl AsFd, buf: &mut [u8], wait: Wait) -> io::Result<(usize, u32)> {
    let fd = fd.as_fd();
    let raw = fd.as_raw_fd();
    let mut priority: libc::c_uint = 0;
    let len = with_timeout::<usize>(fd, PollFlags::IN, wait, |abs| {
        // SAFETY: the descriptor is borrowed for the call; `buf` is a valid
        // writable slice of `buf.len()` bytes; `priority` is a valid `c_uint`;
        // `abs` is null or points at a timespec that outlives the call.
        unsafe {
            libc::mq_timedreceive(raw, buf.as_mut_ptr().cast(), buf.len(), &mut priority, abs)
        }
    })?;
    Ok((len, priority))
}

/// The error numbers callers tell apart.
pub mod errno {
    /// A message longer than the queue's `msgsize`, or a receive buffer
    /// shorter than it.
    pub const EMSGSIZE: i32 = libc::EMSGSIZE;
    /// Invalid attributes (capacity above the caller's limits) or priority.
    pub const EINVAL: i32 = libc::EINVAL;
    /// Too many descriptors, or the user's `RLIMIT_MSGQUEUE` bytes.
    pub const EMFILE: i32 = libc::EMFILE;
    /// The system's `queues_max`.
    pub const ENOSPC: i32 = libc::ENOSPC;
}

/// The system-wide limits of `/proc/sys/fs/mqueue`, where readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// `msg_max`: most messages an unprivileged process may ask for.
    pub msg_max: Option<i64>,
    /// `msgsize_max`: largest message an unprivileged process may ask for.
    pub msgsize_max: Option<i64>,
    /// `msg_default`: `maxmsg` of a queue created without attributes.
    pub msg_default: Option<i64>,
    /// `msgsize_default`: `msgsize` of a queue created without attributes.
    pub msgsize_default: Option<i64>,
}

/// The largest `maxmsg` a privileged (`CAP_SYS_RESOURCE`) process may ask for
/// (the kernel's `HARD_MSGMAX`).
pub const HARD_MSGMAX: i64 = 65_536;
/// The largest `msgsize` a privileged process may ask for (the kernel's
/// `HARD_MSGSIZEMAX`).
pub const HARD_MSGSIZEMAX: i64 = 16 * 1024 * 1024;
/// Priorities are below this (Linux's `MQ_PRIO_MAX`).
pub const PRIO_MAX: u32 = 32_768;

/// Read the limits in `/proc/sys/fs/mqueue` (a missing file is `None`).
pub fn limits() -> Limits {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/sys/fs/mqueue/{f}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    };
    Limits {
        msg_max: read("msg_max"),
        msgsize_max: read("msgsize_max"),
        msg_default: read("msg_default"),
        msgsize_default: read("msgsize_default"),
    }
}
