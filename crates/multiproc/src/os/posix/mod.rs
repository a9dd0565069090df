//! POSIX message queues (`mq_overview(7)`, seed 004): named kernel queues of
//! byte messages with priorities, for related or unrelated processes.
//!
//! - [`MessageQueue::create`] makes a new queue (`O_CREAT | O_EXCL`, mode
//!   0600: a taken name is [`OpenError::AlreadyExists`], never an attach),
//!   [`MessageQueue::open`] opens an existing one and checks it belongs to
//!   this user and is private to it, [`MessageQueue::builder`] sets the
//!   capacity (`maxmsg`, `msgsize`) and offers
//!   [`create_or_open`](MessageQueueBuilder::create_or_open).
//! - [`recv`](MessageQueue::recv) takes the oldest message of the
//!   highest priority: priorities first, FIFO within one priority.
//! - Every blocking call has `x()`, `try_x()` and `x_timeout(Duration)` forms.
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
//! - [`send_value`](MessageQueue::send_value) /
//!   [`recv_value`](MessageQueue::recv_value) and
//!   [`TypedMessageQueue`] carry serde values in the crate's codec; a value
//!   with a handle inside is refused ([`SendError::Handles`]): a queue
//!   carries bytes, not descriptors.
//!
//! ```no_run
//! use multiproc::os::posix::MessageQueue;
//!
//! multiproc::init();
//! let q = MessageQueue::builder("/example").maxmsg(8).msgsize(64).create()?;
//! q.send(b"low", 1)?;
//! q.send(b"high", 9)?;
//! assert_eq!(q.recv()?, (b"high".to_vec(), 9));
//! assert_eq!(q.recv()?, (b"low".to_vec(), 1));
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
use crate::names::kind::Kind;
use crate::names::object::NamedKind;
use crate::names::registry::{self, Registry};

mod error;

pub use error::{OpenError, RecvError, SendError};

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

    fn make(self, exclusive: bool) -> Result<MessageQueue, OpenError> {
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
    pub fn create(self) -> Result<MessageQueue, OpenError> {
        self.make(true)
    }

    /// Open the queue if it exists (checked as [`open`](Self::open) does;
    /// its capacity is what it was created with), else create it.
    pub fn create_or_open(self) -> Result<MessageQueue, OpenError> {
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
    pub fn open(self) -> Result<MessageQueue, OpenError> {
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

/// A POSIX message queue handle. See the [module docs](self).
pub struct MessageQueue {
    fd: OwnedFd,
    name: Option<String>,
    msgsize: usize,
    registry: Option<Registry>,
}

impl fmt::Debug for MessageQueue {
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
    /// A builder for the queue `name` (`/something`).
    pub fn builder(name: impl Into<String>) -> MessageQueueBuilder {
        MessageQueueBuilder {
            name: name.into(),
            maxmsg: None,
            msgsize: None,
            registry: None,
        }
    }

    /// Create a new queue with the default capacity (see
    /// [`MessageQueueBuilder::create`]).
    pub fn create(name: &str) -> Result<Self, OpenError> {
        Self::builder(name).create()
    }

    /// Open an existing queue (see [`MessageQueueBuilder::open`]).
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::builder(name).open()
    }

    /// Remove a name without opening it (`mq_unlink`), and forget its
    /// record in the default registry.
    pub fn unlink_name(name: &str) -> Result<(), OpenError> {
        validate_name(name)?;
        sys::unlink(name).map_err(|e| open_error(name, e))?;
        let _ = registry::forget(Kind::PosixMq, name);
        Ok(())
    }

    fn from_fd(fd: OwnedFd, name: Option<String>, registry: Option<Registry>) -> io::Result<Self> {
        let attr = sys::getattr(&fd)?;
        Ok(MessageQueue {
            fd,
            name,
            msgsize: usize::try_from(attr.msgsize).unwrap_or(0),
            registry,
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
        })
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

    fn send_wait(&self, msg: &[u8], priority: u32, wait: Wait) -> Result<(), SendError> {
        if priority >= PRIORITY_MAX {
            return Err(SendError::InvalidPriority { priority, msg: () });
        }
        if msg.len() > self.msgsize {
            return Err(SendError::TooLarge {
                len: msg.len(),
                msgsize: self.msgsize,
                msg: (),
            });
        }
        sys::send(&self.fd, msg, priority, wait).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => SendError::Full(()),
            io::ErrorKind::TimedOut => SendError::Timeout(()),
            _ if e.raw_os_error() == Some(sys::errno::EMSGSIZE) => SendError::TooLarge {
                len: msg.len(),
                msgsize: self.msgsize,
                msg: (),
            },
            _ => SendError::Io(e, ()),
        })
    }

    /// Send `msg` with `priority` (`0..PRIORITY_MAX`, higher first), waiting
    /// for room.
    pub fn send(&self, msg: &[u8], priority: u32) -> Result<(), SendError> {
        self.send_wait(msg, priority, Wait::Forever)
    }

    /// Send without waiting: [`SendError::Full`] if there is no room.
    pub fn try_send(&self, msg: &[u8], priority: u32) -> Result<(), SendError> {
        self.send_wait(msg, priority, Wait::Never)
    }

    /// Send, waiting at most `timeout` for room ([`SendError::Timeout`]).
    pub fn send_timeout(
        &self,
        msg: &[u8],
        priority: u32,
        timeout: Duration,
    ) -> Result<(), SendError> {
        self.send_wait(msg, priority, deadline(timeout))
    }

    /// [`send`](Self::send), waiting for room until `deadline`.
    pub fn send_deadline(
        &self,
        msg: &[u8],
        priority: u32,
        deadline: Instant,
    ) -> Result<(), SendError> {
        self.send_wait(msg, priority, Wait::Until(deadline))
    }

    fn recv_wait(&self, buf: &mut [u8], wait: Wait) -> Result<(usize, u32), RecvError> {
        sys::recv(&self.fd, buf, wait).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => RecvError::Empty,
            io::ErrorKind::TimedOut => RecvError::Timeout,
            _ if e.raw_os_error() == Some(sys::errno::EMSGSIZE) => RecvError::TooLarge {
                buffer: buf.len(),
                msgsize: self.msgsize,
            },
            _ => RecvError::Io(e),
        })
    }

    fn recv_vec(&self, wait: Wait) -> Result<(Vec<u8>, u32), RecvError> {
        // A buffer of the queue's msgsize: EMSGSIZE cannot happen.
        let mut buf = vec![0u8; self.msgsize];
        let (len, priority) = self.recv_wait(&mut buf, wait)?;
        buf.truncate(len);
        Ok((buf, priority))
    }

    /// Take the oldest message of the highest priority, waiting for one;
    /// its bytes and priority.
    pub fn recv(&self) -> Result<(Vec<u8>, u32), RecvError> {
        self.recv_vec(Wait::Forever)
    }

    /// Receive without waiting: [`RecvError::Empty`] if there is none.
    pub fn try_recv(&self) -> Result<(Vec<u8>, u32), RecvError> {
        self.recv_vec(Wait::Never)
    }

    /// Receive, waiting at most `timeout` ([`RecvError::Timeout`]).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<(Vec<u8>, u32), RecvError> {
        self.recv_vec(deadline(timeout))
    }

    /// [`recv`](Self::recv), waiting until `deadline`.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<(Vec<u8>, u32), RecvError> {
        self.recv_vec(Wait::Until(deadline))
    }

    /// Receive into `buf`, waiting for a message; its length and priority.
    /// `buf` must be at least [`msgsize`](Self::msgsize) bytes long, else
    /// [`RecvError::TooLarge`] (the kernel's rule, even for a short message).
    pub fn recv_into(&self, buf: &mut [u8]) -> Result<(usize, u32), RecvError> {
        self.recv_wait(buf, Wait::Forever)
    }

    /// [`recv_into`](Self::recv_into) without waiting.
    pub fn try_recv_into(&self, buf: &mut [u8]) -> Result<(usize, u32), RecvError> {
        self.recv_wait(buf, Wait::Never)
    }

    /// [`recv_into`](Self::recv_into) waiting at most `timeout`.
    pub fn recv_into_timeout(
        &self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<(usize, u32), RecvError> {
        self.recv_wait(buf, deadline(timeout))
    }

    /// [`recv_into`](Self::recv_into), waiting until `deadline`.
    pub fn recv_into_deadline(
        &self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<(usize, u32), RecvError> {
        self.recv_wait(buf, Wait::Until(deadline))
    }

    fn send_value_wait<T: Serialize>(
        &self,
        value: T,
        priority: u32,
        wait: Wait,
    ) -> Result<(), SendError<T>> {
        let mut bytes = Vec::new();
        match codec::encode(&value, &mut bytes) {
            Err(e) => return Err(SendError::Encode(e, value)),
            Ok(fds) if !fds.is_empty() => {
                return Err(SendError::Handles {
                    count: fds.len(),
                    msg: value,
                });
            }
            Ok(_) => {}
        }
        self.send_wait(&bytes, priority, wait)
            .map_err(|e| e.with(value))
    }

    fn recv_value_wait<T: DeserializeOwned>(&self, wait: Wait) -> Result<(T, u32), RecvError> {
        let (bytes, priority) = self.recv_vec(wait)?;
        Ok((codec::decode(&bytes, Vec::new())?, priority))
    }

    /// Send a serde value (the crate's codec), waiting for room. The value
    /// is handed back in the error. Values with handles inside are refused
    /// ([`SendError::Handles`]).
    pub fn send_value<T: Serialize>(&self, value: T, priority: u32) -> Result<(), SendError<T>> {
        self.send_value_wait(value, priority, Wait::Forever)
    }

    /// [`send_value`](Self::send_value) without waiting.
    pub fn try_send_value<T: Serialize>(
        &self,
        value: T,
        priority: u32,
    ) -> Result<(), SendError<T>> {
        self.send_value_wait(value, priority, Wait::Never)
    }

    /// [`send_value`](Self::send_value) waiting at most `timeout`.
    pub fn send_value_timeout<T: Serialize>(
        &self,
        value: T,
        priority: u32,
        timeout: Duration,
    ) -> Result<(), SendError<T>> {
        self.send_value_wait(value, priority, deadline(timeout))
    }

    /// [`send_value`](Self::send_value), waiting for room until `deadline`.
    pub fn send_value_deadline<T: Serialize>(
        &self,
        value: T,
        priority: u32,
        deadline: Instant,
    ) -> Result<(), SendError<T>> {
        self.send_value_wait(value, priority, Wait::Until(deadline))
    }

    /// Receive a serde value and its priority, waiting for one.
    pub fn recv_value<T: DeserializeOwned>(&self) -> Result<(T, u32), RecvError> {
        self.recv_value_wait(Wait::Forever)
    }

    /// [`recv_value`](Self::recv_value) without waiting.
    pub fn try_recv_value<T: DeserializeOwned>(&self) -> Result<(T, u32), RecvError> {
        self.recv_value_wait(Wait::Never)
    }

    /// [`recv_value`](Self::recv_value) waiting at most `timeout`.
    pub fn recv_value_timeout<T: DeserializeOwned>(
        &self,
        timeout: Duration,
    ) -> Result<(T, u32), RecvError> {
        self.recv_value_wait(deadline(timeout))
    }

    /// [`recv_value`](Self::recv_value), waiting until `deadline`.
    pub fn recv_value_deadline<T: DeserializeOwned>(
        &self,
        deadline: Instant,
    ) -> Result<(T, u32), RecvError> {
        self.recv_value_wait(Wait::Until(deadline))
    }
}

impl AsFd for MessageQueue {
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

impl Serialize for MessageQueue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireOut {
            fd: FdRef(self.fd.as_fd()),
            name: self.name.as_deref(),
            registry: self.registry.as_ref().map(|r| r.path().to_owned()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for MessageQueue {
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

/// A [`MessageQueue`] of serde values of one type: `send`/`recv` of `T`,
/// the value handed back when a send fails.
pub struct TypedMessageQueue<T> {
    queue: MessageQueue,
    _marker: PhantomData<fn(T) -> T>,
}

impl<T> fmt::Debug for TypedMessageQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedMessageQueue")
            .field(&self.queue)
            .finish()
    }
}

impl<T> From<MessageQueue> for TypedMessageQueue<T> {
    fn from(queue: MessageQueue) -> Self {
        TypedMessageQueue {
            queue,
            _marker: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> TypedMessageQueue<T> {
    /// Wrap a byte queue.
    pub fn new(queue: MessageQueue) -> Self {
        queue.into()
    }

    /// The byte queue underneath.
    pub fn inner(&self) -> &MessageQueue {
        &self.queue
    }

    /// Unwrap the byte queue.
    pub fn into_inner(self) -> MessageQueue {
        self.queue
    }

    /// Send `value` with `priority`, waiting for room.
    pub fn send(&self, value: T, priority: u32) -> Result<(), SendError<T>> {
        self.queue.send_value(value, priority)
    }

    /// Send without waiting ([`SendError::Full`] hands `value` back).
    pub fn try_send(&self, value: T, priority: u32) -> Result<(), SendError<T>> {
        self.queue.try_send_value(value, priority)
    }

    /// Send, waiting at most `timeout` for room.
    pub fn send_timeout(
        &self,
        value: T,
        priority: u32,
        timeout: Duration,
    ) -> Result<(), SendError<T>> {
        self.queue.send_value_timeout(value, priority, timeout)
    }

    /// Send a value, waiting for room until `deadline`.
    pub fn send_deadline(
        &self,
        value: T,
        priority: u32,
        deadline: Instant,
    ) -> Result<(), SendError<T>> {
        self.queue.send_value_deadline(value, priority, deadline)
    }

    /// Receive a value and its priority, waiting for one.
    pub fn recv(&self) -> Result<(T, u32), RecvError> {
        self.queue.recv_value()
    }

    /// Receive without waiting.
    pub fn try_recv(&self) -> Result<(T, u32), RecvError> {
        self.queue.try_recv_value()
    }

    /// Receive, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<(T, u32), RecvError> {
        self.queue.recv_value_timeout(timeout)
    }

    /// Receive a value, waiting until `deadline`.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<(T, u32), RecvError> {
        self.queue.recv_value_deadline(deadline)
    }
}

impl<T> AsFd for TypedMessageQueue<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.queue.as_fd()
    }
}

impl<T> Serialize for TypedMessageQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.queue.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for TypedMessageQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MessageQueue::deserialize(d).map(Into::into)
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
            MessageQueue::create("/a/b"),
            Err(OpenError::InvalidName(_))
        ));
    }
}
