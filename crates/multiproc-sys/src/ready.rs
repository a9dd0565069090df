//! Awaiting a descriptor's readiness in tokio's reactor (the `tokio`
//! feature): `epoll` registration for the length of one wait.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Until `fd` is readable (`readable`) or writable: registered with the
/// current tokio runtime for this one wait and deregistered after it.
/// Must be called within a tokio runtime (an error otherwise, never a
/// panic).
pub async fn ready(fd: BorrowedFd<'_>, readable: bool) -> io::Result<()> {
    let interest = if readable {
        Interest::READABLE
    } else {
        Interest::WRITABLE
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other(
            "an async wait on a descriptor needs a tokio runtime",
        ));
    }
    debug_assert!(fd.as_raw_fd() >= 0);
    // SAFETY: tokio requires the descriptor to stay open and refer to the
    // same file while registered. `fd` is a `BorrowedFd<'_>`, so it stays
    // open for the borrow, and the `AsyncFd` (which deregisters on drop)
    // lives only inside this function, within that borrow.
    let afd = unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(io::Error::from)?;
    let _guard = afd.ready(interest).await?;
    Ok(())
}
