//! Python bindings for `multiproc`: the native module `multiproc._multiproc`
//! under the Python package `multiproc` (a faster drop-in for
//! `multiprocessing`'s IPC objects).
//!
//! The glue is here; the thin Python layer in `python/multiproc/` adds the
//! `multiprocessing` signatures, pickling through
//! `multiprocessing.reduction`, and ctypes views. Blocking calls release the
//! GIL and wait in slices of [`SLICE`], checking for signals between them.
//! Every Rust→Python error mapping lives in [`errors`].

mod aio;
mod conn;
pub mod errors;
mod fastlock;
mod handle;
mod listener;
mod manager;
mod names;
mod queue;
mod redis;
mod shm;
mod sync;

use pyo3::prelude::*;
use std::time::{Duration, Instant};

/// The longest a blocking call waits with the GIL released before it checks
/// for signals (so Ctrl-C raises `KeyboardInterrupt`).
pub const SLICE: Duration = Duration::from_millis(50);

/// `py.detach(f)`: run `f` with the GIL released. Every GIL release in this
/// crate goes through here, so that a thread which would take the GIL back
/// while the interpreter finalizes hangs instead (see
/// [`hang_if_finalizing`]).
pub(crate) fn detach<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    py.detach(|| {
        let r = f();
        hang_if_finalizing();
        r
    })
}

/// Never return when the interpreter is finalizing and this is not the
/// thread finalizing it.
///
/// Only daemon threads still run then. CPython 3.11-3.13 ends a thread that
/// takes the GIL back during finalization with `pthread_exit`, a forced
/// unwind that aborts the whole process when it meets the `catch_unwind` of
/// PyO3's trampolines ("FATAL: exception not rethrown", exit status 134).
/// A daemon thread blocked in a multiproc wait (a `Queue.get` in a daemon
/// thread is common) did that at most exits when its waits came back for
/// the GIL every [`SLICE`] to check for signals; now only the main thread's
/// waits are sliced ([`sliced`], [`signal_check`]), and another thread takes
/// the GIL back only when its wait is over. If that happens during
/// finalization, this hangs the thread instead, as CPython 3.14 does
/// (gh-87135); the process is exiting and the thread ends with it. The check
/// and the GIL's retake are not atomic: a wait that ends just before
/// finalization begins and retakes the GIL just after still aborts; that
/// needs an item or a wake-up to arrive at the moment of exit. The main
/// thread finalizes (a `__del__` may still wait on a multiproc object then),
/// so it never hangs.
pub(crate) fn hang_if_finalizing() {
    if finalizing() && !is_main_thread() {
        loop {
            std::thread::park();
        }
    }
}

#[cfg(not(Py_3_13))]
unsafe extern "C" {
    fn _Py_IsFinalizing() -> std::ffi::c_int;
}

/// Whether the interpreter is finalizing; callable without the GIL.
fn finalizing() -> bool {
    #[cfg(Py_3_13)]
    // SAFETY: `Py_IsFinalizing` takes no arguments and only loads the
    // runtime's `_finalizing` field atomically; CPython documents it as
    // callable without an attached thread state.
    let f = unsafe { pyo3::ffi::Py_IsFinalizing() };
    #[cfg(not(Py_3_13))]
    // SAFETY: `_Py_IsFinalizing` (exported by 3.11 and 3.12) is
    // `_PyRuntimeState_GetFinalizing(&_PyRuntime) != NULL`, a relaxed atomic
    // load of the static runtime state: no arguments, no GIL needed.
    let f = unsafe { _Py_IsFinalizing() };
    f != 0
}

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
    timed_out: impl Fn(&R) -> bool + Sync,
) -> PyResult<R> {
    // Only the main thread runs signal handlers, so only it comes back for
    // the GIL between slices; another thread waits out its whole wait with
    // the GIL released (see `hang_if_finalizing` for why that matters).
    let main = is_main_thread();
    loop {
        let r = detach(py, || {
            loop {
                let slice = match deadline {
                    None => SLICE,
                    Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
                };
                let r = f(slice);
                if main || !timed_out(&r) || deadline.is_some_and(|d| Instant::now() >= d) {
                    return r;
                }
            }
        });
        if !timed_out(&r) || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(r);
        }
        py.check_signals()?;
    }
}

/// Whether this is the process's main thread, the one where Python runs
/// signal handlers and which finalizes the interpreter.
pub(crate) fn is_main_thread() -> bool {
    multiproc_sys::process::tid() == multiproc_sys::process::pid()
}

/// An interrupt check for the `*_interruptible` waits of the Rust API,
/// called with the GIL released: it takes the GIL, runs the signal handlers
/// (Ctrl-C's raises `KeyboardInterrupt`), and keeps the error in `slot` for
/// the caller to raise once the wait has returned.
pub(crate) fn signal_check(slot: &mut Option<PyErr>) -> impl FnMut() -> bool + Send + '_ {
    let main = is_main_thread();
    move || {
        if !main {
            // Handlers run only in the main thread: nothing to check, and
            // no reason to take the GIL (see `hang_if_finalizing`).
            return false;
        }
        let checked = Python::attach(|py| py.check_signals());
        match checked {
            Ok(()) => false,
            Err(e) => {
                *slot = Some(e);
                true
            }
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
    m.add_class::<aio::AsyncOp>()?;
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
    redis::register(m)?;
    m.add_function(wrap_pyfunction!(exit_with, m)?)?;
    m.add_function(wrap_pyfunction!(process_start_time, m)?)?;
    Ok(())
}

/// Kill this process as soon as `parent` exits, `SIGKILL` included (pool
/// workers call it first, so a killed parent leaves no worker behind).
#[pyfunction]
fn exit_with_parent(parent: u32) {
    multiproc::process::exit_with_parent(parent);
}

/// Kill this process as soon as the process `pid`, started at
/// `start_time` (from `process_start_time`), exits; at once if it is gone
/// (pool workers a fork server started watch the pool's owner so).
#[pyfunction]
fn exit_with(pid: u32, start_time: u64) {
    multiproc::process::exit_with(pid, start_time);
}

/// When process `pid` started (clock ticks since boot), or `None`.
#[pyfunction]
fn process_start_time(pid: u32) -> Option<u64> {
    multiproc::process::start_time(pid)
}
