//! Signals: sending them, and turning received ones into bytes on a pipe
//! (the self-pipe technique, on `signal-hook`'s handler registry).
//!
//! No policy: [`SignalPipe`] reports raw signal numbers; the `multiproc`
//! crate decides what to offer on top.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::Errno;
use signal_hook::SigId;

pub use signal_hook::consts::signal::{
    SIGABRT, SIGALRM, SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGPIPE, SIGQUIT, SIGSTOP,
    SIGTERM, SIGTSTP, SIGUSR1, SIGUSR2, SIGWINCH,
};

/// Signals whose handlers `signal-hook` refuses to register: `SIGKILL` and
/// `SIGSTOP` (the kernel never lets them be caught) and `SIGILL`, `SIGFPE`,
/// `SIGSEGV` (a handler that returns would re-run the faulting instruction).
pub const FORBIDDEN: &[i32] = signal_hook::consts::FORBIDDEN;

/// The name of a signal (`"SIGTERM"`), if this platform knows it.
pub fn name(signal: i32) -> Option<&'static str> {
    signal_hook::low_level::signal_name(signal)
}

/// `kill(pid, signal)`; `signal == 0` only checks that the process exists.
/// `ESRCH` (no such process) is reported as `Ok(false)`.
pub fn kill(pid: u32, signal: i32) -> io::Result<bool> {
    if signal == 0 {
        let pid = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid pid"))?;
        return match rustix::process::test_kill_process(pid) {
            Ok(()) => Ok(true),
            Err(Errno::SRCH) => Ok(false),
            Err(e) => Err(e.into()),
        };
    }
    crate::process::kill(pid, signal)
}

/// Handlers for some signals that each write the signal's number (one byte)
/// to a pipe and, optionally, set a flag. Dropping it unregisters the
/// handlers (the signals' disposition is *not* restored to the default: a
/// signal that arrives afterwards is ignored, as `signal-hook` documents).
#[derive(Debug)]
pub struct SignalPipe {
    ids: Vec<SigId>,
    read: OwnedFd,
    // Written by the handlers; closed only after they are unregistered.
    write: OwnedFd,
}

impl SignalPipe {
    /// Register a handler for each of `signals`. Each arrival writes the
    /// signal number as one byte to the pipe (non-blocking: when the pipe is
    /// full, the arrival is still reflected in `flag` and in the bytes
    /// already there) and stores `true` in `flag` if given.
    ///
    /// Fails with `InvalidInput` for a number in [`FORBIDDEN`] or one the
    /// platform does not know; nothing is registered then.
    pub fn register(signals: &[i32], flag: Option<Arc<AtomicBool>>) -> io::Result<SignalPipe> {
        for &s in signals {
            if FORBIDDEN.contains(&s) || !(1..=255).contains(&s) || name(s).is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("signal {s} cannot be handled"),
                ));
            }
        }
        let (read, write) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )?;
        let mut pipe = SignalPipe {
            ids: Vec::with_capacity(signals.len()),
            read,
            write,
        };
        let raw = pipe.write.as_raw_fd();
        for &s in signals {
            let byte = [u8::try_from(s).unwrap_or(0)];
            let flag = flag.clone();
            let action = move || {
                if let Some(f) = &flag {
                    f.store(true, Ordering::SeqCst);
                }
                // SAFETY: `raw` is the write end owned by the `SignalPipe`,
                // which unregisters this action (and signal-hook waits for
                // running handlers) before the descriptor is closed.
                let fd = unsafe { BorrowedFd::borrow_raw(raw) };
                let _ = rustix::io::write(fd, &byte);
            };
            // SAFETY: the action is async-signal-safe: an atomic store and
            // one `write(2)` on a non-blocking pipe; it neither allocates nor
            // takes locks, and signal-hook saves and restores errno.
            let id = unsafe { signal_hook::low_level::register(s, action) }?;
            pipe.ids.push(id);
        }
        Ok(pipe)
    }

    /// Take every signal number waiting in the pipe, in arrival order,
    /// without blocking (empty when none).
    pub fn drain(&self) -> io::Result<Vec<i32>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match rustix::io::read(&self.read, &mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => {
                    out.extend(buf[..n].iter().map(|&b| i32::from(b)));
                    if n < buf.len() {
                        return Ok(out);
                    }
                }
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Ok(out),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsFd for SignalPipe {
    /// The read end: readable when a signal number is waiting.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
        // `write` and `read` close after this body, with no handler left
        // that could write to a reused descriptor number.
    }
}
