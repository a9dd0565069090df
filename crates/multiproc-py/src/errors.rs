//! Every Rust→Python error mapping of the package, in one place. The classes
//! raised are the ones CPython's `multiprocessing` raises for the same
//! condition (`queue.Full`/`queue.Empty`, `EOFError`, `BrokenPipeError`,
//! `threading.BrokenBarrierError`, `multiprocessing.BufferTooShort`,
//! `ValueError` for over-release and closed objects).

use multiproc::connection::{
    AcceptError, BindError, ConnectError, HandshakeError, RecvError, SendError, SocketPathError,
};
use multiproc::manager::{self, ManagerError, RemoteError};
use multiproc::queue::{
    GetError, GetTimeoutError, JoinError, PutError, PutTimeoutError, TaskDoneError,
};
use multiproc::sync::ReleaseError;
use multiproc::{AcquireError, BrokenBarrierError, SegmentError};
use multiproc::{SendTimeoutError, TimeoutError};
use pyo3::exceptions::{
    PyAssertionError, PyEOFError, PyOSError, PyRuntimeError, PyTimeoutError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

fn import_exc(py: Python<'_>, module: &str, name: &str, msg: String) -> PyErr {
    match py.import(module).and_then(|m| m.getattr(name)) {
        Ok(cls) => PyErr::from_type(cls.cast_into().expect("an exception class"), msg),
        Err(e) => e,
    }
}

/// `queue.Full`.
pub fn full(py: Python<'_>) -> PyErr {
    import_exc(py, "queue", "Full", String::new())
}

/// `queue.Empty`.
pub fn empty(py: Python<'_>) -> PyErr {
    import_exc(py, "queue", "Empty", String::new())
}

/// `ValueError` for an operation on a closed object.
pub fn closed(what: &str) -> PyErr {
    PyValueError::new_err(format!("{what} is closed"))
}

/// A failed `put`: no room (now or in time) is `queue.Full`.
pub fn put(py: Python<'_>, e: PutTimeoutError<()>) -> PyErr {
    match e {
        SendTimeoutError::Timeout(()) => full(py),
        SendTimeoutError::Failed(PutError::Closed(())) => closed("Queue"),
        SendTimeoutError::Failed(other) => PyOSError::new_err(other.to_string()),
    }
}

/// A failed `get`: no item (now or in time) is `queue.Empty`.
pub fn get(py: Python<'_>, e: GetTimeoutError) -> PyErr {
    match e {
        TimeoutError::Timeout => empty(py),
        TimeoutError::Failed(GetError::Closed) => closed("Queue"),
        TimeoutError::Failed(GetError::Io(e)) => e.into(),
        TimeoutError::Failed(other) => PyOSError::new_err(other.to_string()),
    }
}

/// `task_done()` called too often is a `ValueError`, as in CPython.
pub fn task_done(e: TaskDoneError) -> PyErr {
    match e {
        TaskDoneError::TooManyCalls => PyValueError::new_err("task_done() called too many times"),
        other => PyOSError::new_err(other.to_string()),
    }
}

/// A failed `JoinableQueue.join`.
pub fn join(e: JoinError) -> PyErr {
    PyOSError::new_err(e.to_string())
}

/// A failed send: a closed peer is `BrokenPipeError`.
pub fn send(e: SendError) -> PyErr {
    match e {
        SendError::Disconnected => {
            pyo3::exceptions::PyBrokenPipeError::new_err("the receiving end is closed")
        }
        SendError::TooLarge { .. } | SendError::OutOfRange { .. } => {
            PyValueError::new_err(e.to_string())
        }
        SendError::NotWritable => PyOSError::new_err("connection is read-only"),
        SendError::Io(e) => e.into(),
        other => PyOSError::new_err(other.to_string()),
    }
}

/// A failed receive: end of file is `EOFError`, a too-short buffer is
/// `multiprocessing.BufferTooShort` carrying the message bytes.
pub fn recv(py: Python<'_>, e: RecvError) -> PyErr {
    match e {
        RecvError::Eof => PyEOFError::new_err(()),
        RecvError::BufferTooShort(v) => {
            match py
                .import("multiprocessing")
                .and_then(|m| m.getattr("BufferTooShort"))
            {
                Ok(cls) => PyErr::from_type(
                    cls.cast_into().expect("an exception class"),
                    (PyBytes::new(py, &v).unbind(),),
                ),
                Err(e) => e,
            }
        }
        RecvError::NotReadable => PyOSError::new_err("connection is write-only"),
        RecvError::Io(e) => e.into(),
        other => PyOSError::new_err(other.to_string()),
    }
}

/// Over-release: `ValueError` for locks and semaphores (CPython's message);
/// an `RLock` released by a non-owner is an `AssertionError`, as
/// `multiprocessing.RLock` raises.
pub fn release(e: ReleaseError) -> PyErr {
    match e {
        ReleaseError::NotOwner => {
            PyAssertionError::new_err("attempt to release recursive lock not owned by thread")
        }
        _ => PyValueError::new_err("semaphore or lock released too many times"),
    }
}

/// An acquire that failed for good (`NotRecoverable`): a `RuntimeError`.
/// `OwnerDied` never reaches here: the caller holds the lock and warns.
pub fn acquire<G>(e: AcquireError<G>) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// `OwnerDiedWarning` (a `RuntimeWarning` subclass defined in Python):
/// emitted when an acquire succeeds on a lock whose previous holder died.
pub fn warn_owner_died(py: Python<'_>) -> PyResult<()> {
    let cls = py
        .import("multiproc._errors")?
        .getattr("OwnerDiedWarning")?;
    PyErr::warn(
        py,
        &cls,
        c"the previous holder of this lock died holding it; the lock is now held by the caller",
        2,
    )
}

/// `threading.BrokenBarrierError`.
pub fn broken_barrier(py: Python<'_>, _e: BrokenBarrierError) -> PyErr {
    import_exc(py, "threading", "BrokenBarrierError", String::new())
}

/// A segment that cannot be opened or made.
pub fn segment(e: SegmentError) -> PyErr {
    match e {
        SegmentError::Io(e) => e.into(),
        SegmentError::PermissionMismatch { .. } => {
            pyo3::exceptions::PyPermissionError::new_err(e.to_string())
        }
        other => PyOSError::new_err(other.to_string()),
    }
}

/// A handle that cannot be encoded or rebuilt.
pub fn handle(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("cannot transfer the object: {e}"))
}

/// An index or range outside an object.
pub fn out_of_range(e: impl std::fmt::Display) -> PyErr {
    pyo3::exceptions::PyIndexError::new_err(e.to_string())
}

/// `multiprocessing.TimeoutError` is not used by these objects; kept for
/// the Manager/Pool bindings to come.
pub fn timeout() -> PyErr {
    PyTimeoutError::new_err(())
}

/// Linux's `EADDRINUSE` (the errno Python's `Listener` reports for an
/// address another listener holds).
pub const EADDRINUSE: i32 = 98;

/// `multiprocessing.AuthenticationError`.
pub fn authentication(py: Python<'_>, msg: String) -> PyErr {
    import_exc(py, "multiprocessing", "AuthenticationError", msg)
}

/// A failed `Listener(...)`: an address in use is `OSError(EADDRINUSE)`,
/// as in Python; a directory that is not private is `PermissionError`.
pub fn bind(e: BindError) -> PyErr {
    match e {
        BindError::AddrInUse(a) => {
            PyOSError::new_err((EADDRINUSE, format!("Address already in use: {a}")))
        }
        BindError::Io(e) => e.into(),
        BindError::Path(SocketPathError::InsecureDirectory { .. }) => {
            pyo3::exceptions::PyPermissionError::new_err(e.to_string())
        }
        other => PyOSError::new_err(other.to_string()),
    }
}

/// A failed handshake: a wrong authkey is
/// `multiprocessing.AuthenticationError`, the peer closing is `EOFError`
/// (what Python's `recv_bytes` raises there), a timeout `TimeoutError`.
pub fn handshake(py: Python<'_>, e: HandshakeError) -> PyErr {
    match e {
        HandshakeError::Authentication(f) => authentication(py, f.to_string()),
        HandshakeError::Disconnected => PyEOFError::new_err(e.to_string()),
        HandshakeError::Timeout => PyTimeoutError::new_err(e.to_string()),
        HandshakeError::Io(e) => e.into(),
        other => authentication(py, other.to_string()),
    }
}

/// A failed `Listener.accept()`.
pub fn accept(py: Python<'_>, e: AcceptError) -> PyErr {
    match e {
        AcceptError::Handshake(h) => handshake(py, h),
        AcceptError::Io(e) => e.into(),
        AcceptError::ForeignPeer { .. } => {
            pyo3::exceptions::PyPermissionError::new_err(e.to_string())
        }
        other => PyOSError::new_err(other.to_string()),
    }
}

/// A failed `Client(...)`: nobody listening is `ConnectionRefusedError` or
/// `FileNotFoundError`, as in Python.
pub fn connect(py: Python<'_>, e: ConnectError) -> PyErr {
    match e {
        ConnectError::Handshake(h) => handshake(py, h),
        ConnectError::Io(e) => e.into(),
        ConnectError::Timeout => PyTimeoutError::new_err(e.to_string()),
        ConnectError::Path(SocketPathError::InsecureDirectory { .. }) => {
            pyo3::exceptions::PyPermissionError::new_err(e.to_string())
        }
        other => PyOSError::new_err(other.to_string()),
    }
}

/// A failed manager operation. A server that is gone is `EOFError` (what
/// `multiprocessing`'s proxies raise when the server dies under them);
/// the server's refusals are the Python classes they stand for
/// (`KeyError`, `IndexError`, `queue.Empty`, ...); a wait that timed out
/// is `TimeoutError` (the proxies turn it into `False` where Python
/// returns that); anything else is `multiprocessing.managers.RemoteError`.
pub fn manager(py: Python<'_>, e: ManagerError) -> PyErr {
    use pyo3::exceptions::{PyIndexError, PyKeyError, PyOverflowError, PyTypeError};
    match e {
        ManagerError::ServerGone => PyEOFError::new_err("the manager server is gone"),
        ManagerError::Connect(c) => connect(py, c),
        ManagerError::Forked => PyRuntimeError::new_err(e.to_string()),
        ManagerError::Io(e) => e.into(),
        ManagerError::Convert(c) => PyTypeError::new_err(c.to_string()),
        ManagerError::TooLarge { .. } => PyValueError::new_err(e.to_string()),
        ManagerError::Remote(r) => match r {
            RemoteError::Key => PyKeyError::new_err(()),
            RemoteError::Index => PyIndexError::new_err("index out of range"),
            RemoteError::Type(e) => PyTypeError::new_err(e.to_string()),
            RemoteError::Value(e) => PyValueError::new_err(e.to_string()),
            RemoteError::Overflow => PyOverflowError::new_err("integer overflow"),
            RemoteError::Timeout => PyTimeoutError::new_err(()),
            RemoteError::Empty => empty(py),
            RemoteError::Full => full(py),
            // threading's classes: a bounded semaphore released too often
            // is a ValueError, a lock not held a RuntimeError.
            RemoteError::Release(e @ manager::ReleaseError::SemaphoreBound) => {
                PyValueError::new_err(e.to_string())
            }
            RemoteError::Release(e) => PyRuntimeError::new_err(e.to_string()),
            RemoteError::BrokenBarrier => {
                import_exc(py, "threading", "BrokenBarrierError", String::new())
            }
            RemoteError::TaskDone => PyValueError::new_err("task_done() called too many times"),
            RemoteError::ShuttingDown => PyEOFError::new_err("the manager server is shutting down"),
            other => import_exc(
                py,
                "multiprocessing.managers",
                "RemoteError",
                other.to_string(),
            ),
        },
        other => import_exc(
            py,
            "multiprocessing.managers",
            "RemoteError",
            other.to_string(),
        ),
    }
}
