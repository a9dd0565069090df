//! `RawConnection`: the native side of `Pipe()` and `Connection`, on the
//! Rust core's byte frames (the same framing as `multiprocessing`'s).

use crate::{deadline, errors, handle, interrupted, signal_check, sliced};
use multiproc::TimeoutError;
use multiproc::connection::{Connection, RecvError, SendError};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

/// One end of a pipe or socketpair. The receiving and the sending side are
/// separate descriptors of the same file, so a thread blocked in `recv`
/// does not block a `send` from another thread.
#[derive(Debug)]
#[pyclass(module = "multiproc._multiproc", subclass, frozen)]
pub struct RawConnection {
    rx: Mutex<Option<Connection<()>>>,
    tx: Mutex<Option<Connection<()>>>,
    readable: bool,
    writable: bool,
}

fn handle_closed() -> PyErr {
    PyOSError::new_err("handle is closed")
}

impl RawConnection {
    /// Wrap a connection for Python: no cap on message sizes, as in
    /// `multiprocessing` (frames grow only as their bytes arrive; a length
    /// prefix alone allocates nothing), until `max_message_size` sets one.
    pub(crate) fn wrap(mut c: Connection<()>) -> PyResult<Self> {
        c.set_max_message_size(usize::MAX);
        let tx = c.try_clone()?;
        Ok(RawConnection {
            readable: c.readable(),
            writable: c.writable(),
            rx: Mutex::new(Some(c)),
            tx: Mutex::new(Some(tx)),
        })
    }

    /// Wait (GIL released, in slices) until a message or EOF can be read.
    fn wait_readable(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let rx = &self.rx;
        let r = sliced(
            py,
            deadline(timeout),
            |t| match rx.lock().expect("not poisoned").as_mut() {
                Some(c) => c.poll(Some(t)).map_err(Some),
                None => Err(None),
            },
            |r| matches!(r, Ok(false)),
        )?;
        match r {
            Ok(b) => Ok(b),
            Err(Some(e)) => Err(e.into()),
            Err(None) => Err(handle_closed()),
        }
    }

    fn check_readable(&self) -> PyResult<()> {
        if self.rx.lock().expect("not poisoned").is_none() {
            return Err(handle_closed());
        }
        if !self.readable {
            return Err(PyOSError::new_err("connection is write-only"));
        }
        Ok(())
    }
}

/// How long `recv_bytes` polls (GIL released) before it sleeps in the
/// kernel: a reply that comes within this long is taken without a kernel
/// wake-up, which costs more than the whole round trip on small VMs.
const SPIN: Duration = Duration::from_micros(40);

/// Called with the GIL released, in the first slice of the wait itself: a
/// thread that came back for the GIL between the spin and the wait could be
/// ended by a finalizing interpreter (see `hang_if_finalizing`).
fn spin_until_readable(c: &mut Connection<()>) {
    let start = std::time::Instant::now();
    while !c.poll(Some(Duration::ZERO)).unwrap_or(true) {
        if start.elapsed() >= SPIN {
            return;
        }
        std::hint::spin_loop();
    }
}

/// A pair of connected ends: a socketpair (`duplex`) or an OS pipe
/// (`(read end, write end)`).
#[pyfunction]
#[pyo3(signature = (duplex = true))]
pub fn pipe(duplex: bool) -> PyResult<(RawConnection, RawConnection)> {
    let (a, b) = if duplex {
        multiproc::duplex::<()>()?
    } else {
        multiproc::pipe::<()>()?
    };
    Ok((RawConnection::wrap(a)?, RawConnection::wrap(b)?))
}

#[pymethods]
impl RawConnection {
    /// The largest message this end sends or accepts, in bytes (`None`:
    /// no limit, the default). A longer incoming message breaks the
    /// connection (`OSError`); a longer outgoing one raises `ValueError`
    /// and sends nothing.
    #[getter]
    fn get_max_message_size(&self, py: Python<'_>) -> PyResult<Option<usize>> {
        let max = crate::detach(py, || {
            self.tx
                .lock()
                .ok()
                .and_then(|g| g.as_ref().map(|c| c.max_message_size()))
        });
        let max = max.ok_or_else(handle_closed)?;
        Ok((max != usize::MAX).then_some(max))
    }

    /// Set (or with `None` remove) the limit on message sizes.
    #[setter]
    fn set_max_message_size(&self, py: Python<'_>, max: Option<usize>) -> PyResult<()> {
        let max = max.unwrap_or(usize::MAX);
        crate::detach(py, || {
            for m in [&self.rx, &self.tx] {
                let mut g = m.lock().map_err(|_| ())?;
                g.as_mut().ok_or(())?.set_max_message_size(max);
            }
            Ok(())
        })
        .map_err(|()| handle_closed())
    }

    /// Send `size` bytes of `buf` from `offset` (in bytes) as one message.
    #[pyo3(signature = (buf, offset = 0, size = None))]
    fn _send_bytes(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: usize,
        size: Option<usize>,
    ) -> PyResult<()> {
        let view = SimpleBuf::get(buf, false)?;
        let s = view.bytes();
        let end = match size {
            None => s.len(),
            Some(n) => offset
                .checked_add(n)
                .filter(|e| *e <= s.len())
                .ok_or_else(|| PyValueError::new_err("buffer length < offset + size"))?,
        };
        if offset > s.len() {
            return Err(PyValueError::new_err("offset is out of bounds"));
        }
        let msg = &s[offset..end];
        if !self.writable {
            return Err(PyOSError::new_err("connection is read-only"));
        }
        // The lock is taken with the GIL released: a sender blocked on a
        // full pipe takes the GIL to check for signals, so a second sender
        // must not wait for the lock while holding it.
        let mut slot = None;
        let r = crate::detach(py, || {
            let mut g = self.tx.lock().ok()?;
            let c = g.as_mut()?;
            Some(c.send_bytes_interruptible(msg, signal_check(&mut slot)))
        });
        match r {
            None => Err(handle_closed()),
            Some(Ok(())) => Ok(()),
            Some(Err(SendError::Interrupted)) => Err(interrupted(slot)),
            Some(Err(e)) => Err(errors::send(e)),
        }
    }

    /// Start sending `buf[offset..offset + size]` as one message without
    /// blocking: `True` when it went out or its first bytes did (the rest
    /// goes with `_flush_unsent`, or ahead of the next send), `False` when
    /// nothing could be written now. The step of an asyncio
    /// `send_bytes_async`, between waits for writability.
    fn _try_start_send_bytes(
        &self,
        buf: &Bound<'_, PyAny>,
        offset: usize,
        size: usize,
    ) -> PyResult<bool> {
        if !self.writable {
            return Err(PyOSError::new_err("connection is read-only"));
        }
        let view = SimpleBuf::get(buf, false)?;
        let msg = offset
            .checked_add(size)
            .and_then(|end| view.bytes().get(offset..end))
            .ok_or_else(|| PyValueError::new_err("buffer length < offset + size"))?;
        let mut g = self.tx.lock().expect("not poisoned");
        let c = g.as_mut().ok_or_else(handle_closed)?;
        c.try_start_send_bytes(msg).map_err(errors::send)
    }

    /// Write what a started or interrupted send left unsent, without
    /// blocking; `True` when nothing is left.
    fn _flush_unsent(&self) -> PyResult<bool> {
        let mut g = self.tx.lock().expect("not poisoned");
        let c = g.as_mut().ok_or_else(handle_closed)?;
        c.flush_unsent().map_err(errors::send)
    }

    /// The descriptor of the sending side.
    fn _send_fileno(&self) -> PyResult<RawFd> {
        match self.tx.lock().expect("not poisoned").as_ref() {
            Some(c) => Ok(c.as_raw_fd()),
            None => Err(handle_closed()),
        }
    }

    /// Receive one message as bytes (at most `maxlength`: `OSError` for a
    /// longer one, as in CPython).
    #[pyo3(signature = (maxlength = None))]
    fn recv_bytes<'py>(
        &self,
        py: Python<'py>,
        maxlength: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if maxlength.is_some_and(|m| m < 0) {
            return Err(PyValueError::new_err("negative maxlength"));
        }
        self.check_readable()?;
        let rx = &self.rx;
        let mut spun = false;
        let r = match maxlength {
            None => sliced(
                py,
                None,
                |t| match rx.lock().expect("not poisoned").as_mut() {
                    Some(c) => {
                        if !std::mem::replace(&mut spun, true) {
                            spin_until_readable(c);
                        }
                        c.recv_bytes_timeout(t)
                    }
                    None => Err(TimeoutError::Failed(RecvError::Broken)),
                },
                |r| matches!(r, Err(TimeoutError::Timeout)),
            )?
            .map_err(|e| match e {
                TimeoutError::Failed(e) => e,
                // `sliced` without a deadline only returns what did not time out.
                TimeoutError::Timeout => RecvError::Io(std::io::ErrorKind::TimedOut.into()),
            }),
            Some(m) => {
                self.wait_readable(py, None)?;
                crate::detach(py, || match rx.lock().expect("not poisoned").as_mut() {
                    Some(c) => c.recv_bytes_limited(m as usize),
                    None => Err(RecvError::Broken),
                })
                .map_err(|e| match e {
                    RecvError::Frame(_) => {
                        RecvError::Io(std::io::Error::other("bad message length"))
                    }
                    e => e,
                })
            }
        };
        match r {
            Ok(v) => Ok(PyBytes::new(py, &v)),
            Err(e) => Err(errors::recv(py, e)),
        }
    }

    /// Receive one message into `buf` at byte `offset`; its length.
    /// `multiprocessing.BufferTooShort` (holding the message) if it does
    /// not fit.
    #[pyo3(signature = (buf, offset = 0))]
    fn _recv_bytes_into(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: usize,
    ) -> PyResult<usize> {
        self.check_readable()?;
        let view = SimpleBuf::get(buf, true)?;
        self.wait_readable(py, None)?;
        let rx = &self.rx;
        let (ptr, len) = (view.0.buf as usize, view.0.len as usize);
        let r = crate::detach(py, || match rx.lock().expect("not poisoned").as_mut() {
            // SAFETY: `view` holds a writable, contiguous buffer of `len`
            // bytes at `ptr` until it drops (after this call); CPython
            // exporters do not move a buffer while a view is held.
            Some(c) => c.recv_bytes_into(
                unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, len) },
                offset,
            ),
            None => Err(RecvError::Broken),
        });
        drop(view);
        r.map_err(|e| errors::recv(py, e))
    }

    /// Whether a message (or EOF) is ready, waiting at most `timeout`
    /// seconds (`None`: forever).
    #[pyo3(signature = (timeout = 0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        self.check_readable()?;
        if timeout == Some(0.0) {
            let mut g = self.rx.lock().expect("not poisoned");
            let c = g.as_mut().ok_or_else(handle_closed)?;
            return Ok(c.poll(Some(Duration::ZERO))?);
        }
        self.wait_readable(py, timeout)
    }

    /// One message if a whole one has arrived, else `None`; never blocks
    /// (a message's first bytes stay buffered for the next call): the step
    /// of an asyncio `recv_bytes_async`, between waits for `fileno()`.
    fn _try_recv_bytes<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        self.check_readable()?;
        let mut g = self.rx.lock().expect("not poisoned");
        let c = g.as_mut().ok_or_else(handle_closed)?;
        match c.try_recv_bytes() {
            Ok(v) => Ok(Some(PyBytes::new(py, &v))),
            Err(multiproc::TryError::WouldBlock) => Ok(None),
            Err(multiproc::TryError::Failed(e)) => Err(errors::recv(py, e)),
        }
    }

    /// The descriptor (of the receiving side).
    fn fileno(&self) -> PyResult<RawFd> {
        match self.rx.lock().expect("not poisoned").as_ref() {
            Some(c) => Ok(c.as_raw_fd()),
            None => Err(handle_closed()),
        }
    }

    /// Close both descriptors.
    fn close(&self) {
        let a = self.rx.lock().expect("not poisoned").take();
        let b = self.tx.lock().expect("not poisoned").take();
        drop((a, b));
    }

    /// Whether it was closed.
    #[getter]
    fn closed(&self) -> bool {
        self.rx.lock().expect("not poisoned").is_none()
    }

    /// Whether it can receive.
    #[getter]
    fn readable(&self) -> bool {
        self.readable
    }

    /// Whether it can send.
    #[getter]
    fn writable(&self) -> bool {
        self.writable
    }

    /// `(state, fds)`: what the Python layer pickles.
    fn _state<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<RawFd>)> {
        match self.rx.lock().expect("not poisoned").as_ref() {
            Some(c) => handle::state(py, c),
            None => Err(handle_closed()),
        }
    }

    /// Rebuild from `_state`, taking ownership of `fds`.
    #[staticmethod]
    fn _rebuild(state: &[u8], fds: Vec<RawFd>) -> PyResult<Self> {
        RawConnection::wrap(handle::rebuild(state, fds)?)
    }
}

/// A `PyBUF_SIMPLE` (contiguous bytes) view of any buffer exporter.
struct SimpleBuf(Box<ffi::Py_buffer>);

impl SimpleBuf {
    fn get(obj: &Bound<'_, PyAny>, writable: bool) -> PyResult<Self> {
        // SAFETY: an all-zero `Py_buffer` is a valid "empty" value to fill.
        let mut b: Box<ffi::Py_buffer> = Box::new(unsafe { std::mem::zeroed() });
        let flags = if writable {
            ffi::PyBUF_WRITABLE
        } else {
            ffi::PyBUF_SIMPLE
        };
        // SAFETY: `obj` is a live object (the GIL is held) and `b` points
        // to a `Py_buffer` to fill; on success it must be released once,
        // which `Drop` does.
        if unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *b, flags) } == -1 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(SimpleBuf(b))
    }

    fn bytes(&self) -> &[u8] {
        if self.0.len == 0 {
            return &[];
        }
        // SAFETY: a `PyBUF_SIMPLE` view is `len` contiguous bytes at `buf`,
        // valid until the view is released in `Drop`.
        unsafe { std::slice::from_raw_parts(self.0.buf as *const u8, self.0.len as usize) }
    }
}

impl Drop for SimpleBuf {
    fn drop(&mut self) {
        // SAFETY: the view was filled by `PyObject_GetBuffer`, is released
        // exactly once, and every `SimpleBuf` is dropped with the GIL held
        // (none crosses `detach`).
        unsafe { ffi::PyBuffer_Release(&mut *self.0) }
    }
}
