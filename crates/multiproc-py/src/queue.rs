//! `RawQueue`: the native side of `Queue`, `SimpleQueue` and
//! `JoinableQueue`.
//!
//! A record in the Rust queue's bytes API is one kind byte, then:
//!
//! | kind | rest |
//! |---|---|
//! | 0 | the bytes of a `bytes` object |
//! | 1 | the bytes of a `bytearray` |
//! | 2 | a pickle (protocol 5) with no out-of-band buffers |
//! | 3 | `u32` n, `u64` pickle length, n × `u64` buffer lengths (little endian), the pickle, the n buffers |
//!
//! `bytes`/`bytearray` skip pickle; other objects are pickled by
//! `multiproc._reduction.dumps` (a `ForkingPickler`, protocol 5) whose
//! out-of-band buffers (NumPy arrays, `PickleBuffer`s) are copied straight
//! into the record, not into the pickle.

use crate::aio::{AsyncOp, Done};
use crate::{deadline, errors, handle, sliced};
use multiproc::queue::{JoinableQueue, Queue, QueueBuilder};
use multiproc::{SendTimeoutError, TimeoutError};
use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyList};
use std::cell::RefCell;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// Scratch for records: grown once, reused (no page faults per message).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn helper<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || {
        Ok(py.import("multiproc._reduction")?.getattr(name)?.unbind())
    })
    .map(|f| f.bind(py))
}

/// A contiguous read-only view of a Python buffer's bytes.
fn with_bytes<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(f(b.as_bytes()));
    }
    let buf = PyBuffer::<u8>::get(obj)?;
    if !buf.is_c_contiguous() {
        let v = buf.to_vec(obj.py())?;
        return Ok(f(&v));
    }
    // SAFETY: `buf` holds the exporter's buffer (a C-contiguous run of
    // `len_bytes()` bytes at `buf_ptr()`) until it drops, after `f`
    // returns; the GIL is held throughout, so no Python code resizes it.
    let s = unsafe { std::slice::from_raw_parts(buf.buf_ptr() as *const u8, buf.len_bytes()) };
    Ok(f(s))
}

/// Encode `obj` as a record into `out` (cleared first).
pub(crate) fn encode(py: Python<'_>, obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    out.clear();
    if let Ok(b) = obj.cast_exact::<PyBytes>() {
        out.push(0);
        out.extend_from_slice(b.as_bytes());
        return Ok(());
    }
    if let Ok(b) = obj.cast_exact::<PyByteArray>() {
        out.push(1);
        // SAFETY: the GIL is held and no Python code runs while the slice
        // is copied, so the bytearray cannot be resized under it.
        out.extend_from_slice(unsafe { b.as_bytes() });
        return Ok(());
    }
    let r = helper(py, &DUMPS, "dumps")?.call1((obj,))?;
    let (pickle, bufs): (Bound<'_, PyAny>, Bound<'_, PyList>) = r.extract()?;
    if bufs.is_empty() {
        out.push(2);
        with_bytes(&pickle, |p| out.extend_from_slice(p))?;
        return Ok(());
    }
    out.push(3);
    out.extend_from_slice(&(bufs.len() as u32).to_le_bytes());
    let plen_at = out.len();
    out.extend_from_slice(&[0; 8]);
    let lens_at = out.len();
    out.resize(lens_at + 8 * bufs.len(), 0);
    let p0 = out.len();
    with_bytes(&pickle, |p| out.extend_from_slice(p))?;
    let plen = (out.len() - p0) as u64;
    out[plen_at..plen_at + 8].copy_from_slice(&plen.to_le_bytes());
    for (i, b) in bufs.iter().enumerate() {
        let b0 = out.len();
        with_bytes(&b, |s| out.extend_from_slice(s))?;
        let len = (out.len() - b0) as u64;
        out[lens_at + 8 * i..lens_at + 8 * i + 8].copy_from_slice(&len.to_le_bytes());
    }
    Ok(())
}

fn corrupt() -> PyErr {
    pyo3::exceptions::PyValueError::new_err("malformed queue record")
}

fn take<'a>(rec: &mut &'a [u8], n: usize) -> PyResult<&'a [u8]> {
    if rec.len() < n {
        return Err(corrupt());
    }
    let (a, b) = rec.split_at(n);
    *rec = b;
    Ok(a)
}

fn u64_at(rec: &mut &[u8]) -> PyResult<usize> {
    let b = take(rec, 8)?;
    usize::try_from(u64::from_le_bytes(b.try_into().expect("8 bytes"))).map_err(|_| corrupt())
}

/// Decode one record into the object it carries.
pub(crate) fn decode<'py>(py: Python<'py>, rec: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let Some((&kind, mut rest)) = rec.split_first() else {
        return Err(corrupt());
    };
    match kind {
        0 => Ok(PyBytes::new(py, rest).into_any()),
        1 => Ok(PyByteArray::new(py, rest).into_any()),
        2 => helper(py, &LOADS, "loads")?.call1((PyBytes::new(py, rest), py.None())),
        3 => {
            let n = u32::from_le_bytes(take(&mut rest, 4)?.try_into().expect("4 bytes")) as usize;
            let plen = u64_at(&mut rest)?;
            if n > rest.len() / 8 {
                return Err(corrupt());
            }
            let lens = (0..n)
                .map(|_| u64_at(&mut rest))
                .collect::<PyResult<Vec<_>>>()?;
            let pickle = PyBytes::new(py, take(&mut rest, plen)?);
            let bufs = PyList::empty(py);
            for len in lens {
                bufs.append(PyByteArray::new(py, take(&mut rest, len)?))?;
            }
            helper(py, &LOADS, "loads")?.call1((pickle, bufs))
        }
        _ => Err(corrupt()),
    }
}

/// The shared ring under `multiproc.Queue`, `SimpleQueue` and
/// `JoinableQueue`; its records are described in the module docs.
#[derive(Debug)]
#[pyclass(module = "multiproc._multiproc", subclass, frozen)]
pub struct RawQueue {
    q: Queue<()>,
    joinable: Option<JoinableQueue<()>>,
    /// Whether `put` was called on this handle: Python 3.13's `empty()`
    /// raises after `close()` only on a queue that was used (whose feeder
    /// thread, in `multiprocessing`, closed the reader).
    used: AtomicBool,
}

#[pymethods]
impl RawQueue {
    /// A queue holding at most `maxsize` items (`<= 0`: unbounded);
    /// `joinable` adds `task_done`/`join`.
    #[new]
    #[pyo3(signature = (maxsize = 0, joinable = false))]
    fn new(maxsize: i64, joinable: bool) -> PyResult<Self> {
        let mut b = QueueBuilder::default();
        if maxsize > 0 {
            b = b.maxsize(maxsize as usize);
        }
        if joinable {
            let j = b.build_joinable::<()>()?;
            Ok(RawQueue {
                q: (*j).clone(),
                joinable: Some(j),
                used: AtomicBool::new(false),
            })
        } else {
            Ok(RawQueue {
                q: b.build()?,
                joinable: None,
                used: AtomicBool::new(false),
            })
        }
    }

    /// Put `obj`, waiting for room if `block` (at most `timeout` seconds).
    #[pyo3(signature = (obj, block = true, timeout = None))]
    fn put(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        // Ordering::Relaxed: a flag this handle's own `_used` reads.
        self.used.store(true, Ordering::Relaxed);
        let mut rec = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let result = encode(py, obj, &mut rec).and_then(|()| {
            let first = self.q.try_put_bytes(&rec).map_err(SendTimeoutError::from);
            let r = if !block || !matches!(first, Err(SendTimeoutError::Timeout(()))) {
                first
            } else {
                let q = &self.q;
                let rec = &rec;
                sliced(
                    py,
                    deadline(timeout),
                    |t| q.put_bytes_timeout(rec, t),
                    |r| matches!(r, Err(SendTimeoutError::Timeout(()))),
                )?
            };
            r.map_err(|e| errors::put(py, e))
        });
        if rec.capacity() <= 64 << 20 {
            SCRATCH.with(|s| *s.borrow_mut() = rec);
        }
        result
    }

    /// Remove and return an item, waiting for one if `block` (at most
    /// `timeout` seconds); `queue.Empty` otherwise.
    #[pyo3(signature = (block = true, timeout = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut rec = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let first = self
            .q
            .try_get_bytes_into(&mut rec)
            .map_err(TimeoutError::from);
        let r = if !block || !matches!(first, Err(TimeoutError::Timeout)) {
            first
        } else {
            let q = &self.q;
            let rec = &mut rec;
            sliced(
                py,
                deadline(timeout),
                |t| q.get_bytes_into_timeout(rec, t),
                |r| matches!(r, Err(TimeoutError::Timeout)),
            )?
        };
        let result = r
            .map_err(|e| errors::get(py, e))
            .and_then(|()| decode(py, &rec));
        if rec.capacity() <= 64 << 20 {
            SCRATCH.with(|s| *s.borrow_mut() = rec);
        }
        result
    }

    /// A native async get (driven by `multiproc._aio.drive`).
    fn _get_async(&self) -> PyResult<AsyncOp> {
        let q = self.q.clone();
        AsyncOp::new(async move {
            let mut rec = Vec::new();
            let r = q.get_bytes_into_async(&mut rec).await;
            Box::new(move |py: Python<'_>| -> PyResult<Py<PyAny>> {
                r.map_err(|e| errors::get(py, TimeoutError::Failed(e)))?;
                Ok(decode(py, &rec)?.unbind())
            }) as Done
        })
    }

    /// A native async put of `obj` (driven by `multiproc._aio.drive`).
    fn _put_async(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<AsyncOp> {
        // Ordering::Relaxed: as in `put`.
        self.used.store(true, Ordering::Relaxed);
        let mut rec = Vec::new();
        encode(py, obj, &mut rec)?;
        let q = self.q.clone();
        AsyncOp::new(async move {
            let r = q.put_bytes_async(&rec).await;
            Box::new(move |py: Python<'_>| -> PyResult<Py<PyAny>> {
                r.map_err(|e| errors::put(py, SendTimeoutError::Failed(e)))?;
                Ok(py.None())
            }) as Done
        })
    }

    /// A native async join (`JoinableQueue` only).
    fn _join_async(&self) -> PyResult<AsyncOp> {
        let j = self.jq()?.clone();
        AsyncOp::new(async move {
            let r = j.join_async().await;
            Box::new(move |py: Python<'_>| -> PyResult<Py<PyAny>> {
                r.map_err(errors::join)?;
                Ok(py.None())
            }) as Done
        })
    }

    /// The number of items in the queue.
    fn qsize(&self) -> usize {
        self.q.qsize()
    }

    /// Whether the queue is empty.
    fn empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Whether the queue holds `maxsize` items.
    fn full(&self) -> bool {
        self.q.is_full()
    }

    /// Mark one task done (`JoinableQueue` only).
    fn task_done(&self) -> PyResult<()> {
        self.jq()?.task_done().map_err(errors::task_done)
    }

    /// Wait until every item put has been marked done (`JoinableQueue` only).
    fn join(&self, py: Python<'_>) -> PyResult<()> {
        let j = self.jq()?;
        match sliced(
            py,
            None,
            |t| j.join_timeout(t),
            |r| matches!(r, Err(TimeoutError::Timeout)),
        )? {
            Ok(()) => Ok(()),
            Err(TimeoutError::Failed(e)) => Err(errors::join(e)),
            // `sliced` without a deadline only returns what did not time out.
            Err(TimeoutError::Timeout) => Err(pyo3::exceptions::PyOSError::new_err(
                "join timed out without a deadline",
            )),
        }
    }

    /// `(joinable, state, fds)`: what the Python layer pickles.
    fn _state<'py>(&self, py: Python<'py>) -> PyResult<(bool, Bound<'py, PyBytes>, Vec<RawFd>)> {
        let (s, fds) = match &self.joinable {
            Some(j) => handle::state(py, j)?,
            None => handle::state(py, &self.q)?,
        };
        Ok((self.joinable.is_some(), s, fds))
    }

    /// Whether `put` was called on this handle.
    #[getter]
    fn _used(&self) -> bool {
        // Ordering::Relaxed: set by this handle's own `put`.
        self.used.load(Ordering::Relaxed)
    }

    /// Rebuild from [`_state`](Self::_state), taking ownership of `fds`.
    #[staticmethod]
    fn _rebuild(joinable: bool, state: &[u8], fds: Vec<RawFd>) -> PyResult<Self> {
        if joinable {
            let j: JoinableQueue<()> = handle::rebuild(state, fds)?;
            Ok(RawQueue {
                q: (*j).clone(),
                joinable: Some(j),
                used: AtomicBool::new(false),
            })
        } else {
            Ok(RawQueue {
                q: handle::rebuild(state, fds)?,
                joinable: None,
                used: AtomicBool::new(false),
            })
        }
    }
}

impl RawQueue {
    fn jq(&self) -> PyResult<&JoinableQueue<()>> {
        self.joinable
            .as_ref()
            .ok_or_else(|| pyo3::exceptions::PyAttributeError::new_err("not a JoinableQueue"))
    }
}
