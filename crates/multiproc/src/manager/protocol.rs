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

pub use super::error::RemoteError;

/// The protocol version a client announces in [`Request::Hello`] (3: errors
/// carry typed details).
pub const PROTOCOL_VERSION: u32 = 3;

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

pub use super::kind::{ObjectKind, UnknownKind};

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
