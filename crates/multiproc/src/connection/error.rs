//! What sending and receiving on a connection report.

use std::io;

use super::codec::{DecodeError, EncodeError};
use super::frame::FrameError;
use crate::error::{TimeoutError, TryError};

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Every handle of the receiving end is closed (Python's `BrokenPipeError`).
    #[error("the receiving end is closed")]
    Disconnected,
    /// The message is larger than the maximum message size.
    #[error("message of {len} bytes exceeds the maximum message size of {max} bytes")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The connection's maximum.
        max: usize,
    },
    /// The value could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The value contains handles, which only a Unix-socket connection
    /// ([`duplex`](crate::duplex), a Unix-path [`Listener`](crate::connection::Listener))
    /// can carry: not a pipe, not TCP.
    #[error("handles can only be sent over a Unix socket connection, not a pipe or TCP")]
    HandlesNeedSocket,
    /// `offset`/`size` do not lie inside the buffer given to
    /// [`Connection::send_bytes_range`](crate::Connection::send_bytes_range) (Python's `ValueError`).
    #[error("range {offset}+{size} is outside the buffer of {len} bytes")]
    OutOfRange {
        /// Start of the range.
        offset: usize,
        /// Length of the range.
        size: usize,
        /// Length of the buffer.
        len: usize,
    },
    /// This end was opened read-only.
    #[error("connection is read-only")]
    NotWritable,
    /// The `interrupted` check of a `*_interruptible` send said to stop
    /// while the write was blocked (a full pipe or socket). If none of the
    /// message had gone out, it is not sent. If part had, the rest is kept
    /// and goes out first on the next send on this handle, so the peer
    /// never sees a torn message unless this handle is closed before then.
    #[error("interrupted while sending")]
    Interrupted,
    /// The OS reported an error.
    #[error(transparent)]
    Io(io::Error),
}

impl From<io::Error> for SendError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => SendError::Disconnected,
            _ => SendError::Io(e),
        }
    }
}

/// Why a blocking receive failed. `try_recv` adds "no whole message yet"
/// ([`TryRecvError`]) and `recv_timeout`/`recv_deadline` add "the time ran
/// out" ([`RecvTimeoutError`]); a partly received message is kept for the
/// next call in both.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// Every handle of the sending end is closed and nothing is left to read
    /// (Python's `EOFError`).
    #[error("end of file: the sending end is closed")]
    Eof,
    /// The byte stream is malformed; the connection is now unusable.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The payload is not a valid encoding of the expected type. The message
    /// is consumed; the connection stays usable.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The buffer given to [`Connection::recv_bytes_into`](crate::Connection::recv_bytes_into) is too short. The
    /// message is consumed and handed back whole (Python's `BufferTooShort`).
    #[error("buffer too short for a message of {} bytes", .0.len())]
    BufferTooShort(Vec<u8>),
    /// A previous frame error made the connection unusable.
    #[error("connection is broken by an earlier malformed frame")]
    Broken,
    /// This end was opened write-only.
    #[error("connection is write-only")]
    NotReadable,
    /// The OS reported an error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What `try_recv`/`try_recv_bytes` report: [`TryError::WouldBlock`] when
/// no whole message has arrived.
pub type TryRecvError = TryError<RecvError>;

/// What `recv_timeout`/`recv_deadline` (and their `_bytes` forms) report:
/// [`TimeoutError::Timeout`] when no whole message arrived in time.
pub type RecvTimeoutError = TimeoutError<RecvError>;

impl RecvError {
    /// Whether this is end of file (the peer closed every handle).
    pub fn is_eof(&self) -> bool {
        matches!(self, RecvError::Eof)
    }
}
