//! Processes: Python's `multiprocessing.Process` in Rust form.
//!
//! # Start methods
//!
//! - [`StartMethod::Spawn`] (the default) re-executes the current binary
//!   (`/proc/self/exe`, so the very same file even if it was replaced on
//!   disk). The child learns what to run from a bootstrap socket it inherits:
//!   the target `fn`, named by its offset from a function in this crate (the
//!   binary is the same, so the offset is too), and the argument, encoded with
//!   serde, whose handles travel as descriptors. [`init`] must be the first
//!   line of `main` (test binaries use [`enable_test_support!`](crate::enable_test_support)); a parent that
//!   never called it refuses to spawn rather than start a copy of itself that
//!   would run `main` again.
//! - [`StartMethod::Fork`] runs a closure in a `fork()`ed child. Forking a
//!   process with more than one thread can leave the child blocked forever on
//!   a lock another thread held, so [`Builder::fork`] refuses with
//!   [`ProcessError::ForkWithThreads`]; [`Builder::fork_unchecked`] is the
//!   `unsafe` way around.
//!
//! # Results, exit codes and panics
//!
//! The target's return value is sent back over the bootstrap socket and
//! handed out by [`Process::join`], like `std::thread::JoinHandle::join`.
//! `exitcode` follows Python: the exit status, or minus the signal number
//! that killed the child. A panic in the child prints its message on stderr
//! (the panic hook) and exits with code 1.
//!
//! # Daemons
//!
//! A daemon child ([`Builder::daemon`]) watches its parent through a pidfd
//! and dies with it, however the parent ends (even `kill -9`).
//!
//! # Dropping a running `Process`
//!
//! What dropping the handle of a child that is still running does is a
//! choice on the builder, [`Builder::on_drop`]:
//!
//! - [`OnDrop::Join`] (the default for a non-daemon): the drop **blocks**
//!   until the child exits, as Python waits for non-daemonic children at
//!   exit. A child that never ends makes the drop never return; join it,
//!   kill it, or choose `Kill` when that can happen.
//! - [`OnDrop::Kill`] (the default for a daemon): the drop sends `SIGKILL`
//!   and reaps the child, so it returns at once.
//!
//! Either way the child is reaped: no zombie is left behind.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::connection::codec::{self, DecodeError};
use crate::connection::{Connection, RecvError, SendError};
use crate::error::{TimeoutError, TryError, Waited};

#[cfg(feature = "tokio")]
mod aio;
mod bootstrap;

use bootstrap::{
    BOOTSTRAP_VERSION, CURRENT_NAME, INIT_CALLED, PANIC_TAG, PROCESS_COUNTER, RESULT_TAG,
    SPAWN_FLAG, SpawnRequest, check_anchor, flush_std, offset_of, record_panics, send_panic,
    send_result, watch_parent,
};
pub use bootstrap::{ChildPanic, current_process_name, init};
pub(crate) use bootstrap::{Target, panic_report};
/// CPU affinity of the calling thread (`sched_getaffinity`,
/// `sched_setaffinity`), as Python's `os.sched_getaffinity` and
/// `os.sched_setaffinity(0, …)`.
pub use multiproc_sys::process::{allowed_cpus, pin_to_cpu, set_cpus};

/// Kill this process (`SIGKILL`) as soon as the process `parent` exits,
/// however it exits, `SIGKILL` included: what a daemon child started by
/// [`Process`] does, for processes started some other way (Python's
/// `multiprocessing` pool workers). `parent` must be this process's parent
/// (`getppid()` at the call): if it already died and this process was
/// reparented, this process is killed at once. A watcher thread waits on a
/// pidfd of the parent; if the pidfd or the thread cannot be had, this
/// process is killed too, as it could not keep the promise.
pub fn exit_with_parent(parent: u32) {
    bootstrap::watch_parent(parent);
}

/// Kill this process (`SIGKILL`) as soon as the process `pid` exits, like
/// [`exit_with_parent`] for a process that is not this one's parent (a
/// pool's owner, when a fork server started its workers). `start_time` is
/// that process's, from [`start_time`], read by it or while it is known to
/// live: if `pid` now names a later process (the one meant died and its pid
/// was reused), or none, this process is killed at once.
pub fn exit_with(pid: u32, start_time: u64) {
    bootstrap::watch_process(pid, start_time);
}

/// When the process `pid` started (clock ticks since boot), to name it
/// unambiguously with [`exit_with`]; `None` if it does not exist or its
/// `/proc` entry cannot be read.
pub fn start_time(pid: u32) -> Option<u64> {
    multiproc_sys::process::start_time(pid)
}

/// How a child process is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartMethod {
    /// Re-execute the current binary and run a `fn` in it (safe with threads).
    #[default]
    Spawn,
    /// `fork()` and run a closure in the copy (single-threaded parents only).
    Fork,
}

/// Why a process operation failed. `try_join` adds "still running"
/// ([`TryError::WouldBlock`]), `join_timeout`/`join_deadline` "still
/// running after the time" ([`TimeoutError::Timeout`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The child ended without success: a non-zero exit status, or killed
    /// by a signal (`exitcode` is then minus the signal number).
    #[error("process failed with exitcode {exitcode}{}", panic.as_ref().map(|p| format!(": {p}")).unwrap_or_default())]
    Failed {
        /// Python's `exitcode`.
        exitcode: i32,
        /// The panic that ended the child's target, if it panicked: its
        /// message and where.
        panic: Option<ChildPanic>,
    },
    /// The child exited with 0 but sent no result (it called
    /// `std::process::exit` itself).
    #[error("process exited without sending its result")]
    NoResult,
    /// The result was already taken by an earlier `join`.
    #[error("process was already joined")]
    AlreadyJoined,
    /// `start` was called twice.
    #[error("process was already started")]
    AlreadyStarted,
    /// The process has not been started.
    #[error("process was not started")]
    NotStarted,
    /// [`init`] was never called in this program, so a spawned copy of it
    /// would run `main` instead of the target.
    #[error("multiproc::init() must be the first line of main before spawning processes")]
    InitNotCalled,
    /// Fork was refused because the parent has more than one thread.
    #[error(
        "refusing to fork a process with {threads} threads (the child could deadlock); use spawn"
    )]
    ForkWithThreads {
        /// Threads in the parent.
        threads: usize,
    },
    /// The argument could not be sent to the child.
    #[error("cannot send the argument to the child: {0}")]
    Send(#[from] SendError),
    /// The child's result could not be decoded.
    #[error("cannot decode the child's result: {0}")]
    Decode(#[from] DecodeError),
    /// A signal could not be sent (see [`crate::os::signal`]).
    #[error(transparent)]
    Signal(#[from] crate::os::signal::SignalError),
    /// The OS reported an error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A child process (Python's `multiprocessing.Process`); `R` is the type of
/// its target's return value.
///
/// ```no_run
/// use multiproc::Process;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() {
///     multiproc::init();
///     let mut p = Process::spawn(square, 7).unwrap();
///     assert_eq!(p.join().unwrap(), 49);
///     assert_eq!(p.exitcode(), Some(0));
/// }
/// ```
pub struct Process<R = ()> {
    name: String,
    daemon: bool,
    on_drop: OnDrop,
    state: State,
    exitcode: Option<i32>,
    result: Option<Result<R, DecodeError>>,
    /// The child's panic report, if it sent one.
    panic: Option<ChildPanic>,
    taken: bool,
    _marker: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("pid", &self.pid())
            .field("daemon", &self.daemon)
            .field("on_drop", &self.on_drop)
            .field("exitcode", &self.exitcode)
            .finish_non_exhaustive()
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Process<R> {
    /// A process that will run `target(arg)` when started (Python's
    /// `Process(target=..., args=...)`).
    pub fn new<A>(target: fn(A) -> R, arg: A) -> Process<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
    {
        Builder::new().build(target, arg)
    }

    /// Spawn a child that runs `target(arg)`: `Process::new` + `start`.
    pub fn spawn<A>(target: fn(A) -> R, arg: A) -> Result<Process<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
    {
        Builder::new().spawn(target, arg)
    }

    /// Fork a child that runs `f` (see [`Builder::fork`]).
    pub fn fork<F: FnOnce() -> R>(f: F) -> Result<Process<R>, ProcessError> {
        Builder::new().fork(f)
    }
}

impl<R> Process<R> {
    /// The process's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the child dies with its parent.
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// The child's pid, once started.
    pub fn pid(&self) -> Option<u32> {
        match &self.state {
            State::Running(r) => Some(r.pid),
            _ => None,
        }
    }

    /// A descriptor that becomes readable when the child exits (a pidfd;
    /// Python's `sentinel`), for waiting on many processes at once.
    pub fn sentinel(&self) -> Option<BorrowedFd<'_>> {
        match &self.state {
            State::Running(r) => Some(r.pidfd.as_fd()),
            _ => None,
        }
    }
}

impl<R: DeserializeOwned> Process<R> {
    fn new_unstarted(name: String, daemon: bool, on_drop: OnDrop, launch: Launch) -> Self {
        Process {
            name,
            daemon,
            on_drop,
            state: State::Created(launch),
            exitcode: None,
            result: None,
            panic: None,
            taken: false,
            _marker: PhantomData,
        }
    }

    /// Start the child. The argument's handles are sent to it, and dropped
    /// here afterwards.
    pub fn start(&mut self) -> Result<(), ProcessError> {
        match std::mem::replace(&mut self.state, State::Starting) {
            State::Created(launch) => match launch(&self.name) {
                Ok(r) => {
                    self.state = State::Running(r);
                    Ok(())
                }
                Err(e) => {
                    // The argument went down with the launcher; the process
                    // cannot be started again.
                    self.state = State::Starting;
                    Err(e)
                }
            },
            other => {
                let started = !matches!(other, State::Starting);
                self.state = other;
                Err(if started {
                    ProcessError::AlreadyStarted
                } else {
                    ProcessError::NotStarted
                })
            }
        }
    }

    fn running(&mut self) -> Result<&mut Running, ProcessError> {
        match &mut self.state {
            State::Running(r) => Ok(r),
            _ => Err(ProcessError::NotStarted),
        }
    }

    /// Read the result if it has arrived; `block_until` bounds the wait for
    /// the child's exit. Returns the exit code once the child is reaped.
    fn wait_until(&mut self, deadline: Option<Instant>) -> Result<Option<i32>, ProcessError> {
        if let Some(code) = self.exitcode {
            return Ok(Some(code));
        }
        loop {
            let r = self.running()?;
            let ready = match &r.chan {
                Some(chan) => multiproc_sys::poll::wait_any_readable(
                    &[r.pidfd.as_fd(), chan.as_fd()],
                    deadline,
                )?,
                None => multiproc_sys::poll::wait_any_readable(&[r.pidfd.as_fd()], deadline)?,
            };
            if ready.get(1).copied().unwrap_or(false) {
                self.read_result(false);
            }
            if ready[0] {
                let r = self.running()?;
                if let Some(code) = multiproc_sys::process::reap(&r.pidfd, false)? {
                    // Everything the child wrote is in the socket now.
                    self.read_result(true);
                    self.exitcode = Some(code);
                    return Ok(Some(code));
                }
            }
            if !ready.iter().any(|&b| b) {
                return Ok(None); // deadline passed
            }
        }
    }

    /// Take in whatever of the result has arrived, without blocking.
    fn read_result(&mut self, exited: bool) {
        let State::Running(r) = &mut self.state else {
            return;
        };
        let Some(chan) = &mut r.chan else {
            return;
        };
        let decode = |bytes: &[u8], fds| match bytes.split_first() {
            Some((&RESULT_TAG, rest)) => codec::decode::<R>(rest, fds).map(Ok),
            Some((&PANIC_TAG, rest)) => Ok(Err(postcard::from_bytes::<ChildPanic>(rest)?)),
            Some(_) => Err(DecodeError::Serde(postcard::Error::DeserializeBadEnum)),
            None => Err(DecodeError::Empty),
        };
        match chan.recv_with_public(Some(Instant::now()), decode) {
            Ok(Ok(v)) => {
                self.result = Some(Ok(v));
                r.chan = None;
            }
            Ok(Err(p)) => {
                self.panic = Some(p);
                r.chan = None;
            }
            Err(Waited::Failed(RecvError::Decode(e))) => {
                self.result = Some(Err(e));
                r.chan = None;
            }
            Err(Waited::GaveUp) if !exited => {}
            // End of file, a torn frame from a killed child, or an error:
            // there is no result.
            Err(_) => r.chan = None,
        }
    }

    /// Wait for the child to exit and return its exit code (Python's
    /// `join()` followed by `exitcode`). Can be called any number of times.
    pub fn wait(&mut self) -> Result<i32, ProcessError> {
        Ok(self.wait_until(None)?.expect("no deadline"))
    }

    /// Wait at most `timeout` for the child to exit; `None` if it is still
    /// running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<i32>, ProcessError> {
        self.wait_until(crate::deadline::after(timeout))
    }

    /// Wait until `deadline` for the child to exit; `None` if it is still
    /// running.
    pub fn wait_deadline(&mut self, deadline: Instant) -> Result<Option<i32>, ProcessError> {
        self.wait_until(Some(deadline))
    }

    /// The child's exit code if it has exited, without waiting (`None`
    /// while it runs).
    pub fn try_wait(&mut self) -> Result<Option<i32>, ProcessError> {
        self.wait_until(Some(Instant::now()))
    }

    fn take_result(&mut self, code: i32) -> Result<R, ProcessError> {
        if code != 0 {
            return Err(ProcessError::Failed {
                exitcode: code,
                panic: self.panic.clone(),
            });
        }
        if self.taken {
            return Err(ProcessError::AlreadyJoined);
        }
        match self.result.take() {
            Some(r) => {
                self.taken = true;
                Ok(r?)
            }
            // No result message: only a unit-like `R` can be made from
            // nothing (a child that called exit(0) itself).
            None => codec::decode::<R>(&[], Vec::new()).map_err(|_| ProcessError::NoResult),
        }
    }

    /// Wait for the child and return its target's result (Python's `join`,
    /// with the return value of `std::thread::JoinHandle::join`).
    ///
    /// A child that did not exit with 0 gives [`ProcessError::Failed`] with
    /// its `exitcode`.
    pub fn join(&mut self) -> Result<R, ProcessError> {
        let code = self.wait()?;
        self.take_result(code)
    }

    /// [`join`](Self::join), waiting at most `timeout`
    /// ([`TimeoutError::Timeout`] if the child is still running).
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<R, TimeoutError<ProcessError>> {
        self.join_until(crate::deadline::after(timeout))
            .map_err(Waited::into_timeout)
    }

    /// [`join`](Self::join), waiting until `deadline`
    /// ([`TimeoutError::Timeout`] if the child is still running).
    pub fn join_deadline(&mut self, deadline: Instant) -> Result<R, TimeoutError<ProcessError>> {
        self.join_until(Some(deadline))
            .map_err(Waited::into_timeout)
    }

    /// [`join`](Self::join) if the child has exited, without waiting
    /// ([`TryError::WouldBlock`] while it runs).
    pub fn try_join(&mut self) -> Result<R, TryError<ProcessError>> {
        self.join_until(Some(Instant::now()))
            .map_err(Waited::into_try)
    }

    fn join_until(&mut self, deadline: Option<Instant>) -> Result<R, Waited<ProcessError>> {
        match self.wait_until(deadline)? {
            Some(code) => Ok(self.take_result(code)?),
            None => Err(Waited::GaveUp),
        }
    }

    /// Whether the child has been started and has not exited.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.state, State::Running(_))
            && matches!(self.wait_until(Some(Instant::now())), Ok(None))
    }

    /// The exit code if the child has exited: its status, or minus the
    /// signal that killed it (Python's `exitcode`). Does not block.
    pub fn exitcode(&mut self) -> Option<i32> {
        if self.exitcode.is_none() && matches!(self.state, State::Running(_)) {
            let _ = self.wait_until(Some(Instant::now()));
        }
        self.exitcode
    }

    fn signal(&mut self, signal: i32) -> Result<(), ProcessError> {
        if self.exitcode.is_some() {
            return Ok(());
        }
        let r = self.running()?;
        crate::os::signal::send_pidfd(r.pidfd.as_fd(), signal)?;
        Ok(())
    }

    /// Send `SIGTERM` (Python's `terminate()`). A child that watches
    /// `SIGTERM` with [`crate::os::signal::Signals`] or [`crate::os::signal::flag`]
    /// can clean up and exit 0; one that does not is killed
    /// (`exitcode == -15`).
    pub fn terminate(&mut self) -> Result<(), ProcessError> {
        self.signal(crate::os::signal::SIGTERM)
    }

    /// Send `SIGKILL` (Python's `kill()`).
    pub fn kill(&mut self) -> Result<(), ProcessError> {
        self.signal(crate::os::signal::SIGKILL)
    }

    /// Send any signal to the child (through its pidfd: never to a process
    /// that reused its pid). Signals sent after the child was reaped are
    /// ignored; an unknown number is [`crate::os::signal::SignalError::Invalid`]
    /// (inside [`ProcessError::Signal`]). Sent by [`crate::os::signal`], as
    /// [`crate::os::signal::send`], which signals by pid.
    pub fn send_signal(&mut self, signal: i32) -> Result<(), ProcessError> {
        self.signal(signal)
    }
}

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        let State::Running(r) = &mut self.state else {
            return;
        };
        if self.exitcode.is_some() {
            return;
        }
        if self.on_drop == OnDrop::Kill {
            let _ = crate::os::signal::send_pidfd(r.pidfd.as_fd(), crate::os::signal::SIGKILL);
        }
        // Wait for the child, draining its result channel so a child that is
        // writing a large result cannot block forever.
        loop {
            let ready = match &r.chan {
                Some(chan) => {
                    multiproc_sys::poll::wait_any_readable(&[r.pidfd.as_fd(), chan.as_fd()], None)
                }
                None => multiproc_sys::poll::wait_any_readable(&[r.pidfd.as_fd()], None),
            };
            let Ok(ready) = ready else { return };
            if ready.get(1).copied().unwrap_or(false) {
                if let Some(chan) = &mut r.chan {
                    if let Err(Waited::GaveUp) = chan.recv_raw(Some(Instant::now())) {
                    } else {
                        r.chan = None;
                    }
                }
            }
            if ready[0] {
                let _ = multiproc_sys::process::reap(&r.pidfd, true);
                return;
            }
        }
    }
}

// ----- the builder -------------------------------------------------------------

/// What dropping the handle of a running child does (see
/// [`Builder::on_drop`] and the [module docs](self#dropping-a-running-process)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnDrop {
    /// Wait for the child to exit (blocks for as long as the child runs).
    Join,
    /// Kill the child (`SIGKILL`) and reap it; returns at once.
    Kill,
}

/// Builds a [`Process`] with a name, daemon flag, start method and drop
/// policy.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    name: Option<String>,
    daemon: bool,
    on_drop: Option<OnDrop>,
}

impl Builder {
    /// A builder with the defaults: generated name, not a daemon.
    pub fn new() -> Self {
        Self::default()
    }

    /// The child's name (default `Process-N`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Whether the child dies with its parent (default `false`).
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// What dropping the handle of the running child does: wait for it
    /// ([`OnDrop::Join`], the default for a non-daemon, which blocks) or
    /// kill it ([`OnDrop::Kill`], the default for a daemon).
    pub fn on_drop(mut self, on_drop: OnDrop) -> Self {
        self.on_drop = Some(on_drop);
        self
    }

    fn drop_policy(&self) -> OnDrop {
        self.on_drop.unwrap_or(if self.daemon {
            OnDrop::Kill
        } else {
            OnDrop::Join
        })
    }

    fn take_name(&mut self) -> String {
        self.name.take().unwrap_or_else(|| {
            format!(
                "Process-{}",
                PROCESS_COUNTER.fetch_add(1, Ordering::Relaxed) + 1
            )
        })
    }

    /// A spawn-method process that runs `target(arg)`, not started yet.
    pub fn build<A, R>(mut self, target: fn(A) -> R, arg: A) -> Process<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let name = self.take_name();
        let daemon = self.daemon;
        let on_drop = self.drop_policy();
        let launch: Launch =
            Box::new(move |name: &str| spawn_child(Target::of(target), &arg, name, daemon));
        Process::new_unstarted(name, daemon, on_drop, launch)
    }

    /// Spawn a child that runs `target(arg)` (start method Spawn).
    pub fn spawn<A, R>(self, target: fn(A) -> R, arg: A) -> Result<Process<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let mut p = self.build(target, arg);
        p.start()?;
        Ok(p)
    }

    /// Fork a child that runs `f` (start method Fork). Refused with
    /// [`ProcessError::ForkWithThreads`] when this process has more than one
    /// thread.
    pub fn fork<F, R>(self, f: F) -> Result<Process<R>, ProcessError>
    where
        F: FnOnce() -> R,
        R: Serialize + DeserializeOwned,
    {
        self.fork_by(f, || {
            multiproc_sys::process::fork_single_threaded().map_err(|e| match e {
                multiproc_sys::process::ForkError::Threads(threads) => {
                    ProcessError::ForkWithThreads { threads }
                }
                multiproc_sys::process::ForkError::Io(e) => e.into(),
            })
        })
    }

    /// Fork a child that runs `f`, whatever the number of threads.
    ///
    /// # Safety
    ///
    /// If other threads exist, the child must not need any lock they might
    /// hold at the moment of the fork (allocator locks excepted on glibc,
    /// which resets them): stdout, loggers, and any `Mutex` in `f`'s reach.
    pub unsafe fn fork_unchecked<F, R>(self, f: F) -> Result<Process<R>, ProcessError>
    where
        F: FnOnce() -> R,
        R: Serialize + DeserializeOwned,
    {
        // SAFETY: the caller upholds the threading contract; the child only
        // runs `f` and then `_exit`s without returning into the caller.
        self.fork_by(f, || Ok(unsafe { multiproc_sys::process::fork() }?))
    }

    /// Fork with `fork` and run `f` in the child; the parent gets the
    /// process. The name is taken after the fork, in both processes alike
    /// (the child's counter is a copy of the parent's), so a refused fork
    /// uses no number.
    fn fork_by<F, R>(
        mut self,
        f: F,
        fork: impl FnOnce() -> Result<multiproc_sys::process::Forked, ProcessError>,
    ) -> Result<Process<R>, ProcessError>
    where
        F: FnOnce() -> R,
        R: Serialize + DeserializeOwned,
    {
        let parent = multiproc_sys::process::pid();
        let (ours, theirs) = multiproc_sys::fd::socketpair()?;
        flush_std();
        let forked = fork()?;
        let name = self.take_name();
        match forked {
            multiproc_sys::process::Forked::Child => {
                drop(ours);
                let _ = CURRENT_NAME.set(name);
                if self.daemon {
                    watch_parent(parent);
                }
                record_panics();
                let code = match Connection::<()>::from_fd(theirs, true, true) {
                    Ok(mut chan) => match panic::catch_unwind(AssertUnwindSafe(f)) {
                        Ok(r) => match send_result(&mut chan, &r) {
                            Ok(()) => 0,
                            Err(msg) => {
                                eprintln!("multiproc: {msg}");
                                1
                            }
                        },
                        Err(payload) => {
                            send_panic(&mut chan, &*payload);
                            1
                        }
                    },
                    Err(_) => 70,
                };
                flush_std();
                multiproc_sys::process::exit_now(code)
            }
            multiproc_sys::process::Forked::Parent(pid) => {
                drop(theirs);
                let pidfd = multiproc_sys::process::pidfd_open(pid)?;
                let chan = Connection::from_fd(ours, true, true)?;
                Ok(Process {
                    name,
                    daemon: self.daemon,
                    on_drop: self.drop_policy(),
                    state: State::Running(Running {
                        pid,
                        pidfd,
                        chan: Some(chan),
                    }),
                    exitcode: None,
                    result: None,
                    panic: None,
                    taken: false,
                    _marker: PhantomData,
                })
            }
        }
    }
}

type Launch = Box<dyn FnOnce(&str) -> Result<Running, ProcessError> + Send>;

fn spawn_child<A: Serialize>(
    target: Target,
    arg: &A,
    name: &str,
    daemon: bool,
) -> Result<Running, ProcessError> {
    if !INIT_CALLED.load(Ordering::Relaxed) {
        return Err(ProcessError::InitNotCalled);
    }
    let mut arg_bytes = Vec::new();
    let fds = codec::encode(arg, &mut arg_bytes).map_err(SendError::from)?;
    let req = SpawnRequest {
        version: BOOTSTRAP_VERSION,
        check: offset_of(check_anchor as fn() as usize),
        trampoline: target.trampoline,
        target: target.target,
        name: name.to_owned(),
        daemon,
        parent: multiproc_sys::process::pid(),
        arg: arg_bytes,
    };
    let req =
        postcard::to_allocvec(&req).map_err(|e| SendError::from(codec::EncodeError::from(e)))?;
    let (ours, theirs) = multiproc_sys::fd::socketpair()?;
    let child_fd = theirs.as_raw_fd();
    let mut cmd = std::process::Command::new("/proc/self/exe");
    if let Some(arg0) = std::env::args_os().next() {
        cmd.arg0(arg0);
    }
    cmd.arg(SPAWN_FLAG).arg(child_fd.to_string());
    // `child_fd` is open in the child: it was inherited from the parent,
    // where `theirs` keeps it open across the spawn.
    multiproc_sys::fd::inherit_on_exec(&mut cmd, child_fd);
    let child = cmd.spawn()?;
    drop(theirs);
    let pid = child.id();
    // std's Child does not wait on drop; the pidfd takes over from here. The
    // child cannot be reaped before we open it (only we wait on it).
    drop(child);
    let pidfd = multiproc_sys::process::pidfd_open(pid)?;
    let mut chan = Connection::<()>::from_fd(ours, true, true)?;
    chan.send_raw(&req, &fds)?;
    Ok(Running {
        pid,
        pidfd,
        chan: Some(chan),
    })
}

struct Running {
    pid: u32,
    pidfd: OwnedFd,
    /// The bootstrap socket; the child's result arrives here. `None` once the
    /// result (or end of file) was read.
    chan: Option<Connection<()>>,
}

enum State {
    Created(Launch),
    Running(Running),
    Starting,
}
