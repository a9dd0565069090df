//! [`Builder`]: a [`Process`] with a name, daemon flag and start method.

use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::connection::codec::{self};
use crate::connection::{Connection, SendError};

use super::bootstrap::{
    BOOTSTRAP_VERSION, CURRENT_NAME, INIT_CALLED, PROCESS_COUNTER, SPAWN_FLAG, SpawnRequest,
    Trampoline, check_anchor, flush_std, offset_of, record_panics, send_panic, send_result,
    trampoline, watch_parent,
};
use super::{Process, ProcessError};

/// Builds a [`Process`] with a name, daemon flag and start method.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    name: Option<String>,
    daemon: bool,
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
        let launch: Launch = Box::new(move |name: &str| {
            spawn_child(
                target as usize,
                trampoline::<A, R> as Trampoline as usize,
                &arg,
                name,
                daemon,
            )
        });
        Process::new_unstarted(name, daemon, launch)
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
        let threads = multiproc_sys::process::thread_count()?;
        if threads > 1 {
            return Err(ProcessError::ForkWithThreads { threads });
        }
        // SAFETY: the process is single-threaded (checked just above), so no
        // lock can be held by another thread at the fork.
        unsafe { self.fork_unchecked(f) }
    }

    /// Fork a child that runs `f`, whatever the number of threads.
    ///
    /// # Safety
    ///
    /// If other threads exist, the child must not need any lock they might
    /// hold at the moment of the fork (allocator locks excepted on glibc,
    /// which resets them): stdout, loggers, and any `Mutex` in `f`'s reach.
    pub unsafe fn fork_unchecked<F, R>(mut self, f: F) -> Result<Process<R>, ProcessError>
    where
        F: FnOnce() -> R,
        R: Serialize + DeserializeOwned,
    {
        let name = self.take_name();
        let parent = multiproc_sys::process::pid();
        let (ours, theirs) = multiproc_sys::fd::socketpair()?;
        flush_std();
        // SAFETY: the caller upholds the threading contract; the child only
        // runs `f` and then `_exit`s without returning into the caller.
        match unsafe { multiproc_sys::process::fork() }? {
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

pub(super) type Launch = Box<dyn FnOnce(&str) -> Result<Running, ProcessError> + Send>;

pub(super) fn spawn_child<A: Serialize>(
    target: usize,
    tramp: usize,
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
        trampoline: offset_of(tramp),
        target: offset_of(target),
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
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls fcntl, which is async-signal-safe and allocates nothing; it
    // borrows the descriptor number, which is open in the child (inherited).
    unsafe {
        cmd.pre_exec(move || {
            // `child_fd` is open in the child: it was inherited from the
            // parent, where `theirs` keeps it open across the spawn.
            let fd = BorrowedFd::borrow_raw(child_fd);
            multiproc_sys::fd::set_cloexec(fd, false)
        });
    }
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

pub(super) struct Running {
    pub(super) pid: u32,
    pub(super) pidfd: OwnedFd,
    /// The bootstrap socket; the child's result arrives here. `None` once the
    /// result (or end of file) was read.
    pub(super) chan: Option<Connection<()>>,
}

pub(super) enum State {
    Created(Launch),
    Running(Running),
    Starting,
}
