//! The kinds of named objects: a plain enum, shared by the record store and
//! the table of kinds. A leaf: it imports nothing of the crate.

use std::fmt;

/// The kinds of named objects multiproc creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// A named shared-memory segment in `/dev/shm`; the name is the one
    /// given to `create`, without multiproc's prefix. Its owner record is in
    /// the segment itself, not in the registry.
    Shm,
    /// A named pipe; the name is its path.
    Fifo,
    /// A POSIX message queue; the name is its `/name`.
    PosixMq,
    /// A System V message queue; the name is its id (decimal).
    SysvMsg,
    /// A System V semaphore set; the name is its id (decimal).
    SysvSem,
    /// A System V shared-memory segment; the name is its id (decimal).
    SysvShm,
    /// A listening Unix socket file; the name is its path.
    Socket,
}

impl Kind {
    /// Every kind, in listing order.
    pub const ALL: [Kind; 7] = [
        Kind::Shm,
        Kind::Fifo,
        Kind::PosixMq,
        Kind::SysvMsg,
        Kind::SysvSem,
        Kind::SysvShm,
        Kind::Socket,
    ];

    /// The short name used in record file names and by `multiproc ls`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Shm => "shm",
            Kind::Fifo => "fifo",
            Kind::PosixMq => "posix-mq",
            Kind::SysvMsg => "sysv-msg",
            Kind::SysvSem => "sysv-sem",
            Kind::SysvShm => "sysv-shm",
            Kind::Socket => "socket",
        }
    }

    /// The kind named by [`Kind::as_str`].
    pub fn parse(s: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        Kind::parse(s)
    }
}

/// A name that is not one of [`Kind::as_str`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind {0:?}: one of {list}", list = Kind::ALL.map(Kind::as_str).join(", "))]
pub struct UnknownKind(pub String);
