//! Awaiting a descriptor's readiness in tokio's reactor (the `tokio`
//! feature): `epoll` registration for the length of one wait ([`ready`]),
//! or for as long as a [`Registration`] lives.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::task::{Context, Poll};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Until `fd` is readable (`readable`) or writable: registered with the
/// current tokio runtime for this one wait and deregistered after it.
/// Must be called within a tokio runtime (an error otherwise, never a
/// panic). Any number of tasks may await the same descriptor at once:
/// `epoll` refuses a second registration of one descriptor number, and a
/// wait that meets that registers a duplicate instead ([`Registration`]);
/// the first waiter pays no `dup`.
pub async fn ready(fd: BorrowedFd<'_>, readable: bool) -> io::Result<()> {
    let interest = if readable {
        Interest::READABLE
    } else {
        Interest::WRITABLE
    };
    in_runtime()?;
    // SAFETY: tokio requires the descriptor to stay open and refer to the
    // same file while registered. `fd` is a `BorrowedFd<'_>`, so it stays
    // open for the borrow, and the `AsyncFd` (which deregisters on drop)
    // lives only inside this function, within that borrow.
    match unsafe { AsyncFd::register_with_interest(fd, interest) } {
        Ok(afd) => {
            let _guard = afd.ready(interest).await?;
            Ok(())
        }
        Err(e) => {
            let (_, e) = e.into_parts();
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(e);
            }
            let reg = Registration::new(fd)?;
            std::future::poll_fn(|cx| reg.poll_ready(cx, readable)).await
        }
    }
}

/// An error, never a panic, outside a tokio runtime.
fn in_runtime() -> io::Result<()> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Ok(()),
        Err(_) => Err(io::Error::other(
            "an async wait on a descriptor needs a tokio runtime",
        )),
    }
}

/// A descriptor registered with tokio's reactor for as long as this lives,
/// for `poll_`-style code (a `Stream`, a `Sink`) that cannot keep a future
/// of [`ready`] across polls. It registers a duplicate of the descriptor,
/// which it owns, so the registration can never outlive the descriptor it
/// names; the duplicate shares the original's file description, whose
/// readiness is what the reactor reports.
#[derive(Debug)]
pub struct Registration {
    afd: AsyncFd<OwnedFd>,
}

impl Registration {
    /// Register (a duplicate of) `fd` for readability and writability with
    /// the current tokio runtime (an error outside one, never a panic).
    pub fn new(fd: BorrowedFd<'_>) -> io::Result<Registration> {
        in_runtime()?;
        let owned = crate::fd::dup(fd)?;
        // SAFETY: tokio requires the descriptor to stay open and refer to
        // the same file description while registered. The `AsyncFd` owns
        // `owned` (a fresh duplicate nobody else can close), keeps it until
        // it is dropped (deregistering first), and `OwnedFd::as_raw_fd`
        // always returns the same number.
        let afd = unsafe { AsyncFd::register(owned) }.map_err(io::Error::from)?;
        Ok(Registration { afd })
    }

    /// `Ready` when the descriptor may be readable (`readable`) or
    /// writable; the readiness is cleared as it is reported, so the caller
    /// tries its non-blocking operation next and polls again only after
    /// that said "would block" (a change after the clear sets it again:
    /// nothing is missed). `Pending` registers `cx`'s waker.
    pub fn poll_ready(&self, cx: &mut Context<'_>, readable: bool) -> Poll<io::Result<()>> {
        let mut guard = if readable {
            std::task::ready!(self.afd.poll_read_ready(cx))?
        } else {
            std::task::ready!(self.afd.poll_write_ready(cx))?
        };
        guard.clear_ready();
        Poll::Ready(Ok(()))
    }
}
