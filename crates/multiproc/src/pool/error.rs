//! The pool's errors: what one task can fail with ([`TaskError`]), and why
//! the pool refused to take a task ([`PoolError`]).

use crate::connection::codec::{DecodeError, EncodeError};
use crate::process::ProcessError;

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl Exit {
    /// From Python's `exitcode`: the status, or minus the signal.
    pub(super) fn from_exitcode(code: i32) -> Exit {
        if code < 0 {
            Exit::Signal(-code)
        } else {
            Exit::Code(code)
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit status {c}"),
            Exit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// Why the pool did not take a task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// [`Pool::close`](super::Pool::close) (or `join`, or `terminate`) was
    /// called: the pool takes no more tasks.
    #[error("the pool is closed")]
    Closed,
    /// The pool broke (a restart storm, or a worker death under
    /// [`OnWorkerDeath::Break`](super::OnWorkerDeath::Break)).
    #[error("the pool is broken")]
    Broken,
    /// The argument could not be encoded.
    #[error("cannot encode the task's argument: {0}")]
    Encode(#[from] EncodeError),
    /// A worker could not be started.
    #[error("cannot start a worker: {0}")]
    Spawn(#[from] ProcessError),
    /// The server a pool of many machines submits through failed (for
    /// `multiproc::redis::Pool`: a `RedisError`, which
    /// `source()` gives).
    #[error("the pool's server failed: {0}")]
    Server(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why one task has no result. The other tasks of the pool are not
/// affected, except by [`TaskError::Broken`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked; its worker caught the panic and lives on.
    #[error("task panicked{}: {message}", location.as_ref().map(|l| format!(" at {l}")).unwrap_or_default())]
    Panicked {
        /// The panic message.
        message: String,
        /// `file:line:column` of the panic, when known.
        location: Option<String>,
    },
    /// The worker running the task died (it was this task that it was
    /// running, as its shared-memory slot says).
    #[error("worker {pid} died running the task ({exit})")]
    WorkerDied {
        /// The dead worker's pid.
        pid: u32,
        /// How it ended.
        exit: Exit,
    },
    /// The task ran past the pool's `task_timeout`; its worker was killed.
    #[error("task timed out; its worker was killed")]
    TimedOut,
    /// The pool broke before the task finished (a restart storm, or
    /// [`OnWorkerDeath::Break`](super::OnWorkerDeath::Break)).
    #[error("the pool broke before the task finished")]
    Broken,
    /// The pool was terminated before the task finished.
    #[error("the pool was terminated before the task finished")]
    Terminated,
    /// The task was withdrawn with [`Task::cancel`](super::Task::cancel).
    #[error("the task was cancelled")]
    Cancelled,
    /// The worker could not decode the argument or encode the result.
    #[error("{0}")]
    Transfer(String),
    /// The result could not be decoded here.
    #[error("cannot decode the task's result: {0}")]
    Decode(#[from] DecodeError),
    /// No worker knows a task of this name (a pool of many machines names
    /// its tasks: the worker serving the queue did not register it).
    #[error("the worker has no task named {0:?}")]
    UnknownTask(String),
    /// The result was already taken by an earlier `get`.
    #[error("the task's result was already taken")]
    AlreadyTaken,
    /// The pool did not take the task.
    #[error(transparent)]
    Pool(#[from] PoolError),
}
