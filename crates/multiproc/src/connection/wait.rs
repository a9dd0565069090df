//! Python's `multiprocessing.connection.wait`: readiness of many objects at once.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use super::listener::Listener;
use crate::connection::Connection;
use crate::process::Process;

// ----- wait -------------------------------------------------------------------

/// Something [`wait`] can wait on: connections, listeners, process
/// sentinels, raw descriptors.
pub trait Waitable {
    /// The descriptor to poll for readability; `None` means ready now
    /// (e.g. a process already joined).
    fn wait_fd(&self) -> Option<BorrowedFd<'_>>;

    /// Whether it is ready without polling (e.g. a connection holding a
    /// whole buffered message).
    fn ready_now(&self) -> bool {
        false
    }
}

impl<T> Waitable for Connection<T> {
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
    fn ready_now(&self) -> bool {
        self.has_buffered_frame()
    }
}

impl Waitable for Listener {
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}

impl<R> Waitable for Process<R> {
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        self.sentinel()
    }
}

impl Waitable for BorrowedFd<'_> {
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(*self)
    }
}

impl Waitable for OwnedFd {
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}

/// Wait until some of `objects` are ready, or `timeout` passes (`None`:
/// forever); the indices of the ready ones, in order (empty on timeout).
/// Python's `multiprocessing.connection.wait`.
///
/// A connection is ready when a message or end of file can be read (or a
/// whole message is already buffered), a listener when a client is waiting
/// to be accepted, a process when it has ended. With nothing to wait on it
/// returns an empty list after `timeout` (at once when `None`).
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> io::Result<Vec<usize>> {
    let mut ready: Vec<usize> = objects
        .iter()
        .enumerate()
        .filter(|(_, o)| o.ready_now() || o.wait_fd().is_none())
        .map(|(i, _)| i)
        .collect();
    let polled: Vec<(usize, BorrowedFd<'_>)> = objects
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.wait_fd().map(|fd| (i, fd)))
        .collect();
    let fds: Vec<BorrowedFd<'_>> = polled.iter().map(|(_, fd)| *fd).collect();
    let deadline = if ready.is_empty() {
        timeout.and_then(crate::deadline::after)
    } else {
        Some(Instant::now())
    };
    if !fds.is_empty() {
        let flags = multiproc_sys::poll::wait_any_readable(&fds, deadline)?;
        for ((i, _), r) in polled.iter().zip(flags) {
            if r && !ready.contains(i) {
                ready.push(*i);
            }
        }
        ready.sort_unstable();
    } else if ready.is_empty() {
        if let Some(d) = deadline {
            std::thread::sleep(d.saturating_duration_since(Instant::now()));
        }
    }
    Ok(ready)
}
