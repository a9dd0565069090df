//! `asyncio` support: a native async operation (a Rust future of
//! multiproc's async API) that Python polls. Its waker adds to an eventfd,
//! which the event loop watches with `add_reader` (`multiproc._aio.drive`):
//! no thread per call, and multiproc's own waiter thread does the futex
//! sleeping.

use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// What an operation's future yields: the step that makes its Python
/// result (or error), run with the GIL held.
pub(crate) type Done = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

type Op = Pin<Box<dyn Future<Output = Done> + Send>>;

/// Wakes by signalling the eventfd.
struct FdWake(OwnedFd);

impl Wake for FdWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // A failed write to our own eventfd cannot be reported to anyone
        // here; the operation then waits for its next liveness check.
        let _ = multiproc_sys::fd::eventfd_signal(&self.0);
    }
}

/// A native async operation in progress: `poll()` it, and when it says
/// not yet, wait for `fileno()` to turn readable (see `multiproc._aio`).
/// `close()` (or dropping it) cancels: nothing is taken or put by a
/// cancelled operation.
#[pyclass(module = "multiproc._multiproc", frozen)]
pub struct AsyncOp {
    op: Mutex<Option<Op>>,
    /// `close` was called (perhaps while a `poll` had the operation out).
    closed: AtomicBool,
    wake: Arc<FdWake>,
    waker: Waker,
}

impl std::fmt::Debug for AsyncOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncOp")
            .field("fd", &self.wake.0.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl AsyncOp {
    /// An operation that runs `f`.
    pub(crate) fn new(f: impl Future<Output = Done> + Send + 'static) -> PyResult<Self> {
        let wake = Arc::new(FdWake(multiproc_sys::fd::eventfd()?));
        Ok(AsyncOp {
            op: Mutex::new(Some(Box::pin(f))),
            closed: AtomicBool::new(false),
            waker: Waker::from(wake.clone()),
            wake,
        })
    }

    fn op(&self) -> MutexGuard<'_, Option<Op>> {
        self.op.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl AsyncOp {
    /// The eventfd that turns readable when the operation may progress.
    fn fileno(&self) -> RawFd {
        self.wake.0.as_raw_fd()
    }

    /// Run the operation as far as it goes now: `(True, result)` when it
    /// is done (or its error raised), `(False, None)` to wait for
    /// `fileno()`.
    fn poll(&self, py: Python<'_>) -> PyResult<(bool, Py<PyAny>)> {
        multiproc_sys::fd::eventfd_drain(&self.wake.0)?;
        // Out of the mutex while polled, so that no lock is held while the
        // GIL is let go and taken back (a `close` from another thread
        // meanwhile marks it closed instead of waiting).
        let Some(mut op) = self.op().take() else {
            return Err(PyRuntimeError::new_err(
                "the operation is over or in progress",
            ));
        };
        let waker = &self.waker;
        // Without the GIL: an attempt may wait briefly for a queue's lock.
        let polled = crate::detach(py, || op.as_mut().poll(&mut Context::from_waker(waker)));
        match polled {
            Poll::Pending => {
                // Ordering::Relaxed: `closed` is set and read under `op`'s
                // mutex, which orders it.
                let mut g = self.op();
                if !self.closed.load(Ordering::Relaxed) {
                    *g = Some(op);
                }
                drop(g);
                Ok((false, py.None()))
            }
            Poll::Ready(done) => Ok((true, done(py)?)),
        }
    }

    /// Cancel (drop the operation; a wake-up it was given passes on).
    fn close(&self) {
        let mut g = self.op();
        // Ordering::Relaxed: under the mutex, as in `poll`.
        self.closed.store(true, Ordering::Relaxed);
        let op = g.take();
        drop(g);
        drop(op);
    }
}
