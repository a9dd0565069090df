//! What queue operations report: one error type per operation form.

use std::fmt;
use std::io;

use multiproc_shm::QueueError;

use crate::connection::codec::{DecodeError, EncodeError};
use crate::error::{
    HandsBack, SendTimeoutError, TimeoutError, TryError, TrySendError, Waited, WaitedWith,
};
#[cfg(doc)]
use multiproc_shm::ABANDON_AFTER;

// ----- errors -------------------------------------------------------------------

/// Why a blocking put failed. Every variant hands the item back
/// ([`into_inner`](PutError::into_inner)). The `try_` and `_timeout` forms
/// add "no room" ([`TryPutError`], [`PutTimeoutError`]).
#[non_exhaustive]
pub enum PutError<T> {
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

/// What `try_put` reports: [`TrySendError::Full`] (with the item) when
/// there is no room now (Python's `queue.Full`).
pub type TryPutError<T> = TrySendError<PutError<T>>;

/// What `put_timeout`/`put_deadline` report: [`SendTimeoutError::Timeout`]
/// (with the item) when no room came in time (Python's `queue.Full`).
pub type PutTimeoutError<T> = SendTimeoutError<PutError<T>>;

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Closed(t)
            | PutError::Encode(_, t)
            | PutError::Corrupted(t)
            | PutError::Io(_, t) => t,
        }
    }
}

impl<T> HandsBack for PutError<T> {
    type Item = T;
    fn into_inner(self) -> T {
        PutError::into_inner(self)
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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
            PutError::Closed(_) => f.write_str("the queue is closed"),
            PutError::Encode(e, _) => write!(f, "cannot encode the item: {e}"),
            PutError::Corrupted(_) => f.write_str("the queue's shared state is corrupted"),
            PutError::Io(e, _) => write!(f, "cannot put the item: {e}"),
        }
    }
}

impl<T> std::error::Error for PutError<T> {}

/// Why a blocking get failed. The `try_` and `_timeout` forms add "no
/// item" ([`TryGetError`], [`GetTimeoutError`]: Python's `queue.Empty`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
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

/// What `try_get` reports: [`TryError::WouldBlock`] when there is no item
/// now (Python's `queue.Empty`).
pub type TryGetError = TryError<GetError>;

/// What `get_timeout`/`get_deadline` report: [`TimeoutError::Timeout`]
/// when no item came in time (Python's `queue.Empty`).
pub type GetTimeoutError = TimeoutError<GetError>;

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

/// Why a blocking `join` returned without every task done. `try_join`
/// and `join_timeout` add that tasks are still unfinished
/// ([`TryError::WouldBlock`], [`TimeoutError::Timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
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
    /// The outcome for the form that called, with the item handed back.
    #[inline]
    pub(super) fn with<T>(self, item: T) -> WaitedWith<PutError<T>> {
        WaitedWith::Failed(match self {
            Fail::Queue(QueueError::Timeout) => return WaitedWith::GaveUp(item),
            Fail::Queue(QueueError::Closed) => PutError::Closed(item),
            Fail::Queue(_) => PutError::Corrupted(item),
            Fail::Encode(e) => PutError::Encode(e, item),
            Fail::Io(e) => PutError::Io(e, item),
        })
    }
}

/// The outcome of a raw get for the form that called.
#[inline]
pub(super) fn get_error(e: QueueError) -> Waited<GetError> {
    Waited::Failed(match e {
        QueueError::Timeout => return Waited::GaveUp,
        QueueError::Closed => GetError::Closed,
        _ => GetError::Corrupted,
    })
}

pub(super) fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}
