//! System V IPC: message queues with typed selection, semaphore sets with
//! atomic multi-operations, and shared-memory segments — the seeds'
//! `msgget/msgsnd/msgrcv`, `semget/semop/semctl` and `shmget/shmat/shmdt`.
//!
//! Each object is named by a [`Key`] (from a path and a project id, like
//! `ftok`, or a raw number) or is private ([`Key::PRIVATE`], `IPC_PRIVATE`),
//! and identified by the kernel's id. A handle is only that id: it
//! serializes as the id, so it can be passed to spawned children, and
//! dropping it does nothing. The object lives, like the kernel's, until
//! someone removes it ([`MessageQueue::remove`], …) — it survives its
//! creator. Every object this library creates is recorded in the
//! [owner registry](crate::names::registry), so `multiproc ls` lists it with its
//! creator's liveness and `multiproc clean` removes those whose creator is
//! dead.
//!
//! Objects are created exclusively (`IPC_CREAT | IPC_EXCL`, mode 0600 unless
//! [`Builder::mode`] says otherwise), opened (must exist), or created-or-
//! opened. Processes waiting on an object that is removed get a typed
//! `Removed` error (`EIDRM`), never a hang. Signals (`EINTR`) are retried,
//! with the remaining time recomputed from a monotonic deadline.
//!
//! # Timeouts of message queues
//!
//! System V has no timed `msgsnd`/`msgrcv`. The `_timeout` forms poll with
//! `IPC_NOWAIT`, sleeping between tries with a backoff that starts at
//! 20 µs and doubles up to 5 ms, never past the deadline (measured on the
//! monotonic clock). A message that arrives while the caller sleeps is
//! taken at most 5 ms late. Semaphore timeouts use `semtimedop`, which the
//! kernel times exactly.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::path::Path;
use std::time::{Duration, Instant};

use multiproc_sys::sysv::{self as sys, errno};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::connection::codec::{self, DecodeError, EncodeError};
use crate::names::registry::{self, Kind, Registry};
use crate::shared::shared_memory::{OutOfRange, copy_in, copy_out};

// ----- keys, builders --------------------------------------------------------

/// The key that names a System V object (`key_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Key(i32);

impl Key {
    /// `IPC_PRIVATE`: every creation makes a new object, which only the
    /// processes given its handle (its id) can use.
    pub const PRIVATE: Key = Key(sys::IPC_PRIVATE);

    /// `ftok(path, project)`: a key derived from an existing file's inode and
    /// device and the low 8 bits of `project`. Unrelated processes that
    /// agree on the path and project get the same key.
    pub fn from_path(path: impl AsRef<Path>, project: u8) -> io::Result<Key> {
        sys::ftok(path.as_ref(), project).map(Key)
    }

    /// A raw key. `0` is [`Key::PRIVATE`].
    pub const fn from_raw(key: i32) -> Key {
        Key(key)
    }

    /// The raw key.
    pub const fn as_raw(self) -> i32 {
        self.0
    }
}

/// An object could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Exclusive creation, and an object with this key exists.
    #[error("a System V object with this key already exists")]
    AlreadyExists(#[source] io::Error),
    /// Open, and no object has this key (or it was removed).
    #[error("no System V object has this key")]
    NotFound(#[source] io::Error),
    /// An argument the kernel refused: a size or count out of its limits,
    /// or an existing object too small for the one asked for.
    #[error("invalid argument: {0}")]
    InvalidArgument(#[source] io::Error),
    /// Any other OS error (permissions, limits on the number of objects).
    #[error(transparent)]
    Io(io::Error),
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(errno::EEXIST) => OpenError::AlreadyExists(e),
            Some(errno::ENOENT) | Some(errno::EIDRM) => OpenError::NotFound(e),
            Some(errno::EINVAL) => OpenError::InvalidArgument(e),
            _ => OpenError::Io(e),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Create,
    Open,
    CreateOrOpen,
}

/// Options for creating or opening a System V object: the key, the
/// permission bits of a new object, and the registry it is recorded in.
///
/// `Builder::<MessageQueue>::new(key)` or [`MessageQueue::builder`]; the
/// same for [`SemaphoreSet`] and [`SharedMemory`].
pub struct Builder<T> {
    key: Key,
    mode: u32,
    registry: Option<Registry>,
    _kind: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Builder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("key", &self.key)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("registry", &self.registry)
            .finish()
    }
}

impl<T> Builder<T> {
    /// Options for the object named by `key`: mode 0600, the default
    /// registry.
    pub fn new(key: Key) -> Self {
        Builder {
            key,
            mode: 0o600,
            registry: None,
            _kind: PhantomData,
        }
    }

    /// Permission bits of a created object (`& 0o777`; default 0600).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Record a created object in `registry` instead of the default one.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Get the object's id with `get(flags)`. Create-or-open tries an
    /// exclusive creation first, so that only a process that really created
    /// the object records itself as its owner.
    fn obtain(
        &self,
        how: How,
        kind: Kind,
        get: impl Fn(i32) -> io::Result<i32>,
    ) -> Result<i32, OpenError> {
        let create = sys::IPC_CREAT | sys::IPC_EXCL | self.mode as i32;
        if how == How::Open {
            return Ok(get(0)?);
        }
        loop {
            match get(create) {
                Ok(id) => {
                    self.record(kind, id);
                    return Ok(id);
                }
                Err(e) if how == How::CreateOrOpen && e.raw_os_error() == Some(errno::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
            match get(0) {
                Ok(id) => return Ok(id),
                // Removed between the two calls: try to create it again.
                Err(e) if e.raw_os_error() == Some(errno::ENOENT) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Record a created object (best effort: a registry that cannot be
    /// written never stops a creation).
    fn record(&self, kind: Kind, id: i32) {
        let name = id.to_string();
        let _ = match &self.registry {
            Some(r) => r.record(kind, &name),
            None => registry::record(kind, &name),
        };
    }
}

/// Forget a removed object's record (best effort).
fn forget(registry: &Option<Registry>, kind: Kind, id: i32) {
    let name = id.to_string();
    let _ = match registry {
        Some(r) => r.forget(kind, &name),
        None => registry::forget(kind, &name),
    };
}

/// `EINVAL` or `EIDRM` from a call on an id: the object is gone.
fn is_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(errno::EINVAL) | Some(errno::EIDRM))
}

/// How a call waits.
#[derive(Debug, Clone, Copy)]
enum Wait {
    Block,
    Never,
    Until(Instant),
}

impl Wait {
    fn timeout(t: Duration) -> Wait {
        // A deadline that does not fit is no deadline.
        Instant::now()
            .checked_add(t)
            .map_or(Wait::Block, Wait::Until)
    }
}

/// Backoff of the polling `_timeout` forms of message queues.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_micros(20);
    const MAX: Duration = Duration::from_millis(5);

    fn new() -> Self {
        Backoff(Self::FIRST)
    }

    /// Sleep for the next step, never past `deadline`; false once it passed.
    fn sleep(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(self.0.min(deadline - now));
        self.0 = (self.0 * 2).min(Self::MAX);
        true
    }
}

// ----- message queues --------------------------------------------------------

/// Which message [`MessageQueue::receive`] takes (`msgrcv`'s type
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

    fn raw(self) -> Result<(i64, i32), ReceiveError> {
        let bad = |t| Err(ReceiveError::InvalidSelector(t));
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

/// A message could not be sent.
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
    /// No-wait send (`IPC_NOWAIT`) and the queue is full.
    #[error("the message queue is full")]
    Full,
    /// The queue stayed full until the timeout.
    #[error("timed out: the message queue stayed full")]
    Timeout,
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

/// A message could not be received.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// A selector with a type ≤ 0 where one > 0 is meant.
    #[error("selector type {0} is invalid: it must be > 0")]
    InvalidSelector(i64),
    /// No-wait receive (`IPC_NOWAIT`) and no message matches.
    #[error("no matching message in the queue")]
    Empty,
    /// No message matched until the timeout.
    #[error("timed out waiting for a message")]
    Timeout,
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

impl Builder<MessageQueue> {
    fn get(self, how: How) -> Result<MessageQueue, OpenError> {
        let key = self.key.0;
        let id = self.obtain(how, Kind::SysvMsg, |flags| sys::msgget(key, flags))?;
        Ok(MessageQueue {
            id,
            registry: self.registry,
        })
    }

    /// Create a new queue (`IPC_CREAT | IPC_EXCL`); a taken key is
    /// [`OpenError::AlreadyExists`].
    pub fn create(self) -> Result<MessageQueue, OpenError> {
        self.get(How::Create)
    }

    /// Open an existing queue; none is [`OpenError::NotFound`].
    pub fn open(self) -> Result<MessageQueue, OpenError> {
        self.get(How::Open)
    }

    /// Open the queue with this key, creating it if there is none.
    pub fn create_or_open(self) -> Result<MessageQueue, OpenError> {
        self.get(How::CreateOrOpen)
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

    fn send_raw(&self, mtype: i64, data: &[u8], wait: Wait) -> Result<(), SendError> {
        if mtype <= 0 {
            return Err(SendError::InvalidType(mtype));
        }
        let flags = match wait {
            Wait::Block => 0,
            Wait::Never | Wait::Until(_) => sys::IPC_NOWAIT,
        };
        let mut backoff = Backoff::new();
        loop {
            let e = match sys::msgsnd(self.id, mtype, data, flags) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            match e.raw_os_error() {
                Some(errno::EINTR) => continue,
                Some(errno::EAGAIN) => match wait {
                    Wait::Until(deadline) if backoff.sleep(deadline) => continue,
                    Wait::Until(_) => return Err(SendError::Timeout),
                    _ => return Err(SendError::Full),
                },
                Some(errno::EIDRM) => return Err(SendError::Removed),
                Some(errno::EINVAL) => {
                    // A removed id, or a message over msgmax.
                    return Err(match sys::msg_stat(self.id) {
                        Err(e) if is_gone(&e) => SendError::Removed,
                        _ => SendError::TooLarge {
                            len: data.len(),
                            max: sys::msgmax(),
                        },
                    });
                }
                _ => return Err(SendError::Io(e)),
            }
        }
    }

    /// Send `data` as a message of type `mtype` (> 0), waiting while the
    /// queue is full.
    pub fn send(&self, mtype: i64, data: &[u8]) -> Result<(), SendError> {
        self.send_raw(mtype, data, Wait::Block)
    }

    /// Send without waiting (`IPC_NOWAIT`): [`SendError::Full`] if the queue
    /// is full.
    pub fn try_send(&self, mtype: i64, data: &[u8]) -> Result<(), SendError> {
        self.send_raw(mtype, data, Wait::Never)
    }

    /// Send, waiting at most `timeout` while the queue is full (polling: see
    /// the module docs); [`SendError::Timeout`] then.
    pub fn send_timeout(
        &self,
        mtype: i64,
        data: &[u8],
        timeout: Duration,
    ) -> Result<(), SendError> {
        self.send_raw(mtype, data, Wait::timeout(timeout))
    }

    fn receive_raw(
        &self,
        selector: Selector,
        buf: &mut [u8],
        truncate: bool,
        wait: Wait,
    ) -> Result<(i64, usize), ReceiveError> {
        let (msgtyp, mut flags) = selector.raw()?;
        if truncate {
            flags |= sys::MSG_NOERROR;
        }
        if !matches!(wait, Wait::Block) {
            flags |= sys::IPC_NOWAIT;
        }
        let mut backoff = Backoff::new();
        loop {
            let e = match sys::msgrcv(self.id, buf, msgtyp, flags) {
                Ok(got) => return Ok(got),
                Err(e) => e,
            };
            match e.raw_os_error() {
                Some(errno::EINTR) => continue,
                Some(errno::ENOMSG) | Some(errno::EAGAIN) => match wait {
                    Wait::Until(deadline) if backoff.sleep(deadline) => continue,
                    Wait::Until(_) => return Err(ReceiveError::Timeout),
                    _ => return Err(ReceiveError::Empty),
                },
                Some(errno::E2BIG) => return Err(ReceiveError::TooLarge { max: buf.len() }),
                Some(errno::EIDRM) | Some(errno::EINVAL) => return Err(ReceiveError::Removed),
                _ => return Err(ReceiveError::Io(e)),
            }
        }
    }

    fn receive_vec(&self, selector: Selector, wait: Wait) -> Result<Message, ReceiveError> {
        let mut data = vec![0; sys::msgmax()];
        let (mtype, n) = self.receive_raw(selector, &mut data, false, wait)?;
        data.truncate(n);
        Ok(Message { mtype, data })
    }

    /// Receive the first message `selector` picks, waiting until there is
    /// one.
    pub fn receive(&self, selector: impl Into<Selector>) -> Result<Message, ReceiveError> {
        self.receive_vec(selector.into(), Wait::Block)
    }

    /// Receive without waiting (`IPC_NOWAIT`): [`ReceiveError::Empty`] when
    /// no message matches.
    pub fn try_receive(&self, selector: impl Into<Selector>) -> Result<Message, ReceiveError> {
        self.receive_vec(selector.into(), Wait::Never)
    }

    /// Receive, waiting at most `timeout` (polling: see the module docs).
    pub fn receive_timeout(
        &self,
        selector: impl Into<Selector>,
        timeout: Duration,
    ) -> Result<Message, ReceiveError> {
        self.receive_vec(selector.into(), Wait::timeout(timeout))
    }

    /// Receive into `buf`, waiting: the message's type and length. A longer
    /// message is [`ReceiveError::TooLarge`] (and stays queued) unless
    /// `truncate` (`MSG_NOERROR`): then its first `buf.len()` bytes are kept
    /// and the rest is lost.
    pub fn receive_into(
        &self,
        selector: impl Into<Selector>,
        buf: &mut [u8],
        truncate: bool,
    ) -> Result<(i64, usize), ReceiveError> {
        self.receive_raw(selector.into(), buf, truncate, Wait::Block)
    }

    /// [`receive_into`](Self::receive_into) without waiting.
    pub fn try_receive_into(
        &self,
        selector: impl Into<Selector>,
        buf: &mut [u8],
        truncate: bool,
    ) -> Result<(i64, usize), ReceiveError> {
        self.receive_raw(selector.into(), buf, truncate, Wait::Never)
    }

    /// [`receive_into`](Self::receive_into), waiting at most `timeout`.
    pub fn receive_into_timeout(
        &self,
        selector: impl Into<Selector>,
        buf: &mut [u8],
        truncate: bool,
        timeout: Duration,
    ) -> Result<(i64, usize), ReceiveError> {
        self.receive_raw(selector.into(), buf, truncate, Wait::timeout(timeout))
    }

    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, SendError> {
        let mut bytes = Vec::new();
        let fds = codec::encode(value, &mut bytes)?;
        if !fds.is_empty() {
            return Err(SendError::Handles(fds.len()));
        }
        Ok(bytes)
    }

    /// Send a serde value (postcard, as [`Connection`](crate::Connection)
    /// does). Values holding handles are refused ([`SendError::Handles`]).
    pub fn send_value<T: Serialize + ?Sized>(
        &self,
        mtype: i64,
        value: &T,
    ) -> Result<(), SendError> {
        self.send(mtype, &Self::encode(value)?)
    }

    /// [`send_value`](Self::send_value) without waiting.
    pub fn try_send_value<T: Serialize + ?Sized>(
        &self,
        mtype: i64,
        value: &T,
    ) -> Result<(), SendError> {
        self.try_send(mtype, &Self::encode(value)?)
    }

    /// [`send_value`](Self::send_value), waiting at most `timeout`.
    pub fn send_value_timeout<T: Serialize + ?Sized>(
        &self,
        mtype: i64,
        value: &T,
        timeout: Duration,
    ) -> Result<(), SendError> {
        self.send_timeout(mtype, &Self::encode(value)?, timeout)
    }

    fn decode<T: DeserializeOwned>(m: Message) -> Result<(i64, T), ReceiveError> {
        Ok((m.mtype, codec::decode(&m.data, Vec::new())?))
    }

    /// Receive a serde value sent by [`send_value`](Self::send_value): its
    /// type and the value.
    pub fn receive_value<T: DeserializeOwned>(
        &self,
        selector: impl Into<Selector>,
    ) -> Result<(i64, T), ReceiveError> {
        Self::decode(self.receive(selector)?)
    }

    /// [`receive_value`](Self::receive_value) without waiting.
    pub fn try_receive_value<T: DeserializeOwned>(
        &self,
        selector: impl Into<Selector>,
    ) -> Result<(i64, T), ReceiveError> {
        Self::decode(self.try_receive(selector)?)
    }

    /// [`receive_value`](Self::receive_value), waiting at most `timeout`.
    pub fn receive_value_timeout<T: DeserializeOwned>(
        &self,
        selector: impl Into<Selector>,
        timeout: Duration,
    ) -> Result<(i64, T), ReceiveError> {
        Self::decode(self.receive_timeout(selector, timeout)?)
    }

    /// `msgctl(IPC_STAT)`: messages and bytes queued, the byte limit, the
    /// last sender's and receiver's pids, owner and mode. A removed queue is
    /// an error (`EINVAL`/`EIDRM`).
    pub fn stats(&self) -> io::Result<QueueStats> {
        sys::msg_stat(self.id)
    }

    /// Remove the queue (`IPC_RMID`): its messages are lost, and every
    /// process blocked on it gets [`ReceiveError::Removed`] /
    /// [`SendError::Removed`]. Its registry record is forgotten.
    pub fn remove(&self) -> io::Result<()> {
        sys::msg_remove(self.id)?;
        forget(&self.registry, Kind::SysvMsg, self.id);
        Ok(())
    }
}

// ----- semaphore sets --------------------------------------------------------

/// Flags of one [`SemOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SemFlags(i16);

impl SemFlags {
    /// No flags: the operation waits, and is not undone at exit.
    pub const NONE: SemFlags = SemFlags(0);
    /// `IPC_NOWAIT`: fail with [`SemError::WouldBlock`] instead of waiting.
    pub const NO_WAIT: SemFlags = SemFlags(sys::IPC_NOWAIT as i16);
    /// `SEM_UNDO`: the kernel reverses the operation when this process
    /// exits, however it ends (even `kill -9`).
    pub const UNDO: SemFlags = SemFlags(sys::SEM_UNDO);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: SemFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for SemFlags {
    type Output = SemFlags;
    fn bitor(self, rhs: SemFlags) -> SemFlags {
        SemFlags(self.0 | rhs.0)
    }
}

/// One operation of [`SemaphoreSet::op`] (`struct sembuf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemOp {
    /// Which semaphore of the set.
    pub index: u16,
    /// Positive: add (V); negative: take, waiting until the value is
    /// large enough (P); zero: wait until the value is zero.
    pub delta: i16,
    /// [`SemFlags::NO_WAIT`], [`SemFlags::UNDO`].
    pub flags: SemFlags,
}

impl SemOp {
    /// `delta` on semaphore `index`, no flags.
    pub const fn new(index: u16, delta: i16) -> SemOp {
        SemOp {
            index,
            delta,
            flags: SemFlags::NONE,
        }
    }

    /// The same operation with `SEM_UNDO`.
    pub const fn undo(mut self) -> SemOp {
        self.flags = SemFlags(self.flags.0 | SemFlags::UNDO.0);
        self
    }

    /// The same operation with `IPC_NOWAIT`.
    pub const fn no_wait(mut self) -> SemOp {
        self.flags = SemFlags(self.flags.0 | SemFlags::NO_WAIT.0);
        self
    }
}

/// A semaphore operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SemError {
    /// No-wait (`IPC_NOWAIT`), and an operation would have waited. None of
    /// the operations was applied.
    #[error("the semaphore operation would block")]
    WouldBlock,
    /// The operations could not be applied before the timeout. None was.
    #[error("timed out waiting on the semaphore set")]
    Timeout,
    /// The set was removed (before or during the call: `EIDRM`).
    #[error("the semaphore set was removed")]
    Removed,
    /// A semaphore index outside the set.
    #[error("semaphore index {index} is outside a set of {len}")]
    InvalidIndex {
        /// The index.
        index: u32,
        /// The set's size.
        len: u32,
    },
    /// A value or amount out of range (for example a P/V amount over
    /// 32767, a value over `SEMVMX`, or an empty list of operations).
    #[error("value out of range: {0}")]
    OutOfRange(String),
    /// Any other OS error.
    #[error(transparent)]
    Io(io::Error),
}

impl From<io::Error> for SemError {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(errno::EIDRM) | Some(errno::EINVAL) => SemError::Removed,
            Some(errno::ERANGE) => SemError::OutOfRange(e.to_string()),
            _ => SemError::Io(e),
        }
    }
}

/// A System V semaphore set: `len` counting semaphores, operated on
/// atomically ([`op`](Self::op) applies all of its operations or none).
///
/// The handle is the set's id and its size: it serializes as those, and
/// dropping it leaves the set in place until [`remove`](Self::remove).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SemaphoreSet {
    id: i32,
    len: u32,
    #[serde(skip)]
    registry: Option<Registry>,
}

impl Builder<SemaphoreSet> {
    fn get(self, how: How, len: u16) -> Result<SemaphoreSet, OpenError> {
        let key = self.key.0;
        let id = self.obtain(how, Kind::SysvSem, |flags| {
            sys::semget(key, i32::from(len), flags)
        })?;
        let len = sys::sem_stat(id)?.nsems;
        Ok(SemaphoreSet {
            id,
            len: u32::try_from(len).unwrap_or(u32::MAX),
            registry: self.registry,
        })
    }

    /// Create a new set of `len` semaphores, all 0 (`IPC_CREAT |
    /// IPC_EXCL`).
    pub fn create(self, len: u16) -> Result<SemaphoreSet, OpenError> {
        self.get(How::Create, len)
    }

    /// Open an existing set.
    pub fn open(self) -> Result<SemaphoreSet, OpenError> {
        self.get(How::Open, 0)
    }

    /// Open the set with this key, creating one of `len` semaphores if
    /// there is none (an existing set smaller than `len` is
    /// [`OpenError::InvalidArgument`]).
    pub fn create_or_open(self, len: u16) -> Result<SemaphoreSet, OpenError> {
        self.get(How::CreateOrOpen, len)
    }
}

impl SemaphoreSet {
    /// Options for the set named by `key`.
    pub fn builder(key: Key) -> Builder<SemaphoreSet> {
        Builder::new(key)
    }

    /// Create a new set of `len` semaphores (all 0), mode 0600.
    pub fn create(key: Key, len: u16) -> Result<Self, OpenError> {
        Self::builder(key).create(len)
    }

    /// A new private set of `len` semaphores (`IPC_PRIVATE`).
    pub fn private(len: u16) -> Result<Self, OpenError> {
        Self::create(Key::PRIVATE, len)
    }

    /// Open the existing set named by `key`.
    pub fn open(key: Key) -> Result<Self, OpenError> {
        Self::builder(key).open()
    }

    /// Open the set named by `key`, creating one of `len` if missing.
    pub fn create_or_open(key: Key, len: u16) -> Result<Self, OpenError> {
        Self::builder(key).create_or_open(len)
    }

    /// The kernel's id of the set.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The number of semaphores.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the set has no semaphores (never, for a set made here).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, index: u16) -> Result<(), SemError> {
        if u32::from(index) < self.len {
            Ok(())
        } else {
            Err(SemError::InvalidIndex {
                index: u32::from(index),
                len: self.len,
            })
        }
    }

    fn op_raw(&self, ops: &[SemOp], extra: i16, wait: Option<Instant>) -> Result<(), SemError> {
        if ops.is_empty() {
            return Err(SemError::OutOfRange("no operations".into()));
        }
        for o in ops {
            self.check(o.index)?;
        }
        let raw: Vec<sys::SemBuf> = ops
            .iter()
            .map(|o| sys::SemBuf {
                num: o.index,
                op: o.delta,
                flags: o.flags.0 | extra,
            })
            .collect();
        loop {
            let timeout = wait.map(|d| d.saturating_duration_since(Instant::now()));
            let e = match sys::semtimedop(self.id, &raw, timeout) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            match e.raw_os_error() {
                // A signal: try again with what is left of the deadline.
                Some(errno::EINTR) => continue,
                Some(errno::EAGAIN) => {
                    return Err(match wait {
                        Some(deadline) if Instant::now() >= deadline => SemError::Timeout,
                        // An operation's own NO_WAIT flag.
                        _ => SemError::WouldBlock,
                    });
                }
                _ => return Err(e.into()),
            }
        }
    }

    /// Apply every operation in `ops` atomically, waiting until all can be
    /// applied together (`semop`). An operation flagged
    /// [`SemFlags::NO_WAIT`] that would wait makes the call fail with
    /// [`SemError::WouldBlock`], applying none.
    pub fn op(&self, ops: &[SemOp]) -> Result<(), SemError> {
        self.op_raw(ops, 0, None)
    }

    /// [`op`](Self::op) with `IPC_NOWAIT` on every operation:
    /// [`SemError::WouldBlock`] (nothing applied) if any would wait.
    pub fn try_op(&self, ops: &[SemOp]) -> Result<(), SemError> {
        self.op_raw(ops, SemFlags::NO_WAIT.0, None)
    }

    /// [`op`](Self::op), waiting at most `timeout` (`semtimedop`; the
    /// remaining time is recomputed from a monotonic deadline after a
    /// signal): [`SemError::Timeout`], nothing applied.
    pub fn op_timeout(&self, ops: &[SemOp], timeout: Duration) -> Result<(), SemError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.op_raw(ops, 0, Some(deadline)),
            None => self.op(ops),
        }
    }

    fn amount(n: u16) -> Result<i16, SemError> {
        i16::try_from(n).map_err(|_| SemError::OutOfRange(format!("amount {n} is over 32767")))
    }

    /// P: take `n` from semaphore `index`, waiting until its value is ≥ `n`.
    pub fn p(&self, index: u16, n: u16) -> Result<(), SemError> {
        self.op(&[SemOp::new(index, -Self::amount(n)?)])
    }

    /// P without waiting.
    pub fn try_p(&self, index: u16, n: u16) -> Result<(), SemError> {
        self.try_op(&[SemOp::new(index, -Self::amount(n)?)])
    }

    /// P, waiting at most `timeout`.
    pub fn p_timeout(&self, index: u16, n: u16, timeout: Duration) -> Result<(), SemError> {
        self.op_timeout(&[SemOp::new(index, -Self::amount(n)?)], timeout)
    }

    /// V: add `n` to semaphore `index` (never waits).
    pub fn v(&self, index: u16, n: u16) -> Result<(), SemError> {
        self.op(&[SemOp::new(index, Self::amount(n)?)])
    }

    /// Wait until semaphore `index` is zero.
    pub fn wait_zero(&self, index: u16) -> Result<(), SemError> {
        self.op(&[SemOp::new(index, 0)])
    }

    /// The value of semaphore `index` (`GETVAL`).
    pub fn get(&self, index: u16) -> Result<i32, SemError> {
        self.check(index)?;
        Ok(sys::sem_getval(self.id, index)?)
    }

    /// Set semaphore `index` to `value` (`SETVAL`; clears every process's
    /// undo entry for it), waking waiters it satisfies.
    pub fn set(&self, index: u16, value: i32) -> Result<(), SemError> {
        self.check(index)?;
        Ok(sys::sem_setval(self.id, index, value)?)
    }

    /// Every value (`GETALL`).
    pub fn get_all(&self) -> Result<Vec<u16>, SemError> {
        let n = usize::try_from(self.len).unwrap_or(usize::MAX);
        Ok(sys::sem_getall(self.id, n)?)
    }

    /// Set every value (`SETALL`); `values.len()` must be the set's size.
    pub fn set_all(&self, values: &[u16]) -> Result<(), SemError> {
        if values.len() as u64 != u64::from(self.len) {
            return Err(SemError::OutOfRange(format!(
                "{} values for a set of {}",
                values.len(),
                self.len
            )));
        }
        Ok(sys::sem_setall(self.id, values)?)
    }

    /// Processes waiting for semaphore `index` to grow (`GETNCNT`).
    pub fn getncnt(&self, index: u16) -> Result<u32, SemError> {
        self.check(index)?;
        Ok(sys::sem_getncnt(self.id, index)?.unsigned_abs())
    }

    /// Processes waiting for semaphore `index` to be zero (`GETZCNT`).
    pub fn getzcnt(&self, index: u16) -> Result<u32, SemError> {
        self.check(index)?;
        Ok(sys::sem_getzcnt(self.id, index)?.unsigned_abs())
    }

    /// The pid of the last process that operated on semaphore `index`
    /// (`GETPID`; 0 if none).
    pub fn getpid(&self, index: u16) -> Result<u32, SemError> {
        self.check(index)?;
        Ok(sys::sem_getpid(self.id, index)?.unsigned_abs())
    }

    /// Remove the set (`IPC_RMID`): waiters get [`SemError::Removed`]. Its
    /// registry record is forgotten.
    pub fn remove(&self) -> Result<(), SemError> {
        sys::sem_remove(self.id)?;
        forget(&self.registry, Kind::SysvSem, self.id);
        Ok(())
    }
}

// ----- shared memory ---------------------------------------------------------

/// A shared-memory operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShmError {
    /// A write through a read-only attachment.
    #[error("the attachment is read-only")]
    ReadOnly,
    /// An access outside the segment.
    #[error(transparent)]
    OutOfRange(#[from] OutOfRange),
    /// The segment was removed and has no attachments left (its id is
    /// gone).
    #[error("the shared-memory segment was removed")]
    Removed,
    /// Any other OS error.
    #[error(transparent)]
    Io(io::Error),
}

impl From<io::Error> for ShmError {
    fn from(e: io::Error) -> Self {
        if is_gone(&e) {
            ShmError::Removed
        } else {
            ShmError::Io(e)
        }
    }
}

/// What `shmctl(IPC_STAT)` says about a segment.
pub type SegmentStats = sys::ShmStat;

/// A System V shared-memory segment (`shmget`).
///
/// Its bytes are reached through an [`Attachment`] ([`attach`](Self::attach)
/// / [`attach_read_only`](Self::attach_read_only)). The handle is the
/// segment's id: it serializes as the id, and dropping it leaves the
/// segment in place until [`remove`](Self::remove) — after which it lives
/// until its last attachment, in any process, is detached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SharedMemory {
    id: i32,
    #[serde(skip)]
    registry: Option<Registry>,
}

impl Builder<SharedMemory> {
    fn get(self, how: How, size: usize) -> Result<SharedMemory, OpenError> {
        let key = self.key.0;
        let id = self.obtain(how, Kind::SysvShm, |flags| sys::shmget(key, size, flags))?;
        Ok(SharedMemory {
            id,
            registry: self.registry,
        })
    }

    /// Create a new zero-filled segment of `size` bytes (`IPC_CREAT |
    /// IPC_EXCL`).
    pub fn create(self, size: usize) -> Result<SharedMemory, OpenError> {
        self.get(How::Create, size)
    }

    /// Open an existing segment.
    pub fn open(self) -> Result<SharedMemory, OpenError> {
        self.get(How::Open, 0)
    }

    /// Open the segment with this key, creating one of `size` bytes if there
    /// is none (an existing one smaller than `size` is
    /// [`OpenError::InvalidArgument`]).
    pub fn create_or_open(self, size: usize) -> Result<SharedMemory, OpenError> {
        self.get(How::CreateOrOpen, size)
    }
}

impl SharedMemory {
    /// Options for the segment named by `key`.
    pub fn builder(key: Key) -> Builder<SharedMemory> {
        Builder::new(key)
    }

    /// Create a new zero-filled segment of `size` bytes, mode 0600.
    pub fn create(key: Key, size: usize) -> Result<Self, OpenError> {
        Self::builder(key).create(size)
    }

    /// A new private segment (`IPC_PRIVATE`).
    pub fn private(size: usize) -> Result<Self, OpenError> {
        Self::create(Key::PRIVATE, size)
    }

    /// Open the existing segment named by `key`.
    pub fn open(key: Key) -> Result<Self, OpenError> {
        Self::builder(key).open()
    }

    /// Open the segment named by `key`, creating one of `size` if missing.
    pub fn create_or_open(key: Key, size: usize) -> Result<Self, OpenError> {
        Self::builder(key).create_or_open(size)
    }

    /// The kernel's id of the segment.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// `shmctl(IPC_STAT)`: size, attachments, creator, whether removed.
    pub fn stats(&self) -> Result<SegmentStats, ShmError> {
        Ok(sys::shm_stat(self.id)?)
    }

    /// The segment's size in bytes.
    pub fn size(&self) -> Result<u64, ShmError> {
        Ok(self.stats()?.size)
    }

    /// Attachments in every process (`shm_nattch`).
    pub fn attach_count(&self) -> Result<u64, ShmError> {
        Ok(self.stats()?.attached)
    }

    fn attach_raw(&self, read_only: bool) -> Result<Attachment, ShmError> {
        let size = self.size()?;
        let len = usize::try_from(size)
            .map_err(|_| ShmError::Io(io::Error::other("segment larger than the address space")))?;
        let ptr = sys::shmat(self.id, read_only)?;
        Ok(Attachment {
            ptr,
            len,
            read_only,
            id: self.id,
        })
    }

    /// Attach the segment readable and writable (`shmat`).
    pub fn attach(&self) -> Result<Attachment, ShmError> {
        self.attach_raw(false)
    }

    /// Attach the segment read-only (`SHM_RDONLY`): writes through it are
    /// refused with [`ShmError::ReadOnly`].
    pub fn attach_read_only(&self) -> Result<Attachment, ShmError> {
        self.attach_raw(true)
    }

    /// Remove the segment (`IPC_RMID`): no new attachments, and the memory
    /// is freed when the last attachment is detached. Its registry record
    /// is forgotten.
    pub fn remove(&self) -> Result<(), ShmError> {
        sys::shm_remove(self.id)?;
        forget(&self.registry, Kind::SysvShm, self.id);
        Ok(())
    }
}

/// A segment attached to this process (`shmat`), detached (`shmdt`) on
/// drop.
///
/// Other processes may write the bytes at any time, so access is by copy
/// ([`read`](Self::read), [`write`](Self::write)) or through the raw
/// pointer ([`as_ptr`](Self::as_ptr)); no `&[u8]` over them is handed out.
pub struct Attachment {
    ptr: *mut u8,
    len: usize,
    read_only: bool,
    id: i32,
}

// SAFETY: the pointer is an attachment that lives until drop; every access
// through it is a copy or an `unsafe` raw-pointer use whose caller
// synchronizes, from any thread.
unsafe impl Send for Attachment {}
// SAFETY: as above: `&Attachment` only copies through the pointer.
unsafe impl Sync for Attachment {}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("id", &self.id)
            .field("len", &self.len)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl Attachment {
    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the segment is empty (never: the kernel refuses size 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether writes are refused.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Copy `out.len()` bytes from `offset` into `out`.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), ShmError> {
        // SAFETY: `ptr..ptr + len` is the attachment, which lives until
        // `self` drops; no Rust reference covers it.
        Ok(unsafe { copy_out(self.ptr, self.len, offset, out) }?)
    }

    /// `len` bytes from `offset`, copied out.
    pub fn read_vec(&self, offset: usize, len: usize) -> Result<Vec<u8>, ShmError> {
        OutOfRange::check(offset, len, self.len)?;
        let mut v = vec![0; len];
        self.read(offset, &mut v)?;
        Ok(v)
    }

    /// Copy `src` into the segment at `offset`; [`ShmError::ReadOnly`] on a
    /// read-only attachment.
    pub fn write(&self, offset: usize, src: &[u8]) -> Result<(), ShmError> {
        if self.read_only {
            return Err(ShmError::ReadOnly);
        }
        // SAFETY: as in `read`; the attachment is writable (not SHM_RDONLY).
        Ok(unsafe { copy_in(self.ptr, self.len, offset, src) }?)
    }

    /// The first byte, for code that synchronizes on its own.
    /// Dereferencing it is `unsafe`: other processes may write these bytes
    /// at any time, and writing through a read-only attachment faults.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `shmat` and is detached only here; the
        // borrow rules end every use of it through `self` before drop.
        let _ = unsafe { sys::shmdt(self.ptr) };
    }
}

// ----- registry support ------------------------------------------------------

/// Whether the object `kind` with id `name` exists (`IPC_STAT` by id).
pub(crate) fn exists(kind: Kind, name: &str) -> bool {
    let Ok(id) = name.parse::<i32>() else {
        return false;
    };
    let r = match kind {
        Kind::SysvMsg => sys::msg_stat(id).map(drop),
        Kind::SysvSem => sys::sem_stat(id).map(drop),
        Kind::SysvShm => sys::shm_stat(id).map(drop),
        _ => return false,
    };
    match r {
        Ok(()) => true,
        Err(e) => !is_gone(&e),
    }
}

/// Remove the object `kind` with id `name` (`IPC_RMID` by id); one that is
/// gone is `NotFound`.
pub(crate) fn remove_by_id(kind: Kind, name: &str) -> io::Result<()> {
    let id = name
        .parse::<i32>()
        .map_err(|_| io::Error::new(io::ErrorKind::NotFound, "not a System V id"))?;
    let r = match kind {
        Kind::SysvMsg => sys::msg_remove(id),
        Kind::SysvSem => sys::sem_remove(id),
        Kind::SysvShm => sys::shm_remove(id),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a System V kind",
            ));
        }
    };
    match r {
        Err(e) if is_gone(&e) => Err(io::Error::new(io::ErrorKind::NotFound, e)),
        r => r,
    }
}
