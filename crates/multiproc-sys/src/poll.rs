//! Readiness waits with monotonic deadlines.
//!
//! `poll(2)` is retried on `EINTR` with the time that is left, so a signal
//! neither ends a wait early nor stretches it.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;

/// What [`wait_readable`] saw on a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// Data (or end of file) can be read without blocking.
    pub readable: bool,
    /// The peer hung up (`POLLHUP`); buffered data may still be readable.
    pub hangup: bool,
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// Wait until one of `fds` is readable (or hung up), or `deadline` passes.
///
/// `deadline == None` waits forever. Returns, for each fd in order, whether it
/// is ready; all `false` means the deadline passed.
pub fn wait_any_readable(
    fds: &[BorrowedFd<'_>],
    deadline: Option<Instant>,
) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN))
        .collect();
    loop {
        let timeout = deadline.map(|d| timespec(d.saturating_duration_since(Instant::now())));
        match rustix::event::poll(&mut pfds, timeout.as_ref()) {
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {
                return Ok(pfds.iter().map(|p| !p.revents().is_empty()).collect());
            }
        }
    }
}

/// Poll one descriptor for `events` until some are ready or `deadline`
/// passes (`None`: forever); its returned events (empty on timeout).
fn wait_one(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Option<Instant>,
) -> io::Result<PollFlags> {
    let mut pfd = [PollFd::from_borrowed_fd(fd, events)];
    loop {
        let timeout = deadline.map(|d| timespec(d.saturating_duration_since(Instant::now())));
        match rustix::event::poll(&mut pfd, timeout.as_ref()) {
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {
                let r = pfd[0].revents();
                if r.contains(PollFlags::NVAL) {
                    return Err(Errno::BADF.into());
                }
                return Ok(r);
            }
        }
    }
}

/// Wait until `fd` is readable or hung up, or `deadline` passes
/// (`None`: forever; a deadline in the past: just look).
pub fn wait_readable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<Readiness> {
    let r = wait_one(fd, PollFlags::IN, deadline)?;
    Ok(Readiness {
        readable: r.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR),
        hangup: r.contains(PollFlags::HUP),
    })
}

/// Wait until `fd` is writable (or in error), or `deadline` passes; whether
/// it is.
pub fn wait_writable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<bool> {
    Ok(!wait_one(fd, PollFlags::OUT, deadline)?.is_empty())
}
