//! A pool of workers on many machines: [`Pool`] submits named tasks to a
//! Redis `JoinableQueue`, and [`Worker`](super::Worker) serves it with a
//! local [`crate::Pool`] on each machine. This file holds the submitting
//! side and the messages both sides exchange.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::handles::{JoinableQueue, Queue};
use super::queue::lock;
use super::{Options, RedisError, encode};
use crate::TimeoutError;
use crate::pool::{Cancel, Cell, Exit, Imap, ImapUnordered, PoolError, Raw, Task, TaskError};

/// How long the collector waits for answers before it looks at its flags
/// again.
pub(super) const POLL: Duration = Duration::from_millis(200);
/// Most answers the collector takes per read.
const ANSWERS_PER_READ: usize = 64;

/// A chunk of tasks on the queue: task `id + i` is `task(args[i])`; the
/// answer goes to the queue `reply`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Order {
    pub(super) id: u64,
    pub(super) reply: String,
    pub(super) task: String,
    pub(super) args: Vec<ByteBuf>,
}

/// The outcomes of an order's tasks, in order.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Answer {
    pub(super) id: u64,
    pub(super) outcomes: Vec<Outcome>,
}

/// How one task ended on its worker machine.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Outcome {
    /// The encoded result.
    Done(ByteBuf),
    /// Why it has no result.
    Failed(Failure),
}

/// A [`TaskError`] as it crosses the server.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Failure {
    Panicked {
        message: String,
        location: Option<String>,
    },
    WorkerDied {
        pid: u32,
        code: Option<i32>,
        signal: Option<i32>,
    },
    TimedOut,
    Broken,
    Terminated,
    UnknownTask(String),
    /// Anything else, as text.
    Other(String),
}

impl From<TaskError> for Failure {
    fn from(e: TaskError) -> Failure {
        match e {
            TaskError::Panicked { message, location } => Failure::Panicked { message, location },
            TaskError::WorkerDied { pid, exit } => Failure::WorkerDied {
                pid,
                code: match exit {
                    Exit::Code(c) => Some(c),
                    Exit::Signal(_) => None,
                },
                signal: match exit {
                    Exit::Signal(s) => Some(s),
                    Exit::Code(_) => None,
                },
            },
            TaskError::TimedOut => Failure::TimedOut,
            TaskError::Broken => Failure::Broken,
            TaskError::Terminated => Failure::Terminated,
            TaskError::UnknownTask(t) => Failure::UnknownTask(t),
            other => Failure::Other(other.to_string()),
        }
    }
}

impl From<Failure> for TaskError {
    fn from(f: Failure) -> TaskError {
        match f {
            Failure::Panicked { message, location } => TaskError::Panicked { message, location },
            Failure::WorkerDied { pid, code, signal } => TaskError::WorkerDied {
                pid,
                exit: match (signal, code) {
                    (Some(s), _) => Exit::Signal(s),
                    (None, c) => Exit::Code(c.unwrap_or(-1)),
                },
            },
            Failure::TimedOut => TaskError::TimedOut,
            Failure::Broken => TaskError::Broken,
            Failure::Terminated => TaskError::Terminated,
            Failure::UnknownTask(t) => TaskError::UnknownTask(t),
            Failure::Other(s) => TaskError::Transfer(s),
        }
    }
}

impl Outcome {
    fn into_raw(self) -> Raw {
        match self {
            Outcome::Done(bytes) => Ok((bytes.into_vec(), Vec::new())),
            Outcome::Failed(f) => Err(f.into()),
        }
    }
}

fn server(e: RedisError) -> PoolError {
    PoolError::Server(Box::new(e))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Closed,
    Terminated,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    next_id: u64,
    /// The tasks submitted and not answered yet.
    pending: HashMap<u64, Arc<Cell>>,
    /// The orders not answered yet: first task id → number of tasks.
    orders: HashMap<u64, usize>,
}

#[derive(Debug)]
struct Inner {
    url: String,
    name: String,
    reply_name: String,
    tasks: JoinableQueue<Order>,
    replies: Queue<Answer>,
    state: Mutex<State>,
    /// Signalled when `pending` becomes empty.
    idle: Condvar,
}

impl Cancel for Inner {
    fn cancel(&self, _id: u64) -> bool {
        // A task on the server may be in a worker's hands already.
        false
    }
}

/// The submitting side of a pool whose workers run on many machines: each
/// machine runs a [`Worker`](super::Worker) that serves the queue `name`
/// with a local [`crate::Pool`]. Tasks are named (the name a worker
/// registered its `fn` under), since a function's address means nothing on
/// another machine; arguments and results travel with the serde codec.
///
/// The methods are [`crate::Pool`]'s, with a task name for the `fn`:
/// `apply_async`/`apply`, `map_async`/`map`/`map_chunked`, `imap`,
/// `imap_unordered`, `close`, `join`, `terminate` (also on drop).
///
/// Delivery is at least once: a task whose worker *machine* dies (its
/// heartbeat lapses) runs again on another, and a result that comes twice
/// is taken once. A task whose local worker *process* dies fails with
/// [`TaskError::WorkerDied`], as on one machine. [`Task::cancel`] always
/// answers `false`: a task on the server may be running already.
///
/// ```no_run
/// let pool = multiproc::Pool::redis("redis://127.0.0.1:6379/0", "jobs").unwrap();
/// // any machine: multiproc::redis::Worker::new(url, "jobs").task("square", square).serve(...)
/// let squares: Vec<u64> = pool.map("square", 1..=100u64).unwrap();
/// pool.join();
/// ```
#[derive(Debug)]
pub struct Pool {
    inner: Arc<Inner>,
    collector: Mutex<Option<JoinHandle<()>>>,
}

impl crate::Pool {
    /// The submitting side of a pool whose workers serve the Redis queue
    /// `name` on the server at `url` (see [`redis::Pool`](Pool)).
    pub fn redis(url: &str, name: &str) -> Result<Pool, RedisError> {
        Pool::open(url, name)
    }
}

impl Pool {
    /// Submit to the workers of queue `name` on the server at `url`, with
    /// the default [`Options`].
    pub fn open(url: &str, name: &str) -> Result<Pool, RedisError> {
        Pool::open_with(url, name, Options::default())
    }

    /// [`open`](Self::open) with `options` (its `authkey` must be the
    /// workers').
    pub fn open_with(url: &str, name: &str, options: Options) -> Result<Pool, RedisError> {
        let mut r = [0u8; 16];
        let _ = getrandom::fill(&mut r);
        let reply_name = format!("{name}:reply:{:032x}", u128::from_le_bytes(r));
        let inner = Arc::new(Inner {
            tasks: JoinableQueue::open_with(url, name, options.clone())?,
            replies: Queue::open_with(
                url,
                &reply_name,
                Options {
                    maxsize: 0,
                    consumer: None,
                    ..options
                },
            )?,
            url: url.to_owned(),
            name: name.to_owned(),
            reply_name,
            state: Mutex::new(State {
                phase: Phase::Running,
                next_id: 1,
                pending: HashMap::new(),
                orders: HashMap::new(),
            }),
            idle: Condvar::new(),
        });
        let collector = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("multiproc-redis-pool".into())
                .spawn(move || collect(&inner))
                .map_err(|e| RedisError::Protocol(format!("cannot start the collector: {e}")))?
        };
        Ok(Pool {
            inner,
            collector: Mutex::new(Some(collector)),
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Submit `task` on each argument in orders of `chunksize`.
    fn submit<A: Serialize, R: DeserializeOwned>(
        &self,
        task: &str,
        args: Vec<A>,
        chunksize: Option<usize>,
        notify: Option<&Sender<usize>>,
    ) -> Result<Vec<Task<R>>, PoolError> {
        let chunksize = chunksize.unwrap_or_else(|| args.len().div_ceil(16)).max(1);
        let mut encoded = Vec::with_capacity(args.len());
        for a in &args {
            encoded.push(ByteBuf::from(encode(a).map_err(server)?));
        }
        let mut orders = Vec::new();
        let mut tasks = Vec::with_capacity(encoded.len());
        let pool: Arc<dyn Cancel> = self.inner.clone();
        let pool: Weak<dyn Cancel> = Arc::downgrade(&pool);
        {
            let mut st = lock(&self.inner.state);
            if st.phase != Phase::Running {
                return Err(PoolError::Closed);
            }
            let mut rest = encoded.into_iter().peekable();
            while rest.peek().is_some() {
                let args: Vec<ByteBuf> = rest.by_ref().take(chunksize).collect();
                let id = st.next_id;
                st.next_id += args.len() as u64;
                st.orders.insert(id, args.len());
                for k in 0..args.len() as u64 {
                    let cell = Arc::new(match notify {
                        Some(tx) => Cell::notifying(tx.clone(), tasks.len()),
                        None => Cell::default(),
                    });
                    st.pending.insert(id + k, cell.clone());
                    tasks.push(Task::new(cell, id + k, pool.clone()));
                }
                orders.push(Order {
                    id,
                    reply: self.inner.reply_name.clone(),
                    task: task.to_owned(),
                    args,
                });
            }
        }
        // Registered before they are put: an answer may come at once.
        let ids: Vec<(u64, usize)> = orders.iter().map(|o| (o.id, o.args.len())).collect();
        match self.inner.tasks.put_many(orders) {
            Ok(_) => Ok(tasks),
            Err((put, e)) => {
                // The orders not put never run: forget them.
                let mut st = lock(&self.inner.state);
                for (id, n) in &ids[put..] {
                    st.orders.remove(id);
                    for k in 0..*n as u64 {
                        st.pending.remove(&(id + k));
                    }
                }
                if st.pending.is_empty() {
                    self.inner.idle.notify_all();
                }
                Err(server(e.error))
            }
        }
    }

    /// Run `task(arg)` on a worker; the handle gives its result.
    pub fn apply_async<A: Serialize, R: DeserializeOwned>(
        &self,
        task: &str,
        arg: A,
    ) -> Result<Task<R>, PoolError> {
        let mut t = self.submit(task, vec![arg], Some(1), None)?;
        Ok(t.pop().expect("one task was submitted"))
    }

    /// Run `task(arg)` on a worker and wait for its result.
    pub fn apply<A: Serialize, R: DeserializeOwned>(
        &self,
        task: &str,
        arg: A,
    ) -> Result<R, TaskError> {
        self.apply_async(task, arg)?.get()
    }

    /// Run `task` on each argument, in orders of `chunksize` tasks (`None`:
    /// about 16 orders, so that many machines share the work); one handle
    /// per task, in order.
    pub fn map_async<A: Serialize, R: DeserializeOwned>(
        &self,
        task: &str,
        args: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<Vec<Task<R>>, PoolError> {
        self.submit(task, args.into_iter().collect(), chunksize, None)
    }

    /// Run `task` on each argument and return the results in order (the
    /// first failed task's error otherwise).
    pub fn map<A: Serialize, R: DeserializeOwned>(
        &self,
        task: &str,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, TaskError> {
        self.map_chunked(task, args, None)
    }

    /// [`map`](Self::map) with a chunk size (`None`: the default).
    pub fn map_chunked<A: Serialize, R: DeserializeOwned>(
        &self,
        task: &str,
        args: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<Vec<R>, TaskError> {
        let tasks = self.map_async(task, args, chunksize)?;
        let results: Vec<_> = tasks.iter().map(Task::get).collect();
        results.into_iter().collect()
    }

    /// The results of `task` on each argument in order, each as soon as it
    /// and those before it are done.
    pub fn imap<A: Serialize, R: DeserializeOwned>(
        &self,
        task: &str,
        args: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<Imap<R>, PoolError> {
        Ok(Imap::of(self.map_async(task, args, chunksize)?))
    }

    /// [`imap`](Self::imap) with the results in the order they finish.
    pub fn imap_unordered<A: Serialize, R: DeserializeOwned>(
        &self,
        task: &str,
        args: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<ImapUnordered<R>, PoolError> {
        let (tx, done) = std::sync::mpsc::channel();
        let tasks = self.submit(task, args.into_iter().collect(), chunksize, Some(&tx))?;
        Ok(ImapUnordered::of(tasks, done))
    }

    /// Take no more tasks; those submitted are still answered.
    pub fn close(&self) {
        let mut st = lock(&self.inner.state);
        if st.phase == Phase::Running {
            st.phase = Phase::Closed;
        }
    }

    /// Close, wait until every submitted task is answered, then remove the
    /// pool's reply queue from the server.
    pub fn join(&self) {
        self.close();
        {
            let mut st = lock(&self.inner.state);
            while !st.pending.is_empty() && st.phase != Phase::Terminated {
                st = self.inner.idle.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        self.stop();
    }

    /// Stop waiting: the tasks not answered yet fail with
    /// [`TaskError::Terminated`] (workers that took them still run them;
    /// their results are dropped).
    pub fn terminate(&self) {
        let pending = {
            let mut st = lock(&self.inner.state);
            st.phase = Phase::Terminated;
            self.inner.idle.notify_all();
            st.orders.clear();
            std::mem::take(&mut st.pending)
        };
        for cell in pending.into_values() {
            cell.set(Err(TaskError::Terminated));
        }
        self.stop();
    }

    fn stop(&self) {
        {
            let mut st = lock(&self.inner.state);
            if st.phase == Phase::Running {
                st.phase = Phase::Closed;
            }
        }
        let collector = lock(&self.collector).take();
        if let Some(t) = collector {
            let _ = t.join();
            let _ = super::remove(&self.inner.url, &self.inner.reply_name);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// How often an idle collector looks for its orders in the dead letters.
const DEAD_LOOK: Duration = Duration::from_secs(1);

/// The collector thread: answers to the pool's tasks, until the pool is
/// terminated, or closed with nothing pending. While no answer comes, it
/// also fails the tasks of orders that went to the dead letters (past the
/// delivery limit, or refused by a worker): no answer would ever come.
fn collect(inner: &Inner) {
    let mut next_dead_look = std::time::Instant::now() + DEAD_LOOK;
    loop {
        {
            let st = lock(&inner.state);
            if st.phase == Phase::Terminated || (st.phase == Phase::Closed && st.pending.is_empty())
            {
                return;
            }
        }
        let answers = match inner.replies.get_many(ANSWERS_PER_READ, Some(POLL)) {
            Ok(a) => a,
            Err(TimeoutError::Timeout) => {
                if std::time::Instant::now() >= next_dead_look {
                    next_dead_look = std::time::Instant::now() + DEAD_LOOK;
                    fail_dead_orders(inner);
                }
                continue;
            }
            Err(TimeoutError::Failed(
                e @ (RedisError::Decode { .. } | RedisError::Unauthenticated(_)),
            )) => {
                // Buried as a dead letter: not an answer of ours.
                eprintln!("multiproc::redis::Pool: an answer was refused ({e})");
                continue;
            }
            Err(TimeoutError::Failed(e)) => {
                // The server restarted, a connection broke: the tasks wait
                // in the queue and their answers will come.
                eprintln!("multiproc::redis::Pool: reading answers failed ({e}); retrying");
                std::thread::sleep(POLL);
                continue;
            }
        };
        let mut st = lock(&inner.state);
        for a in answers {
            // A second answer of an order run again finds it gone.
            let Some(len) = st.orders.remove(&a.id) else {
                continue;
            };
            let mut outcomes = a.outcomes.into_iter();
            for k in 0..len as u64 {
                let raw = match outcomes.next() {
                    Some(o) => o.into_raw(),
                    None => Err(TaskError::Transfer(
                        "the worker's answer has fewer outcomes than the order had tasks".into(),
                    )),
                };
                if let Some(cell) = st.pending.remove(&(a.id + k)) {
                    cell.set(raw);
                }
            }
        }
        if st.pending.is_empty() {
            inner.idle.notify_all();
        }
    }
}

/// Fail the tasks of this pool's orders found in the task queue's dead
/// letters.
fn fail_dead_orders(inner: &Inner) {
    if lock(&inner.state).orders.is_empty() {
        return;
    }
    let Ok(dead) = inner.tasks.dead_letters() else {
        return; // the server is away: looked at again later
    };
    let mut st = lock(&inner.state);
    for d in dead {
        let Ok(order) = d.value else { continue };
        if order.reply != inner.reply_name {
            continue;
        }
        let Some(len) = st.orders.remove(&order.id) else {
            continue;
        };
        for k in 0..len as u64 {
            if let Some(cell) = st.pending.remove(&(order.id + k)) {
                cell.set(Err(TaskError::Transfer(format!(
                    "the order went to the dead letters ({}, after {} deliveries); no worker will answer it",
                    d.reason, d.deliveries
                ))));
            }
        }
    }
    if st.pending.is_empty() {
        inner.idle.notify_all();
    }
}
