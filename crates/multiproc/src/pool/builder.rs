//! [`PoolBuilder`]: a pool's size and policies ([`OnWorkerDeath`],
//! `task_timeout`, `max_tasks_per_child`, `restart_limit`).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::task::Item;
use crate::connection::codec::{self, EncodeError, Fd};
use crate::process::Target;

/// What the pool does with the task whose worker died (not one it killed
/// for its timeout, which is always [`TaskError::TimedOut`](super::TaskError::TimedOut)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnWorkerDeath {
    /// The task fails with [`TaskError::WorkerDied`](super::TaskError::WorkerDied);
    /// the pool replaces the worker and serves the rest (the default).
    #[default]
    FailTask,
    /// The task runs again on another worker, up to this many more times,
    /// then fails as with `FailTask`.
    Retry(u32),
    /// The pool breaks: every pending task fails with
    /// [`TaskError::Broken`](super::TaskError::Broken), as Python's
    /// `BrokenProcessPool`.
    Break,
}

/// The pool's settings, as the builder collected them.
#[derive(Debug, Clone)]
pub(super) struct Config {
    pub(super) processes: usize,
    pub(super) max_tasks_per_child: Option<u64>,
    pub(super) task_timeout: Option<Duration>,
    pub(super) on_worker_death: OnWorkerDeath,
    /// At most this many abnormal worker deaths within the duration.
    pub(super) restart_limit: (u32, Duration),
    /// What each worker runs first.
    pub(super) initializer: Option<Arc<Item>>,
}

/// Builds a [`Pool`](super::Pool): `Pool::builder().processes(4).build()`.
#[derive(Debug)]
pub struct PoolBuilder {
    pub(super) config: Config,
    /// Why the initializer's argument could not be encoded.
    pub(super) error: Option<EncodeError>,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        let processes = multiproc_sys::process::allowed_cpus()
            .map(|c| c.len())
            .unwrap_or(1)
            .max(1);
        PoolBuilder {
            config: Config {
                processes,
                max_tasks_per_child: None,
                task_timeout: None,
                on_worker_death: OnWorkerDeath::FailTask,
                restart_limit: (50, Duration::from_secs(10)),
                initializer: None,
            },
            error: None,
        }
    }
}

impl PoolBuilder {
    /// A builder with the defaults: one worker per CPU this process may
    /// run on, workers that live for ever, no timeout,
    /// [`OnWorkerDeath::FailTask`], and at most 50 restarts in 10 seconds.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of workers (at least 1).
    pub fn processes(mut self, n: usize) -> Self {
        self.config.processes = n.max(1);
        self
    }

    /// Replace a worker after it has run this many tasks (Python's
    /// `maxtasksperchild`; counted in tasks, checked between chunks, so a
    /// `map` chunk is never split).
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.config.max_tasks_per_child = Some(n.max(1));
        self
    }

    /// Kill the worker of a task that runs longer than this; the task fails
    /// with [`TaskError::TimedOut`](super::TaskError::TimedOut). Checked
    /// about every 10 ms.
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.config.task_timeout = Some(timeout);
        self
    }

    /// What a worker's death does to its task (see [`OnWorkerDeath`]).
    pub fn on_worker_death(mut self, policy: OnWorkerDeath) -> Self {
        self.config.on_worker_death = policy;
        self
    }

    /// Break the pool (every pending task fails with
    /// [`TaskError::Broken`](super::TaskError::Broken)) when more than
    /// `restarts` workers die abnormally (killed, crashed, timed out)
    /// within `per`, instead of forking replacements for ever.
    pub fn restart_limit(mut self, restarts: u32, per: Duration) -> Self {
        self.config.restart_limit = (restarts, per);
        self
    }

    /// Run `init(arg)` in each worker before its first task (Python's
    /// `initializer` and `initargs`). A worker whose initializer panics
    /// dies; its replacements count against `restart_limit`, so an
    /// initializer that always fails ends in a broken pool.
    pub fn initializer<A>(mut self, init: fn(A), arg: A) -> Self
    where
        A: Serialize + DeserializeOwned,
    {
        let mut bytes = Vec::new();
        match codec::encode(&arg, &mut bytes) {
            Ok(fds) => {
                self.config.initializer = Some(Arc::new(Item {
                    id: 0,
                    target: Target::of(init),
                    arg: bytes,
                    fds: fds.into_iter().map(Fd).collect(),
                }));
            }
            Err(e) => self.error = Some(e),
        }
        self
    }
}
