//! [`RemoteError`]: what a server answers when it refuses or fails a
//! request, with typed details wherever they are structured (a missing
//! argument's position, the type found, the lock not held). Only a user
//! type's own failure message, and the decoder's account of a malformed
//! frame, are free text.
//!
//! Each detail's `Display` is the message clients have always shown (Python
//! raises it as the exception's text).

use serde::{Deserialize, Serialize};

use super::kind::ObjectKind;
use super::value::ValueType;

/// A server-side error, sent back to the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The client speaks another protocol version.
    #[error("protocol version {client} not supported (server speaks {server})")]
    Version {
        /// The server's version.
        server: u32,
        /// The client's version.
        client: u32,
    },
    /// The request came before `Hello`, or is not valid here.
    #[error("protocol error: {0}")]
    Protocol(ProtocolError),
    /// No object with this id (freed, or never existed).
    #[error("no object {0}")]
    UnknownObject(u64),
    /// No user type registered under this name.
    #[error("no registered type {0:?}")]
    UnknownType(String),
    /// The object has no such method (or it is not allow-listed).
    #[error("{kind} has no method {method:?}")]
    UnknownMethod {
        /// The object's type.
        kind: String,
        /// The method asked for.
        method: String,
    },
    /// Wrong number or types of arguments (Python's `TypeError`).
    #[error("type error: {0}")]
    Type(TypeError),
    /// Missing key (Python's `KeyError`).
    #[error("key not found")]
    Key,
    /// Index out of range (Python's `IndexError`).
    #[error("index out of range")]
    Index,
    /// A value is not acceptable (Python's `ValueError`).
    #[error("value error: {0}")]
    Value(ValueError),
    /// An integer update overflowed.
    #[error("integer overflow")]
    Overflow,
    /// The wait timed out (or `try_` found it not ready).
    #[error("timed out")]
    Timeout,
    /// The queue is empty.
    #[error("queue is empty")]
    Empty,
    /// The queue is full.
    #[error("queue is full")]
    Full,
    /// Releasing a lock this thread does not hold, or a semaphore above its
    /// bound.
    #[error("release error: {0}")]
    Release(ReleaseError),
    /// The barrier is broken.
    #[error("barrier is broken")]
    BrokenBarrier,
    /// `task_done` called more often than `put`.
    #[error("task_done() called too many times")]
    TaskDone,
    /// A user type's method (or factory) failed: its own message.
    #[error("{0}")]
    User(String),
    /// The answer would exceed the maximum frame size
    /// ([`max_frame`](super::max_frame)).
    #[error("the answer of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The answer's length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The server is shutting down.
    #[error("server is shutting down")]
    ShuttingDown,
    /// The client cancelled the call
    /// ([`Request::Cancel`](super::Request::Cancel)) before it did anything.
    #[error("the call was cancelled")]
    Cancelled,
}

impl From<ProtocolError> for RemoteError {
    fn from(e: ProtocolError) -> Self {
        RemoteError::Protocol(e)
    }
}

impl From<TypeError> for RemoteError {
    fn from(e: TypeError) -> Self {
        RemoteError::Type(e)
    }
}

impl From<ValueError> for RemoteError {
    fn from(e: ValueError) -> Self {
        RemoteError::Value(e)
    }
}

impl From<ReleaseError> for RemoteError {
    fn from(e: ReleaseError) -> Self {
        RemoteError::Release(e)
    }
}

/// Why a request is not valid here ([`RemoteError::Protocol`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first request on a connection was not `Hello`.
    #[error("expected Hello")]
    ExpectedHello,
    /// A second `Hello` on one connection.
    #[error("Hello twice")]
    HelloTwice,
    /// A `Hello` claimed a session whose primary connection is open.
    #[error("session already has a primary connection")]
    DuplicatePrimary,
    /// A request that takes or moves references, on a session without an
    /// open primary connection.
    #[error("session has no primary connection")]
    NoPrimary,
    /// A `Cancel` with no call waiting (the server answers none, normally:
    /// this is what handling one out of place would say).
    #[error("Cancel with nothing to cancel")]
    NothingToCancel,
    /// The frame arrived whole but does not decode as a request: the
    /// decoder's account of it.
    #[error("bad request: {0}")]
    BadRequest(String),
}

/// What is wrong with a call's arguments, or an object's initial contents
/// ([`RemoteError::Type`], Python's `TypeError`). Argument positions count
/// from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum TypeError {
    /// Fewer arguments than the method takes.
    #[error("missing argument {position}")]
    MissingArgument {
        /// The first missing one.
        position: u32,
    },
    /// An argument that must be an integer (an index) is not.
    #[error("argument {position} must be an integer, not {found}")]
    NotAnInteger {
        /// Which argument.
        position: u32,
        /// What it is.
        found: ValueType,
    },
    /// The delta of an `incr` is not a number.
    #[error("delta must be a number")]
    NotANumber,
    /// `incr` on a value that is not a number.
    #[error("cannot add to a {found}")]
    NotAddable {
        /// What the value is.
        found: ValueType,
    },
    /// A count (a size, a number of permits, parties or waiters) that is
    /// not a non-negative integer.
    #[error("{what} must be a non-negative integer")]
    NotACount {
        /// Which count.
        what: Count,
    },
    /// `update` from a list whose elements are not `(key, value)` pairs.
    #[error("expected (key, value) pairs")]
    NotPairs,
    /// `update` from something that is neither a map nor a list of pairs.
    #[error("cannot update from {found}")]
    NotAMapping {
        /// What it is.
        found: ValueType,
    },
    /// A method that takes a list (`extend`, `setall`) was given something
    /// else.
    #[error("{method} takes a list")]
    NotAList {
        /// The method.
        method: String,
    },
    /// A `Namespace` attribute name that is not a string.
    #[error("attribute names are strings")]
    AttributeName,
    /// A `Namespace` created from a map with a key that is not a string.
    #[error("Namespace field names are strings")]
    FieldName,
    /// An object's initial contents of the wrong type.
    #[error("{kind} from {found}")]
    BadInit {
        /// The kind being created.
        kind: ObjectKind,
        /// What the contents are.
        found: ValueType,
    },
    /// The name is published for an object of another kind.
    #[error("{name:?} is a {kind}")]
    NamedKind {
        /// The name.
        name: String,
        /// The kind of the object it names.
        kind: String,
    },
    /// A user type's method refused its arguments: its own message.
    #[error("{0}")]
    BadArguments(String),
}

/// Which count a [`TypeError::NotACount`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Count {
    /// A queue's maximum size.
    MaxSize,
    /// A semaphore's initial value.
    Value,
    /// A barrier's parties.
    Parties,
    /// How many permits to release or waiters to wake.
    N,
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Count::MaxSize => "maxsize",
            Count::Value => "value",
            Count::Parties => "parties",
            Count::N => "n",
        })
    }
}

/// A value that is not acceptable ([`RemoteError::Value`], Python's
/// `ValueError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// `list.remove(x)` with no element equal to `x`.
    #[error("list.remove(x): x not in list")]
    RemoveMissing,
    /// `list.index(x)` with no element equal to `x`.
    #[error("x not in list")]
    IndexMissing,
    /// `Array.setall` with another length than the array's.
    #[error("an Array's length is fixed")]
    ArrayLength,
    /// A barrier for no parties.
    #[error("a barrier needs at least one party")]
    NoParties,
}

/// A release (or notify, or wait) that the lock's state does not allow
/// ([`RemoteError::Release`]). Python raises [`SemaphoreBound`] as
/// `ValueError` and the rest as `RuntimeError`, as `threading` does.
///
/// [`SemaphoreBound`]: ReleaseError::SemaphoreBound
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// Releasing a lock nobody holds.
    #[error("release of an unlocked lock")]
    Unlocked,
    /// Releasing an `RLock` another thread holds.
    #[error("cannot release an RLock held by another thread")]
    NotOwner,
    /// Releasing a bounded semaphore above its initial value.
    #[error("semaphore released too many times")]
    SemaphoreBound,
    /// `notify` without holding the condition's lock.
    #[error("cannot notify on un-acquired lock")]
    NotifyUnheld,
    /// `wait` without holding the condition's lock.
    #[error("cannot wait on un-acquired lock")]
    WaitUnheld,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages clients show (Python's exception texts) are the ones
    /// the stringly errors carried.
    #[test]
    fn messages_are_unchanged() {
        let cases: Vec<(RemoteError, &str)> = vec![
            (
                TypeError::MissingArgument { position: 2 }.into(),
                "type error: missing argument 2",
            ),
            (
                TypeError::NotAnInteger {
                    position: 1,
                    found: ValueType::Str,
                }
                .into(),
                "type error: argument 1 must be an integer, not str",
            ),
            (
                TypeError::NotACount {
                    what: Count::MaxSize,
                }
                .into(),
                "type error: maxsize must be a non-negative integer",
            ),
            (
                TypeError::BadInit {
                    kind: ObjectKind::Namespace,
                    found: ValueType::List,
                }
                .into(),
                "type error: Namespace from list",
            ),
            (
                TypeError::NamedKind {
                    name: "q".into(),
                    kind: "dict".into(),
                }
                .into(),
                "type error: \"q\" is a dict",
            ),
            (
                TypeError::NotAList {
                    method: "extend".into(),
                }
                .into(),
                "type error: extend takes a list",
            ),
            (
                ValueError::RemoveMissing.into(),
                "value error: list.remove(x): x not in list",
            ),
            (
                ReleaseError::SemaphoreBound.into(),
                "release error: semaphore released too many times",
            ),
            (
                ProtocolError::NoPrimary.into(),
                "protocol error: session has no primary connection",
            ),
            (RemoteError::User("boom".into()), "boom"),
        ];
        for (e, msg) in cases {
            assert_eq!(e.to_string(), msg);
            let back: RemoteError =
                postcard::from_bytes(&postcard::to_stdvec(&e).unwrap()).unwrap();
            assert_eq!(back, e);
        }
    }
}
