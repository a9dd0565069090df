//! `RawSharedMemory`: anonymous (memfd) or named shared memory exposing
//! the buffer protocol, under `shared_memory.SharedMemory`, `Value`,
//! `Array`, `RawValue` and `RawArray`.

use crate::{errors, handle};
use multiproc::{SegmentError, SharedMemory};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::os::fd::RawFd;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared memory bytes; `memoryview(obj)` is a writable view of them.
#[derive(Debug)]
#[pyclass(module = "multiproc._multiproc", subclass, frozen)]
pub struct RawSharedMemory {
    m: SharedMemory,
    unlinked: AtomicBool,
}

#[pymethods]
impl RawSharedMemory {
    /// Anonymous (`name=None`) or named shared memory of `size` bytes.
    /// `create=True` with `plain=True` makes a POSIX object where the
    /// standard library looks (`/dev/shm/NAME`, bytes at offset 0), else a
    /// multiproc segment. `create=False` opens an existing name: such a
    /// plain object (whoever made it), else multiproc's segment of that
    /// name (see `foreign`).
    #[new]
    #[pyo3(signature = (size, name = None, create = true, plain = false))]
    fn new(size: usize, name: Option<&str>, create: bool, plain: bool) -> PyResult<Self> {
        let m = match (name, create) {
            (None, _) => SharedMemory::new(size)?,
            (Some(n), true) if plain => {
                SharedMemory::create_foreign(n, size).map_err(errors::segment)?
            }
            (Some(n), true) => SharedMemory::create(n, size).map_err(errors::segment)?,
            (Some(n), false) => {
                let bare = n.trim_start_matches('/');
                match SharedMemory::open_foreign(n) {
                    Err(SegmentError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                        match SharedMemory::open(bare) {
                            // Not a segment name either: the plain name was
                            // simply not found.
                            Err(SegmentError::InvalidName(_)) => return Err(e.into()),
                            r => r.map_err(errors::segment)?,
                        }
                    }
                    Err(SegmentError::InvalidName(_)) if !n.contains('\0') => {
                        SharedMemory::open(bare).map_err(errors::segment)?
                    }
                    r => r.map_err(errors::segment)?,
                }
            }
        };
        Ok(RawSharedMemory {
            m,
            unlinked: AtomicBool::new(false),
        })
    }

    /// Size in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.m.size()
    }

    /// The name, for named shared memory.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.m.name()
    }

    /// Whether this is another library's object (`/dev/shm/NAME`, mapped
    /// raw), not a multiproc segment.
    #[getter]
    fn foreign(&self) -> bool {
        self.m.is_foreign()
    }

    /// Remove the name; the memory stays mapped while referenced.
    fn unlink(&self) -> PyResult<()> {
        if self.unlinked.swap(true, Ordering::AcqRel) {
            return Err(pyo3::exceptions::PyFileNotFoundError::new_err(
                "shared memory already unlinked",
            ));
        }
        self.m.unlink().map_err(errors::segment)
    }

    /// Remove the name `name` without opening it: multiproc's segment, or
    /// with `foreign=True` another library's object.
    #[staticmethod]
    #[pyo3(signature = (name, foreign = false))]
    fn unlink_name(name: &str, foreign: bool) -> PyResult<()> {
        if foreign {
            SharedMemory::unlink_foreign_name(name).map_err(errors::segment)
        } else {
            SharedMemory::unlink_name(name).map_err(errors::segment)
        }
    }

    /// `(state, fds)`: what the Python layer pickles.
    fn _state<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<RawFd>)> {
        handle::state(py, &self.m)
    }

    /// Rebuild from `_state`, taking ownership of `fds`.
    #[staticmethod]
    fn _rebuild(state: &[u8], fds: Vec<RawFd>) -> PyResult<Self> {
        Ok(RawSharedMemory {
            m: handle::rebuild(state, fds)?,
            unlinked: AtomicBool::new(false),
        })
    }

    /// The buffer protocol: a writable, C-contiguous run of bytes.
    ///
    /// # Safety
    ///
    /// Called by CPython with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: PyRef<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let ptr = slf.m.as_ptr();
        let len = slf.m.size() as ffi::Py_ssize_t;
        let owner = slf.into_ptr();
        // SAFETY: `owner` is a new strong reference to this object, which
        // keeps the mapping at `ptr..ptr+len` alive until CPython releases
        // the view (it decrefs `view.obj`). `PyBuffer_FillInfo` fills
        // `view` (valid per the caller) for a writable byte run. The bytes
        // are shared with other processes: Python code reads and writes
        // them through the view, as with `multiprocessing`'s shared memory.
        let rc = unsafe { ffi::PyBuffer_FillInfo(view, owner, ptr.cast(), len, 0, flags) };
        // SAFETY: `PyBuffer_FillInfo` took its own reference to `owner`
        // (or failed); ours is released here.
        unsafe { ffi::Py_DECREF(owner) };
        if rc == -1 {
            // SAFETY: the GIL is held (we are called from Python).
            return Err(PyErr::fetch(unsafe { Python::assume_attached() }));
        }
        Ok(())
    }

    /// Nothing to release: the view holds a reference to this object.
    ///
    /// # Safety
    ///
    /// Called by CPython with the view it got from `__getbuffer__`.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}
}
