//! Python bindings for `multiproc`: the native module `multiproc._multiproc`
//! under the Python package `multiproc` (a faster drop-in for
//! `multiprocessing`'s IPC objects).
//!
//! The glue is here; the thin Python layer in `python/multiproc/` adds the
//! `multiprocessing` signatures, pickling through
//! `multiprocessing.reduction`, and ctypes views. Blocking calls release the
//! GIL and wait in slices of [`SLICE`], checking for signals between them.
//! Every Rust→Python error mapping lives in [`errors`].

mod conn;
pub mod errors;
mod fastlock;
mod handle;
mod listener;
mod manager;
mod names;
mod queue;
mod shm;
mod sync;

use pyo3::prelude::*;
use std::time::{Duration, Instant};

/// The longest a blocking call waits with the GIL released before it checks
/// for signals (so Ctrl-C raises `KeyboardInterrupt`).
pub const SLICE: Duration = Duration::from_millis(50);

/// A Python timeout (`None`: forever; negative: zero) as a deadline.
pub(crate) fn deadline(timeout: Option<f64>) -> Option<Instant> {
    timeout.map(|t| {
        let t = if t.is_finite() { t.max(0.0) } else { 1e9 };
        Instant::now() + Duration::from_secs_f64(t.min(1e9))
    })
}

/// Run `f(slice)` with the GIL released until it returns something other
/// than "timed out" (`timed_out` says which) or `deadline` passes, checking
/// for signals between slices. The last result is returned.
pub(crate) fn sliced<R: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut f: impl FnMut(Duration) -> R + Send,
    timed_out: impl Fn(&R) -> bool,
) -> PyResult<R> {
    loop {
        let slice = match deadline {
            None => SLICE,
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
        };
        let r = py.detach(|| f(slice));
        if !timed_out(&r) || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(r);
        }
        py.check_signals()?;
    }
}

/// An interrupt check for the `*_interruptible` waits of the Rust API,
/// called with the GIL released: it takes the GIL, runs the signal handlers
/// (Ctrl-C's raises `KeyboardInterrupt`), and keeps the error in `slot` for
/// the caller to raise once the wait has returned.
pub(crate) fn signal_check(slot: &mut Option<PyErr>) -> impl FnMut() -> bool + Send + '_ {
    move || match Python::attach(|py| py.check_signals()) {
        Ok(()) => false,
        Err(e) => {
            *slot = Some(e);
            true
        }
    }
}

/// The error kept by [`signal_check`] (a wait reported an interrupt only
/// after the check stored one).
pub(crate) fn interrupted(slot: Option<PyErr>) -> PyErr {
    slot.unwrap_or_else(|| pyo3::exceptions::PyKeyboardInterrupt::new_err(()))
}

/// The native module `multiproc._multiproc`.
#[pymodule(gil_used = false)]
fn _multiproc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Manager requests and answers have no size limit in Python, as in
    // `multiprocessing` (the server process imports this module too).
    multiproc::manager::set_max_frame(usize::MAX);
    m.add_class::<queue::RawQueue>()?;
    m.add_class::<sync::RawLock>()?;
    m.add_class::<sync::RawRLock>()?;
    fastlock::install_all(m.py())?;
    m.add_class::<sync::RawSemaphore>()?;
    m.add_class::<sync::RawEvent>()?;
    m.add_class::<sync::RawCondition>()?;
    m.add_class::<sync::RawBarrier>()?;
    m.add_class::<shm::RawSharedMemory>()?;
    m.add_class::<conn::RawConnection>()?;
    m.add_function(wrap_pyfunction!(conn::pipe, m)?)?;
    m.add_class::<listener::RawListener>()?;
    m.add_function(wrap_pyfunction!(listener::connect, m)?)?;
    m.add_function(wrap_pyfunction!(listener::wait_fds, m)?)?;
    m.add_class::<manager::RawServer>()?;
    m.add_class::<manager::RawManager>()?;
    m.add_class::<manager::RawHandle>()?;
    m.add_function(wrap_pyfunction!(names::named_objects_list, m)?)?;
    m.add_function(wrap_pyfunction!(names::remove_named_object, m)?)?;
    m.add_function(wrap_pyfunction!(exit_with_parent, m)?)?;
    Ok(())
}

/// Kill this process as soon as `parent` exits, `SIGKILL` included (pool
/// workers call it first, so a killed parent leaves no worker behind).
#[pyfunction]
fn exit_with_parent(parent: u32) {
    multiproc::process::exit_with_parent(parent);
}
