//! `multiproc.redis`: the Rust `multiproc::redis` objects over records of
//! the local queues' format (bytes as they are, other objects pickled), so
//! Python and Rust share one implementation of the protocol.

use std::time::Duration;

use multiproc::redis::{self as r, Delivery, Dict, JoinableQueue, Options, Queue, RedisError};
use multiproc::{SendTimeoutError, TimeoutError};
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use serde_bytes::ByteBuf;

use crate::queue::{decode, encode};
use crate::{deadline, detach, errors, sliced};

create_exception!(
    _multiproc,
    RedisServerError,
    PyOSError,
    "The Redis server refused, or the connection to it failed."
);
create_exception!(
    _multiproc,
    RedisReclaimedError,
    RedisServerError,
    "The delivery went to another consumer: this one's heartbeat lapsed."
);
create_exception!(
    _multiproc,
    RedisAuthenticationError,
    RedisServerError,
    "An item or value not signed with the object's authkey (refused, not unpickled)."
);

create_exception!(
    _multiproc,
    RedisRemovedError,
    RedisServerError,
    "The queue was removed from the server (a handle opened with existing=True)."
);

/// The deadline of a `block`/`timeout` call: now when not blocking.
fn until(block: bool, timeout: Option<f64>) -> Option<std::time::Instant> {
    if block {
        deadline(timeout)
    } else {
        Some(std::time::Instant::now())
    }
}

/// The Python exception for `e`.
fn error(e: RedisError) -> PyErr {
    match e {
        RedisError::Closed => errors::closed("Queue"),
        RedisError::TooManyTaskDone => PyValueError::new_err("task_done() called too many times"),
        RedisError::Handles => PyTypeError::new_err(e.to_string()),
        RedisError::Reclaimed(_) => RedisReclaimedError::new_err(e.to_string()),
        RedisError::Unauthenticated(_) => RedisAuthenticationError::new_err(e.to_string()),
        RedisError::Removed(_) => RedisRemovedError::new_err(e.to_string()),
        other => RedisServerError::new_err(other.to_string()),
    }
}

#[derive(Debug)]
enum Kind {
    Plain(Queue<ByteBuf>),
    Joinable(JoinableQueue<ByteBuf>),
}

/// Both kinds' common operations.
macro_rules! either {
    ($self:expr, $q:ident => $e:expr) => {
        match &$self.q {
            Kind::Plain($q) => $e,
            Kind::Joinable($q) => $e,
        }
    };
}

/// A Redis-backed queue handle (`multiproc.redis.Queue` and
/// `JoinableQueue` wrap it).
#[pyclass(module = "multiproc._multiproc", frozen)]
#[derive(Debug)]
pub struct RawRedisQueue {
    q: Kind,
}

impl RawRedisQueue {
    fn joinable(&self) -> PyResult<&JoinableQueue<ByteBuf>> {
        match &self.q {
            Kind::Joinable(q) => Ok(q),
            Kind::Plain(_) => Err(PyValueError::new_err("not a JoinableQueue")),
        }
    }
}

#[pymethods]
impl RawRedisQueue {
    /// Open queue `name` at `url`.
    #[new]
    #[pyo3(signature = (url, name, joinable, maxsize = 0, heartbeat = 5.0, max_deliveries = 5, consumer = None, authkey = None, existing = false))]
    #[allow(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn new(
        py: Python<'_>,
        url: &str,
        name: &str,
        joinable: bool,
        maxsize: usize,
        heartbeat: f64,
        max_deliveries: u64,
        consumer: Option<String>,
        authkey: Option<Vec<u8>>,
        existing: bool,
    ) -> PyResult<Self> {
        if !(heartbeat.is_finite() && heartbeat > 0.0) {
            return Err(PyValueError::new_err(
                "heartbeat must be a positive number of seconds",
            ));
        }
        let options = Options {
            maxsize,
            heartbeat: Duration::from_secs_f64(heartbeat),
            max_deliveries,
            consumer,
            authkey,
        };
        let q = detach(py, || {
            if joinable {
                JoinableQueue::open_with(url, name, options).map(Kind::Joinable)
            } else if existing {
                Queue::open_existing(url, name, options).map(Kind::Plain)
            } else {
                Queue::open_with(url, name, options).map(Kind::Plain)
            }
        })
        .map_err(error)?;
        Ok(RawRedisQueue { q })
    }

    /// Put `obj`, waiting for room if `block` (at most `timeout` seconds);
    /// `queue.Full` otherwise.
    #[pyo3(signature = (obj, block = true, timeout = None))]
    fn put(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let mut rec = Vec::new();
        encode(py, obj, &mut rec)?;
        let until = until(block, timeout);
        let r = sliced(
            py,
            until,
            |t| {
                either!(self, q => q.put_timeout(ByteBuf::from(rec.clone()), t).map_err(|e| match e {
                    SendTimeoutError::Timeout(_) => None,
                    SendTimeoutError::Failed(e) => Some(e.error),
                }))
            },
            |r| matches!(r, Err(None)),
        )?;
        match r {
            Ok(()) => Ok(()),
            Err(None) => Err(errors::full(py)),
            Err(Some(e)) => Err(error(e)),
        }
    }

    /// `(obj, id, deliveries)` of the next item, waiting if `block` (at
    /// most `timeout` seconds); `queue.Empty` otherwise.
    #[pyo3(signature = (block = true, timeout = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<(Bound<'py, PyAny>, String, u64)> {
        let until = until(block, timeout);
        let r = sliced(
            py,
            until,
            |t| either!(self, q => q.get_delivery_timeout(t)),
            |r| matches!(r, Err(TimeoutError::Timeout)),
        )?;
        let d: Delivery<ByteBuf> = match r {
            Ok(d) => d,
            Err(TimeoutError::Timeout) => return Err(errors::empty(py)),
            Err(TimeoutError::Failed(e)) => return Err(error(e)),
        };
        match decode(py, &d.value) {
            Ok(obj) => Ok((obj, d.id, d.deliveries)),
            Err(e) => {
                // Not lost: kept in the dead letters, where it can be
                // looked at (and requeued once it can be unpickled).
                detach(py, || either!(self, q => q.dead_letter(&d, "unpickle"))).map_err(error)?;
                Err(e)
            }
        }
    }

    /// Finish the oldest item this handle got (`JoinableQueue`).
    fn task_done(&self, py: Python<'_>) -> PyResult<()> {
        let q = self.joinable()?;
        detach(py, || q.task_done()).map_err(error)
    }

    /// Finish delivery `id` of this handle (`JoinableQueue`).
    fn task_done_for(&self, py: Python<'_>, id: &str) -> PyResult<()> {
        let q = self.joinable()?;
        detach(py, || q.task_done_for(id)).map_err(error)
    }

    /// Wait until every item put is finished (`JoinableQueue`); `False` if
    /// `timeout` seconds passed first.
    #[pyo3(signature = (timeout = None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let q = self.joinable()?;
        let r = sliced(
            py,
            deadline(timeout),
            |t| q.join_timeout(t),
            |r| matches!(r, Err(TimeoutError::Timeout)),
        )?;
        match r {
            Ok(()) => Ok(true),
            Err(TimeoutError::Timeout) => Ok(false),
            Err(TimeoutError::Failed(e)) => Err(error(e)),
        }
    }

    /// Items put and not finished (`JoinableQueue`).
    fn unfinished(&self, py: Python<'_>) -> PyResult<u64> {
        let q = self.joinable()?;
        detach(py, || q.unfinished()).map_err(error)
    }

    /// Items put and not yet delivered.
    fn qsize(&self, py: Python<'_>) -> PyResult<usize> {
        detach(py, || either!(self, q => q.qsize())).map_err(error)
    }

    /// Whether `maxsize` items wait.
    fn full(&self, py: Python<'_>) -> PyResult<bool> {
        detach(py, || either!(self, q => q.full())).map_err(error)
    }

    /// This handle puts no more.
    fn close(&self) {
        either!(self, q => q.close())
    }

    /// This handle's consumer name.
    #[getter]
    fn consumer(&self) -> String {
        either!(self, q => q.consumer().to_owned())
    }

    /// The dead letters: `(id, original_id, deliveries, consumer, reason,
    /// obj or the exception that stopped it)`.
    #[allow(clippy::type_complexity, reason = "a Python tuple")]
    fn dead_letters<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Vec<(String, String, u64, String, String, Bound<'py, PyAny>)>> {
        let dead = detach(py, || either!(self, q => q.dead_letters())).map_err(error)?;
        dead.into_iter()
            .map(|d| {
                let value = match d.value {
                    Ok(b) => decode(py, &b)
                        .unwrap_or_else(|e| e.into_value(py).into_bound(py).into_any()),
                    Err(e) => error(e).into_value(py).into_bound(py).into_any(),
                };
                Ok((
                    d.id,
                    d.original_id,
                    d.deliveries,
                    d.consumer,
                    d.reason,
                    value,
                ))
            })
            .collect()
    }

    /// Put dead letter `id` back on the queue; `False` if there is none.
    fn requeue(&self, py: Python<'_>, id: &str) -> PyResult<bool> {
        detach(py, || either!(self, q => q.requeue(id))).map_err(error)
    }
}

/// A Redis-backed dict handle over records (`multiproc.redis.Dict` wraps
/// it).
#[pyclass(module = "multiproc._multiproc", frozen)]
#[derive(Debug)]
pub struct RawRedisDict {
    d: Dict<ByteBuf, ByteBuf>,
}

fn record(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<ByteBuf> {
    let mut rec = Vec::new();
    encode(py, obj, &mut rec)?;
    Ok(ByteBuf::from(rec))
}

fn object<'py>(py: Python<'py>, b: Option<ByteBuf>) -> PyResult<Option<Bound<'py, PyAny>>> {
    b.map(|b| decode(py, &b)).transpose()
}

#[pymethods]
impl RawRedisDict {
    /// Open dict `name` at `url`.
    #[new]
    #[pyo3(signature = (url, name, authkey = None))]
    fn new(py: Python<'_>, url: &str, name: &str, authkey: Option<Vec<u8>>) -> PyResult<Self> {
        let d = detach(py, || Dict::open_with(url, name, authkey)).map_err(error)?;
        Ok(RawRedisDict { d })
    }

    /// The value at `key`, or `None` if absent (`contains` tells a stored
    /// `None` apart).
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let k = record(py, key)?;
        let v = detach(py, || self.d.get(&k)).map_err(error)?;
        object(py, v)
    }

    /// Set `key` to `value`.
    fn set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (k, v) = (record(py, key)?, record(py, value)?);
        detach(py, || self.d.set(&k, &v)).map_err(error)
    }

    /// Remove `key`; its value, or `None`, and whether it was there.
    fn remove<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<(bool, Option<Bound<'py, PyAny>>)> {
        let k = record(py, key)?;
        let v = detach(py, || self.d.remove(&k)).map_err(error)?;
        Ok((v.is_some(), object(py, v)?))
    }

    /// Whether `key` is there.
    fn contains(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = record(py, key)?;
        detach(py, || self.d.contains_key(&k)).map_err(error)
    }

    /// The number of keys.
    fn len(&self, py: Python<'_>) -> PyResult<usize> {
        detach(py, || self.d.len()).map_err(error)
    }

    /// Every `(key, value)`.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
        let items = detach(py, || self.d.items()).map_err(error)?;
        items
            .into_iter()
            .map(|(k, v)| Ok((decode(py, &k)?, decode(py, &v)?)))
            .collect()
    }

    /// Remove every key.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        detach(py, || self.d.clear()).map_err(error)
    }

    /// Set `key` to `new` if its value is `expected` now (`has_expected`
    /// false: if it is absent); whether it was set.
    fn compare_and_set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        has_expected: bool,
        expected: &Bound<'_, PyAny>,
        new: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let k = record(py, key)?;
        let e = if has_expected {
            Some(record(py, expected)?)
        } else {
            None
        };
        let n = record(py, new)?;
        detach(py, || self.d.compare_and_set(&k, e.as_ref(), &n)).map_err(error)
    }
}

/// Delete queue or dict `name` and everything of it at `url`.
#[pyfunction]
pub fn redis_remove(py: Python<'_>, url: &str, name: &str) -> PyResult<()> {
    detach(py, || r::remove(url, name)).map_err(error)
}

/// Add this module's classes, function and exceptions to `m`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RawRedisQueue>()?;
    m.add_class::<RawRedisDict>()?;
    m.add_function(wrap_pyfunction!(redis_remove, m)?)?;
    let py = m.py();
    m.add("RedisServerError", py.get_type::<RedisServerError>())?;
    m.add("RedisReclaimedError", py.get_type::<RedisReclaimedError>())?;
    m.add("RedisRemovedError", py.get_type::<RedisRemovedError>())?;
    m.add(
        "RedisAuthenticationError",
        py.get_type::<RedisAuthenticationError>(),
    )?;
    Ok(())
}
