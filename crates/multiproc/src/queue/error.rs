//! What queue operations report: one error type per operation form.

use std::fmt;
use std::io;

use multiproc_shm::QueueError;

use crate::connection::codec::{DecodeError, EncodeError};
#[cfg(doc)]
use multiproc_shm::ABANDON_AFTER;

// ----- errors -------------------------------------------------------------------

/// Why an item was not put. Every variant hands the item back
/// ([`into_inner`](PutError::into_inner)).
#[non_exhaustive]
pub enum PutError<T> {
    /// `try_put`: no room now (Python's `queue.Full`).
    Full(T),
    /// `put_timeout`: no room before the timeout (Python's `queue.Full`).
    Timeout(T),
    /// The queue is closed.
    Closed(T),
    /// The item could not be encoded.
    Encode(EncodeError, T),
    /// The queue's shared state is inconsistent (written by a hostile or
    /// buggy process).
    Corrupted(T),
    /// The OS refused (an out-of-line payload or a handle).
    Io(io::Error, T),
}

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(t)
            | PutError::Timeout(t)
            | PutError::Closed(t)
            | PutError::Encode(_, t)
            | PutError::Corrupted(t)
            | PutError::Io(_, t) => t,
        }
    }

    /// Whether the queue had no room (`Full` or `Timeout`).
    pub fn is_full(&self) -> bool {
        matches!(self, PutError::Full(_) | PutError::Timeout(_))
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Timeout(_) => f.write_str("Timeout(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
            PutError::Encode(e, _) => write!(f, "Encode({e:?}, ..)"),
            PutError::Corrupted(_) => f.write_str("Corrupted(..)"),
            PutError::Io(e, _) => write!(f, "Io({e:?}, ..)"),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("the queue is full"),
            PutError::Timeout(_) => f.write_str("timed out waiting for room in the queue"),
            PutError::Closed(_) => f.write_str("the queue is closed"),
            PutError::Encode(e, _) => write!(f, "cannot encode the item: {e}"),
            PutError::Corrupted(_) => f.write_str("the queue's shared state is corrupted"),
            PutError::Io(e, _) => write!(f, "cannot put the item: {e}"),
        }
    }
}

impl<T> std::error::Error for PutError<T> {}

/// Why no item was got.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// `try_get`: nothing in the queue now (Python's `queue.Empty`).
    #[error("the queue is empty")]
    Empty,
    /// `get_timeout`: nothing before the timeout (Python's `queue.Empty`).
    #[error("timed out waiting for an item")]
    Timeout,
    /// The queue is closed and drained.
    #[error("the queue is closed and empty")]
    Closed,
    /// The item is not a valid encoding of `T` (it is consumed).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The shared state is inconsistent (written by a hostile or buggy
    /// process).
    #[error("the queue's shared state is corrupted")]
    Corrupted,
    /// The item's out-of-line payload or handles could not be received (it
    /// is consumed).
    #[error("cannot receive the item: {0}")]
    Io(#[from] io::Error),
}

impl GetError {
    /// Whether there was no item (`Empty` or `Timeout`: Python's
    /// `queue.Empty`).
    pub fn is_empty(&self) -> bool {
        matches!(self, GetError::Empty | GetError::Timeout)
    }
}

/// `task_done` was called more times than items were put (Python's
/// `ValueError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskDoneError {
    /// More calls than items put.
    #[error("task_done() called too many times")]
    TooManyCalls,
    /// The queue's shared state is inconsistent.
    #[error("the queue's shared state is corrupted")]
    Corrupted,
}

/// Why `join` returned without every task done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// `join_timeout`: tasks are still unfinished.
    #[error("timed out waiting for the tasks to be done")]
    Timeout,
    /// Every unfinished task is held by processes that died (killed, or
    /// exited without handing their tasks on), and none was marked done
    /// for [`ABANDON_AFTER`] (two seconds). The tasks stay
    /// unfinished: a later `task_done` counts them, a later `join` waits
    /// again. (Python's `join` would wait for good.)
    #[error("{tasks} tasks are held by processes that died and were never marked done")]
    Abandoned {
        /// How many.
        tasks: u32,
    },
    /// The queue's shared state is inconsistent.
    #[error("the queue's shared state is corrupted")]
    Corrupted,
}

/// What went wrong inside a put, before it is turned into a [`PutError`].
pub(super) enum Fail {
    Queue(QueueError),
    Encode(EncodeError),
    Io(io::Error),
}

impl Fail {
    pub(super) fn with<T>(self, item: T, try_form: bool) -> PutError<T> {
        match self {
            Fail::Queue(QueueError::Timeout) if try_form => PutError::Full(item),
            Fail::Queue(QueueError::Timeout) => PutError::Timeout(item),
            Fail::Queue(QueueError::Closed) => PutError::Closed(item),
            Fail::Queue(_) => PutError::Corrupted(item),
            Fail::Encode(e) => PutError::Encode(e, item),
            Fail::Io(e) => PutError::Io(e, item),
        }
    }
}

pub(super) fn get_error(e: QueueError, try_form: bool) -> GetError {
    match e {
        QueueError::Timeout if try_form => GetError::Empty,
        QueueError::Timeout => GetError::Timeout,
        QueueError::Closed => GetError::Closed,
        _ => GetError::Corrupted,
    }
}

pub(super) fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}
