//! What POSIX message-queue operations report.

use std::fmt;
use std::io;

use crate::connection::codec::{DecodeError, EncodeError};
use crate::error::{self, HandsBack, TimeoutError, TryError};

#[cfg(doc)]
use super::MessageQueue;
use super::{InvalidName, PRIORITY_MAX};

/// A queue could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The name is not valid.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// `maxmsg` or `msgsize` is zero.
    #[error("maxmsg and msgsize must be at least 1 (got maxmsg {maxmsg}, msgsize {msgsize})")]
    InvalidAttributes {
        /// Requested `maxmsg`.
        maxmsg: usize,
        /// Requested `msgsize`.
        msgsize: usize,
    },
    /// The system refused the capacity: `maxmsg` or `msgsize` above
    /// `/proc/sys/fs/mqueue/{msg_max,msgsize_max}` for an unprivileged
    /// process (above 65536 messages or 16 MiB for one with
    /// `CAP_SYS_RESOURCE`), the user's `RLIMIT_MSGQUEUE` bytes, or
    /// `queues_max` queues.
    #[error(
        "the system refused a queue of {maxmsg} messages of {msgsize} bytes \
         (limits: msg_max {msg_max}, msgsize_max {msgsize_max} unless privileged; \
         RLIMIT_MSGQUEUE; queues_max): {source}"
    )]
    LimitExceeded {
        /// Requested `maxmsg`.
        maxmsg: usize,
        /// Requested `msgsize`.
        msgsize: usize,
        /// `/proc/sys/fs/mqueue/msg_max` (-1 if unreadable).
        msg_max: i64,
        /// `/proc/sys/fs/mqueue/msgsize_max` (-1 if unreadable).
        msgsize_max: i64,
        /// What the kernel said.
        source: io::Error,
    },
    /// Exclusive create of a name that exists.
    #[error("message queue {0} already exists")]
    AlreadyExists(String),
    /// Open of a name that does not exist.
    #[error("message queue {0} does not exist")]
    NotFound(String),
    /// The queue belongs to another user or is open to group or others
    /// (open checks; or the kernel said `EACCES`).
    #[error("message queue {name} is not private to this user (uid {uid}, mode {mode:o})")]
    NotPrivate {
        /// The name.
        name: String,
        /// Owner's uid (`u32::MAX` if the kernel refused access).
        uid: u32,
        /// Permission bits.
        mode: u32,
    },
    /// Any other OS error.
    #[error("message queue {name}: {source}")]
    Io {
        /// The name.
        name: String,
        /// The error.
        source: io::Error,
    },
}

/// A blocking send failed. `T` is what the call took ownership of and
/// hands back (`()` for the byte API, which borrows). The `try_` form adds
/// "full" ([`TrySendError`]), the `_timeout`/`_deadline` forms "still full
/// when the time ran out" ([`SendTimeoutError`]).
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SendError<T = ()> {
    /// The message is longer than the queue's `msgsize` (`EMSGSIZE`).
    #[error("message of {len} bytes exceeds the queue's msgsize of {msgsize} bytes")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The queue's `msgsize`.
        msgsize: usize,
        /// The message handed back.
        msg: T,
    },
    /// The priority is not below [`PRIORITY_MAX`].
    #[error("priority {priority} is not below {}", PRIORITY_MAX)]
    InvalidPriority {
        /// The priority given.
        priority: u32,
        /// The message handed back.
        msg: T,
    },
    /// The value could not be encoded.
    #[error("{0}")]
    Encode(#[source] EncodeError, T),
    /// The value holds handles (descriptors), which a queue cannot carry.
    #[error("a message queue carries bytes only: the value holds {count} handle(s)")]
    Handles {
        /// Handles in the value.
        count: usize,
        /// The value handed back.
        msg: T,
    },
    /// Any other OS error (`EBADF`: the queue is not open for writing).
    #[error("{0}")]
    Io(#[source] io::Error, T),
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::TooLarge { len, msgsize, .. } => f
                .debug_struct("TooLarge")
                .field("len", len)
                .field("msgsize", msgsize)
                .finish_non_exhaustive(),
            SendError::InvalidPriority { priority, .. } => f
                .debug_struct("InvalidPriority")
                .field("priority", priority)
                .finish_non_exhaustive(),
            SendError::Encode(e, _) => f.debug_tuple("Encode").field(e).finish_non_exhaustive(),
            SendError::Handles { count, .. } => f
                .debug_struct("Handles")
                .field("count", count)
                .finish_non_exhaustive(),
            SendError::Io(e, _) => f.debug_tuple("Io").field(e).finish_non_exhaustive(),
        }
    }
}

impl<T> SendError<T> {
    /// The message the call took, handed back.
    pub fn into_inner(self) -> T {
        match self {
            SendError::TooLarge { msg: t, .. }
            | SendError::InvalidPriority { msg: t, .. }
            | SendError::Encode(_, t)
            | SendError::Handles { msg: t, .. }
            | SendError::Io(_, t) => t,
        }
    }

    pub(super) fn with<U>(self, msg: U) -> SendError<U> {
        match self {
            SendError::TooLarge { len, msgsize, .. } => SendError::TooLarge { len, msgsize, msg },
            SendError::InvalidPriority { priority, .. } => {
                SendError::InvalidPriority { priority, msg }
            }
            SendError::Encode(e, _) => SendError::Encode(e, msg),
            SendError::Handles { count, .. } => SendError::Handles { count, msg },
            SendError::Io(e, _) => SendError::Io(e, msg),
        }
    }
}

/// A blocking receive failed. The `try_` form adds "empty"
/// ([`TryRecvError`]), the `_timeout`/`_deadline` forms "still empty when
/// the time ran out" ([`RecvTimeoutError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The buffer is shorter than the queue's `msgsize` (`EMSGSIZE`; only
    /// [`MessageQueue::recv_bytes_into`], the other forms size their buffer
    /// from the queue). The message stays queued.
    #[error("a buffer of {buffer} bytes is shorter than the queue's msgsize of {msgsize} bytes")]
    TooLarge {
        /// The buffer's length.
        buffer: usize,
        /// The queue's `msgsize`.
        msgsize: usize,
    },
    /// The message is not a valid encoding of the expected type (typed
    /// receives; the message is consumed).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Any other OS error (`EBADF`: the queue is not open for reading).
    #[error(transparent)]
    Io(io::Error),
}

impl<T> HandsBack for SendError<T> {
    type Item = T;
    fn into_inner(self) -> T {
        SendError::into_inner(self)
    }
}

/// What `try_send`/`try_send_bytes` report: [`error::TrySendError::Full`]
/// (with the message) when the queue is full.
pub type TrySendError<T = ()> = error::TrySendError<SendError<T>>;

/// What `send_timeout`/`send_deadline` (and their `_bytes` forms) report:
/// [`error::SendTimeoutError::Timeout`] (with the message) when the queue
/// stayed full.
pub type SendTimeoutError<T = ()> = error::SendTimeoutError<SendError<T>>;

/// What the `try_recv` forms report: [`TryError::WouldBlock`] when the
/// queue is empty.
pub type TryRecvError = TryError<RecvError>;

/// What the `recv_timeout`/`recv_deadline` forms report:
/// [`TimeoutError::Timeout`] when it stayed empty.
pub type RecvTimeoutError = TimeoutError<RecvError>;
