//! System V message queues: `msgget`, `msgsnd`, `msgrcv`, with typed selection.

use std::io;
use std::time::{Duration, Instant};

use multiproc_sys::sysv::{self as sys, errno};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::connection::codec::{self, DecodeError, EncodeError};
use crate::error::{TimeoutError, TryError, Waited};
use crate::names::kind::Kind;
use crate::names::registry::Registry;

use super::{Builder, Key, OpenError, SysvObject, Wait, backoff, forget, is_gone, sealed};

// ----- message queues --------------------------------------------------------

/// Which message [`MessageQueue::recv`] takes (`msgrcv`'s type
/// argument, as in the seeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selector {
    /// Type 0: the first message in the queue.
    Any,
    /// Type > 0: the first message of exactly this type.
    Type(i64),
    /// Type < 0 (given here as the positive bound): the first message of the
    /// lowest type that is ≤ the bound — a priority queue with low types
    /// first.
    AtMost(i64),
    /// `MSG_EXCEPT`: the first message whose type is not this one.
    Except(i64),
}

impl Selector {
    /// The seeds' rule on a raw type: 0 → [`Any`](Self::Any), > 0 →
    /// [`Type`](Self::Type), < 0 → [`AtMost`](Self::AtMost) of its absolute
    /// value.
    pub fn from_raw(msgtyp: i64) -> Selector {
        match msgtyp {
            0 => Selector::Any,
            t if t > 0 => Selector::Type(t),
            t => Selector::AtMost(t.checked_neg().unwrap_or(i64::MAX)),
        }
    }

    fn raw(self) -> Result<(i64, i32), RecvError> {
        let bad = |t| Err(RecvError::InvalidSelector(t));
        match self {
            Selector::Any => Ok((0, 0)),
            Selector::Type(t) if t > 0 => Ok((t, 0)),
            Selector::AtMost(t) if t > 0 => Ok((-t, 0)),
            Selector::Except(t) if t > 0 => Ok((t, sys::MSG_EXCEPT)),
            Selector::Type(t) | Selector::AtMost(t) | Selector::Except(t) => bad(t),
        }
    }
}

impl From<i64> for Selector {
    fn from(msgtyp: i64) -> Self {
        Selector::from_raw(msgtyp)
    }
}

/// A blocking send failed. The `try_` forms add "full" ([`TryError`]), the
/// `_timeout`/`_deadline` forms "still full when the time ran out"
/// ([`TimeoutError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Message types must be > 0.
    #[error("message type {0} is invalid: it must be > 0")]
    InvalidType(i64),
    /// The message is longer than the system's limit (`msgmax`).
    #[error("a message of {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The limit (`/proc/sys/kernel/msgmax`).
        max: usize,
    },
    /// The queue was removed (before or during the call).
    #[error("the message queue was removed")]
    Removed,
    /// The value could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The value holds handles (file descriptors), which a System V message
    /// cannot carry.
    #[error("a System V message cannot carry handles ({0} in this value)")]
    Handles(usize),
    /// Any other OS error.
    #[error(transparent)]
    Io(io::Error),
}

/// A blocking receive failed. The `try_` forms add "no matching message"
/// ([`TryError`]), the `_timeout`/`_deadline` forms "none until the time
/// ran out" ([`TimeoutError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// A selector with a type ≤ 0 where one > 0 is meant.
    #[error("selector type {0} is invalid: it must be > 0")]
    InvalidSelector(i64),
    /// The first matching message is longer than the buffer, and truncation
    /// was not asked for (`E2BIG`). The message stays in the queue.
    #[error("the message is longer than the {max}-byte buffer")]
    TooLarge {
        /// The buffer's size.
        max: usize,
    },
    /// The queue was removed (before or during the call: `EIDRM`).
    #[error("the message queue was removed")]
    Removed,
    /// The message is not a valid encoding of the expected type.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Any other OS error.
    #[error(transparent)]
    Io(io::Error),
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its type (> 0).
    pub mtype: i64,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// What `msgctl(IPC_STAT)` says about a queue.
pub type QueueStats = sys::MsgStat;

/// A System V message queue.
///
/// Messages are byte strings with a type > 0; receivers select by type
/// ([`Selector`]). The handle is the queue's id: it serializes as the id
/// (pass it to children), and dropping it leaves the queue in place until
/// [`remove`](Self::remove).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageQueue {
    id: i32,
    #[serde(skip)]
    registry: Option<Registry>,
}

impl sealed::Sealed for MessageQueue {}

impl SysvObject for MessageQueue {
    type Size = ();
    const KIND: Kind = Kind::SysvMsg;
    fn get(key: i32, size: (), flags: i32) -> io::Result<i32> {
        let () = size;
        sys::msgget(key, flags)
    }
    fn from_parts(id: i32, registry: Option<Registry>) -> io::Result<Self> {
        Ok(MessageQueue { id, registry })
    }
}

impl MessageQueue {
    /// Options for the queue named by `key`.
    pub fn builder(key: Key) -> Builder<MessageQueue> {
        Builder::new(key)
    }

    /// Create a new queue, mode 0600 (`IPC_CREAT | IPC_EXCL`).
    pub fn create(key: Key) -> Result<Self, OpenError> {
        Self::builder(key).create()
    }

    /// A new private queue (`IPC_PRIVATE`).
    pub fn private() -> Result<Self, OpenError> {
        Self::create(Key::PRIVATE)
    }

    /// Open the existing queue named by `key`.
    pub fn open(key: Key) -> Result<Self, OpenError> {
        Self::builder(key).open()
    }

    /// Open the queue named by `key`, creating it (mode 0600) if missing.
    pub fn create_or_open(key: Key) -> Result<Self, OpenError> {
        Self::builder(key).create_or_open()
    }

    /// The handle of the queue with this id (for ids learned elsewhere, as
    /// `multiproc ls` prints them). Nothing is checked until it is used.
    pub fn from_id(id: i32) -> Self {
        MessageQueue { id, registry: None }
    }

    /// The kernel's id of the queue.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The largest message this system accepts (`msgmax`).
    pub fn max_message_size() -> usize {
        sys::msgmax()
    }

    fn send_raw(&self, mtype: i64, data: &[u8], wait: Wait) -> Result<(), Waited<SendError>> {
        if mtype <= 0 {
            return Err(SendError::InvalidType(mtype).into());
        }
        let flags = match wait {
            Wait::Block => 0,
            Wait::Never | Wait::Until(_) => sys::IPC_NOWAIT,
        };
        let mut backoff = backoff();
        loop {
            let e = match sys::msgsnd(self.id, mtype, data, flags) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            match e.raw_os_error() {
                Some(errno::EINTR) => continue,
                Some(errno::EAGAIN) => match wait {
                    Wait::Until(deadline) if backoff.sleep(Some(deadline)) => continue,
                    _ => return Err(Waited::GaveUp),
                },
                Some(errno::EIDRM) => return Err(SendError::Removed.into()),
                Some(errno::EINVAL) => {
                    // A removed id, or a message over msgmax.
                    return Err(match sys::msg_stat(self.id) {
                        Err(e) if is_gone(&e) => SendError::Removed,
                        _ => SendError::TooLarge {
                            len: data.len(),
                            max: sys::msgmax(),
                        },
                    }
                    .into());
                }
                _ => return Err(SendError::Io(e).into()),
            }
        }
    }

    /// Send `data` as a message of type `mtype` (> 0), waiting while the
    /// queue is full.
    pub fn send_bytes(&self, mtype: i64, data: &[u8]) -> Result<(), SendError> {
        self.send_raw(mtype, data, Wait::Block)
            .map_err(Waited::into_blocking)
    }

    /// Send without waiting (`IPC_NOWAIT`): [`TryError::WouldBlock`] if the
    /// queue is full.
    pub fn try_send_bytes(&self, mtype: i64, data: &[u8]) -> Result<(), TryError<SendError>> {
        self.send_raw(mtype, data, Wait::Never)
            .map_err(Waited::into_try)
    }

    /// Send, waiting at most `timeout` while the queue is full (polling: see
    /// the module docs); [`TimeoutError::Timeout`] then.
    pub fn send_bytes_timeout(
        &self,
        mtype: i64,
        data: &[u8],
        timeout: Duration,
    ) -> Result<(), TimeoutError<SendError>> {
        self.send_raw(mtype, data, Wait::timeout(timeout))
            .map_err(Waited::into_timeout)
    }

    /// [`send_bytes`](Self::send_bytes), waiting for room until `deadline`.
    pub fn send_bytes_deadline(
        &self,
        mtype: i64,
        data: &[u8],
        deadline: Instant,
    ) -> Result<(), TimeoutError<SendError>> {
        self.send_raw(mtype, data, Wait::Until(deadline))
            .map_err(Waited::into_timeout)
    }

    fn recv_raw(
        &self,
        selector: Selector,
        buf: &mut [u8],
        truncate: bool,
        wait: Wait,
    ) -> Result<(i64, usize), Waited<RecvError>> {
        let (msgtyp, mut flags) = selector.raw()?;
        if truncate {
            flags |= sys::MSG_NOERROR;
        }
        if !matches!(wait, Wait::Block) {
            flags |= sys::IPC_NOWAIT;
        }
        let mut backoff = backoff();
        loop {
            let e = match sys::msgrcv(self.id, buf, msgtyp, flags) {
                Ok(got) => return Ok(got),
                Err(e) => e,
            };
            match e.raw_os_error() {
                Some(errno::EINTR) => continue,
                Some(errno::ENOMSG) | Some(errno::EAGAIN) => match wait {
                    Wait::Until(deadline) if backoff.sleep(Some(deadline)) => continue,
                    _ => return Err(Waited::GaveUp),
                },
                Some(errno::E2BIG) => return Err(RecvError::TooLarge { max: buf.len() }.into()),
                Some(errno::EIDRM) | Some(errno::EINVAL) => return Err(RecvError::Removed.into()),
                _ => return Err(RecvError::Io(e).into()),
            }
        }
    }

    fn recv_vec(&self, selector: Selector, wait: Wait) -> Result<Message, Waited<RecvError>> {
        let mut data = vec![0; sys::msgmax()];
        let (mtype, n) = self.recv_raw(selector, &mut data, false, wait)?;
        data.truncate(n);
        Ok(Message { mtype, data })
    }

    /// Receive the first message `selector` picks as raw bytes, waiting
    /// until there is one.
    pub fn recv_bytes(&self, selector: impl Into<Selector>) -> Result<Message, RecvError> {
        self.recv_vec(selector.into(), Wait::Block)
            .map_err(Waited::into_blocking)
    }

    /// [`recv_bytes`](Self::recv_bytes) without waiting (`IPC_NOWAIT`):
    /// [`TryError::WouldBlock`] when no message matches.
    pub fn try_recv_bytes(
        &self,
        selector: impl Into<Selector>,
    ) -> Result<Message, TryError<RecvError>> {
        self.recv_vec(selector.into(), Wait::Never)
            .map_err(Waited::into_try)
    }

    /// [`recv_bytes`](Self::recv_bytes), waiting at most `timeout` (polling:
    /// see the module docs).
    pub fn recv_bytes_timeout(
        &self,
        selector: impl Into<Selector>,
        timeout: Duration,
    ) -> Result<Message, TimeoutError<RecvError>> {
        self.recv_vec(selector.into(), Wait::timeout(timeout))
            .map_err(Waited::into_timeout)
    }

    /// [`recv_bytes`](Self::recv_bytes), waiting until `deadline`.
    pub fn recv_bytes_deadline(
        &self,
        selector: impl Into<Selector>,
        deadline: Instant,
    ) -> Result<Message, TimeoutError<RecvError>> {
        self.recv_vec(selector.into(), Wait::Until(deadline))
            .map_err(Waited::into_timeout)
    }

    /// Receive into `buf`, waiting: the message's type and length. A longer
    /// message is [`RecvError::TooLarge`] (and stays queued) unless
    /// `truncate` (`MSG_NOERROR`): then its first `buf.len()` bytes are kept
    /// and the rest is lost.
    pub fn recv_bytes_into(
        &self,
        selector: impl Into<Selector>,
        buf: &mut [u8],
        truncate: bool,
    ) -> Result<(i64, usize), RecvError> {
        self.recv_raw(selector.into(), buf, truncate, Wait::Block)
            .map_err(Waited::into_blocking)
    }

    /// [`recv_bytes_into`](Self::recv_bytes_into) without waiting.
    pub fn try_recv_bytes_into(
        &self,
        selector: impl Into<Selector>,
        buf: &mut [u8],
        truncate: bool,
    ) -> Result<(i64, usize), TryError<RecvError>> {
        self.recv_raw(selector.into(), buf, truncate, Wait::Never)
            .map_err(Waited::into_try)
    }

    /// [`recv_bytes_into`](Self::recv_bytes_into), waiting at most `timeout`.
    pub fn recv_bytes_into_timeout(
        &self,
        selector: impl Into<Selector>,
        buf: &mut [u8],
        truncate: bool,
        timeout: Duration,
    ) -> Result<(i64, usize), TimeoutError<RecvError>> {
        self.recv_raw(selector.into(), buf, truncate, Wait::timeout(timeout))
            .map_err(Waited::into_timeout)
    }

    /// [`recv_bytes_into`](Self::recv_bytes_into), waiting until `deadline`.
    pub fn recv_bytes_into_deadline(
        &self,
        selector: impl Into<Selector>,
        buf: &mut [u8],
        truncate: bool,
        deadline: Instant,
    ) -> Result<(i64, usize), TimeoutError<RecvError>> {
        self.recv_raw(selector.into(), buf, truncate, Wait::Until(deadline))
            .map_err(Waited::into_timeout)
    }

    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, SendError> {
        let mut bytes = Vec::new();
        let fds = codec::encode(value, &mut bytes)?;
        if !fds.is_empty() {
            return Err(SendError::Handles(fds.len()));
        }
        Ok(bytes)
    }

    fn send_value<T: Serialize + ?Sized>(
        &self,
        mtype: i64,
        value: &T,
        wait: Wait,
    ) -> Result<(), Waited<SendError>> {
        self.send_raw(mtype, &Self::encode(value)?, wait)
    }

    /// Send a serde value (postcard, as [`Connection`](crate::Connection)
    /// does) as a message of type `mtype` (> 0), waiting while the queue is
    /// full. Each type of message may carry its own `T`. Values holding
    /// handles are refused ([`SendError::Handles`]).
    pub fn send<T: Serialize + ?Sized>(&self, mtype: i64, value: &T) -> Result<(), SendError> {
        self.send_value(mtype, value, Wait::Block)
            .map_err(Waited::into_blocking)
    }

    /// [`send`](Self::send) without waiting.
    pub fn try_send<T: Serialize + ?Sized>(
        &self,
        mtype: i64,
        value: &T,
    ) -> Result<(), TryError<SendError>> {
        self.send_value(mtype, value, Wait::Never)
            .map_err(Waited::into_try)
    }

    /// [`send`](Self::send), waiting at most `timeout`.
    pub fn send_timeout<T: Serialize + ?Sized>(
        &self,
        mtype: i64,
        value: &T,
        timeout: Duration,
    ) -> Result<(), TimeoutError<SendError>> {
        self.send_value(mtype, value, Wait::timeout(timeout))
            .map_err(Waited::into_timeout)
    }

    /// [`send`](Self::send), waiting for room until `deadline`.
    pub fn send_deadline<T: Serialize + ?Sized>(
        &self,
        mtype: i64,
        value: &T,
        deadline: Instant,
    ) -> Result<(), TimeoutError<SendError>> {
        self.send_value(mtype, value, Wait::Until(deadline))
            .map_err(Waited::into_timeout)
    }

    fn recv_value<T: DeserializeOwned>(
        &self,
        selector: Selector,
        wait: Wait,
    ) -> Result<(i64, T), Waited<RecvError>> {
        let m = self.recv_vec(selector, wait)?;
        let value = codec::decode(&m.data, Vec::new()).map_err(RecvError::from)?;
        Ok((m.mtype, value))
    }

    /// Receive a serde value sent by [`send`](Self::send): its type and the
    /// value, waiting until a message matches `selector`.
    pub fn recv<T: DeserializeOwned>(
        &self,
        selector: impl Into<Selector>,
    ) -> Result<(i64, T), RecvError> {
        self.recv_value(selector.into(), Wait::Block)
            .map_err(Waited::into_blocking)
    }

    /// [`recv`](Self::recv) without waiting.
    pub fn try_recv<T: DeserializeOwned>(
        &self,
        selector: impl Into<Selector>,
    ) -> Result<(i64, T), TryError<RecvError>> {
        self.recv_value(selector.into(), Wait::Never)
            .map_err(Waited::into_try)
    }

    /// [`recv`](Self::recv), waiting at most `timeout`.
    pub fn recv_timeout<T: DeserializeOwned>(
        &self,
        selector: impl Into<Selector>,
        timeout: Duration,
    ) -> Result<(i64, T), TimeoutError<RecvError>> {
        self.recv_value(selector.into(), Wait::timeout(timeout))
            .map_err(Waited::into_timeout)
    }

    /// [`recv`](Self::recv), waiting until `deadline`.
    pub fn recv_deadline<T: DeserializeOwned>(
        &self,
        selector: impl Into<Selector>,
        deadline: Instant,
    ) -> Result<(i64, T), TimeoutError<RecvError>> {
        self.recv_value(selector.into(), Wait::Until(deadline))
            .map_err(Waited::into_timeout)
    }

    /// `msgctl(IPC_STAT)`: messages and bytes queued, the byte limit, the
    /// last sender's and receiver's pids, owner and mode. A removed queue is
    /// an error (`EINVAL`/`EIDRM`).
    pub fn stats(&self) -> io::Result<QueueStats> {
        sys::msg_stat(self.id)
    }

    /// Remove the queue (`IPC_RMID`): its messages are lost, and every
    /// process blocked on it gets [`RecvError::Removed`] /
    /// [`SendError::Removed`]. Its registry record is forgotten.
    pub fn remove(&self) -> io::Result<()> {
        sys::msg_remove(self.id)?;
        forget(&self.registry, Kind::SysvMsg, self.id);
        Ok(())
    }
}
