//! The serving side of a pool on many machines: [`Worker`] takes orders
//! from the Redis queue and runs them in a local [`crate::Pool`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

use super::handles::{JoinableQueue, Queue};
use super::pool::{Answer, Failure, Order, Outcome, POLL};
use super::queue::lock;
use super::{Delivery, Options, RedisError};
use crate::TimeoutError;
use crate::pool::{Cell, PoolError, TaskError};
use crate::process::Target;

/// Tries (half a second apart) at answering an order while the server
/// does not take the answer.
const ANSWER_TRIES: u32 = 60;
/// Reply queues kept open at most (one per submitting pool).
const REPLY_HANDLES: usize = 64;

/// Serves the queue of a [`redis::Pool`](super::Pool) on this machine: it
/// takes orders from the queue and runs their tasks in a local
/// [`crate::Pool`], with at most two orders per worker process in hand, so
/// other machines get the rest.
///
/// Tasks are registered by name; an order naming a task this worker does
/// not know fails with [`TaskError::UnknownTask`]. Only registered
/// functions ever run: an order is data, never an address.
///
/// An order is acknowledged once its answer is on the submitting pool's
/// reply queue. If this machine dies first, its heartbeat lapses and
/// another worker runs the order again.
///
/// ```no_run
/// use std::sync::atomic::AtomicBool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() {
///     multiproc::init();
///     let pool = multiproc::Pool::new(4).unwrap();
///     let stop = AtomicBool::new(false);
///     multiproc::redis::Worker::new("redis://127.0.0.1:6379/0", "jobs")
///         .task("square", square)
///         .serve(&pool, &stop)
///         .unwrap();
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Worker {
    url: String,
    name: String,
    options: Options,
    tasks: HashMap<String, Target>,
    per_process: usize,
}

/// An order in the local pool.
#[derive(Debug)]
struct InFlight {
    delivery: String,
    reply: String,
    id: u64,
    cells: Vec<Arc<Cell>>,
    left: usize,
}

/// The orders in the local pool, by the index their first task's cell
/// sends when set (the others send the next indices).
#[derive(Debug, Default)]
struct Flight {
    orders: BTreeMap<usize, InFlight>,
    next_index: usize,
}

impl Worker {
    /// A worker for the queue `name` on the server at `url`, with the
    /// default [`Options`] and no task yet.
    pub fn new(url: &str, name: &str) -> Worker {
        Worker {
            url: url.to_owned(),
            name: name.to_owned(),
            options: Options::default(),
            tasks: HashMap::new(),
            per_process: 2,
        }
    }

    /// The queue handle's options (its `authkey` must be the submitters').
    pub fn options(mut self, options: Options) -> Worker {
        self.options = options;
        self
    }

    /// Orders in hand per local worker process (default 2, at least 1).
    pub fn orders_per_process(mut self, n: usize) -> Worker {
        self.per_process = n.max(1);
        self
    }

    /// Register `f` under `name`: orders naming it run `f`.
    pub fn task<A, R>(mut self, name: &str, f: fn(A) -> R) -> Worker
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.tasks.insert(name.to_owned(), Target::of(f));
        self
    }

    /// Serve the queue with `pool` until `stop` is set, then wait until the
    /// orders in hand are answered. Errors of the server while serving are
    /// reported on stderr and tried again; serving fails when the queue
    /// cannot be opened ([`PoolError::Server`]), and when `pool` is closed
    /// or broken (that error: the order in hand is left to other machines,
    /// which take it as soon as this handle's heartbeat is gone).
    pub fn serve(&self, pool: &crate::Pool, stop: &AtomicBool) -> Result<(), PoolError> {
        let queue = JoinableQueue::<Order>::open_with(&self.url, &self.name, self.options.clone())
            .map_err(|e| PoolError::Server(Box::new(e)))?;
        let s = Serving {
            worker: self,
            queue,
            flight: Mutex::new(Flight::default()),
            room: Condvar::new(),
            replies: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
        };
        let cap = self.per_process * pool.processes().max(1);
        let (tx, rx) = std::sync::mpsc::channel::<usize>();
        let mut failed = Ok(());
        std::thread::scope(|scope| {
            let s = &s;
            scope.spawn(move || s.answer_loop(&rx));
            while !stop.load(Ordering::Relaxed) {
                if !s.wait_for_room(cap) {
                    continue;
                }
                match s.queue.get_delivery_timeout(POLL) {
                    Ok(d) => {
                        if let Err(e) = s.dispatch(pool, d, &tx) {
                            failed = Err(e);
                            break;
                        }
                    }
                    Err(TimeoutError::Timeout) => {}
                    Err(TimeoutError::Failed(
                        e @ (RedisError::Decode { .. } | RedisError::Unauthenticated(_)),
                    )) => {
                        // Buried as a dead letter; the worker goes on.
                        eprintln!("multiproc::redis::Worker: an order was refused ({e})");
                    }
                    Err(TimeoutError::Failed(e)) => {
                        eprintln!(
                            "multiproc::redis::Worker: taking an order failed ({e}); retrying"
                        );
                        std::thread::sleep(POLL);
                    }
                }
            }
            s.stopping.store(true, Ordering::Relaxed);
        });
        failed
    }
}

/// One `serve` call's state, shared by its two threads.
struct Serving<'w> {
    worker: &'w Worker,
    queue: JoinableQueue<Order>,
    flight: Mutex<Flight>,
    /// Signalled when an order leaves `flight`.
    room: Condvar,
    replies: Mutex<HashMap<String, Queue<Answer>>>,
    stopping: AtomicBool,
}

impl Serving<'_> {
    /// Whether fewer than `cap` orders are in hand (waiting a little for
    /// one to leave).
    fn wait_for_room(&self, cap: usize) -> bool {
        let f = lock(&self.flight);
        if f.orders.len() < cap {
            return true;
        }
        let (f, _) = self
            .room
            .wait_timeout(f, POLL)
            .unwrap_or_else(|e| e.into_inner());
        f.orders.len() < cap
    }

    /// Hand an order's tasks to the local pool, or answer it at once if no
    /// task of its name is registered; the pool's error if it takes no
    /// more tasks.
    fn dispatch(
        &self,
        pool: &crate::Pool,
        d: Delivery<Order>,
        tx: &std::sync::mpsc::Sender<usize>,
    ) -> Result<(), PoolError> {
        let Delivery {
            value: order,
            id: delivery,
            ..
        } = d;
        let n = order.args.len();
        let fail_all = |f: &dyn Fn() -> Failure| -> Vec<Outcome> {
            (0..n).map(|_| Outcome::Failed(f())).collect()
        };
        let Some(&target) = self.worker.tasks.get(&order.task) else {
            let outcomes = fail_all(&|| Failure::UnknownTask(order.task.clone()));
            self.answer(&delivery, &order.reply, order.id, outcomes);
            return Ok(());
        };
        if n == 0 {
            self.answer(&delivery, &order.reply, order.id, Vec::new());
            return Ok(());
        }
        let mut f = lock(&self.flight);
        let first = f.next_index;
        let args = order.args.into_iter().map(ByteBuf::into_vec).collect();
        match pool.submit_encoded(target, args, tx, first) {
            Ok(cells) => {
                f.next_index += n;
                f.orders.insert(
                    first,
                    InFlight {
                        delivery,
                        reply: order.reply,
                        id: order.id,
                        cells,
                        left: n,
                    },
                );
            }
            Err(e) => {
                // This machine cannot run anything: leave the order to the
                // others (dropping the queue handle deletes the heartbeat,
                // so it is reclaimed at once) and stop serving.
                drop(f);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The answering thread: each finished task's index, until the serve
    /// loop stops and nothing is in hand.
    fn answer_loop(&self, rx: &std::sync::mpsc::Receiver<usize>) {
        loop {
            match rx.recv_timeout(POLL) {
                Ok(index) => {
                    let done = {
                        let mut f = lock(&self.flight);
                        let key = f.orders.range(..=index).next_back().map(|(k, _)| *k);
                        match key {
                            Some(k) => {
                                let o = f.orders.get_mut(&k).expect("found");
                                o.left -= 1;
                                if o.left == 0 {
                                    f.orders.remove(&k)
                                } else {
                                    None
                                }
                            }
                            None => None,
                        }
                    };
                    if let Some(o) = done {
                        let outcomes = o.cells.iter().map(|c| outcome(c.take())).collect();
                        self.answer(&o.delivery, &o.reply, o.id, outcomes);
                        self.room.notify_all();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.stopping.load(Ordering::Relaxed) && lock(&self.flight).orders.is_empty()
                    {
                        return;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Put the answer on `reply`, then acknowledge the order, trying again
    /// while the server fails. An answer to a pool that has ended (its
    /// reply queue removed) is dropped.
    fn answer(&self, delivery: &str, reply: &str, id: u64, outcomes: Vec<Outcome>) {
        let mut answer = Some(Answer { id, outcomes });
        for attempt in 1..=ANSWER_TRIES {
            let r = match answer.take() {
                Some(a) => self.send(reply, a),
                None => Ok(()),
            };
            let r = r.and_then(|()| match self.queue.task_done_for(delivery) {
                // Finished already (a reply lost with the connection) or
                // not ours any more: nothing left to do here.
                Ok(()) | Err(RedisError::TooManyTaskDone | RedisError::Reclaimed(_)) => Ok(()),
                Err(e) => Err((None, e)),
            });
            match r {
                Ok(()) => return,
                Err((back, e)) => {
                    answer = back;
                    if attempt == ANSWER_TRIES {
                        // The order stays with this worker until it stops
                        // (its heartbeat then lapses, and another runs it).
                        eprintln!(
                            "multiproc::redis::Worker: answering order {id} failed ({e}); giving up"
                        );
                        return;
                    }
                    eprintln!(
                        "multiproc::redis::Worker: answering order {id} failed ({e}); retrying"
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    /// Put `a` on the reply queue `reply`; the answer back on failure.
    fn send(&self, reply: &str, a: Answer) -> Result<(), (Option<Answer>, RedisError)> {
        let mut replies = lock(&self.replies);
        if !replies.contains_key(reply) {
            if replies.len() >= REPLY_HANDLES {
                replies.clear();
            }
            let options = Options {
                maxsize: 0,
                consumer: None,
                ..self.worker.options.clone()
            };
            match Queue::open_existing(&self.worker.url, reply, options) {
                Ok(q) => {
                    replies.insert(reply.to_owned(), q);
                }
                Err(RedisError::Removed(_)) => return Ok(()),
                Err(e) => return Err((Some(a), e)),
            }
        }
        let q = replies.get(reply).expect("just opened");
        match q.put(a) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.error, RedisError::Removed(_)) => {
                replies.remove(reply);
                Ok(())
            }
            Err(e) => Err((Some(e.item), e.error)),
        }
    }
}

/// A task's outcome as it crosses the server.
fn outcome(raw: Result<(Vec<u8>, Vec<std::os::fd::OwnedFd>), TaskError>) -> Outcome {
    match raw {
        Ok((bytes, fds)) if fds.is_empty() => Outcome::Done(ByteBuf::from(bytes)),
        Ok(_) => Outcome::Failed(Failure::Other(
            "a result that holds OS handles cannot go through Redis".into(),
        )),
        Err(e) => Outcome::Failed(e.into()),
    }
}
