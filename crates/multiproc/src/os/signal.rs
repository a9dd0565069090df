//! Signals: sending them to processes, and receiving them as values a
//! program waits on, with no signal handler in user code.
//!
//! - [`send`] signals a process by pid; [`crate::Process::terminate`],
//!   [`crate::Process::kill`] and [`crate::Process::send_signal`] go through
//!   the same code with the child's pidfd (never a process that reused the
//!   pid).
//! - [`Signals`] turns the signals it registers into a queue of numbers:
//!   [`Signals::wait`], [`Signals::try_wait`], [`Signals::wait_timeout`],
//!   [`Signals::pending`] and [`Signals::forever`]. Its descriptor
//!   ([`AsFd`]) becomes readable when a signal is waiting, for use with
//!   `poll` next to other descriptors.
//! - [`flag`] / [`SignalFlag`] is the `Event`-like form: `is_set`, `wait`,
//!   `wait_timeout`, `clear`.
//!
//! ```no_run
//! use multiproc::os::signal::{self, Signals, SIGTERM, SIGUSR1};
//!
//! let mut signals = Signals::new(&[SIGTERM, SIGUSR1]).unwrap();
//! for sig in signals.forever() {
//!     println!("got {}", signal::name(sig).unwrap_or("?"));
//!     if sig == SIGTERM {
//!         break; // clean up and exit 0
//!     }
//! }
//! ```
//!
//! Handlers are installed through `signal-hook` (with `SA_RESTART`); each
//! writes one byte to a pipe, which is all a handler may safely do. Several
//! [`Signals`] and flags may watch the same signal: each gets every arrival.
//! The kernel merges arrivals of one signal that are pending at once, so a
//! burst may be reported once.
//!
//! # Signals that cannot be handled
//!
//! `SIGKILL` and `SIGSTOP` cannot be caught by any process
//! ([`SignalError::Uncatchable`]); `SIGILL`, `SIGFPE` and `SIGSEGV` are
//! refused too ([`SignalError::Forbidden`], `signal-hook`'s `FORBIDDEN`):
//! a handler that returns would run the faulting instruction again.
//!
//! Dropping a [`Signals`] or [`SignalFlag`] removes its handlers, but the
//! signal's default action is not restored: a `SIGTERM` that arrives later
//! is ignored rather than ending the process.
//!
//! # Interrupted calls
//!
//! Every blocking multiproc call retries after a signal handler ran
//! (`EINTR`) with the time that is left, so a handled signal neither loses a
//! message nor ends a wait early.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use multiproc_sys::signal::SignalPipe;

pub use multiproc_sys::signal::{
    FORBIDDEN, SIGABRT, SIGALRM, SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGPIPE, SIGQUIT,
    SIGSTOP, SIGTERM, SIGTSTP, SIGUSR1, SIGUSR2, SIGWINCH,
};

/// Why a signal operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// `SIGKILL` or `SIGSTOP`: no process can catch them.
    #[error("signal {0} cannot be caught")]
    Uncatchable(i32),
    /// `SIGILL`, `SIGFPE` or `SIGSEGV`: refused (see [`FORBIDDEN`]).
    #[error("signal {0} may not be handled")]
    Forbidden(i32),
    /// Not a signal number this platform knows.
    #[error("invalid signal number {0}")]
    Invalid(i32),
    /// No process has this pid (or it has exited and been reaped).
    #[error("no process with pid {0}")]
    NoSuchProcess(u32),
    /// The OS reported an error (for example `EPERM`).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The name of a signal (`"SIGTERM"`), if this platform knows it.
pub fn name(signal: i32) -> Option<&'static str> {
    multiproc_sys::signal::name(signal)
}

fn check_known(signal: i32) -> Result<(), SignalError> {
    if signal != 0 && name(signal).is_none() {
        return Err(SignalError::Invalid(signal));
    }
    Ok(())
}

/// Send `signal` to the process `pid` (`kill(2)`); `signal == 0` only
/// checks that the process exists.
///
/// Prefer [`crate::Process::send_signal`] for children: it signals through a
/// pidfd, which never reaches a later process that reused the pid.
pub fn send(pid: u32, signal: i32) -> Result<(), SignalError> {
    check_known(signal)?;
    if multiproc_sys::signal::kill(pid, signal)? {
        Ok(())
    } else {
        Err(SignalError::NoSuchProcess(pid))
    }
}

/// Send `signal` through a pidfd; `Ok(false)` when the process has already
/// exited. The one path [`crate::Process`] signals its children by.
pub(crate) fn send_pidfd(pidfd: BorrowedFd<'_>, signal: i32) -> Result<bool, SignalError> {
    check_known(signal)?;
    Ok(multiproc_sys::process::pidfd_signal(pidfd, signal)?)
}

fn check_catchable(signals: &[i32]) -> Result<(), SignalError> {
    for &s in signals {
        if s == SIGKILL || s == SIGSTOP {
            return Err(SignalError::Uncatchable(s));
        }
        if FORBIDDEN.contains(&s) {
            return Err(SignalError::Forbidden(s));
        }
        if s <= 0 || name(s).is_none() {
            return Err(SignalError::Invalid(s));
        }
    }
    Ok(())
}

/// Received signals as a queue of signal numbers.
///
/// Created with the signals to watch; from then on each arrival is queued
/// instead of running the default action (a watched `SIGTERM` no longer
/// ends the process).
#[derive(Debug)]
pub struct Signals {
    pipe: SignalPipe,
    pending: VecDeque<i32>,
}

impl Signals {
    /// Watch `signals`. Errors: [`SignalError::Uncatchable`],
    /// [`SignalError::Forbidden`], [`SignalError::Invalid`]; nothing is
    /// registered then.
    pub fn new(signals: &[i32]) -> Result<Signals, SignalError> {
        check_catchable(signals)?;
        Ok(Signals {
            pipe: SignalPipe::register(signals, None)?,
            pending: VecDeque::new(),
        })
    }

    fn wait_until(&mut self, deadline: Option<Instant>) -> Result<Option<i32>, SignalError> {
        loop {
            if let Some(s) = self.pending.pop_front() {
                return Ok(Some(s));
            }
            self.pending.extend(self.pipe.drain()?);
            if let Some(s) = self.pending.pop_front() {
                return Ok(Some(s));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            let ready = multiproc_sys::poll::wait_readable(self.pipe.as_fd(), deadline)?;
            if !ready.readable && deadline.is_some() {
                return Ok(None);
            }
        }
    }

    /// The next received signal, waiting as long as it takes.
    pub fn wait(&mut self) -> Result<i32, SignalError> {
        loop {
            if let Some(s) = self.wait_until(None)? {
                return Ok(s);
            }
        }
    }

    /// The next received signal if one is waiting.
    pub fn try_wait(&mut self) -> Result<Option<i32>, SignalError> {
        self.wait_until(Some(Instant::now()))
    }

    /// The next received signal, waiting at most `timeout`; `None` when
    /// none came.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<i32>, SignalError> {
        self.wait_until(crate::deadline::after(timeout))
    }

    /// The next received signal, waiting until `deadline`; `None` when none
    /// came.
    pub fn wait_deadline(&mut self, deadline: Instant) -> Result<Option<i32>, SignalError> {
        self.wait_until(Some(deadline))
    }

    /// Every signal received so far, without waiting.
    pub fn pending(&mut self) -> impl Iterator<Item = i32> + '_ {
        std::iter::from_fn(move || self.try_wait().ok().flatten())
    }

    /// Every signal as it arrives; ends only if waiting fails.
    pub fn forever(&mut self) -> impl Iterator<Item = i32> + '_ {
        std::iter::from_fn(move || self.wait().ok())
    }
}

impl AsFd for Signals {
    /// Readable when a signal is waiting (a pipe's read end).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }
}

/// A flag set when one of its signals arrives, like an [`crate::Event`]
/// local to this process.
#[derive(Debug)]
pub struct SignalFlag {
    flag: Arc<AtomicBool>,
    pipe: SignalPipe,
}

/// A [`SignalFlag`] for one signal.
pub fn flag(signal: i32) -> Result<SignalFlag, SignalError> {
    SignalFlag::new(&[signal])
}

impl SignalFlag {
    /// A flag set by any of `signals` (errors as [`Signals::new`]).
    pub fn new(signals: &[i32]) -> Result<SignalFlag, SignalError> {
        check_catchable(signals)?;
        let flag = Arc::new(AtomicBool::new(false));
        Ok(SignalFlag {
            pipe: SignalPipe::register(signals, Some(flag.clone()))?,
            flag,
        })
    }

    /// Whether one of the signals arrived since creation or the last
    /// [`SignalFlag::clear`].
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Unset the flag.
    pub fn clear(&self) {
        let _ = self.pipe.drain();
        self.flag.store(false, Ordering::SeqCst);
    }

    /// The shared flag itself, for code that only polls an `AtomicBool`.
    pub fn as_atomic(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<bool, SignalError> {
        loop {
            if self.is_set() {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            let ready = multiproc_sys::poll::wait_readable(self.pipe.as_fd(), deadline)?;
            // Drain after looking at the flag: the handler sets the flag
            // before it writes, so a byte seen here means the flag is set.
            let _ = self.pipe.drain()?;
            if !ready.readable && deadline.is_some() {
                return Ok(self.is_set());
            }
        }
    }

    /// Wait until the flag is set.
    pub fn wait(&self) -> Result<(), SignalError> {
        while !self.wait_until(None)? {}
        Ok(())
    }

    /// Wait at most `timeout` for the flag; whether it is set.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, SignalError> {
        self.wait_until(crate::deadline::after(timeout))
    }

    /// Wait until `deadline` for the flag; whether it is set.
    pub fn wait_deadline(&self, deadline: Instant) -> Result<bool, SignalError> {
        self.wait_until(Some(deadline))
    }

    /// Whether the flag is set, without waiting (the `try` form of
    /// [`wait`](Self::wait)).
    pub fn try_wait(&self) -> bool {
        self.is_set()
    }
}

impl AsFd for SignalFlag {
    /// Readable after a signal arrived (until the next wait or clear).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }
}

// ----- async (the `tokio` feature) ------------------------------------------------

#[cfg(feature = "tokio")]
impl Signals {
    /// [`wait`](Self::wait), awaiting the next signal instead of blocking
    /// the thread (needs a tokio runtime). Cancel safe: a dropped future
    /// took no signal (numbers read meanwhile stay queued here).
    pub async fn recv_async(&mut self) -> Result<i32, SignalError> {
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(s);
            }
            multiproc_sys::ready::ready(self.pipe.as_fd(), true).await?;
        }
    }

    /// These signals as a `Stream` of signal numbers, as they arrive (needs
    /// a tokio runtime: the pipe is registered with its reactor). It ends
    /// only if reading the pipe fails (the error is its last item).
    pub fn into_stream(self) -> Result<SignalStream, SignalError> {
        let reg = multiproc_sys::ready::Registration::new(self.pipe.as_fd())?;
        Ok(SignalStream {
            signals: self,
            reg,
            failed: false,
        })
    }
}

/// [`Signals::into_stream`]: received signal numbers as a `Stream`.
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct SignalStream {
    signals: Signals,
    reg: multiproc_sys::ready::Registration,
    failed: bool,
}

#[cfg(feature = "tokio")]
impl futures_core::Stream for SignalStream {
    type Item = Result<i32, SignalError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        loop {
            let err = match this.signals.try_wait() {
                Ok(Some(s)) => return Poll::Ready(Some(Ok(s))),
                Ok(None) => match std::task::ready!(this.reg.poll_ready(cx, true)) {
                    Ok(()) => continue,
                    Err(e) => SignalError::Io(e),
                },
                Err(e) => e,
            };
            this.failed = true;
            return Poll::Ready(Some(Err(err)));
        }
    }
}

#[cfg(feature = "tokio")]
impl SignalFlag {
    /// [`wait`](Self::wait), awaiting the flag instead of blocking the
    /// thread (needs a tokio runtime).
    pub async fn wait_async(&self) -> Result<(), SignalError> {
        loop {
            if self.is_set() {
                return Ok(());
            }
            multiproc_sys::ready::ready(self.pipe.as_fd(), true).await?;
            // As in `wait_until`: the handler sets the flag before it
            // writes, so after draining, a byte seen means the flag is set.
            let _ = self.pipe.drain()?;
        }
    }
}
