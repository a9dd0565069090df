//! Locks, semaphores, events, conditions and barriers.
//!
//! A lock whose previous holder died holding it is acquired anyway: the
//! caller gets it, marked consistent, and a `multiproc.OwnerDiedWarning`
//! (a `RuntimeWarning`) is emitted. Only a lock left `NotRecoverable`
//! raises (`RuntimeError`).

use crate::aio::{AsyncOp, Done};
use crate::{deadline, errors, handle, interrupted, signal_check, sliced};
use multiproc::{
    AcquireError, Barrier, Condition, Event, Lock, LockTimeoutError, RLock, Semaphore,
    TimeoutError, TryLockError,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::os::fd::RawFd;
use std::time::Duration;

/// The outcome of an acquire, free of guards (which must not cross the
/// GIL release).
enum Got {
    Yes,
    No,
    OwnerDied,
    Failed(PyErr),
}

/// The outcome of a `try_lock` (as a zero timeout) or a `lock_timeout`.
fn got<G>(r: Result<G, LockTimeoutError<G>>, forget: impl FnOnce(G, bool)) -> Got {
    match r {
        Ok(g) => {
            forget(g, false);
            Got::Yes
        }
        Err(TimeoutError::Failed(AcquireError::OwnerDied(g))) => {
            forget(g, true);
            Got::OwnerDied
        }
        Err(TimeoutError::Timeout) => Got::No,
        Err(TimeoutError::Failed(e)) => Got::Failed(errors::acquire(e)),
    }
}

fn finish(py: Python<'_>, g: Got) -> PyResult<bool> {
    match g {
        Got::Yes => Ok(true),
        Got::No => Ok(false),
        Got::OwnerDied => {
            errors::warn_owner_died(py)?;
            Ok(true)
        }
        Got::Failed(e) => Err(e),
    }
}

/// Python's `acquire(block, timeout)` for a lock whose guards are
/// forgotten (the Python object releases): try first without releasing the
/// GIL, then wait in slices. `mark` repairs a lock taken from a dead owner.
fn acquire_guard<G>(
    py: Python<'_>,
    block: bool,
    timeout: Option<f64>,
    try_lock: impl FnOnce() -> Result<G, TryLockError<G>>,
    lock_timeout: impl Fn(Duration) -> Result<G, LockTimeoutError<G>> + Sync,
    mark: impl Fn(&G) + Sync,
) -> PyResult<bool> {
    let forget = |g: G, died: bool| {
        if died {
            mark(&g);
        }
        std::mem::forget(g);
    };
    let first = got(try_lock().map_err(TimeoutError::from), forget);
    let g = if !block || !matches!(first, Got::No) {
        first
    } else {
        sliced(
            py,
            deadline(timeout),
            |t| got(lock_timeout(t), forget),
            |g| matches!(g, Got::No),
        )?
    };
    finish(py, g)
}

/// One try of a fast path: `None` when the lock is taken; the guard (if
/// any) is forgotten, marked consistent first when its owner had died.
fn try_once<G>(
    py: Python<'_>,
    r: Result<G, TryLockError<G>>,
    mark: impl FnOnce(&G),
) -> Option<PyResult<bool>> {
    let r = r.map_err(TimeoutError::from);
    let g = got(r, |g, died| {
        if died {
            mark(&g);
        }
        std::mem::forget(g);
    });
    (!matches!(g, Got::No)).then(|| finish(py, g))
}

/// The native `Lock` and `RLock` classes: one body for both, so the two
/// cannot drift apart. `$extra` holds the methods only one of them has.
macro_rules! raw_lock_class {
    (
        $(#[$doc:meta])*
        $name:ident($lock:ty, $guard:path),
        release_doc = $release_doc:literal,
        { $($extra:tt)* }
    ) => {
        $(#[$doc])*
        #[derive(Debug)]
        #[pyclass(module = "multiproc._multiproc", subclass, frozen)]
        pub struct $name {
            pub(crate) l: $lock,
        }

        impl $name {
            /// One try, for the fast path (see `fastlock`): `None` when the
            /// lock is taken.
            pub(crate) fn try_once(&self, py: Python<'_>) -> Option<PyResult<bool>> {
                try_once(py, self.l.try_lock(), $guard)
            }

            /// Release (one level), for the fast path.
            pub(crate) fn release_once(&self) -> PyResult<()> {
                self.l.release().map_err(errors::release)
            }
        }

        #[pymethods]
        impl $name {
            /// `(state, fds)`: what the Python layer pickles.
            fn _state<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<RawFd>)> {
                handle::state(py, &self.l)
            }

            /// Rebuild from `_state`, taking ownership of `fds`.
            #[staticmethod]
            fn _rebuild(state: &[u8], fds: Vec<RawFd>) -> PyResult<Self> {
                Ok($name {
                    l: handle::rebuild::<$lock>(state, fds)?,
                })
            }

            /// A new lock, or (with `_state`/`_fds`, as unpickling passes
            /// them) the lock they describe. `ctx` is accepted for
            /// `multiprocessing`'s signature and ignored.
            #[new]
            #[pyo3(signature = (*, ctx = None, _state = None, _fds = None))]
            fn new(
                ctx: Option<&Bound<'_, PyAny>>,
                _state: Option<&[u8]>,
                _fds: Option<Vec<RawFd>>,
            ) -> PyResult<Self> {
                let _ = ctx;
                match _state {
                    Some(st) => Ok($name {
                        l: handle::rebuild::<$lock>(st, _fds.unwrap_or_default())?,
                    }),
                    None => Ok($name { l: <$lock>::new()? }),
                }
            }

            /// `with lock:` acquires (blocking).
            fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
                self.acquire(py, true, None)
            }

            /// Leaving `with lock:` releases.
            #[pyo3(signature = (*_args))]
            fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
                self.release()
            }

            /// Python's `acquire(block=True, timeout=None)` (`acquire`
            /// itself is the fast path in `fastlock`, which falls back to
            /// this).
            #[pyo3(name = "_acquire", signature = (block = true, timeout = None))]
            fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
                let l = &self.l;
                acquire_guard(py, block, timeout, || l.try_lock(), |t| l.lock_timeout(t), $guard)
            }

            #[doc = $release_doc]
            #[pyo3(name = "_release")]
            fn release(&self) -> PyResult<()> {
                self.l.release().map_err(errors::release)
            }

            /// Whether some process holds it.
            fn _is_locked(&self) -> bool {
                self.l.is_locked()
            }

            $($extra)*
        }
    };
}

raw_lock_class!(
    /// The native `Lock`.
    RawLock(Lock, multiproc::LockGuard::mark_consistent),
    release_doc = "Release; `ValueError` if it is not locked.",
    {
        /// A native async acquire (driven by `multiproc._aio.drive`); a
        /// lock taken from a dead owner is repaired with a warning, as by
        /// `acquire`. (`RLock` has none: its owner is a thread, and every
        /// task of an event loop runs on the same one.)
        fn _acquire_async(&self) -> PyResult<AsyncOp> {
            let l = self.l.clone();
            AsyncOp::new(async move {
                let g = match l.lock_async().await {
                    Ok(g) => {
                        std::mem::forget(g);
                        Got::Yes
                    }
                    Err(AcquireError::OwnerDied(g)) => {
                        g.mark_consistent();
                        std::mem::forget(g);
                        Got::OwnerDied
                    }
                    Err(e) => Got::Failed(errors::acquire(e)),
                };
                Box::new(move |py: Python<'_>| -> PyResult<Py<PyAny>> {
                    Ok(pybool(py, finish(py, g)?))
                }) as Done
            })
        }
    }
);

/// `b` as a Python object.
fn pybool(py: Python<'_>, b: bool) -> Py<PyAny> {
    pyo3::types::PyBool::new(py, b)
        .to_owned()
        .into_any()
        .unbind()
}

raw_lock_class!(
    /// The native `RLock`.
    RawRLock(RLock, multiproc::RLockGuard::mark_consistent),
    release_doc = "Release one level; `AssertionError` if this thread does not own it.",
    {
        /// Whether this thread owns it.
        fn _is_owned(&self) -> bool {
            self.l.is_owned()
        }
    }
);

/// The native `Semaphore` and `BoundedSemaphore` (`bounded`).
#[derive(Debug)]
#[pyclass(module = "multiproc._multiproc", subclass, frozen)]
pub struct RawSemaphore {
    s: Sem,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Sem {
    Plain(Semaphore),
    Bounded(multiproc::BoundedSemaphore),
}

macro_rules! sem {
    ($s:expr, $x:ident => $e:expr) => {
        match $s {
            Sem::Plain($x) => $e,
            Sem::Bounded($x) => $e,
        }
    };
}

#[pymethods]
impl RawSemaphore {
    #[new]
    #[pyo3(signature = (value = 1, bounded = false))]
    fn new(value: i64, bounded: bool) -> PyResult<Self> {
        let v = u32::try_from(value).map_err(|_| {
            pyo3::exceptions::PyValueError::new_err("semaphore initial value must be >= 0")
        })?;
        Ok(RawSemaphore {
            s: if bounded {
                Sem::Bounded(multiproc::BoundedSemaphore::new(v)?)
            } else {
                Sem::Plain(Semaphore::new(v)?)
            },
        })
    }

    /// Python's `acquire(block=True, timeout=None)`.
    #[pyo3(signature = (block = true, timeout = None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let s = &self.s;
        if sem!(s, x => x.try_acquire()) {
            return Ok(true);
        }
        if !block {
            return Ok(false);
        }
        sliced(
            py,
            deadline(timeout),
            |t| sem!(s, x => x.acquire_timeout(t)),
            |ok| !*ok,
        )
    }

    /// Release `n` permits; `ValueError` past a bounded semaphore's value.
    #[pyo3(signature = (n = 1))]
    fn release(&self, n: u32) -> PyResult<()> {
        sem!(&self.s, x => x.release_n(n)).map_err(errors::release)
    }

    /// A native async acquire (driven by `multiproc._aio.drive`).
    fn _acquire_async(&self) -> PyResult<AsyncOp> {
        let s = self.s.clone();
        AsyncOp::new(async move {
            sem!(&s, x => x.acquire_async().await);
            Box::new(|py: Python<'_>| -> PyResult<Py<PyAny>> { Ok(pybool(py, true)) }) as Done
        })
    }

    /// The current value.
    fn get_value(&self) -> u32 {
        sem!(&self.s, x => x.get_value())
    }

    /// `(state, fds)`: what the Python layer pickles.
    fn _state<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<RawFd>)> {
        handle::state(py, &self.s)
    }

    /// Rebuild from `_state`, taking ownership of `fds`.
    #[staticmethod]
    fn _rebuild(state: &[u8], fds: Vec<RawFd>) -> PyResult<Self> {
        Ok(RawSemaphore {
            s: handle::rebuild(state, fds)?,
        })
    }
}

/// The native `Event`.
#[derive(Debug)]
#[pyclass(module = "multiproc._multiproc", subclass, frozen)]
pub struct RawEvent {
    e: Event,
}

#[pymethods]
impl RawEvent {
    /// `(state, fds)`: what the Python layer pickles.
    fn _state<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<RawFd>)> {
        handle::state(py, &self.e)
    }

    /// Rebuild from `_state`, taking ownership of `fds`.
    #[staticmethod]
    fn _rebuild(state: &[u8], fds: Vec<RawFd>) -> PyResult<Self> {
        Ok(RawEvent {
            e: handle::rebuild::<Event>(state, fds)?,
        })
    }

    #[new]
    fn new() -> PyResult<Self> {
        Ok(RawEvent { e: Event::new()? })
    }

    /// Set the flag, waking every waiter.
    fn set(&self) {
        self.e.set()
    }

    /// Clear the flag.
    fn clear(&self) {
        self.e.clear()
    }

    /// Whether the flag is set.
    fn is_set(&self) -> bool {
        self.e.is_set()
    }

    /// A native async wait for the flag (driven by `multiproc._aio.drive`).
    fn _wait_async(&self) -> PyResult<AsyncOp> {
        let e = self.e.clone();
        AsyncOp::new(async move {
            e.wait_async().await;
            Box::new(|py: Python<'_>| -> PyResult<Py<PyAny>> { Ok(pybool(py, true)) }) as Done
        })
    }

    /// Wait until the flag is set (at most `timeout` seconds); the flag.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let e = &self.e;
        if e.is_set() {
            return Ok(true);
        }
        sliced(py, deadline(timeout), |t| e.wait_timeout(t), |ok| !*ok)
    }
}

/// The native `Condition`: the Python layer acquires and releases its lock
/// through the `Lock`/`RLock` it was made with.
#[derive(Debug)]
#[pyclass(module = "multiproc._multiproc", subclass, frozen)]
pub struct RawCondition {
    c: Condition,
}

#[pymethods]
impl RawCondition {
    /// `(state, fds)`: what the Python layer pickles.
    fn _state<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<RawFd>)> {
        handle::state(py, &self.c)
    }

    /// Rebuild from `_state`, taking ownership of `fds`.
    #[staticmethod]
    fn _rebuild(state: &[u8], fds: Vec<RawFd>) -> PyResult<Self> {
        Ok(RawCondition {
            c: handle::rebuild::<Condition>(state, fds)?,
        })
    }

    /// A condition over `lock` (a native `Lock` or `RLock`).
    #[new]
    fn new(lock: &Bound<'_, PyAny>) -> PyResult<Self> {
        let c = if let Ok(l) = lock.cast::<RawLock>() {
            Condition::with_lock(l.get().l.clone())?
        } else if let Ok(l) = lock.cast::<RawRLock>() {
            Condition::with_rlock(l.get().l.clone())?
        } else {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "a multiproc Condition needs a multiproc Lock or RLock",
            ));
        };
        Ok(RawCondition { c })
    }

    /// Wait for a notification, the lock held by the caller (released while
    /// waiting); `False` on timeout. The GIL is released; signal handlers run
    /// every [`SLICE`](crate::SLICE), and an exception they raise (Ctrl-C's
    /// `KeyboardInterrupt`) ends the wait with the lock held again and no
    /// notification consumed.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let c = &self.c;
        let t = timeout.map(|t| Duration::from_secs_f64(t.clamp(0.0, 1e9)));
        let mut signal = None;
        let r = crate::detach(py, || {
            c.wait_held_interruptible(t, crate::SLICE, signal_check(&mut signal))
        });
        match r {
            Ok(b) => Ok(b),
            Err(multiproc::WaitError::OwnerDied) => {
                errors::warn_owner_died(py)?;
                Ok(true)
            }
            Err(multiproc::WaitError::Interrupted) => Err(interrupted(signal)),
            Err(e) => Err(pyo3::exceptions::PyRuntimeError::new_err(e.to_string())),
        }
    }

    /// Wake up to `n` waiters.
    #[pyo3(signature = (n = 1))]
    fn notify(&self, n: u32) {
        self.c.notify_held(n)
    }
}

/// The native `Barrier`.
#[derive(Debug)]
#[pyclass(module = "multiproc._multiproc", subclass, frozen)]
pub struct RawBarrier {
    b: Barrier,
}

#[pymethods]
impl RawBarrier {
    /// `(state, fds)`: what the Python layer pickles.
    fn _state<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<RawFd>)> {
        handle::state(py, &self.b)
    }

    /// Rebuild from `_state`, taking ownership of `fds`.
    #[staticmethod]
    fn _rebuild(state: &[u8], fds: Vec<RawFd>) -> PyResult<Self> {
        Ok(RawBarrier {
            b: handle::rebuild::<Barrier>(state, fds)?,
        })
    }

    #[new]
    fn new(parties: u32) -> PyResult<Self> {
        if parties == 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "parties must be > 0",
            ));
        }
        Ok(RawBarrier {
            b: Barrier::new(parties)?,
        })
    }

    /// Wait for every party (at most `timeout` seconds, which breaks the
    /// barrier); this party's index. `threading.BrokenBarrierError` if it
    /// is or becomes broken.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<u32> {
        let b = &self.b;
        let t = timeout.map(|t| Duration::from_secs_f64(t.clamp(0.0, 1e9)));
        let mut signal = None;
        let r = crate::detach(py, || {
            b.wait_interruptible(t, crate::SLICE, signal_check(&mut signal))
        });
        match r {
            Ok(i) => Ok(i),
            // Ctrl-C: this party left; the barrier is not broken.
            Err(multiproc::BarrierWaitError::Interrupted) => Err(interrupted(signal)),
            Err(_) => Err(errors::broken_barrier(py, multiproc::BrokenBarrierError)),
        }
    }

    /// A native async wait (driven by `multiproc._aio.drive`): this
    /// party's index; a `timeout` (seconds) breaks the barrier, as with
    /// `wait`. Closing the operation before the barrier passed leaves it as
    /// if this party had never arrived.
    #[pyo3(signature = (timeout = None))]
    fn _wait_async(&self, timeout: Option<f64>) -> PyResult<AsyncOp> {
        let b = self.b.clone();
        let t = timeout.map(|t| Duration::from_secs_f64(t.clamp(0.0, 1e9)));
        AsyncOp::new(async move {
            let r = match t {
                None => b.wait_async().await,
                Some(t) => b.wait_timeout_async(t).await,
            };
            Box::new(move |py: Python<'_>| -> PyResult<Py<PyAny>> {
                match r {
                    Ok(i) => Ok(i.into_pyobject(py)?.into_any().unbind()),
                    Err(e) => Err(errors::broken_barrier(py, e)),
                }
            }) as Done
        })
    }

    /// Break the barrier.
    fn abort(&self) {
        self.b.abort()
    }

    /// Return the barrier to its initial, unbroken state.
    fn reset(&self) {
        self.b.reset()
    }

    /// The number of parties.
    #[getter]
    fn parties(&self) -> u32 {
        self.b.parties()
    }

    /// The number of parties waiting.
    #[getter]
    fn n_waiting(&self) -> u32 {
        self.b.n_waiting()
    }

    /// Whether the barrier is broken.
    #[getter]
    fn broken(&self) -> bool {
        self.b.broken()
    }
}
