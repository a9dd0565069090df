//! [`Pool`], the handle: submitting tasks, waiting for them, and ending
//! the pool.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::builder::PoolBuilder;
use super::error::{PoolError, TaskError};
use super::iter::{Imap, ImapUnordered};
use super::state::{Phase, Shared};
use super::supervisor::supervise;
use super::task::{Cancel, Item, Report, Task};
use crate::connection::codec::{self, Fd};
use crate::process::Target;

/// A pool of worker processes that run `fn(A) -> R` tasks (Python's
/// `multiprocessing.Pool`), where a worker's death fails only the task it
/// was running, and the worker is replaced.
///
/// `Pool` is `Send + Sync`: share it between threads by reference or in
/// an `Arc`. Dropping it terminates it ([`terminate`](Self::terminate));
/// call [`join`](Self::join) first to let the tasks finish.
///
/// ```no_run
/// use multiproc::Pool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() {
///     multiproc::init();
///     let pool = Pool::new(4).unwrap();
///     assert_eq!(pool.apply(square, 7).unwrap(), 49);
///     assert_eq!(pool.map(square, 1..=3).unwrap(), [1, 4, 9]);
///     pool.join();
/// }
/// ```
#[derive(Debug)]
pub struct Pool {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl PoolBuilder {
    /// Start the pool: its workers, and its collector and supervisor
    /// threads.
    pub fn build(self) -> Result<Pool, PoolError> {
        if let Some(e) = self.error {
            return Err(e.into());
        }
        let shared = Arc::new(Shared::new(self.config).map_err(crate::ProcessError::from)?);
        {
            let mut st = shared.lock();
            for seat in 0..st.seats.len() {
                if let Err(e) = shared.spawn_worker(&mut st, seat) {
                    drop(st);
                    shutdown_workers(&shared);
                    return Err(e.into());
                }
            }
        }
        let mut threads = Vec::new();
        for (name, run) in [
            ("multiproc-pool-collector", Shared::collect as fn(&Shared)),
            ("multiproc-pool-supervisor", supervise),
        ] {
            let s = shared.clone();
            match std::thread::Builder::new()
                .name(name.into())
                .spawn(move || run(&s))
            {
                Ok(t) => threads.push(t),
                Err(e) => {
                    let pool = Pool {
                        shared,
                        threads: Mutex::new(threads),
                    };
                    pool.terminate();
                    return Err(crate::ProcessError::from(e).into());
                }
            }
        }
        Ok(Pool {
            shared,
            threads: Mutex::new(threads),
        })
    }
}

/// Whether a pool in `phase` takes tasks (the error to refuse with if not).
fn taking(phase: Phase) -> Result<(), PoolError> {
    match phase {
        Phase::Running => Ok(()),
        Phase::Broken => Err(PoolError::Broken),
        Phase::Closed | Phase::Terminated => Err(PoolError::Closed),
    }
}

/// Python's default chunk size: the tasks split in about four chunks per
/// worker.
fn default_chunksize(tasks: usize, workers: usize) -> usize {
    tasks.div_ceil(workers * 4).max(1)
}

impl Pool {
    /// A pool of `processes` workers, with the builder's other defaults.
    pub fn new(processes: usize) -> Result<Pool, PoolError> {
        PoolBuilder::new().processes(processes).build()
    }

    /// A builder for a pool with other settings.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// The number of workers.
    pub fn processes(&self) -> usize {
        self.shared.config.processes
    }

    /// The pids of the workers alive now.
    pub fn pids(&self) -> Vec<u32> {
        let st = self.shared.lock();
        st.seats
            .iter()
            .filter(|s| s.process.is_some())
            .map(|s| s.pid)
            .collect()
    }

    /// Submit `target(arg)` for each argument, in chunks of `chunksize`.
    fn submit<A, R>(
        &self,
        target: fn(A) -> R,
        args: Vec<A>,
        chunksize: Option<usize>,
        notify: Option<&Sender<usize>>,
    ) -> Result<Vec<Task<R>>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let t = Target::of(target);
        let chunksize =
            chunksize.unwrap_or_else(|| default_chunksize(args.len(), self.processes()));
        let mut items = Vec::with_capacity(args.len());
        for arg in &args {
            let mut bytes = Vec::new();
            let fds = codec::encode(arg, &mut bytes)?;
            items.push(Item {
                id: 0,
                target: t,
                arg: bytes,
                fds: fds.into_iter().map(Fd).collect(),
            });
        }
        let mut st = self.shared.lock();
        taking(st.phase)?;
        let cells = self
            .shared
            .submit(&mut st, items, chunksize, notify.map(|tx| (tx, 0)));
        let shared: Arc<dyn Cancel> = self.shared.clone();
        let pool = Arc::downgrade(&shared);
        Ok(cells
            .into_iter()
            .map(|(id, cell)| Task::new(cell, id, pool.clone()))
            .collect())
    }

    /// Run `target` on each of the encoded arguments `args`, as one chunk;
    /// their cells, each sending `first` plus its index on `notify` when
    /// set (how a Redis worker hands a queue's tasks to the pool).
    #[cfg(feature = "redis")]
    pub(crate) fn submit_encoded(
        &self,
        target: Target,
        args: Vec<Vec<u8>>,
        notify: &Sender<usize>,
        first: usize,
    ) -> Result<Vec<Arc<super::Cell>>, PoolError> {
        let chunksize = args.len();
        let items = args
            .into_iter()
            .map(|arg| Item {
                id: 0,
                target,
                arg,
                fds: Vec::new(),
            })
            .collect();
        let mut st = self.shared.lock();
        taking(st.phase)?;
        let cells = self
            .shared
            .submit(&mut st, items, chunksize, Some((notify, first)));
        Ok(cells.into_iter().map(|(_, cell)| cell).collect())
    }

    /// Run `target(arg)` in a worker; the handle gives its result (Python's
    /// `apply_async`).
    pub fn apply_async<A, R>(&self, target: fn(A) -> R, arg: A) -> Result<Task<R>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let mut tasks = self.submit(target, vec![arg], Some(1), None)?;
        Ok(tasks.pop().expect("one task was submitted"))
    }

    /// Run `target(arg)` in a worker and wait for its result (Python's
    /// `apply`).
    pub fn apply<A, R>(&self, target: fn(A) -> R, arg: A) -> Result<R, TaskError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.apply_async(target, arg)?.get()
    }

    /// Run `target` on each argument, in chunks of `chunksize` tasks per
    /// message (`None`: Python's default, about four chunks per worker);
    /// one handle per task, in order, so each task's failure is its own.
    pub fn map_async<A, R>(
        &self,
        target: fn(A) -> R,
        args: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<Vec<Task<R>>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.submit(target, args.into_iter().collect(), chunksize, None)
    }

    /// Run `target` on each argument and return the results in order
    /// (Python's `map`, with the default chunk size); the first failed
    /// task's error otherwise.
    pub fn map<A, R>(
        &self,
        target: fn(A) -> R,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, TaskError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.map_chunked(target, args, None)
    }

    /// [`map`](Self::map) with a chunk size (`None`: the default).
    ///
    /// It is also Python's `starmap`: a Rust `fn` has one parameter, so a
    /// task of several arguments takes them as one tuple and destructures it
    /// in its parameter (`fn add((a, b): (u64, u64)) -> u64`).
    #[doc(alias = "starmap")]
    pub fn map_chunked<A, R>(
        &self,
        target: fn(A) -> R,
        args: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<Vec<R>, TaskError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let tasks = self.map_async(target, args, chunksize)?;
        // Every task is waited for, so none is left running behind an
        // early error.
        let results: Vec<_> = tasks.iter().map(Task::get).collect();
        results.into_iter().collect()
    }

    /// Run `target` on each argument (all submitted now, in chunks of
    /// `chunksize`, `None` for the default); the results in order, each as
    /// soon as it and those before it are done (Python's `imap`).
    pub fn imap<A, R>(
        &self,
        target: fn(A) -> R,
        args: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<Imap<R>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let tasks = self.map_async(target, args, chunksize)?;
        Ok(Imap {
            tasks: tasks.into_iter(),
        })
    }

    /// [`imap`](Self::imap) with the results in the order the tasks finish
    /// (Python's `imap_unordered`).
    pub fn imap_unordered<A, R>(
        &self,
        target: fn(A) -> R,
        args: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<ImapUnordered<R>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let (tx, done) = std::sync::mpsc::channel();
        let tasks = self.submit(target, args.into_iter().collect(), chunksize, Some(&tx))?;
        Ok(ImapUnordered {
            left: tasks.len(),
            tasks,
            done,
        })
    }

    /// Take no more tasks (Python's `close`); the pending ones still run.
    pub fn close(&self) {
        let mut st = self.shared.lock();
        if st.phase == Phase::Running {
            st.phase = Phase::Closed;
        }
    }

    /// Close the pool, wait for every pending task, then stop the workers
    /// and wait for them to exit (Python's `close` + `join`).
    pub fn join(&self) {
        self.close();
        let st = self.shared.lock();
        let mut st = self.shared.wait_idle(st);
        let workers = self.shared.stop_workers(&mut st);
        drop(st);
        for mut w in workers {
            let _ = w.wait();
        }
        self.stop_threads();
    }

    /// Kill every worker now, fail the pending tasks with
    /// [`TaskError::Terminated`], and reap the workers: no process is left
    /// behind (Python's `terminate`).
    pub fn terminate(&self) {
        {
            let mut st = self.shared.lock();
            if st.phase != Phase::Broken {
                st.phase = Phase::Terminated;
            }
            self.shared.fail_all(&mut st, || TaskError::Terminated);
        }
        shutdown_workers(&self.shared);
        self.stop_threads();
    }

    /// Stop the collector and the supervisor and wait for them.
    fn stop_threads(&self) {
        self.shared.lock().shutdown = true;
        self.shared.wake();
        let _ = self.shared.reports.put(Report::Shutdown);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Kill and reap every worker.
fn shutdown_workers(shared: &Shared) {
    let workers = shared.stop_workers(&mut shared.lock());
    for mut w in workers {
        let _ = w.kill();
        let _ = w.wait();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
    }
}
