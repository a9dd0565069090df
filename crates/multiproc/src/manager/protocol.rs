//! The wire protocol between manager clients and the server (version
//! [`PROTOCOL_VERSION`]).
//!
//! Every frame is a postcard-encoded [`Request`] (client to server) or
//! [`Response`] (server to client) in a [`Connection`](crate::Connection)
//! frame, after the authkey handshake. The first request on a connection
//! must be [`Request::Hello`]; then each request gets exactly one final
//! response ([`Response::Value`], [`Response::Created`],
//! [`Response::Stats`] or [`Response::Error`]), preceded, while the server
//! waits on the client's behalf (a blocking `get`, `acquire`, `wait`…), by
//! [`Response::Pending`] heartbeats every [`HEARTBEAT`]. A client that hears
//! nothing for [`HEARTBEAT_TIMEOUT`] treats the server as gone.

use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use super::value::DataValue;

/// The protocol version a client announces in [`Request::Hello`].
pub const PROTOCOL_VERSION: u32 = 2;

/// How often the server tells a waiting client it is still alive.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// How long a client waits for any frame before declaring the server gone.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);

/// The default largest request or response frame after the handshake
/// (256 MiB; the handshake's own frames are capped far lower). A frame's
/// memory grows with the bytes that arrive, never with its length prefix
/// alone. [`set_max_frame`] changes it for this process.
pub const MAX_FRAME: usize = 256 << 20;

static FRAME_LIMIT: AtomicUsize = AtomicUsize::new(MAX_FRAME);

/// Set the largest request or response frame this process's manager
/// clients and servers send or accept, for connections opened from now on
/// (`usize::MAX`: no limit, which Python's bindings choose, as
/// `multiprocessing`'s managers have none). Peers check their own limit:
/// a server's answer larger than its limit is [`RemoteError::TooLarge`], a
/// request larger than the client's is [`ManagerError::TooLarge`]
/// before anything is sent.
///
/// [`ManagerError::TooLarge`]: super::ManagerError::TooLarge
pub fn set_max_frame(max: usize) {
    // Ordering::Relaxed: a setting read when a connection opens.
    FRAME_LIMIT.store(max, Ordering::Relaxed);
}

/// The current limit ([`set_max_frame`]; default [`MAX_FRAME`]).
pub fn max_frame() -> usize {
    // Ordering::Relaxed: see `set_max_frame`.
    FRAME_LIMIT.load(Ordering::Relaxed)
}

/// The built-in object kinds (Python's `SyncManager` type ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ObjectKind {
    /// `dict`: init is a map (or null).
    Dict,
    /// `list`: init is a list (or null).
    List,
    /// `Namespace`: init is a map of string keys (or null).
    Namespace,
    /// `Value`: init is the value.
    Value,
    /// `Array`: init is a list.
    Array,
    /// `Queue`: init is the maximum size (0 or null: unbounded).
    Queue,
    /// `JoinableQueue`: init is the maximum size.
    JoinableQueue,
    /// `Lock`.
    Lock,
    /// `RLock`.
    RLock,
    /// `Semaphore`: init is the initial value.
    Semaphore,
    /// `BoundedSemaphore`: init is the initial (and maximum) value.
    BoundedSemaphore,
    /// `Condition` (with its own `RLock`).
    Condition,
    /// `Event`.
    Event,
    /// `Barrier`: init is the number of parties.
    Barrier,
}

/// Who holds a lock: a client session and a thread token in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// The client's session id.
    pub session: u64,
    /// The thread within the client.
    pub thread: u64,
}

/// A client's request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// First on every connection: the protocol version and the client's
    /// session. A session's references belong to its *primary* connection
    /// and are dropped when that connection closes.
    Hello {
        /// [`PROTOCOL_VERSION`] of the client.
        version: u32,
        /// A random id chosen by the client.
        session: u64,
        /// Whether this connection owns the session's references.
        primary: bool,
    },
    /// Create a built-in object; the session holds one reference.
    Create {
        /// What to create.
        kind: ObjectKind,
        /// Initial contents (see [`ObjectKind`]).
        init: DataValue,
    },
    /// Create an instance of a registered user type; the session holds one
    /// reference.
    CreateUser {
        /// The registered type name.
        type_name: String,
        /// The factory's argument.
        args: DataValue,
    },
    /// Get (or create) the object published under `name`; the session holds
    /// one reference and the server keeps one for the name.
    Named {
        /// The name.
        name: String,
        /// The kind; an existing object of another kind is an error.
        kind: ObjectKind,
        /// Initial contents if it is created.
        init: DataValue,
    },
    /// Take one more reference for this session.
    IncRef(u64),
    /// Drop one of this session's references.
    DecRef(u64),
    /// Take a reference for a proxy about to travel to another process;
    /// answered with a token (an `Int`) that [`Request::Claim`] redeems. An
    /// unclaimed loan is dropped 30 s after the lender's session ends (so a
    /// child can return a proxy and exit before the parent claims it).
    Lend(u64),
    /// Move a loaned reference to this session.
    Claim {
        /// The object.
        id: u64,
        /// The token from [`Request::Lend`].
        token: u64,
    },
    /// Call a method on an object. Built-in kinds take the methods listed
    /// in the module docs; user types their declared allow-list.
    Call {
        /// The object.
        id: u64,
        /// The method name.
        method: String,
        /// Positional arguments.
        args: Vec<DataValue>,
        /// For blocking methods: how long to wait (`None`: forever, zero:
        /// don't wait).
        timeout_ms: Option<u64>,
        /// The calling thread, for lock ownership.
        owner: Owner,
    },
    /// Server statistics (objects, references, connections).
    Stats,
    /// Sent while a [`Request::Call`] on the same connection is waiting:
    /// stop waiting and answer [`RemoteError::Cancelled`]. Not answered
    /// when nothing is waiting (the call's answer already went out).
    Cancel,
    /// Stop the server.
    Shutdown,
}

/// Server statistics, for tests and monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServerStats {
    /// Live objects.
    pub objects: u64,
    /// References held in total (sessions, loans and names).
    pub refs: u64,
    /// Open connections.
    pub connections: u64,
    /// Sessions with an open primary connection.
    pub sessions: u64,
}

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
    Protocol(String),
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
    Type(String),
    /// Missing key (Python's `KeyError`).
    #[error("key not found")]
    Key,
    /// Index out of range (Python's `IndexError`).
    #[error("index out of range")]
    Index,
    /// A value is not acceptable (Python's `ValueError`).
    #[error("value error: {0}")]
    Value(String),
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
    Release(String),
    /// The barrier is broken.
    #[error("barrier is broken")]
    BrokenBarrier,
    /// `task_done` called more often than `put`.
    #[error("task_done() called too many times")]
    TaskDone,
    /// A user type's method failed.
    #[error("{0}")]
    User(String),
    /// The answer would exceed the maximum frame size ([`max_frame`]).
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
    /// The client cancelled the call ([`Request::Cancel`]) before it did
    /// anything.
    #[error("the call was cancelled")]
    Cancelled,
}

/// The server's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// Still waiting on the client's behalf; the final answer follows.
    Pending,
    /// The result of a call.
    Value(DataValue),
    /// The id of the object created.
    Created(u64),
    /// Statistics.
    Stats(ServerStats),
    /// The request failed.
    Error(RemoteError),
}

/// Decode `data` as a request and as a response, as the server and a client
/// do, and re-encode what decodes: for the fuzzer and its corpus replay.
/// Never panics (that is what is tested).
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    if let Ok(req) = postcard::from_bytes::<Request>(data) {
        let _ = postcard::to_stdvec(&req);
    }
    if let Ok(Response::Value(v)) = postcard::from_bytes::<Response>(data) {
        let _ = super::value::from_value::<serde_json::Value>(v);
    }
}
