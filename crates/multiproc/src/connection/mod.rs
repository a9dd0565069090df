//! Pipes and connections: Python's `Pipe()` and `Connection` in Rust form,
//! and its `Listener`, `Client` and `wait` (over Unix socket paths and TCP).

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub mod codec;
pub mod frame;

mod address;
#[cfg(feature = "tokio")]
mod aio;
#[macro_use]
mod auth;
mod client;
mod error;
mod incoming;
mod listener;
mod nonblocking;
#[cfg(feature = "tokio")]
mod stream;
mod wait;

pub use address::{Address, AddressError, MAX_UNIX_PATH, SocketPathError};
pub use auth::{
    AuthFailure, AuthOptions, AuthPolicy, DEFAULT_HANDSHAKE_TIMEOUT, HandshakeError,
    MAX_HANDSHAKE_FRAME, client_handshake, fuzz_handshake, server_handshake,
};
pub use client::{Client, ClientBuilder, ConnectError};
pub use error::{RecvError, RecvTimeoutError, SendError, TryRecvError};
pub use listener::{
    AcceptError, BindError, Listener, ListenerBuilder, MAX_PREAUTH, MAX_PREAUTH_PER_PEER,
};
#[cfg(feature = "tokio")]
pub use stream::ConnectionStream;
pub use wait::{Waitable, wait};

pub(crate) use listener::SOCKET_FILES;

#[cfg(doc)]
use crate::error::TryError;
use crate::error::Waited;
use codec::{DecodeError, HandleError};
#[cfg(doc)]
use frame::FrameError;
use frame::{DEFAULT_MAX_MESSAGE_SIZE, FrameReader, MAX_HEADER_LEN, Payload};
use incoming::{Incoming, Transport, decode_payload, read_frame};

/// One end of a pipe or a duplex connection, carrying serde values of type
/// `T` and raw byte messages.
///
/// Messages are frames with Python's `multiprocessing.connection` layout, so
/// `send_bytes`/`recv_bytes` interoperate with Python peers. Serde messages
/// may contain handles ([`Connection`]s, [`Fd`](crate::Fd)s) when the
/// connection is a Unix socket ([`duplex`]).
///
/// A connection is a handle: it can be passed to a spawned process in its
/// argument, or sent inside a message over a duplex connection. Every copy
/// of the write end must be closed, in every process, before the reader
/// sees [`RecvError::Eof`].
///
/// Reads are buffered: one `read` can bring in many small messages. A
/// connection with unread buffered data refuses to be sent to another
/// process (its buffered messages would stay behind).
pub struct Connection<T> {
    fd: OwnedFd,
    transport: Transport,
    readable: bool,
    writable: bool,
    max: usize,
    reader: Option<Box<FrameReader>>,
    incoming: Incoming,
    wbuf: Vec<u8>,
    /// The unsent rest of a message whose send was interrupted part-way;
    /// it goes out before anything else.
    unsent: Vec<u8>,
    broken: bool,
    _marker: PhantomData<fn(T) -> T>,
}

impl<T> fmt::Debug for Connection<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.fd.as_raw_fd())
            .field("transport", &self.transport)
            .field("readable", &self.readable)
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

/// A one-way pipe: `(reader, writer)`, like Python's `Pipe(duplex=False)`.
///
/// Pipes carry bytes and serde values, but not handles; use [`duplex`] to
/// send connections or other descriptors.
#[doc(alias = "Pipe")]
pub fn pipe<T>() -> io::Result<(Connection<T>, Connection<T>)> {
    let (r, w) = multiproc_sys::fd::pipe()?;
    Ok((
        Connection::new(r, Transport::Pipe, true, false),
        Connection::new(w, Transport::Pipe, false, true),
    ))
}

/// A two-way connection on a Unix socketpair, like Python's `Pipe()`.
/// Both ends read and write, and messages may carry handles.
pub fn duplex<T>() -> io::Result<(Connection<T>, Connection<T>)> {
    let (a, b) = multiproc_sys::fd::socketpair()?;
    Ok((
        Connection::new(a, Transport::Socket, true, true),
        Connection::new(b, Transport::Socket, true, true),
    ))
}

impl<T> Connection<T> {
    fn new(fd: OwnedFd, transport: Transport, readable: bool, writable: bool) -> Self {
        Connection {
            fd,
            transport,
            readable,
            writable,
            max: DEFAULT_MAX_MESSAGE_SIZE,
            reader: None,
            incoming: Incoming::default(),
            wbuf: Vec::new(),
            unsent: Vec::new(),
            broken: false,
            _marker: PhantomData,
        }
    }

    /// Wrap a descriptor: a pipe end, a FIFO, or a connected stream socket
    /// (Unix or TCP). The kind is taken from `fstat`; handles can be carried
    /// only over Unix sockets.
    pub fn from_fd(fd: OwnedFd, readable: bool, writable: bool) -> io::Result<Self> {
        let transport = match multiproc_sys::fd::kind(&fd)? {
            multiproc_sys::fd::FdKind::Socket if multiproc_sys::net::is_inet_socket(&fd) => {
                Transport::Tcp
            }
            multiproc_sys::fd::FdKind::Socket => Transport::Socket,
            _ => Transport::Pipe,
        };
        Ok(Connection::new(fd, transport, readable, writable))
    }

    /// Whether this end can receive.
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Whether this end can send.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The largest message this end sends or accepts (default 1 GiB,
    /// [`DEFAULT_MAX_MESSAGE_SIZE`]).
    pub fn max_message_size(&self) -> usize {
        self.max
    }

    /// Change the largest message this end sends or accepts.
    pub fn set_max_message_size(&mut self, max: usize) {
        self.max = max;
        if let Some(r) = &mut self.reader {
            r.set_max_message_size(max);
        }
    }

    /// The same connection with another message type (the bytes on the wire
    /// are unchanged).
    pub fn cast<U>(self) -> Connection<U> {
        Connection {
            fd: self.fd,
            transport: self.transport,
            readable: self.readable,
            writable: self.writable,
            max: self.max,
            reader: self.reader,
            incoming: self.incoming,
            wbuf: self.wbuf,
            unsent: self.unsent,
            broken: self.broken,
            _marker: PhantomData,
        }
    }

    /// A second handle on the same connection (`dup`). Buffered unread data
    /// stays with `self`.
    pub fn try_clone(&self) -> io::Result<Self> {
        let mut c = Connection::new(
            multiproc_sys::fd::dup(&self.fd)?,
            self.transport,
            self.readable,
            self.writable,
        );
        c.max = self.max;
        Ok(c)
    }

    /// Close this handle (Python's `close()`); same as dropping it.
    pub fn close(self) {}

    // ----- sending -------------------------------------------------------

    fn check_writable(&self) -> Result<(), SendError> {
        if self.writable {
            Ok(())
        } else {
            Err(SendError::NotWritable)
        }
    }

    /// Whether a byte message of `len` bytes may be sent on this end.
    fn check_bytes(&self, len: usize) -> Result<(), SendError> {
        self.check_writable()?;
        if len > self.max {
            return Err(SendError::TooLarge { len, max: self.max });
        }
        Ok(())
    }

    /// Send `buf` as one message (Python's `send_bytes(buf)`).
    pub fn send_bytes(&mut self, buf: &[u8]) -> Result<(), SendError> {
        self.send_bytes_interruptible(buf, || false)
    }

    /// [`send_bytes`](Self::send_bytes) that stops with
    /// [`SendError::Interrupted`] when a signal breaks into a blocked write
    /// and `interrupted()` says so (how Python's bindings answer Ctrl-C on
    /// a full pipe). See [`write_all_vectored_until`] for what that needs.
    ///
    /// [`write_all_vectored_until`]: multiproc_sys::io::write_all_vectored_until
    pub fn send_bytes_interruptible(
        &mut self,
        buf: &[u8],
        mut interrupted: impl FnMut() -> bool,
    ) -> Result<(), SendError> {
        self.check_bytes(buf.len())?;
        let mut header = [0u8; MAX_HEADER_LEN];
        let header = frame::encode_header(buf.len(), &mut header);
        if buf.len() <= 4096 {
            // One contiguous write: cheaper than a two-element writev.
            let mut wbuf = std::mem::take(&mut self.wbuf);
            wbuf.clear();
            wbuf.extend_from_slice(header);
            wbuf.extend_from_slice(buf);
            let r = self.write_frame(&[&wbuf], &[], &mut interrupted);
            self.wbuf = wbuf;
            r
        } else {
            self.write_frame(&[header, buf], &[], &mut interrupted)
        }
    }

    /// Write one whole frame (after the rest of an interrupted one), or
    /// keep what an interruption left unsent.
    fn write_frame(
        &mut self,
        bufs: &[&[u8]],
        fds: &[BorrowedFd<'_>],
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), SendError> {
        let socket = self.transport != Transport::Pipe;
        if !self.unsent.is_empty() {
            let n = multiproc_sys::io::write_all_vectored_until(
                self.fd.as_fd(),
                socket,
                &[&self.unsent],
                &[],
                interrupted,
            )?;
            self.unsent.drain(..n);
            if !self.unsent.is_empty() {
                return Err(SendError::Interrupted);
            }
        }
        let n = multiproc_sys::io::write_all_vectored_until(
            self.fd.as_fd(),
            socket,
            bufs,
            fds,
            interrupted,
        )?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if n == total {
            return Ok(());
        }
        if n > 0 {
            self.keep_unsent(bufs, n);
        }
        Err(SendError::Interrupted)
    }

    /// Send `buf[offset..offset + size]` as one message (Python's
    /// `send_bytes(buf, offset, size)`; `size == None` means to the end).
    pub fn send_bytes_range(
        &mut self,
        buf: &[u8],
        offset: usize,
        size: Option<usize>,
    ) -> Result<(), SendError> {
        let size = size.unwrap_or_else(|| buf.len().saturating_sub(offset));
        match offset.checked_add(size) {
            Some(end) if end <= buf.len() => self.send_bytes(&buf[offset..end]),
            _ => Err(SendError::OutOfRange {
                offset,
                size,
                len: buf.len(),
            }),
        }
    }

    // ----- receiving -----------------------------------------------------

    /// Read the next frame, waiting until `deadline`.
    fn next_frame(
        &mut self,
        deadline: Option<Instant>,
        max: usize,
    ) -> Result<Payload<'_>, Waited<RecvError>> {
        let Connection {
            fd,
            transport,
            readable,
            reader,
            incoming,
            broken,
            ..
        } = self;
        // A byte message's own descriptors (only a hostile sender attaches
        // any) are closed.
        read_frame(
            *readable,
            fd.as_fd(),
            *transport,
            reader,
            incoming,
            broken,
            deadline,
            max,
        )
        .map(|(payload, _fds)| payload)
    }

    /// Receive one byte message (Python's `recv_bytes()`).
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>, RecvError> {
        self.recv_bytes_until(None).map_err(Waited::into_blocking)
    }

    /// Receive one byte message, waiting at most `timeout`.
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, RecvTimeoutError> {
        self.recv_bytes_until(crate::deadline::after(timeout))
            .map_err(Waited::into_timeout)
    }

    /// Receive one byte message, waiting until `deadline`.
    pub fn recv_bytes_deadline(&mut self, deadline: Instant) -> Result<Vec<u8>, RecvTimeoutError> {
        self.recv_bytes_until(Some(deadline))
            .map_err(Waited::into_timeout)
    }

    /// Receive one byte message if a whole one has arrived; never blocks
    /// ([`TryError::WouldBlock`] otherwise).
    pub fn try_recv_bytes(&mut self) -> Result<Vec<u8>, TryRecvError> {
        self.recv_bytes_until(Some(Instant::now()))
            .map_err(Waited::into_try)
    }

    fn recv_bytes_until(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, Waited<RecvError>> {
        let max = self.max;
        Ok(self.next_frame(deadline, max)?.into_vec())
    }

    /// Receive one byte message of at most `maxlength` bytes (Python's
    /// `recv_bytes(maxlength)`). A longer message is a
    /// [`FrameError::TooLarge`] error and, as in Python, leaves the
    /// connection unusable.
    pub fn recv_bytes_limited(&mut self, maxlength: usize) -> Result<Vec<u8>, RecvError> {
        let max = self.max.min(maxlength);
        Ok(self
            .next_frame(None, max)
            .map_err(Waited::into_blocking)?
            .into_vec())
    }

    /// Receive one byte message into `buf[offset..]`, returning its length
    /// (Python's `recv_bytes_into(buf, offset)`).
    ///
    /// If the message does not fit, it is consumed and returned whole in
    /// [`RecvError::BufferTooShort`]. An `offset` past the end of `buf` is an
    /// `InvalidInput` error and receives nothing.
    pub fn recv_bytes_into(&mut self, buf: &mut [u8], offset: usize) -> Result<usize, RecvError> {
        if offset > buf.len() {
            return Err(RecvError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "offset {offset} is past the end of a {}-byte buffer",
                    buf.len()
                ),
            )));
        }
        let max = self.max;
        let payload = self.next_frame(None, max).map_err(Waited::into_blocking)?;
        let msg = payload.as_slice();
        let space = &mut buf[offset..];
        if msg.len() > space.len() {
            return Err(RecvError::BufferTooShort(payload.into_vec()));
        }
        space[..msg.len()].copy_from_slice(msg);
        Ok(msg.len())
    }

    /// Receive one byte message of at most `max` bytes, waiting until
    /// `deadline`: the handshake's bounded read (nothing is decoded).
    pub(crate) fn recv_bytes_bounded(
        &mut self,
        max: usize,
        deadline: Instant,
    ) -> Result<Vec<u8>, Waited<RecvError>> {
        let max = self.max.min(max);
        Ok(self.next_frame(Some(deadline), max)?.into_vec())
    }

    /// Whether a whole message is already buffered (readable without a
    /// system call, though the descriptor may not poll readable).
    pub(crate) fn has_buffered_frame(&self) -> bool {
        self.reader.as_ref().is_some_and(|r| r.has_complete_frame())
    }

    /// Whether a message (or end of file) can be read now, waiting up to
    /// `timeout` (`None`: forever; zero: just look). Python's `poll()`.
    pub fn poll(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        if self.reader.as_ref().is_some_and(|r| r.has_complete_frame()) {
            return Ok(true);
        }
        let deadline = timeout.and_then(crate::deadline::after);
        Ok(multiproc_sys::poll::wait_readable(self.fd.as_fd(), deadline)?.readable)
    }
}

/// Borrows of the descriptors `encode` handed back, for one send.
pub(crate) fn borrow_all(fds: &[OwnedFd]) -> Vec<BorrowedFd<'_>> {
    fds.iter().map(AsFd::as_fd).collect()
}

impl<T> Connection<T> {
    /// Check an encoded payload in `wbuf` (after `MAX_HEADER_LEN` bytes
    /// reserved for the header) that carries `nfds` handles, and write its
    /// header in front: the frame is `wbuf[start..]`, `start` returned.
    fn seal_frame(&self, wbuf: &mut [u8], nfds: usize) -> Result<usize, SendError> {
        if nfds > 0 && self.transport != Transport::Socket {
            return Err(SendError::HandlesNeedSocket);
        }
        let body = wbuf.len() - MAX_HEADER_LEN;
        if body > self.max {
            return Err(SendError::TooLarge {
                len: body,
                max: self.max,
            });
        }
        wbuf[MAX_HEADER_LEN] = u8::try_from(nfds).expect("checked by encode");
        let mut header = [0u8; MAX_HEADER_LEN];
        let header = frame::encode_header(body, &mut header);
        let start = MAX_HEADER_LEN - header.len();
        wbuf[start..MAX_HEADER_LEN].copy_from_slice(header);
        Ok(start)
    }

    fn send_encoded(
        &mut self,
        wbuf: &mut [u8],
        fds: &[BorrowedFd<'_>],
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), SendError> {
        let start = self.seal_frame(wbuf, fds.len())?;
        self.write_frame(&[&wbuf[start..]], fds, interrupted)
    }
}

impl<T: Serialize> Connection<T> {
    /// Send a value (Python's `send(obj)`, without pickle).
    ///
    /// Handles inside the value travel with it over a [`duplex`]
    /// connection; the sender keeps its own copies.
    pub fn send(&mut self, value: &T) -> Result<(), SendError> {
        self.send_interruptible(value, || false)
    }

    /// [`send`](Self::send) that stops with [`SendError::Interrupted`]
    /// when a signal breaks into a blocked write and `interrupted()` says
    /// so, as [`send_bytes_interruptible`](Self::send_bytes_interruptible).
    pub fn send_interruptible(
        &mut self,
        value: &T,
        mut interrupted: impl FnMut() -> bool,
    ) -> Result<(), SendError> {
        self.check_writable()?;
        // Layout in wbuf: 12 bytes reserved for the header, 1 byte handle
        // count, then postcard; the header is written right-aligned into the
        // reserved space so the frame goes out in one write.
        let mut wbuf = std::mem::take(&mut self.wbuf);
        wbuf.clear();
        wbuf.resize(MAX_HEADER_LEN + 1, 0);
        let result = codec::encode(value, &mut wbuf)
            .map_err(SendError::from)
            .and_then(|fds| self.send_encoded(&mut wbuf, &borrow_all(&fds), &mut interrupted));
        self.wbuf = wbuf;
        result
    }
}

impl<T> Connection<T> {
    /// Receive one serde payload and hand it, with its handles, to `decode`.
    fn recv_with<U>(
        &mut self,
        deadline: Option<Instant>,
        decode: impl FnOnce(&[u8], Vec<OwnedFd>) -> Result<U, DecodeError>,
    ) -> Result<U, Waited<RecvError>> {
        let Connection {
            fd,
            transport,
            readable,
            reader,
            incoming,
            broken,
            max,
            ..
        } = self;
        let (payload, fds) = read_frame(
            *readable,
            fd.as_fd(),
            *transport,
            reader,
            incoming,
            broken,
            deadline,
            *max,
        )?;
        let (result, spent) = match payload {
            Payload::Borrowed(bytes) => (decode_payload(bytes, fds, decode), None),
            Payload::Owned(v) => (decode_payload(&v, fds, decode), Some(v)),
        };
        if let (Some(v), Some(r)) = (spent, reader.as_mut()) {
            r.recycle(v);
        }
        Ok(result?)
    }

    /// [`recv_with`](Self::recv_with) for the rest of the crate.
    pub(crate) fn recv_with_public<U>(
        &mut self,
        deadline: Option<Instant>,
        decode: impl FnOnce(&[u8], Vec<OwnedFd>) -> Result<U, DecodeError>,
    ) -> Result<U, Waited<RecvError>> {
        self.recv_with(deadline, decode)
    }

    /// Receive one serde payload undecoded, with the handles that came with it.
    pub(crate) fn recv_raw(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<(Vec<u8>, Vec<OwnedFd>), Waited<RecvError>> {
        self.recv_with(deadline, |b, fds| Ok((b.to_vec(), fds)))
    }

    /// Send an already encoded serde payload whose handles are `fds`.
    pub(crate) fn send_raw(&mut self, body: &[u8], fds: &[OwnedFd]) -> Result<(), SendError> {
        self.check_writable()?;
        let mut wbuf = std::mem::take(&mut self.wbuf);
        wbuf.clear();
        wbuf.resize(MAX_HEADER_LEN + 1, 0);
        wbuf.extend_from_slice(body);
        let result = self.send_encoded(&mut wbuf, &borrow_all(fds), &mut || false);
        self.wbuf = wbuf;
        result
    }
}

impl<T: DeserializeOwned> Connection<T> {
    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<T, Waited<RecvError>> {
        self.recv_with(deadline, codec::decode)
    }

    /// Receive a value, blocking until one arrives (Python's `recv()`).
    pub fn recv(&mut self) -> Result<T, RecvError> {
        self.recv_until(None).map_err(Waited::into_blocking)
    }

    /// Receive a value if a whole one has arrived; never blocks
    /// ([`TryError::WouldBlock`] otherwise).
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.recv_until(Some(Instant::now()))
            .map_err(Waited::into_try)
    }

    /// Receive a value, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_until(crate::deadline::after(timeout))
            .map_err(Waited::into_timeout)
    }

    /// Receive a value, waiting until `deadline`.
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_until(Some(deadline))
            .map_err(Waited::into_timeout)
    }
}

impl<T> AsFd for Connection<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl<T> AsRawFd for Connection<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// What a connection looks like inside a message.
#[derive(Serialize, Deserialize)]
struct Wire<F> {
    fd: F,
    transport: Transport,
    readable: bool,
    writable: bool,
    max: u64,
}

struct SerFd<'a>(BorrowedFd<'a>);
impl Serialize for SerFd<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        codec::serialize_fd(self.0, s)
    }
}

impl<T> Serialize for Connection<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.reader.as_ref().is_some_and(|r| r.has_buffered()) || !self.incoming.is_empty() {
            return Err(codec::handle_error(HandleError::BufferedData));
        }
        Wire {
            fd: SerFd(self.fd.as_fd()),
            transport: self.transport,
            readable: self.readable,
            writable: self.writable,
            max: self.max as u64,
        }
        .serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Connection<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::<crate::Fd>::deserialize(d)?;
        let mut c = Connection::new(w.fd.0, w.transport, w.readable, w.writable);
        c.max = usize::try_from(w.max).unwrap_or(usize::MAX);
        Ok(c)
    }
}
