//! A task on its way: the messages between the pool and its workers
//! ([`Order`], [`Report`]), the cell a result lands in, and the caller's
//! handle, [`Task`].

use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::TaskError;
use crate::connection::codec::{self, Fd};
use crate::error::{TimeoutError, TryError, Waited};
use crate::process::Target;

/// One task as a worker receives it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Item {
    /// The task's id (never 0: 0 in a worker's slot means "idle").
    pub(super) id: u64,
    pub(super) target: Target,
    #[serde(with = "serde_bytes")]
    pub(super) arg: Vec<u8>,
    /// The argument's handles.
    pub(super) fds: Vec<Fd>,
}

impl Item {
    /// A copy to send (the pool keeps the original until the task is
    /// answered, to send it again if its worker dies before running it).
    pub(super) fn try_clone(&self) -> std::io::Result<Item> {
        Ok(Item {
            id: self.id,
            target: self.target,
            arg: self.arg.clone(),
            fds: self
                .fds
                .iter()
                .map(|f| f.0.try_clone().map(Fd))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// What the pool sends a worker, on the worker's own queue.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Order {
    /// Run these tasks, in order (a chunk).
    Run(Vec<Item>),
    /// Exit.
    Stop,
}

/// How a task ended in its worker.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Outcome {
    /// The encoded result and its handles.
    Done {
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        fds: Vec<Fd>,
    },
    /// The task panicked.
    Panicked {
        message: String,
        location: Option<String>,
    },
    /// The argument or result did not cross.
    Transfer(String),
}

/// What arrives on the pool's one report queue, in order: workers' results,
/// and the supervisor's notices of their deaths (put after everything the
/// dead worker put, so its results are in before its death is judged).
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Report {
    /// A task finished in the worker at `seat`; `retiring` when that worker
    /// exits next (its `max_tasks_per_child` is reached).
    Finished {
        seat: usize,
        id: u64,
        outcome: Outcome,
        retiring: bool,
    },
    /// The worker of `generation` at `seat` ended: its pid, Python's
    /// exitcode, and the task its slot named (0 for none).
    Exited {
        seat: usize,
        generation: u64,
        pid: u32,
        exitcode: i32,
        slot: u64,
    },
    /// The collector stops.
    Shutdown,
}

/// A task's outcome as the caller will decode it.
pub(crate) type Raw = Result<(Vec<u8>, Vec<OwnedFd>), TaskError>;

/// Where a task's outcome lands: set once by the pool, taken once by
/// [`Task::get`].
#[derive(Debug, Default)]
pub(crate) struct Cell {
    state: Mutex<CellState>,
    ready: Condvar,
    /// Where to send the task's index when its outcome is set
    /// ([`Pool::imap_unordered`](super::Pool::imap_unordered)).
    notify: Option<(Sender<usize>, usize)>,
}

#[derive(Debug, Default)]
enum CellState {
    #[default]
    Pending,
    Ready(Raw),
    Taken,
}

impl Cell {
    /// A cell that sends `index` on `notify` when its outcome is set.
    pub(crate) fn notifying(notify: Sender<usize>, index: usize) -> Cell {
        Cell {
            notify: Some((notify, index)),
            ..Cell::default()
        }
    }

    /// Set the outcome (the first one wins) and wake the waiters.
    pub(crate) fn set(&self, raw: Raw) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*s, CellState::Pending) {
            *s = CellState::Ready(raw);
            self.ready.notify_all();
            if let Some((tx, index)) = &self.notify {
                let _ = tx.send(*index);
            }
        }
    }

    /// Wait for the outcome and take it.
    #[cfg(feature = "redis")]
    pub(crate) fn take(&self) -> Raw {
        self.take_until(None).map_err(Waited::into_blocking)?
    }

    fn is_pending(&self) -> bool {
        matches!(
            *self.state.lock().unwrap_or_else(|e| e.into_inner()),
            CellState::Pending
        )
    }

    /// Take the outcome, waiting until `deadline`.
    fn take_until(&self, deadline: Option<Instant>) -> Result<Raw, Waited<TaskError>> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match std::mem::replace(&mut *s, CellState::Taken) {
                CellState::Ready(raw) => return Ok(raw),
                CellState::Taken => return Err(Waited::Failed(TaskError::AlreadyTaken)),
                CellState::Pending => *s = CellState::Pending,
            }
            s = match deadline {
                None => self.ready.wait(s).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Waited::GaveUp);
                    }
                    self.ready
                        .wait_timeout(s, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

/// What a [`Task`] needs of its pool: withdrawing a task not sent yet.
pub(crate) trait Cancel: Send + Sync + std::fmt::Debug {
    /// Fail task `id` with [`TaskError::Cancelled`] if no worker has it
    /// yet; whether it did.
    fn cancel(&self, id: u64) -> bool;
}

/// The handle of a task submitted with
/// [`Pool::apply_async`](super::Pool::apply_async) (Python's
/// `AsyncResult`). Its result can be taken once.
#[derive(Debug)]
pub struct Task<R> {
    cell: Arc<Cell>,
    id: u64,
    pool: Weak<dyn Cancel>,
    _marker: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned> Task<R> {
    pub(crate) fn new(cell: Arc<Cell>, id: u64, pool: Weak<dyn Cancel>) -> Self {
        Task {
            cell,
            id,
            pool,
            _marker: PhantomData,
        }
    }

    /// Withdraw the task if it has not been sent to a worker yet: it then
    /// fails with [`TaskError::Cancelled`] and never runs. `false` if it
    /// is running, or was sent or finished already (Python's
    /// `Future.cancel`).
    pub fn cancel(&self) -> bool {
        self.pool.upgrade().is_some_and(|p| p.cancel(self.id))
    }

    /// Whether the task has finished (or failed).
    pub fn ready(&self) -> bool {
        !self.cell.is_pending()
    }

    fn get_until(&self, deadline: Option<Instant>) -> Result<R, Waited<TaskError>> {
        let (bytes, fds) = self.cell.take_until(deadline)??;
        Ok(codec::decode(&bytes, fds).map_err(TaskError::from)?)
    }

    /// Wait for the task and take its result.
    pub fn get(&self) -> Result<R, TaskError> {
        self.get_until(None).map_err(Waited::into_blocking)
    }

    /// The result if the task has finished ([`TryError::WouldBlock`]
    /// otherwise).
    pub fn try_get(&self) -> Result<R, TryError<TaskError>> {
        self.get_until(Some(Instant::now()))
            .map_err(Waited::into_try)
    }

    /// [`get`](Self::get), waiting at most `timeout`
    /// ([`TimeoutError::Timeout`] then; the task keeps running).
    pub fn get_timeout(&self, timeout: Duration) -> Result<R, TimeoutError<TaskError>> {
        self.get_until(crate::deadline::after(timeout))
            .map_err(Waited::into_timeout)
    }

    /// [`get`](Self::get), waiting until `deadline`
    /// ([`TimeoutError::Timeout`] then; the task keeps running).
    pub fn get_deadline(&self, deadline: Instant) -> Result<R, TimeoutError<TaskError>> {
        self.get_until(Some(deadline)).map_err(Waited::into_timeout)
    }
}
