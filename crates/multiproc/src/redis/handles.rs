//! `Queue` and `JoinableQueue`: the public handles over [`Core`].

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::queue::{Core, Wait, lock};
use super::{DeadLetter, Delivery, Options, PutError, RedisError, encode};
use crate::{SendTimeoutError, TimeoutError, TryError, TrySendError};

macro_rules! queue_common {
    ($ty:ident, $joinable:expr) => {
        impl<T: Serialize + DeserializeOwned> $ty<T> {
            /// Open the queue `name` on the server at `url`
            /// (`redis://host:port/db`), creating it if needed, with the
            /// default [`Options`].
            pub fn open(url: &str, name: &str) -> Result<Self, RedisError> {
                Self::open_with(url, name, Options::default())
            }

            /// [`open`](Self::open) with `options`.
            pub fn open_with(url: &str, name: &str, options: Options) -> Result<Self, RedisError> {
                Ok($ty {
                    core: Core::open(url, name, options, $joinable, false)?,
                    _item: PhantomData,
                })
            }

            /// Put `item`, waiting while the queue holds `maxsize` items.
            pub fn put(&self, item: T) -> Result<(), PutError<T>> {
                match self.put_wait(item, Wait::Forever) {
                    Ok(()) => Ok(()),
                    Err(SendTimeoutError::Failed(e)) => Err(e),
                    Err(SendTimeoutError::Timeout(item)) => Err(PutError {
                        error: RedisError::Protocol("a put without a deadline timed out".into()),
                        item,
                    }),
                }
            }

            /// Put `item` if there is room now; [`TrySendError::Full`]
            /// (with the item) otherwise.
            pub fn try_put(&self, item: T) -> Result<(), TrySendError<PutError<T>>> {
                self.put_wait(item, Wait::Now).map_err(|e| match e {
                    SendTimeoutError::Timeout(item) => TrySendError::Full(item),
                    SendTimeoutError::Failed(e) => TrySendError::Failed(e),
                })
            }

            /// Put `item`, waiting at most `timeout` for room
            /// (`Duration::MAX`: no limit).
            pub fn put_timeout(
                &self,
                item: T,
                timeout: Duration,
            ) -> Result<(), SendTimeoutError<PutError<T>>> {
                self.put_wait(item, Wait::of(timeout))
            }

            fn put_wait(&self, item: T, wait: Wait) -> Result<(), SendTimeoutError<PutError<T>>> {
                let data = match encode(&item) {
                    Ok(d) => d,
                    Err(error) => return Err(SendTimeoutError::Failed(PutError { error, item })),
                };
                match self.core.put(std::slice::from_ref(&data), wait) {
                    Ok(1) => Ok(()),
                    Ok(_) => Err(SendTimeoutError::Timeout(item)),
                    Err((_, error)) => Err(SendTimeoutError::Failed(PutError { error, item })),
                }
            }

            /// Put several items in order, up to 512 per round trip (one
            /// script each, so a batch is never interleaved with another
            /// producer's items), waiting for room as needed. How many went
            /// in, or the count so far and the error with the first item
            /// not put (the items after it are dropped, as with a local
            /// queue's `put_many`).
            pub fn put_many<I: IntoIterator<Item = T>>(
                &self,
                items: I,
            ) -> Result<usize, (usize, PutError<T>)> {
                let mut held: Vec<T> = Vec::new();
                let mut data = Vec::new();
                let mut failed = None;
                for item in items {
                    match encode(&item) {
                        Ok(d) => {
                            data.push(d);
                            held.push(item);
                        }
                        Err(error) => {
                            // Put what came before it, then report it.
                            failed = Some(PutError { error, item });
                            break;
                        }
                    }
                }
                if data.is_empty() {
                    // Nothing to put (a closed handle included): only the
                    // item that did not encode, if any, to hand back.
                    return failed.map_or(Ok(0), |e| Err((0, e)));
                }
                match self.core.put(&data, Wait::Forever) {
                    Ok(n) if n == data.len() => match failed {
                        None => Ok(n),
                        Some(e) => Err((n, e)),
                    },
                    Ok(n) => Err((
                        n,
                        PutError {
                            error: RedisError::Protocol(
                                "a put without a deadline timed out".into(),
                            ),
                            item: held.swap_remove(n),
                        },
                    )),
                    // Nothing of the failed script went in (a script runs
                    // whole or not at all), unless its reply was lost with
                    // the connection.
                    Err((n, error)) => Err((
                        n,
                        PutError {
                            error,
                            item: held.swap_remove(n),
                        },
                    )),
                }
            }

            /// Remove and return an item, waiting for one.
            pub fn get(&self) -> Result<T, RedisError> {
                self.get_delivery().map(|d| d.value)
            }

            /// An item if one is there now; [`TryError::WouldBlock`]
            /// otherwise.
            pub fn try_get(&self) -> Result<T, TryError<RedisError>> {
                match self.deliver(Wait::Now) {
                    Ok(d) => Ok(d.value),
                    Err(TimeoutError::Timeout) => Err(TryError::WouldBlock),
                    Err(TimeoutError::Failed(e)) => Err(TryError::Failed(e)),
                }
            }

            /// An item, waiting at most `timeout` (`Duration::MAX`: no
            /// limit).
            pub fn get_timeout(&self, timeout: Duration) -> Result<T, TimeoutError<RedisError>> {
                self.deliver(Wait::of(timeout)).map(|d| d.value)
            }

            /// [`get`](Self::get) with the item's entry id and delivery
            /// count.
            pub fn get_delivery(&self) -> Result<Delivery<T>, RedisError> {
                self.deliver(Wait::Forever).map_err(|e| match e {
                    TimeoutError::Failed(e) => e,
                    TimeoutError::Timeout => {
                        RedisError::Protocol("a get without a deadline timed out".into())
                    }
                })
            }

            /// [`get_delivery`](Self::get_delivery), waiting at most
            /// `timeout`.
            pub fn get_delivery_timeout(
                &self,
                timeout: Duration,
            ) -> Result<Delivery<T>, TimeoutError<RedisError>> {
                self.deliver(Wait::of(timeout))
            }

            fn deliver(&self, wait: Wait) -> Result<Delivery<T>, TimeoutError<RedisError>> {
                let mut d = self.core.deliver(wait, 1)?;
                d.pop().ok_or_else(|| {
                    TimeoutError::Failed(RedisError::Protocol("an empty delivery".into()))
                })
            }

            /// Up to `max` items in one round trip: waits (at most
            /// `timeout`, if given; `Duration::MAX`: no limit) for the
            /// first, then takes what is there. An item that is not a valid
            /// `T` (or not signed with the authkey) goes to the dead
            /// letters and is left out; if that was every item, its error
            /// is returned. A [`JoinableQueue`]'s items each need their
            /// `task_done`.
            pub fn get_many(
                &self,
                max: usize,
                timeout: Option<Duration>,
            ) -> Result<Vec<T>, TimeoutError<RedisError>> {
                Ok(self
                    .get_many_deliveries(max, timeout)?
                    .into_iter()
                    .map(|d| d.value)
                    .collect())
            }

            /// [`get_many`](Self::get_many) with each item's entry id and
            /// delivery count.
            pub fn get_many_deliveries(
                &self,
                max: usize,
                timeout: Option<Duration>,
            ) -> Result<Vec<Delivery<T>>, TimeoutError<RedisError>> {
                let wait = timeout.map_or(Wait::Forever, Wait::of);
                self.core.deliver(wait, max)
            }

            /// Move `delivery` (got from this handle) to the dead letters
            /// with `reason`: an item its caller cannot use (Python's
            /// unpickling failed). Finished for `join`, like every dead
            /// letter.
            pub fn dead_letter(
                &self,
                delivery: &Delivery<T>,
                reason: &str,
            ) -> Result<(), RedisError> {
                let data = encode(&delivery.value)?;
                self.core
                    .bury_delivery(&delivery.id, data, delivery.deliveries, reason)
            }

            /// The number of items put and not yet delivered.
            pub fn qsize(&self) -> Result<usize, RedisError> {
                self.core.qsize()
            }

            /// Whether no item waits for delivery.
            pub fn empty(&self) -> Result<bool, RedisError> {
                Ok(self.qsize()? == 0)
            }

            /// Whether `maxsize` items wait (never, without a `maxsize`).
            pub fn full(&self) -> Result<bool, RedisError> {
                let max = self.core.options.maxsize;
                Ok(max > 0 && self.qsize()? >= max)
            }

            /// This handle puts no more (`put` fails with
            /// [`RedisError::Closed`]); the queue itself lives on for the
            /// other handles, as a local queue's `close` leaves it.
            pub fn close(&self) {
                self.core.closed.store(true, Ordering::Relaxed);
            }

            /// Whether [`close`](Self::close) was called on this handle.
            pub fn is_closed(&self) -> bool {
                self.core.closed.load(Ordering::Relaxed)
            }

            /// This handle's consumer name.
            pub fn consumer(&self) -> &str {
                &self.core.consumer
            }

            /// The dead-letter stream: entries delivered more than
            /// `max_deliveries` times, or that did not decode.
            pub fn dead_letters(&self) -> Result<Vec<DeadLetter<T>>, RedisError> {
                self.core.dead_letters()
            }

            /// Put dead letter `id` back on the queue as a new item; `false`
            /// if there is no such dead letter.
            pub fn requeue(&self, id: &str) -> Result<bool, RedisError> {
                self.core.requeue(id)
            }
        }
    };
}

/// A queue on a Redis stream (Python's `multiprocessing.Queue`, across
/// machines). An item is acknowledged as it is read; if its consumer dies
/// between the read and the acknowledgement it is delivered again. See the
/// [module docs](super) for what differs from a local queue.
#[derive(Debug)]
pub struct Queue<T> {
    core: Core,
    _item: PhantomData<fn(T) -> T>,
}

/// A joinable queue on a Redis stream (Python's
/// `multiprocessing.JoinableQueue`, across machines): a delivery stays
/// pending with its consumer until `task_done`, and goes to another consumer
/// if its consumer dies first (at least once). See the [module docs](super).
#[derive(Debug)]
pub struct JoinableQueue<T> {
    core: Core,
    _item: PhantomData<fn(T) -> T>,
}

queue_common!(Queue, false);

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// A handle that only puts to the queue `name` while it exists: once
    /// it is removed ([`remove`](super::remove)), `put` fails with
    /// [`RedisError::Removed`] instead of creating it again (a pool's reply
    /// queue, answered after its pool ended). Opening it fails so too when
    /// it does not exist.
    pub fn open_existing(url: &str, name: &str, options: Options) -> Result<Self, RedisError> {
        Ok(Queue {
            core: Core::open(url, name, options, false, true)?,
            _item: PhantomData,
        })
    }
}
queue_common!(JoinableQueue, true);

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// Finish the oldest item this handle got and has not finished
    /// (Python's `task_done`): it is acknowledged and deleted, and `join`
    /// wakes when none is left.
    pub fn task_done(&self) -> Result<(), RedisError> {
        self.finish(|out| out.front().cloned())
    }

    /// Finish the delivery `id` (from [`Delivery::id`]) of this handle.
    pub fn task_done_for(&self, id: &str) -> Result<(), RedisError> {
        self.finish(|out| out.iter().find(|o| *o == id).cloned())
    }

    /// Finish the outstanding delivery `pick` names. It stays outstanding
    /// (under the lock) until the server has answered: a look at this
    /// consumer's own pending entries meanwhile leaves it alone, and after
    /// a failure it can be finished again.
    fn finish(
        &self,
        pick: impl FnOnce(&std::collections::VecDeque<String>) -> Option<String>,
    ) -> Result<(), RedisError> {
        let mut out = lock(&self.core.outstanding);
        let id = pick(&out).ok_or(RedisError::TooManyTaskDone)?;
        let r = self.core.done(&id);
        if matches!(r, Ok(()) | Err(RedisError::Reclaimed(_))) {
            if let Some(at) = out.iter().position(|o| *o == id) {
                out.remove(at);
            }
        }
        r
    }

    /// Wait until every item put has been finished.
    pub fn join(&self) -> Result<(), RedisError> {
        self.core.join(Wait::Forever).map_err(|e| match e {
            TimeoutError::Failed(e) => e,
            TimeoutError::Timeout => {
                RedisError::Protocol("a join without a deadline timed out".into())
            }
        })
    }

    /// [`join`](Self::join), waiting at most `timeout`.
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), TimeoutError<RedisError>> {
        self.core.join(Wait::of(timeout))
    }

    /// Items put and not finished yet, by every handle.
    pub fn unfinished(&self) -> Result<u64, RedisError> {
        self.core.unfinished()
    }
}
