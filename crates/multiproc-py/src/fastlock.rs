//! Vectorcall fast paths for `Lock` and `RLock`: `acquire`, `release`,
//! `__enter__` and `__exit__` as plain `METH_FASTCALL` C methods.
//!
//! An uncontended acquire+release is two atomic instructions; through
//! PyO3's generated wrappers (argument extraction, a subclass check, the
//! trampoline) the calls cost more than the lock. These functions do only
//! what the common case needs: try the lock (whatever the arguments say,
//! an immediate success is the answer) and release it. Anything else (the
//! lock is taken, bad arguments, errors) goes to the full methods, kept
//! under the names `_acquire`/`_release`, so behaviour is theirs.

use std::ffi::CStr;
use std::panic::AssertUnwindSafe;
use std::ptr;

use pyo3::exceptions::PySystemError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::sync::{RawLock, RawRLock};

/// A lock class with a fast path.
pub(crate) trait FastLock:
    pyo3::PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync
{
    /// Try once: `Some(result)` when that settles the call (acquired, or an
    /// error), `None` when the lock is taken.
    fn try_fast(&self, py: Python<'_>) -> Option<PyResult<bool>>;
    /// Release (one level).
    fn release_fast(&self) -> PyResult<()>;
}

impl FastLock for RawLock {
    fn try_fast(&self, py: Python<'_>) -> Option<PyResult<bool>> {
        self.try_once(py)
    }
    fn release_fast(&self) -> PyResult<()> {
        self.release_once()
    }
}

impl FastLock for RawRLock {
    fn try_fast(&self, py: Python<'_>) -> Option<PyResult<bool>> {
        self.try_once(py)
    }
    fn release_fast(&self) -> PyResult<()> {
        self.release_once()
    }
}

/// Run `f` as the body of a C method: a panic becomes a `SystemError`, an
/// error is set as the current exception (null returned).
fn body(py: Python<'_>, f: impl FnOnce() -> PyResult<Py<PyAny>>) -> *mut ffi::PyObject {
    let r = std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(PySystemError::new_err("panic in a multiproc lock method")));
    match r {
        Ok(obj) => obj.into_ptr(),
        Err(e) => {
            e.restore(py);
            ptr::null_mut()
        }
    }
}

/// The lock behind `slf`.
///
/// # Safety
///
/// `slf` is a live object whose type is `T` or a subclass of it, and the
/// thread is attached to the interpreter.
unsafe fn this<'py, T: FastLock>(py: Python<'py>, slf: *mut ffi::PyObject) -> Bound<'py, T> {
    // SAFETY: per this function's contract `slf` is a live object (borrowed
    // for the call; `from_borrowed_ptr` takes a new reference) of type `T`
    // or a subclass, which is what `cast_unchecked` requires.
    unsafe { Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<T>() }
}

/// Call the full method `name` of `slf` with the vectorcall arguments.
///
/// # Safety
///
/// `args`, `nargs` and `kwnames` are a valid METH_FASTCALL argument list.
unsafe fn fallback<'py>(
    slf: &Bound<'py, PyAny>,
    name: &str,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    // SAFETY: our caller's METH_FASTCALL arguments.
    let nkw = unsafe { keyword_count(kwnames) };
    let item = |i: ffi::Py_ssize_t| {
        // SAFETY: `i < nargs + nkw`, within the argument array (above).
        unsafe { Bound::from_borrowed_ptr(py, *args.offset(i)) }
    };
    let pos = PyTuple::new(py, (0..nargs).map(item))?;
    let kw = if nkw == 0 {
        None
    } else {
        // SAFETY: `kwnames` is a non-null tuple (above), borrowed.
        let names = unsafe { Bound::from_borrowed_ptr(py, kwnames) };
        let d = PyDict::new(py);
        for i in 0..nkw {
            d.set_item(names.get_item(i)?, item(nargs + i))?;
        }
        Some(d)
    };
    slf.call_method(name, pos, kw.as_ref())
}

/// How many keyword arguments a METH_FASTCALL call passed.
///
/// # Safety
///
/// `kwnames` is null or the call's tuple of keyword names.
unsafe fn keyword_count(kwnames: *mut ffi::PyObject) -> ffi::Py_ssize_t {
    if kwnames.is_null() {
        0
    } else {
        // SAFETY: a non-null `kwnames` is a tuple (this function's contract).
        unsafe { ffi::PyTuple_GET_SIZE(kwnames) }
    }
}

/// Whether the keyword name `name` is `want`.
///
/// # Safety
///
/// `name` is a live `str` (an item of the call's `kwnames`).
unsafe fn name_is(name: *mut ffi::PyObject, want: &CStr) -> bool {
    // SAFETY: `name` is a live `str` (this function's contract); `want` is
    // NUL-terminated ASCII.
    unsafe { ffi::PyUnicode_CompareWithASCIIString(name, want.as_ptr()) == 0 }
}

/// Whether the arguments are ones `_acquire` accepts (`block`: a `bool`,
/// `timeout`: `None` or a number; each at most once), so that taking the
/// lock at once is the answer it would give. Anything else goes to
/// `_acquire` to be refused there.
///
/// # Safety
///
/// `args`, `nargs` and `kwnames` are a valid METH_FASTCALL argument list.
unsafe fn plain_acquire_args(
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> bool {
    // SAFETY: our caller's METH_FASTCALL arguments.
    let nkw = unsafe { keyword_count(kwnames) };
    if nargs + nkw == 0 {
        return true;
    }
    if nargs > 2 || nargs + nkw > 2 {
        return false;
    }
    let mut seen = [false; 2];
    for i in 0..nargs + nkw {
        let slot = if i < nargs {
            i as usize
        } else {
            // SAFETY: `i - nargs < nkw`, an index into the `kwnames` tuple,
            // whose items are `str`.
            let name = unsafe { ffi::PyTuple_GET_ITEM(kwnames, i - nargs) };
            // SAFETY: `name` is an item of `kwnames`, a live `str`.
            let (block, timeout) = unsafe { (name_is(name, c"block"), name_is(name, c"timeout")) };
            if block {
                0
            } else if timeout {
                1
            } else {
                return false;
            }
        };
        if seen[slot] {
            return false;
        }
        seen[slot] = true;
        // SAFETY: `i < nargs + nkw`, within the argument array.
        let v = unsafe { *args.offset(i) };
        // SAFETY: `v` is a live object; these are type checks and pointer
        // comparisons with the singletons.
        let ok = unsafe {
            if slot == 0 {
                v == ffi::Py_True() || v == ffi::Py_False()
            } else {
                v == ffi::Py_None() || ffi::PyFloat_Check(v) != 0 || ffi::PyLong_Check(v) != 0
            }
        };
        if !ok {
            return false;
        }
    }
    true
}

unsafe extern "C" fn acquire<T: FastLock>(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a method with the thread attached.
    let py = unsafe { Python::assume_attached() };
    body(py, || {
        // SAFETY: the method descriptor checked that `slf` is a `T`.
        let lock = unsafe { this::<T>(py, slf) };
        // SAFETY: our METH_FASTCALL arguments.
        if unsafe { plain_acquire_args(args, nargs, kwnames) }
            && let Some(r) = lock.get().try_fast(py)
        {
            return r.map(|b| {
                pyo3::types::PyBool::new(py, b)
                    .to_owned()
                    .into_any()
                    .unbind()
            });
        }
        // SAFETY: our arguments, passed on as they came.
        unsafe { fallback(lock.as_any(), "_acquire", args, nargs, kwnames) }.map(Bound::unbind)
    })
}

unsafe extern "C" fn release<T: FastLock>(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a method with the thread attached.
    let py = unsafe { Python::assume_attached() };
    body(py, || {
        // SAFETY: the method descriptor checked that `slf` is a `T`.
        let lock = unsafe { this::<T>(py, slf) };
        if nargs != 0 || !kwnames.is_null() {
            // SAFETY: our arguments, passed on as they came.
            return unsafe { fallback(lock.as_any(), "_release", args, nargs, kwnames) }
                .map(Bound::unbind);
        }
        lock.get().release_fast().map(|()| py.None())
    })
}

/// `__exit__(*exc_info)`: a release, whatever the arguments.
unsafe extern "C" fn exit<T: FastLock>(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    _nargs: ffi::Py_ssize_t,
    _kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: the same call with no arguments is a valid METH_FASTCALL call.
    unsafe { release::<T>(slf, args, 0, ptr::null_mut()) }
}

/// The methods' definitions for `T`, with static lifetime.
struct Defs([ffi::PyMethodDef; 4]);

// SAFETY: the definitions are immutable after construction; the pointers
// they hold are to static strings and functions.
unsafe impl Sync for Defs {}

const fn def(
    name: &'static CStr,
    f: ffi::PyCFunctionFastWithKeywords,
    doc: &'static CStr,
) -> ffi::PyMethodDef {
    ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: f,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: doc.as_ptr(),
    }
}

macro_rules! defs {
    ($t:ty) => {
        Defs([
            def(
                c"acquire",
                acquire::<$t>,
                c"acquire(block=True, timeout=None): multiprocessing's acquire.",
            ),
            def(
                c"release",
                release::<$t>,
                c"release(): multiprocessing's release.",
            ),
            def(
                c"__enter__",
                acquire::<$t>,
                c"with lock: acquires (blocking).",
            ),
            def(c"__exit__", exit::<$t>, c"Leaving with lock: releases."),
        ])
    };
}

static LOCK_DEFS: Defs = defs!(RawLock);
static RLOCK_DEFS: Defs = defs!(RawRLock);

fn install<T: FastLock>(py: Python<'_>, defs: &'static Defs) -> PyResult<()> {
    let ty = py.get_type::<T>();
    for d in &defs.0 {
        // SAFETY: `d` is a valid, static method definition (never written:
        // CPython only reads it); the type object is alive (`ty`).
        let descr =
            unsafe { ffi::PyDescr_NewMethod(ty.as_type_ptr(), ptr::from_ref(d).cast_mut()) };
        // SAFETY: a new reference or null with an exception set.
        let descr = unsafe { Bound::from_owned_ptr_or_err(py, descr) }?;
        // SAFETY: `ml_name` is one of the static C strings above.
        let name = unsafe { CStr::from_ptr(d.ml_name) }.to_str()?;
        ty.setattr(name, descr)?;
    }
    Ok(())
}

/// Replace `acquire`, `release`, `__enter__` and `__exit__` of the lock
/// classes with the fast paths (at module initialization).
pub(crate) fn install_all(py: Python<'_>) -> PyResult<()> {
    install::<RawLock>(py, &LOCK_DEFS)?;
    install::<RawRLock>(py, &RLOCK_DEFS)
}
