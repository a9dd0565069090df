//! The native side of `multiproc.managers`: a server (`RawServer`, run in a
//! child process the Python layer starts), a client (`RawManager`) and the
//! untyped proxy (`RawHandle`), on the Rust core's `multiproc::manager`.
//!
//! Python values travel as `DataValue`s: `None`, `bool`, `int` (64-bit),
//! `float`, `str`, `bytes`, `list` and `dict` as themselves (so Rust clients
//! read them and the server's `incr` works on them); tuples as a map tagged
//! [`TUPLE_TAG`] holding their items; anything else (sets, big ints,
//! instances, NumPy scalars, subclasses of the above, ...) as a pickle in a
//! map tagged [`PICKLE_TAG`], which only clients unpickle, with the
//! object's *equality form* when it has one (`_eq_form` in
//! `multiproc/managers.py`: a plain value equal to it with the same hash),
//! so that the server compares it as Python would.

use crate::errors;
use crate::listener::{PyAddress, address_to_py};
use crate::{deadline, handle, interrupted, signal_check};
use multiproc::connection::{Address, Listener};
use multiproc::manager::{
    DataValue, EQ_TAG, Handle, Manager, ManagerError, ObjectKind, PICKLE_TAG, Server, TUPLE_TAG,
    TypeRegistry,
};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use std::sync::Mutex;
use std::time::Instant;

/// A Python value as a `DataValue` (see the module docs).
pub fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<DataValue> {
    if obj.is_none() {
        return Ok(DataValue::Null);
    }
    if let Ok(b) = obj.cast_exact::<PyBool>() {
        return Ok(DataValue::Bool(b.is_true()));
    }
    if obj.cast_exact::<PyInt>().is_ok() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(DataValue::Int(i));
        }
    } else if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return Ok(DataValue::Float(f.value()));
    } else if let Ok(s) = obj.cast_exact::<PyString>() {
        return Ok(DataValue::Str(s.to_str()?.to_owned()));
    } else if let Ok(b) = obj.cast_exact::<PyBytes>() {
        return Ok(DataValue::Bytes(b.as_bytes().to_vec()));
    } else if let Ok(l) = obj.cast_exact::<PyList>() {
        return l
            .iter()
            .map(|x| to_value(&x))
            .collect::<PyResult<_>>()
            .map(DataValue::List);
    } else if let Ok(d) = obj.cast_exact::<PyDict>() {
        return d
            .iter()
            .map(|(k, v)| Ok((to_value(&k)?, to_value(&v)?)))
            .collect::<PyResult<_>>()
            .map(DataValue::Map);
    } else if let Ok(t) = obj.cast_exact::<PyTuple>() {
        let items = t.iter().map(|x| to_value(&x)).collect::<PyResult<_>>()?;
        return Ok(DataValue::Map(vec![(
            DataValue::Str(TUPLE_TAG.into()),
            DataValue::List(items),
        )]));
    }
    let py = obj.py();
    let managers = py.import("multiproc.managers")?;
    let data = managers.getattr("_dumps")?.call1((obj,))?;
    let mut map = vec![(
        DataValue::Str(PICKLE_TAG.into()),
        DataValue::Bytes(data.extract()?),
    )];
    // Only for objects of other types than the plain ones above (a big
    // int's form would be itself), and only a form the server can compare.
    if !obj.is_exact_instance_of::<PyInt>() {
        let eq = managers.getattr("_eq_form")?.call1((obj,))?;
        if !eq.is_none() {
            let v = to_value(&eq)?;
            if !is_pickle(&v) {
                map.push((DataValue::Str(EQ_TAG.into()), v));
            }
        }
    }
    Ok(DataValue::Map(map))
}

/// Whether `v` is a pickle (which the server compares by its bytes).
fn is_pickle(v: &DataValue) -> bool {
    matches!(v, DataValue::Map(m) if matches!(m.first(), Some((DataValue::Str(k), _)) if k == PICKLE_TAG))
}

/// A `DataValue` as a Python value.
pub fn from_value(py: Python<'_>, v: DataValue) -> PyResult<Py<PyAny>> {
    Ok(match v {
        DataValue::Null => py.None(),
        DataValue::Bool(b) => PyBool::new(py, b).to_owned().into_any().unbind(),
        DataValue::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        DataValue::UInt(u) => u.into_pyobject(py)?.into_any().unbind(),
        DataValue::Float(f) => f.into_pyobject(py)?.into_any().unbind(),
        DataValue::Str(s) => s.into_pyobject(py)?.into_any().unbind(),
        DataValue::Bytes(b) => PyBytes::new(py, &b).into_any().unbind(),
        DataValue::List(l) => {
            let items = l
                .into_iter()
                .map(|x| from_value(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any().unbind()
        }
        DataValue::Map(mut m) => {
            match m.as_slice() {
                [(DataValue::Str(k), DataValue::Bytes(b))]
                | [
                    (DataValue::Str(k), DataValue::Bytes(b)),
                    (DataValue::Str(_), _),
                ] if k == PICKLE_TAG => {
                    return Ok(py
                        .import("multiproc.managers")?
                        .getattr("_loads")?
                        .call1((PyBytes::new(py, b),))?
                        .unbind());
                }
                [(DataValue::Str(k), DataValue::List(_))] if k == TUPLE_TAG => {
                    if let Some((_, DataValue::List(items))) = m.pop() {
                        let items = items
                            .into_iter()
                            .map(|x| from_value(py, x))
                            .collect::<PyResult<Vec<_>>>()?;
                        return Ok(PyTuple::new(py, items)?.into_any().unbind());
                    }
                }
                _ => {}
            }
            let d = PyDict::new(py);
            for (k, v) in m {
                d.set_item(from_value(py, k)?, from_value(py, v)?)?;
            }
            d.into_any().unbind()
        }
    })
}

fn kind(name: &str) -> PyResult<ObjectKind> {
    name.parse()
        .map_err(|e: multiproc::manager::UnknownKind| PyValueError::new_err(e.to_string()))
}

/// A manager server bound to its address, not yet serving.
#[pyclass(module = "multiproc._multiproc", frozen)]
pub struct RawServer {
    server: Mutex<Option<Server>>,
    address: Address,
}

#[pymethods]
impl RawServer {
    /// Bind on `address` (`None`: a private Unix socket), authenticating
    /// clients with `authkey` (HMAC-SHA256).
    #[new]
    fn new(py: Python<'_>, address: Option<PyAddress>, authkey: Vec<u8>) -> PyResult<Self> {
        let b = Listener::builder().authkey(&authkey);
        let l = match address {
            None => crate::detach(py, || b.bind_private()),
            Some(a) => {
                let a = a.into_address()?;
                crate::detach(py, || b.insecure_shared_directory().bind(a))
            }
        }
        .map_err(errors::bind)?;
        Ok(RawServer {
            address: l.address().clone(),
            server: Mutex::new(Some(Server::new(l, TypeRegistry::new()))),
        })
    }

    /// The address clients connect to.
    #[getter]
    fn address<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        address_to_py(py, &self.address)
    }

    /// Serve (GIL released) until a client asks for shutdown.
    fn serve(&self, py: Python<'_>) -> PyResult<()> {
        let s = self
            .server
            .lock()
            .expect("not poisoned")
            .take()
            .ok_or_else(|| PyOSError::new_err("already served"))?;
        crate::detach(py, || s.serve())?;
        Ok(())
    }
}

/// A client of a manager server: makes objects.
#[pyclass(module = "multiproc._multiproc", frozen)]
pub struct RawManager {
    inner: Mutex<Option<Manager>>,
    address: Address,
}

#[pymethods]
impl RawManager {
    /// Connect to the server at `address` with `authkey`.
    #[new]
    fn new(py: Python<'_>, address: PyAddress, authkey: Vec<u8>) -> PyResult<Self> {
        let a = address.into_address()?;
        let m = crate::detach(py, || Manager::connect(a, &authkey))
            .map_err(|e| errors::manager(py, e))?;
        Ok(RawManager {
            address: m.address().clone(),
            inner: Mutex::new(Some(m)),
        })
    }

    /// The server's address.
    #[getter]
    fn address<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        address_to_py(py, &self.address)
    }

    /// A new object of type `kind` (`"dict"`, `"Queue"`, ...) from `init`.
    fn create(
        &self,
        py: Python<'_>,
        kind_name: &str,
        init: &Bound<'_, PyAny>,
    ) -> PyResult<RawHandle> {
        let k = kind(kind_name)?;
        let init = to_value(init)?;
        let inner = &self.inner;
        let h = crate::detach(py, || {
            inner
                .lock()
                .expect("not poisoned")
                .as_ref()
                .map(|m| m.create_object(k, init))
        });
        match h {
            Some(h) => Ok(RawHandle {
                h: h.map_err(|e| errors::manager(py, e))?,
            }),
            None => Err(PyOSError::new_err("the manager is shut down")),
        }
    }

    /// Ask the server to stop.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        let m = self.inner.lock().expect("not poisoned").take();
        if let Some(m) = m {
            crate::detach(py, || m.shutdown()).map_err(|e| errors::manager(py, e))?;
        }
        Ok(())
    }

    /// Drop the connection without stopping the server.
    fn close(&self) {
        self.inner.lock().expect("not poisoned").take();
    }
}

/// One counted reference to a server object (the untyped proxy).
#[pyclass(module = "multiproc._multiproc", frozen)]
pub struct RawHandle {
    h: Handle,
}

#[pymethods]
impl RawHandle {
    /// Call `method` with `args`, waiting at most `timeout` seconds
    /// (`None`: as long as it takes). Server-side timeouts raise
    /// `TimeoutError`.
    #[pyo3(signature = (method, args, timeout = None))]
    fn call(
        &self,
        py: Python<'_>,
        method: &str,
        args: Vec<Bound<'_, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let args = args.iter().map(to_value).collect::<PyResult<Vec<_>>>()?;
        let t = deadline(timeout).map(|d| d.saturating_duration_since(Instant::now()));
        let h = &self.h;
        let mut slot = None;
        let r = crate::detach(py, || {
            h.call_interruptible(method, args, t, signal_check(&mut slot))
        });
        let v = match r {
            Err(ManagerError::Interrupted) => return Err(interrupted(slot)),
            r => r.map_err(|e| errors::manager(py, e))?,
        };
        if let Some(e) = slot {
            // Interrupted, but the call completed before the server saw the
            // cancel: its result (a queue's item) is returned, not lost, and
            // a KeyboardInterrupt is raised again at the caller's next
            // bytecode. Any other exception a signal handler raised wins,
            // as it would for a plain Python call.
            if !e.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) {
                return Err(e);
            }
            // SAFETY: `PyErr_SetInterrupt` only trips CPython's SIGINT flag
            // (it is documented as callable from any thread, even from a
            // signal handler); the GIL is held here besides.
            unsafe { pyo3::ffi::PyErr_SetInterrupt() };
        }
        from_value(py, v)
    }

    /// The same object for this process, after a `fork` (see
    /// `Handle::reattach`).
    fn reattach(&self, py: Python<'_>) -> PyResult<RawHandle> {
        let h = &self.h;
        let h = crate::detach(py, || h.reattach()).map_err(|e| errors::manager(py, e))?;
        Ok(RawHandle { h })
    }

    /// A new reference to object `id` of the server at `address` (which
    /// must still hold it).
    #[staticmethod]
    fn attach(
        py: Python<'_>,
        address: PyAddress,
        authkey: Vec<u8>,
        id: u64,
    ) -> PyResult<RawHandle> {
        let a = address.into_address()?;
        let h = crate::detach(py, || Handle::attach(a, &authkey, id))
            .map_err(|e| errors::manager(py, e))?;
        Ok(RawHandle { h })
    }

    /// Keep the object alive while this process's session lives (and 30 s
    /// more) without a proxy: for a proxy stored inside a managed value.
    fn lend(&self, py: Python<'_>) -> PyResult<()> {
        let h = &self.h;
        crate::detach(py, || h.lend()).map_err(|e| errors::manager(py, e))
    }

    /// The server's authkey.
    #[getter]
    fn authkey<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.h.authkey())
    }

    /// The object's id on its server.
    #[getter]
    fn id(&self) -> u64 {
        self.h.id()
    }

    /// The server's address.
    #[getter]
    fn address<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        address_to_py(py, self.h.address())
    }

    /// The encoded reference (a loan the receiving process claims; it
    /// carries the authkey).
    fn _state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let (state, fds) = handle::state(py, &self.h)?;
        debug_assert!(fds.is_empty());
        Ok(state)
    }

    /// Rebuild from `_state` (connects to the server and claims the loan).
    #[staticmethod]
    fn _rebuild(py: Python<'_>, state: Vec<u8>) -> PyResult<RawHandle> {
        let h = crate::detach(py, || handle::rebuild::<Handle>(&state, Vec::new()))?;
        Ok(RawHandle { h })
    }
}

impl std::fmt::Debug for RawServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawServer at {}", self.address)
    }
}

impl std::fmt::Debug for RawManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawManager of {}", self.address)
    }
}

impl std::fmt::Debug for RawHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawHandle({:?})", self.h)
    }
}
