//! `RawListener`, `connect` and `wait_fds`: the native side of
//! `multiproc.connection.Listener`, `Client` and `wait`, on the Rust core's
//! `multiproc::connection` (Python's wire protocol and handshake).

use crate::conn::RawConnection;
use crate::{deadline, errors, sliced};
use multiproc::TimeoutError;
use multiproc::connection::{Address, AuthPolicy, Client, ConnectError, Listener, wait};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// An address from the Python layer: a Unix socket path (`str`) or a
/// resolved TCP address (`(ip, port)`).
#[derive(FromPyObject)]
pub enum PyAddress {
    /// A TCP address, already resolved to an IP by the Python layer.
    Tcp((String, u16)),
    /// A Unix socket path, or (starting with NUL) an abstract name.
    Unix(PathBuf),
}

/// `address` as Python shows it: a path or `"\0name"` (`str`), or
/// `(ip, port)`.
pub(crate) fn address_to_py<'py>(py: Python<'py>, a: &Address) -> PyResult<Bound<'py, PyAny>> {
    Ok(match a {
        Address::Unix(p) => p
            .to_string_lossy()
            .into_owned()
            .into_pyobject(py)?
            .into_any(),
        Address::Tcp(a) => (a.ip().to_string(), a.port()).into_pyobject(py)?.into_any(),
        Address::Abstract(n) => format!("\0{}", String::from_utf8_lossy(n))
            .into_pyobject(py)?
            .into_any(),
        other => other.to_string().into_pyobject(py)?.into_any(),
    })
}

impl PyAddress {
    pub(crate) fn into_address(self) -> PyResult<Address> {
        match self {
            PyAddress::Tcp((ip, port)) => {
                let ip: std::net::IpAddr = ip
                    .parse()
                    .map_err(|_| PyValueError::new_err(format!("not an IP address: {ip:?}")))?;
                Ok(Address::Tcp(SocketAddr::new(ip, port)))
            }
            PyAddress::Unix(p) => {
                use std::os::unix::ffi::OsStrExt;
                match p.as_os_str().as_bytes().strip_prefix(b"\0") {
                    // Linux's abstract namespace, as Python spells it (a
                    // bad length is an OSError from bind or connect, as
                    // Python's "path too long").
                    Some(name) => Ok(Address::Abstract(name.to_vec())),
                    None => Ok(Address::Unix(p)),
                }
            }
        }
    }
}

fn policy(legacy_md5: bool) -> AuthPolicy {
    if legacy_md5 {
        AuthPolicy::AllowLegacyMd5
    } else {
        AuthPolicy::Sha256Only
    }
}

/// A listening socket (`multiprocessing.connection.Listener`'s native part).
#[derive(Debug)]
#[pyclass(module = "multiproc._multiproc", frozen)]
pub struct RawListener {
    inner: Mutex<Option<Arc<Listener>>>,
    address: Address,
}

impl RawListener {
    fn get(&self) -> PyResult<Arc<Listener>> {
        self.inner
            .lock()
            .expect("not poisoned")
            .clone()
            .ok_or_else(|| PyOSError::new_err("listener is closed"))
    }
}

#[pymethods]
impl RawListener {
    /// Bind and listen: on `address` (`None`: a new private Unix socket),
    /// authenticating clients with `authkey` when given.
    #[new]
    #[pyo3(signature = (address, backlog, authkey, legacy_md5))]
    fn new(
        py: Python<'_>,
        address: Option<PyAddress>,
        backlog: i32,
        authkey: Option<Vec<u8>>,
        legacy_md5: bool,
    ) -> PyResult<Self> {
        let mut b = Listener::builder()
            .backlog(backlog.max(1))
            .policy(policy(legacy_md5));
        match &authkey {
            Some(k) => b = b.authkey(k),
            // Python's Listener without an authkey authenticates nobody.
            None => b = b.insecure_no_authkey(),
        }
        let l = match address {
            None => crate::detach(py, || b.bind_private()),
            // A path the caller chose: its directory is the caller's
            // business, as in Python.
            Some(a) => {
                let a = a.into_address()?;
                let b = b.insecure_shared_directory();
                crate::detach(py, || b.bind(a))
            }
        }
        .map_err(errors::bind)?;
        Ok(RawListener {
            address: l.address().clone(),
            inner: Mutex::new(Some(Arc::new(l))),
        })
    }

    /// The address: a path or `"\0name"` (`str`), or `(ip, port)`.
    #[getter]
    fn address<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        address_to_py(py, &self.address)
    }

    /// Accept the next client and run the handshake (GIL released, in
    /// slices so signals are seen).
    fn accept(&self, py: Python<'_>) -> PyResult<RawConnection> {
        let l = self.get()?;
        match crate::sliced(
            py,
            None,
            |t| l.accept_timeout::<()>(t),
            |r| matches!(r, Err(TimeoutError::Timeout)),
        )? {
            Ok(c) => RawConnection::wrap(c),
            Err(TimeoutError::Failed(e)) => Err(errors::accept(py, e)),
            // `sliced` without a deadline only returns what did not time out.
            Err(TimeoutError::Timeout) => Err(pyo3::exceptions::PyOSError::new_err(
                "accept timed out without a deadline",
            )),
        }
    }

    /// The listening descriptor (`-1` once closed).
    fn fileno(&self) -> RawFd {
        match self.inner.lock().expect("not poisoned").as_ref() {
            Some(l) => l.as_raw_fd(),
            None => -1,
        }
    }

    /// Stop listening and remove the socket file.
    fn close(&self) {
        self.inner.lock().expect("not poisoned").take();
    }

    /// Whether it was closed.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().expect("not poisoned").is_none()
    }
}

/// Connect to a listener and run the handshake when `authkey` is given.
#[pyfunction]
#[pyo3(signature = (address, authkey, legacy_md5))]
pub fn connect(
    py: Python<'_>,
    address: PyAddress,
    authkey: Option<Vec<u8>>,
    legacy_md5: bool,
) -> PyResult<RawConnection> {
    let address = address.into_address()?;
    let mut b = Client::builder()
        .policy(policy(legacy_md5))
        .insecure_shared_directory();
    match &authkey {
        Some(k) => b = b.authkey(k),
        None => b = b.insecure_no_authkey(),
    }
    let c = crate::detach(py, || b.connect::<()>(address))
        .map_err(|e: ConnectError| errors::connect(py, e))?;
    RawConnection::wrap(c)
}

/// The indices of the descriptors in `fds` that are readable (or at end of
/// file), waiting at most `timeout` seconds (`None`: forever) with the GIL
/// released, in slices so signals are seen. Empty on timeout.
#[pyfunction]
#[pyo3(signature = (fds, timeout = None))]
pub fn wait_fds(py: Python<'_>, fds: Vec<RawFd>, timeout: Option<f64>) -> PyResult<Vec<usize>> {
    if fds.iter().any(|fd| *fd < 0) {
        return Err(PyValueError::new_err("invalid file descriptor"));
    }
    let r = sliced(
        py,
        deadline(timeout),
        |t| {
            // SAFETY: the caller keeps the objects owning these descriptors
            // alive for the call (the Python layer holds them in its list),
            // and a borrowed descriptor is only polled.
            let borrowed: Vec<BorrowedFd<'_>> = fds
                .iter()
                .map(|fd| unsafe { BorrowedFd::borrow_raw(*fd) })
                .collect();
            let objs: Vec<&dyn multiproc::connection::Waitable> = borrowed
                .iter()
                .map(|b| b as &dyn multiproc::connection::Waitable)
                .collect();
            wait(&objs, Some(t))
        },
        |r| matches!(r, Ok(v) if v.is_empty()),
    )?;
    Ok(r?)
}
