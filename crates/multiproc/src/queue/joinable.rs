//! [`JoinableQueue`]: a [`Queue`] with `task_done` and `join`.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use multiproc_shm::QueueError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{JoinError, TaskDoneError};
use super::mpmc::{Queue, QueueBuilder};
use super::{ENV, deadline};
use crate::error::{TimeoutError, TryError, Waited};

// ----- JoinableQueue -------------------------------------------------------------------

/// Python's `multiprocessing.JoinableQueue`: a [`Queue`] (all of its methods,
/// through `Deref`) whose puts count tasks that consumers mark done with
/// [`task_done`](Self::task_done); [`join`](Self::join) waits for all of
/// them. Tasks held by a consumer process that died count as done, so
/// `join` never waits forever for them.
pub struct JoinableQueue<T> {
    pub(super) q: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue { q: self.q.clone() }
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JoinableQueue").field(&self.q).finish()
    }
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.q
    }
}

impl<T> JoinableQueue<T> {
    /// An unbounded joinable queue.
    pub fn new() -> io::Result<Self> {
        QueueBuilder::default().build_joinable()
    }

    /// A joinable queue of at most `maxsize` items.
    pub fn bounded(maxsize: usize) -> io::Result<Self> {
        QueueBuilder::default().maxsize(maxsize).build_joinable()
    }

    /// Mark one task done: call once for each item got, when its processing
    /// is complete. More calls than items put is an error (Python's
    /// `ValueError`).
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        self.q.inner.raw().task_done(&ENV).map_err(|e| match e {
            QueueError::TooManyTaskDone => TaskDoneError::TooManyCalls,
            _ => TaskDoneError::Corrupted,
        })
    }

    fn join_until(&self, deadline: Option<Instant>) -> Result<(), Waited<JoinError>> {
        let inner = &self.q.inner;
        // Copied out and back: a join waiting forever must not block
        // another thread's timed join on the mutex.
        let saved = || inner.join_progress();
        let mut progress = *saved();
        let r = inner.raw().join(&ENV, deadline, &mut progress);
        *saved() = progress;
        r.map_err(|e| {
            Waited::Failed(match e {
                QueueError::Timeout => return Waited::GaveUp,
                QueueError::Abandoned => JoinError::Abandoned {
                    tasks: progress.abandoned(),
                },
                _ => JoinError::Corrupted,
            })
        })
    }

    /// Wait until every item put has been marked done, by any process.
    /// Tasks whose taker died are not forgiven; if they are all that is
    /// left and nobody marks one done for two seconds, `join` returns
    /// [`JoinError::Abandoned`] rather than waiting for good.
    pub fn join(&self) -> Result<(), JoinError> {
        self.join_until(None).map_err(Waited::into_blocking)
    }

    /// [`join`](Self::join), waiting at most `timeout`
    /// ([`TimeoutError::Timeout`] then).
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), TimeoutError<JoinError>> {
        self.join_until(deadline(timeout))
            .map_err(Waited::into_timeout)
    }

    /// [`join`](Self::join), waiting until `deadline`
    /// ([`TimeoutError::Timeout`] then).
    pub fn join_deadline(&self, deadline: Instant) -> Result<(), TimeoutError<JoinError>> {
        self.join_until(Some(deadline))
            .map_err(Waited::into_timeout)
    }

    /// [`join`](Self::join) without waiting: `Ok` when every item put has
    /// been marked done now, [`TryError::WouldBlock`] otherwise.
    pub fn try_join(&self) -> Result<(), TryError<JoinError>> {
        self.join_until(Some(Instant::now()))
            .map_err(Waited::into_try)
    }

    /// Tasks put and not yet marked done.
    pub fn unfinished(&self) -> usize {
        self.q.inner.raw().unfinished(&ENV).unwrap_or(0) as usize
    }
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.q.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let q = Queue::deserialize(d)?;
        if !q.inner.raw().is_joinable() {
            return Err(serde::de::Error::custom("not a joinable queue"));
        }
        Ok(JoinableQueue { q })
    }
}
