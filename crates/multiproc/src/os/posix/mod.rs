//! POSIX message queues (`mq_overview(7)`, seed 004): named kernel queues of
//! byte messages with priorities, for related or unrelated processes.
//!
//! - [`MessageQueue::create`] makes a new queue (`O_CREAT | O_EXCL`, mode
//!   0600: a taken name is [`OpenError::AlreadyExists`], never an attach),
//!   [`MessageQueue::open`] opens an existing one and checks it belongs to
//!   this user and is private to it, [`MessageQueue::builder`] sets the
//!   capacity (`maxmsg`, `msgsize`) and offers
//!   [`create_or_open`](MessageQueueBuilder::create_or_open).
//! - A `MessageQueue<T>` is typed by default, as a [`Queue`](crate::Queue)
//!   is: [`send`](MessageQueue::send) and [`recv`](MessageQueue::recv)
//!   carry serde values of `T` in the crate's codec (a value with a handle
//!   inside is refused, [`SendError::Handles`]: a queue carries bytes, not
//!   descriptors), and [`send_bytes`](MessageQueue::send_bytes) /
//!   [`recv_bytes`](MessageQueue::recv_bytes) carry raw bytes, for peers in
//!   other languages. `T` defaults to [`Bytes`], which has no values: a
//!   queue of unnamed type offers only the `_bytes` forms, so raw code never
//!   serde-encodes by accident; [`cast`](MessageQueue::cast)
//!   changes it.
//! - A receive takes the oldest message of the highest priority:
//!   priorities first, FIFO within one priority.
//! - Every blocking call has `x()`, `try_x()`, `x_timeout(Duration)` and
//!   `x_deadline(Instant)` forms.
//!   Timeouts are measured on the monotonic clock (the kernel's absolute
//!   wall-clock timeout is recomputed before each try), and a signal never
//!   ends a wait early or loses a message.
//! - The queue outlives its creator until [`unlink`](MessageQueue::unlink):
//!   each queue the library creates is recorded in the
//!   [registry], so `multiproc ls`/`clean` find the ones
//!   whose creator is dead.
//! - A `MessageQueue` is a handle (a close-on-exec descriptor: on Linux an
//!   `mqd_t` is one): it moves into spawned children and inside messages over
//!   a socket [`Connection`](crate::Connection), and it can be polled
//!   ([`AsFd`]: readable when a message is there, writable when there is
//!   room).
//!
//! ```no_run
//! use multiproc::os::posix::MessageQueue;
//!
//! multiproc::init();
//! let q: MessageQueue<String> = MessageQueue::builder("/example").maxmsg(8).msgsize(64).create()?;
//! q.send("low".to_string(), 1)?;
//! q.send_bytes(b"\x04high", 9)?; // the codec's bytes of "high"
//! assert_eq!(q.recv()?, ("high".to_string(), 9));
//! assert_eq!(q.recv_bytes()?, (b"\x03low".to_vec(), 1));
//! q.unlink()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use multiproc_sys::mq::{self as sys, Wait};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::codec::{self, Fd};
#[cfg(doc)]
use crate::error::{TimeoutError, TryError};
use crate::error::{Waited, WaitedWith};
use crate::names::kind::Kind;
use crate::names::object::NamedKind;
use crate::names::registry::{self, Registry};

mod error;

pub use error::{
    OpenError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

/// The longest name after its leading `/` (`NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Priorities are `0..PRIORITY_MAX` (Linux's `MQ_PRIO_MAX`); higher is
/// received first.
pub const PRIORITY_MAX: u32 = sys::PRIO_MAX;
/// `maxmsg` when the builder is not given one: the system's unprivileged
/// limit `msg_max` (10 by default), at most 10.
pub const DEFAULT_MAXMSG: usize = 10;
/// `msgsize` when the builder is not given one: at most the system's
/// unprivileged limit `msgsize_max` (8192 by default).
pub const DEFAULT_MSGSIZE: usize = 8192;

/// A name is not a valid message queue name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid message queue name {name:?}: {reason}")]
pub struct InvalidName {
    /// The name given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Check a queue name: a leading `/`, then 1 to [`NAME_MAX`] bytes with no
/// other `/` and no NUL, and not `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), InvalidName> {
    let bad = |reason| {
        Err(InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    let Some(rest) = name.strip_prefix('/') else {
        return bad("must start with '/'");
    };
    if rest.is_empty() {
        return bad("must have at least one character after '/'");
    }
    if rest.len() > NAME_MAX {
        return bad("longer than NAME_MAX (255) bytes after '/'");
    }
    if rest.contains('/') {
        return bad("must not contain '/' after the first character");
    }
    if rest.contains('\0') {
        return bad("must not contain NUL");
    }
    if rest == "." || rest == ".." {
        return bad("must not be '.' or '..'");
    }
    Ok(())
}

/// A queue's attributes (`mq_getattr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes {
    /// Most messages the queue holds.
    pub maxmsg: usize,
    /// Largest message in bytes.
    pub msgsize: usize,
    /// Messages in the queue now.
    pub curmsgs: usize,
    /// Whether this handle's open description is non-blocking (then the
    /// blocking forms wait by polling).
    pub nonblocking: bool,
}

impl From<sys::MqAttr> for Attributes {
    fn from(a: sys::MqAttr) -> Self {
        let n = |v: i64| usize::try_from(v).unwrap_or(0);
        Attributes {
            maxmsg: n(a.maxmsg),
            msgsize: n(a.msgsize),
            curmsgs: n(a.curmsgs),
            nonblocking: a.nonblocking,
        }
    }
}

/// How to create or open a [`MessageQueue`]; from
/// [`MessageQueue::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct MessageQueueBuilder {
    name: String,
    maxmsg: Option<usize>,
    msgsize: Option<usize>,
    registry: Option<Registry>,
}

impl MessageQueueBuilder {
    /// Most messages the queue holds (default: the system's `msg_max`, at
    /// most [`DEFAULT_MAXMSG`]). Above `/proc/sys/fs/mqueue/msg_max` an
    /// unprivileged process gets [`OpenError::LimitExceeded`].
    pub fn maxmsg(mut self, maxmsg: usize) -> Self {
        self.maxmsg = Some(maxmsg);
        self
    }

    /// Largest message in bytes (default: the system's `msgsize_max`, at
    /// most [`DEFAULT_MSGSIZE`]). Above `/proc/sys/fs/mqueue/msgsize_max` an
    /// unprivileged process gets [`OpenError::LimitExceeded`].
    pub fn msgsize(mut self, msgsize: usize) -> Self {
        self.msgsize = Some(msgsize);
        self
    }

    /// Record a created queue in this registry instead of the default one
    /// (and forget it there on [`MessageQueue::unlink`]).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    fn capacity(&self) -> Result<(usize, usize), OpenError> {
        let limits = sys::limits();
        let cap = |v: Option<i64>, default: usize| {
            v.and_then(|v| usize::try_from(v).ok())
                .map_or(default, |v| v.clamp(1, default))
        };
        let maxmsg = self
            .maxmsg
            .unwrap_or_else(|| cap(limits.msg_max, DEFAULT_MAXMSG));
        let msgsize = self
            .msgsize
            .unwrap_or_else(|| cap(limits.msgsize_max, DEFAULT_MSGSIZE));
        if maxmsg == 0 || msgsize == 0 {
            return Err(OpenError::InvalidAttributes { maxmsg, msgsize });
        }
        Ok((maxmsg, msgsize))
    }

    fn make<T>(self, exclusive: bool) -> Result<MessageQueue<T>, OpenError> {
        validate_name(&self.name)?;
        let (maxmsg, msgsize) = self.capacity()?;
        let big = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        let fd = match sys::create(&self.name, exclusive, 0o600, big(maxmsg), big(msgsize)) {
            Ok(fd) => fd,
            Err(e) => {
                let limits = sys::limits();
                let (msg_max, msgsize_max) = (
                    limits.msg_max.unwrap_or(-1),
                    limits.msgsize_max.unwrap_or(-1),
                );
                let over = |v: usize, unpriv: i64, hard: i64| {
                    big(v) > hard || (unpriv >= 0 && big(v) > unpriv)
                };
                let limit = match e.raw_os_error() {
                    Some(sys::errno::EINVAL) => {
                        over(maxmsg, msg_max, sys::HARD_MSGMAX)
                            || over(msgsize, msgsize_max, sys::HARD_MSGSIZEMAX)
                    }
                    Some(sys::errno::EMFILE | sys::errno::ENOSPC) => true,
                    _ => false,
                };
                if limit {
                    return Err(OpenError::LimitExceeded {
                        maxmsg,
                        msgsize,
                        msg_max,
                        msgsize_max,
                        source: e,
                    });
                }
                return Err(open_error(&self.name, e));
            }
        };
        let q = MessageQueue::from_fd(fd, Some(self.name.clone()), self.registry.clone())
            .map_err(|e| open_error(&self.name, e))?;
        // Best effort: a registry that cannot be written never stops a queue
        // from being created.
        let _ = match &self.registry {
            Some(r) => r.record(Kind::PosixMq, &self.name),
            None => registry::record(Kind::PosixMq, &self.name),
        };
        Ok(q)
    }

    /// Create a new queue (`O_CREAT | O_EXCL`, mode 0600); a taken name is
    /// [`OpenError::AlreadyExists`].
    pub fn create<T>(self) -> Result<MessageQueue<T>, OpenError> {
        self.make(true)
    }

    /// Open the queue if it exists (checked as [`open`](Self::open) does;
    /// its capacity is what it was created with), else create it.
    pub fn create_or_open<T>(self) -> Result<MessageQueue<T>, OpenError> {
        validate_name(&self.name)?;
        // Try the exclusive create first, so that a queue made here is known
        // to be fresh; on a race with another creator, open theirs.
        match self.clone().make(true) {
            Err(OpenError::AlreadyExists(_)) => self.open(),
            other => other,
        }
    }

    /// Open an existing queue for sending and receiving, checking that it
    /// belongs to this user and is private to it (mode 0600 or stricter).
    /// The capacity set on the builder is not used.
    pub fn open<T>(self) -> Result<MessageQueue<T>, OpenError> {
        validate_name(&self.name)?;
        let fd = sys::open(&self.name, true).map_err(|e| open_error(&self.name, e))?;
        let info = multiproc_sys::shm::file_info(&fd).map_err(|e| open_error(&self.name, e))?;
        if info.uid != multiproc_sys::shm::euid() || info.mode & 0o077 != 0 {
            return Err(OpenError::NotPrivate {
                name: self.name,
                uid: info.uid,
                mode: info.mode,
            });
        }
        MessageQueue::from_fd(fd, Some(self.name.clone()), self.registry)
            .map_err(|e| open_error(&self.name, e))
    }
}

fn open_error(name: &str, e: io::Error) -> OpenError {
    match e.kind() {
        io::ErrorKind::AlreadyExists => OpenError::AlreadyExists(name.to_owned()),
        io::ErrorKind::NotFound => OpenError::NotFound(name.to_owned()),
        io::ErrorKind::PermissionDenied => OpenError::NotPrivate {
            name: name.to_owned(),
            uid: u32::MAX,
            mode: 0,
        },
        _ => OpenError::Io {
            name: name.to_owned(),
            source: e,
        },
    }
}

/// The message type of a [`MessageQueue`] that carries raw bytes only:
/// there is no value of it, so only the `_bytes` forms apply.
///
/// ```compile_fail
/// use multiproc::os::posix::MessageQueue;
/// let q: MessageQueue = MessageQueue::open("/raw").unwrap();
/// let _ = q.recv(); // a raw queue has no typed receive: use recv_bytes
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bytes {}

/// A POSIX message queue handle for messages of `T` (raw bytes with the
/// `_bytes` forms). See the [module docs](self).
pub struct MessageQueue<T = Bytes> {
    fd: OwnedFd,
    name: Option<String>,
    msgsize: usize,
    registry: Option<Registry>,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> fmt::Debug for MessageQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageQueue")
            .field("name", &self.name)
            .field("fd", &self.fd)
            .field("msgsize", &self.msgsize)
            .finish_non_exhaustive()
    }
}

fn deadline(timeout: Duration) -> Wait {
    // A timeout too long to represent waits forever.
    crate::deadline::after(timeout).map_or(Wait::Forever, Wait::Until)
}

impl MessageQueue {
    /// A builder for the queue `name` (`/something`); its `create`/`open`
    /// choose the message type.
    pub fn builder(name: impl Into<String>) -> MessageQueueBuilder {
        MessageQueueBuilder {
            name: name.into(),
            maxmsg: None,
            msgsize: None,
            registry: None,
        }
    }

    /// Remove a name without opening it (`mq_unlink`), and forget its
    /// record in the default registry.
    pub fn unlink_name(name: &str) -> Result<(), OpenError> {
        validate_name(name)?;
        sys::unlink(name).map_err(|e| open_error(name, e))?;
        let _ = registry::forget(Kind::PosixMq, name);
        Ok(())
    }
}

impl<T> MessageQueue<T> {
    /// Create a new queue with the default capacity (see
    /// [`MessageQueueBuilder::create`]).
    pub fn create(name: &str) -> Result<Self, OpenError> {
        MessageQueue::builder(name).create()
    }

    /// Open an existing queue (see [`MessageQueueBuilder::open`]).
    pub fn open(name: &str) -> Result<Self, OpenError> {
        MessageQueue::builder(name).open()
    }

    fn from_fd(fd: OwnedFd, name: Option<String>, registry: Option<Registry>) -> io::Result<Self> {
        let attr = sys::getattr(&fd)?;
        Ok(MessageQueue {
            fd,
            name,
            msgsize: usize::try_from(attr.msgsize).unwrap_or(0),
            registry,
            _t: PhantomData,
        })
    }

    /// Remove the queue's name (`mq_unlink`) and its registry record. Open
    /// handles (here and in other processes) stay usable; the kernel frees
    /// the queue when the last one closes. Until then the queue survives
    /// every process that used it.
    pub fn unlink(&self) -> Result<(), OpenError> {
        let Some(name) = &self.name else {
            return Err(InvalidName {
                name: String::new(),
                reason: "this handle has no name",
            }
            .into());
        };
        sys::unlink(name).map_err(|e| open_error(name, e))?;
        let _ = match &self.registry {
            Some(r) => r.forget(Kind::PosixMq, name),
            None => registry::forget(Kind::PosixMq, name),
        };
        Ok(())
    }

    /// The queue's name (`/something`).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The descriptor, for polling (readable: a message is there; writable:
    /// there is room).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Another handle for the same open queue (`dup`, close-on-exec).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(MessageQueue {
            fd: multiproc_sys::fd::dup(&self.fd)?,
            name: self.name.clone(),
            msgsize: self.msgsize,
            registry: self.registry.clone(),
            _t: PhantomData,
        })
    }

    /// The same queue, for messages of `U`.
    pub fn cast<U>(self) -> MessageQueue<U> {
        MessageQueue {
            fd: self.fd,
            name: self.name,
            msgsize: self.msgsize,
            registry: self.registry,
            _t: PhantomData,
        }
    }

    /// The queue's attributes now (`mq_getattr`).
    pub fn attributes(&self) -> io::Result<Attributes> {
        Ok(sys::getattr(&self.fd)?.into())
    }

    /// The largest message the queue takes, in bytes.
    pub fn msgsize(&self) -> usize {
        self.msgsize
    }

    /// Make this handle's open description non-blocking or blocking
    /// (`mq_setattr`). It is shared by every copy of the handle (clones,
    /// copies in other processes). Non-blocking, `send`/`recv` wait by
    /// polling instead of in the kernel; the try and timeout forms behave
    /// the same either way.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        sys::set_nonblocking(&self.fd, nonblocking)
    }

    fn send_wait(&self, msg: &[u8], priority: u32, wait: Wait) -> Result<(), Waited<SendError>> {
        if priority >= PRIORITY_MAX {
            return Err(SendError::InvalidPriority { priority, msg: () }.into());
        }
        if msg.len() > self.msgsize {
            return Err(SendError::TooLarge {
                len: msg.len(),
                msgsize: self.msgsize,
                msg: (),
            }
            .into());
        }
        sys::send(&self.fd, msg, priority, wait).map_err(|e| {
            Waited::Failed(match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => return Waited::GaveUp,
                _ if e.raw_os_error() == Some(sys::errno::EMSGSIZE) => SendError::TooLarge {
                    len: msg.len(),
                    msgsize: self.msgsize,
                    msg: (),
                },
                _ => SendError::Io(e, ()),
            })
        })
    }

    /// Send `msg` with `priority` (`0..PRIORITY_MAX`, higher first), waiting
    /// for room.
    pub fn send_bytes(&self, msg: &[u8], priority: u32) -> Result<(), SendError> {
        self.send_wait(msg, priority, Wait::Forever)
            .map_err(Waited::into_blocking)
    }

    /// Send without waiting: [`TrySendError::Full`] if there is no room.
    pub fn try_send_bytes(&self, msg: &[u8], priority: u32) -> Result<(), TrySendError> {
        self.send_wait(msg, priority, Wait::Never)
            .map_err(|e| with_item(e, ()).into_try())
    }

    /// Send, waiting at most `timeout` for room
    /// ([`SendTimeoutError::Timeout`] then).
    pub fn send_bytes_timeout(
        &self,
        msg: &[u8],
        priority: u32,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError> {
        self.send_wait(msg, priority, deadline(timeout))
            .map_err(|e| with_item(e, ()).into_timeout())
    }

    /// [`send_bytes`](Self::send_bytes), waiting for room until `deadline`.
    pub fn send_bytes_deadline(
        &self,
        msg: &[u8],
        priority: u32,
        deadline: Instant,
    ) -> Result<(), SendTimeoutError> {
        self.send_wait(msg, priority, Wait::Until(deadline))
            .map_err(|e| with_item(e, ()).into_timeout())
    }

    fn recv_wait(&self, buf: &mut [u8], wait: Wait) -> Result<(usize, u32), Waited<RecvError>> {
        sys::recv(&self.fd, buf, wait).map_err(|e| {
            Waited::Failed(match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => return Waited::GaveUp,
                _ if e.raw_os_error() == Some(sys::errno::EMSGSIZE) => RecvError::TooLarge {
                    buffer: buf.len(),
                    msgsize: self.msgsize,
                },
                _ => RecvError::Io(e),
            })
        })
    }

    fn recv_vec(&self, wait: Wait) -> Result<(Vec<u8>, u32), Waited<RecvError>> {
        // A buffer of the queue's msgsize: EMSGSIZE cannot happen.
        let mut buf = vec![0u8; self.msgsize];
        let (len, priority) = self.recv_wait(&mut buf, wait)?;
        buf.truncate(len);
        Ok((buf, priority))
    }

    /// Take the oldest message of the highest priority as raw bytes,
    /// waiting for one; its bytes and priority.
    pub fn recv_bytes(&self) -> Result<(Vec<u8>, u32), RecvError> {
        self.recv_vec(Wait::Forever).map_err(Waited::into_blocking)
    }

    /// [`recv_bytes`](Self::recv_bytes) without waiting
    /// ([`TryError::WouldBlock`] if there is none).
    pub fn try_recv_bytes(&self) -> Result<(Vec<u8>, u32), TryRecvError> {
        self.recv_vec(Wait::Never).map_err(Waited::into_try)
    }

    /// [`recv_bytes`](Self::recv_bytes), waiting at most `timeout`
    /// ([`TimeoutError::Timeout`] then).
    pub fn recv_bytes_timeout(
        &self,
        timeout: Duration,
    ) -> Result<(Vec<u8>, u32), RecvTimeoutError> {
        self.recv_vec(deadline(timeout))
            .map_err(Waited::into_timeout)
    }

    /// [`recv_bytes`](Self::recv_bytes), waiting until `deadline`.
    pub fn recv_bytes_deadline(
        &self,
        deadline: Instant,
    ) -> Result<(Vec<u8>, u32), RecvTimeoutError> {
        self.recv_vec(Wait::Until(deadline))
            .map_err(Waited::into_timeout)
    }

    /// Receive raw bytes into `buf`, waiting for a message; its length and
    /// priority. `buf` must be at least [`msgsize`](Self::msgsize) bytes
    /// long, else [`RecvError::TooLarge`] (the kernel's rule, even for a
    /// short message).
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<(usize, u32), RecvError> {
        self.recv_wait(buf, Wait::Forever)
            .map_err(Waited::into_blocking)
    }

    /// [`recv_bytes_into`](Self::recv_bytes_into) without waiting.
    pub fn try_recv_bytes_into(&self, buf: &mut [u8]) -> Result<(usize, u32), TryRecvError> {
        self.recv_wait(buf, Wait::Never).map_err(Waited::into_try)
    }

    /// [`recv_bytes_into`](Self::recv_bytes_into) waiting at most `timeout`.
    pub fn recv_bytes_into_timeout(
        &self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<(usize, u32), RecvTimeoutError> {
        self.recv_wait(buf, deadline(timeout))
            .map_err(Waited::into_timeout)
    }

    /// [`recv_bytes_into`](Self::recv_bytes_into), waiting until `deadline`.
    pub fn recv_bytes_into_deadline(
        &self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<(usize, u32), RecvTimeoutError> {
        self.recv_wait(buf, Wait::Until(deadline))
            .map_err(Waited::into_timeout)
    }
}

/// A byte send's outcome with the typed send's item attached.
fn with_item<T>(w: Waited<SendError>, item: T) -> WaitedWith<SendError<T>> {
    match w {
        Waited::GaveUp => WaitedWith::GaveUp(item),
        Waited::Failed(e) => WaitedWith::Failed(e.with(item)),
    }
}

impl<T: Serialize> MessageQueue<T> {
    fn send_wait_value(
        &self,
        value: T,
        priority: u32,
        wait: Wait,
    ) -> Result<(), WaitedWith<SendError<T>>> {
        let mut bytes = Vec::new();
        match codec::encode(&value, &mut bytes) {
            Err(e) => return Err(WaitedWith::Failed(SendError::Encode(e, value))),
            Ok(fds) if !fds.is_empty() => {
                return Err(WaitedWith::Failed(SendError::Handles {
                    count: fds.len(),
                    msg: value,
                }));
            }
            Ok(_) => {}
        }
        self.send_wait(&bytes, priority, wait)
            .map_err(|e| with_item(e, value))
    }

    /// Send `value` with `priority` (`0..PRIORITY_MAX`, higher first),
    /// waiting for room. The value is handed back in the error. Values with
    /// handles inside are refused ([`SendError::Handles`]).
    pub fn send(&self, value: T, priority: u32) -> Result<(), SendError<T>> {
        self.send_wait_value(value, priority, Wait::Forever)
            .map_err(WaitedWith::into_blocking)
    }

    /// [`send`](Self::send) without waiting ([`TrySendError::Full`], with
    /// the value, if there is no room).
    pub fn try_send(&self, value: T, priority: u32) -> Result<(), TrySendError<T>> {
        self.send_wait_value(value, priority, Wait::Never)
            .map_err(WaitedWith::into_try)
    }

    /// [`send`](Self::send) waiting at most `timeout`.
    pub fn send_timeout(
        &self,
        value: T,
        priority: u32,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<T>> {
        self.send_wait_value(value, priority, deadline(timeout))
            .map_err(WaitedWith::into_timeout)
    }

    /// [`send`](Self::send), waiting for room until `deadline`.
    pub fn send_deadline(
        &self,
        value: T,
        priority: u32,
        deadline: Instant,
    ) -> Result<(), SendTimeoutError<T>> {
        self.send_wait_value(value, priority, Wait::Until(deadline))
            .map_err(WaitedWith::into_timeout)
    }
}

impl<T: DeserializeOwned> MessageQueue<T> {
    fn recv_wait_value(&self, wait: Wait) -> Result<(T, u32), Waited<RecvError>> {
        let (bytes, priority) = self.recv_vec(wait)?;
        let value = codec::decode(&bytes, Vec::new()).map_err(RecvError::from)?;
        Ok((value, priority))
    }

    /// Take the oldest message of the highest priority, waiting for one;
    /// its value and priority.
    pub fn recv(&self) -> Result<(T, u32), RecvError> {
        self.recv_wait_value(Wait::Forever)
            .map_err(Waited::into_blocking)
    }

    /// [`recv`](Self::recv) without waiting ([`TryError::WouldBlock`] if
    /// there is none).
    pub fn try_recv(&self) -> Result<(T, u32), TryRecvError> {
        self.recv_wait_value(Wait::Never).map_err(Waited::into_try)
    }

    /// [`recv`](Self::recv) waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<(T, u32), RecvTimeoutError> {
        self.recv_wait_value(deadline(timeout))
            .map_err(Waited::into_timeout)
    }

    /// [`recv`](Self::recv), waiting until `deadline`.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<(T, u32), RecvTimeoutError> {
        self.recv_wait_value(Wait::Until(deadline))
            .map_err(Waited::into_timeout)
    }
}

impl<T> AsFd for MessageQueue<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[derive(Serialize)]
struct WireOut<'a> {
    fd: FdRef<'a>,
    name: Option<&'a str>,
    registry: Option<PathBuf>,
}

#[derive(Deserialize)]
struct WireIn {
    fd: Fd,
    name: Option<String>,
    registry: Option<PathBuf>,
}

struct FdRef<'a>(BorrowedFd<'a>);

impl Serialize for FdRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        codec::serialize_fd(self.0, s)
    }
}

impl<T> Serialize for MessageQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireOut {
            fd: FdRef(self.fd.as_fd()),
            name: self.name.as_deref(),
            registry: self.registry.as_ref().map(|r| r.path().to_owned()),
        }
        .serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for MessageQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let w = WireIn::deserialize(d)?;
        if let Some(name) = &w.name {
            validate_name(name).map_err(D::Error::custom)?;
        }
        // The descriptor must really be a message queue: `mq_getattr` fails
        // with `EBADF` on anything else.
        let registry = w.registry.and_then(|p| Registry::open(p).ok());
        MessageQueue::from_fd(w.fd.0, w.name, registry).map_err(D::Error::custom)
    }
}

/// POSIX message queues, for [`crate::names`].
pub(crate) struct PosixQueues;

/// The table entry of POSIX message queues.
pub(crate) static POSIX_QUEUES: PosixQueues = PosixQueues;

impl NamedKind for PosixQueues {
    fn kind(&self) -> Kind {
        Kind::PosixMq
    }
    fn exists(&self, name: &str) -> bool {
        !matches!(sys::open(name, false), Err(e) if e.kind() == io::ErrorKind::NotFound)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        sys::unlink(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(validate_name("/ok.name-1").is_ok());
        assert!(validate_name(&format!("/{}", "a".repeat(NAME_MAX))).is_ok());
        for bad in [
            "",
            "/",
            "noslash",
            "/a/b",
            "/.",
            "/..",
            "/a\0b",
            &format!("/{}", "a".repeat(NAME_MAX + 1)),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            MessageQueue::<Vec<u8>>::create("/a/b"),
            Err(OpenError::InvalidName(_))
        ));
    }
}
