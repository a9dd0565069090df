//! Queues and a dict on a Redis server, for work that spans machines
//! (cargo feature `redis`).
//!
//! [`Queue`], [`JoinableQueue`] and [`Dict`] are opened by URL and name and
//! keep the local objects' method names and error shapes: `put`, `get`,
//! their `try_` and `_timeout` forms, `task_done`, `join`, `qsize`, `close`.
//! Values travel with the same serde codec as on local queues (a value that
//! holds OS handles cannot: [`RedisError::Handles`]).
//!
//! ```no_run
//! use multiproc::redis::JoinableQueue;
//!
//! let jobs = JoinableQueue::<String>::open("redis://127.0.0.1:6379/0", "jobs").unwrap();
//! jobs.put("resize cat.png".to_string()).unwrap();
//! // in any process, on any machine that reaches the server:
//! let job = jobs.get().unwrap();
//! println!("working on {job}");
//! jobs.task_done().unwrap();
//! jobs.join().unwrap(); // every item put is done
//! ```
//!
//! # How a queue lives on the server
//!
//! A queue named `jobs` is a stream `multiproc:{jobs}:stream` read by one
//! consumer group; every handle that calls `get` is a consumer of it.
//!
//! - `put` is one Lua script: the `maxsize` check (items put and not yet
//!   delivered), `XADD`, and for a joinable queue the unfinished count.
//! - `get` reads with `XREADGROUP`. A [`JoinableQueue`] delivery stays
//!   pending with its consumer until `task_done` acknowledges and deletes it
//!   (`XACK`, `XDEL`, `DECR`, atomically); a [`Queue`] acknowledges it right
//!   after reading.
//! - `join` waits on a pub/sub channel that `task_done` publishes to when
//!   the count reaches zero (it looks again every second in case a message
//!   was lost with a connection, never faster).
//!
//! # Dead consumers
//!
//! A consumer keeps a heartbeat key with a short time to live
//! ([`Options::heartbeat`], 5 s by default), refreshed by a thread three
//! times per period. Entries pending with a consumer whose heartbeat has
//! expired are claimed by a live consumer (by the heartbeat, never by idle
//! time alone: a task that runs long on a live worker is never given to a
//! second one). Consumers waiting in `get` look every second, so a dead
//! consumer's entries are delivered again within its heartbeat's time to
//! live plus a second. An entry delivered more than
//! [`Options::max_deliveries`] times goes to the dead-letter stream
//! ([`JoinableQueue::dead_letters`], [`JoinableQueue::requeue`]).
//!
//! # What differs from a local queue
//!
//! | | local `Queue` / `JoinableQueue` | `redis::Queue` / `redis::JoinableQueue` |
//! |---|---|---|
//! | reach | processes of one machine | every machine that reaches the server |
//! | a consumer dies holding an item | `JoinableQueue`: the item is lost with it (at most once) | `JoinableQueue`: delivered again to a live consumer (at least once), with its delivery count |
//! | a consumer dies between read and acknowledgement | cannot happen (the take is atomic) | `Queue`: delivered again, as above |
//! | `task_done` | any process, any item | the handle that got the item; the oldest it has not done ([`JoinableQueue::task_done_for`] names one) |
//! | a consumer paused past its heartbeat | — | its items go to another consumer; its late `task_done` is refused ([`RedisError::Reclaimed`]) |
//! | a poison item | raises in every consumer that takes it | moved to the dead-letter stream after `max_deliveries` |
//! | handles inside items | travel (descriptors passed) | refused ([`RedisError::Handles`]) |
//! | a full queue's blocked `put` | wakes when room is made | looks again every 1–50 ms |
//! | the server restarts | — | what it persisted (its RDB/AOF settings) survives |

mod dict;
mod handles;
mod join;
mod pool;
mod queue;
mod reply;
mod scripts;
mod worker;

use std::time::Duration;

pub use dict::Dict;
pub use handles::{JoinableQueue, Queue};
pub use pool::Pool;
pub use worker::Worker;

use crate::connection::codec::{DecodeError, EncodeError};

/// One item as it was delivered to this consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<T> {
    /// The item.
    pub value: T,
    /// Its stream entry id (for [`JoinableQueue::task_done_for`]).
    pub id: String,
    /// How many times it has been delivered, this time included (more than
    /// 1 after its consumer died holding it).
    pub deliveries: u64,
}

/// An entry of the dead-letter stream.
#[derive(Debug)]
pub struct DeadLetter<T> {
    /// Its id in the dead-letter stream (for [`JoinableQueue::requeue`]).
    pub id: String,
    /// Its id in the queue's stream when it was moved.
    pub original_id: String,
    /// How many times it had been delivered.
    pub deliveries: u64,
    /// The consumer it was taken from.
    pub consumer: String,
    /// Why it was moved ("delivery limit", "decode").
    pub reason: String,
    /// The item, if it decodes.
    pub value: Result<T, RedisError>,
}

/// What can go wrong with a Redis-backed object, however long it waits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The server refused, or the connection failed (see its kind).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The value could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// An item or value is not a valid encoding of the type (a queue item
    /// that fails so is moved to the dead-letter stream).
    #[error("the item {id} does not decode: {error}")]
    Decode {
        /// The stream entry id or dict key it was read from.
        id: String,
        /// Why.
        error: DecodeError,
    },
    /// The value holds OS handles (a `Connection`, an `Fd`, …), which cannot
    /// travel through a server.
    #[error("a value that holds OS handles cannot go through Redis")]
    Handles,
    /// The queue was removed from the server (a pool's reply queue whose
    /// pool has ended: the answer is dropped instead of bringing it back).
    #[error("the queue {0} was removed from the server")]
    Removed(String),
    /// This handle was closed (`put` after `close`).
    #[error("the queue handle is closed")]
    Closed,
    /// `task_done` with no delivery of this handle left to finish (Python's
    /// `ValueError: task_done() called too many times`).
    #[error("task_done() called more times than this handle got items")]
    TooManyTaskDone,
    /// The delivery is no longer this consumer's: its heartbeat lapsed
    /// (the process was paused or cut off longer than its time to live) and
    /// another consumer took the entry, which will finish it there.
    #[error("the delivery {0} was reclaimed by another consumer")]
    Reclaimed(String),
    /// The server answered something this version does not understand.
    #[error("unexpected reply from the server: {0}")]
    Protocol(String),
    /// An item or value without the right HMAC for the handle's authkey
    /// (written by someone without the key); it was not decoded.
    #[error("{0} is not signed with this queue's authkey")]
    Unauthenticated(String),
}

/// What `put` reports: the error and the item, handed back.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct PutError<T> {
    /// Why.
    pub error: RedisError,
    /// The item that was not put.
    pub item: T,
}

impl<T> crate::HandsBack for PutError<T> {
    type Item = T;
    fn into_inner(self) -> T {
        self.item
    }
}

/// How a queue handle behaves; the defaults suit most uses.
#[derive(Debug, Clone)]
pub struct Options {
    /// Items put and not yet delivered beyond which `put` waits (0: no
    /// bound). Every handle of a queue should agree on it.
    pub maxsize: usize,
    /// The time to live of this consumer's heartbeat: how long after its
    /// death its deliveries go to another consumer. It must be longer than
    /// any pause of the process (a stop, a swap storm), or a live
    /// consumer's items are given to another.
    pub heartbeat: Duration,
    /// Deliveries of one entry after which it goes to the dead-letter
    /// stream instead of a consumer (0: no limit).
    pub max_deliveries: u64,
    /// This handle's consumer name (unique per live consumer). A consumer
    /// opened again under the same name first takes back the entries still
    /// pending with it. Default: host, pid and a random number.
    pub consumer: Option<String>,
    /// A key every handle of the queue shares: each item carries an
    /// HMAC-SHA256 of it, and an item without the right one is refused
    /// (buried with reason "authentication") instead of decoded. Anyone who
    /// can write to the server can otherwise put items; Python's pickles
    /// must not be taken from them.
    pub authkey: Option<Vec<u8>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            maxsize: 0,
            heartbeat: Duration::from_secs(5),
            max_deliveries: 5,
            consumer: None,
            authkey: None,
        }
    }
}

/// Delete queue or dict `name` and everything of it on the server at `url`
/// (its stream, dead letters, counts, heartbeats, hash): what
/// `multiprocessing` frees when a manager shuts down, for objects that
/// outlive every process by design.
pub fn remove(url: &str, name: &str) -> Result<(), RedisError> {
    let mut conn = Conn::new(redis::Client::open(url)?);
    let pattern = key(&escape_glob(name), "*");
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = conn.run(|c| {
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(c)
        })?;
        if !keys.is_empty() {
            conn.run(|c| redis::cmd("DEL").arg(&keys).query::<()>(c))?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// `name` with the glob characters of `SCAN MATCH` escaped.
fn escape_glob(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for ch in name.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The keys of object `name`: one hash tag, so a cluster keeps them on one
/// node.
fn key(name: &str, part: &str) -> String {
    format!("multiproc:{{{name}}}:{part}")
}

/// The length of the tag a signed payload starts with.
const TAG: usize = 32;

fn mac(key: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key)
        .expect("HMAC accepts any key length")
}

/// `data` with the HMAC-SHA256 of `context` and `data` in front, when there
/// is a key.
fn sign(key: Option<&[u8]>, context: &[u8], data: Vec<u8>) -> Vec<u8> {
    use hmac::Mac as _;
    let Some(key) = key else { return data };
    let mut m = mac(key);
    m.update(&(context.len() as u64).to_le_bytes());
    m.update(context);
    m.update(&data);
    let mut out = m.finalize().into_bytes().to_vec();
    out.extend_from_slice(&data);
    out
}

/// The data of a payload [`sign`] made, if its tag is right (compared in
/// constant time); `what` names it in the error.
fn verify<'a>(
    key: Option<&[u8]>,
    context: &[u8],
    payload: &'a [u8],
    what: &str,
) -> Result<&'a [u8], RedisError> {
    use hmac::Mac as _;
    let Some(key) = key else { return Ok(payload) };
    let refused = || RedisError::Unauthenticated(what.to_owned());
    if payload.len() < TAG {
        return Err(refused());
    }
    let (tag, data) = payload.split_at(TAG);
    let mut m = mac(key);
    m.update(&(context.len() as u64).to_le_bytes());
    m.update(context);
    m.update(data);
    m.verify_slice(tag).map_err(|_| refused())?;
    Ok(data)
}

/// Encode `value` with the local queues' codec, refusing handles.
fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, RedisError> {
    let mut out = Vec::new();
    let fds = crate::connection::codec::encode(value, &mut out)?;
    if fds.is_empty() {
        Ok(out)
    } else {
        Err(RedisError::Handles)
    }
}

/// Decode what [`encode`] wrote; `id` names it in the error.
fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], id: &str) -> Result<T, RedisError> {
    crate::connection::codec::decode(bytes, Vec::new()).map_err(|error| RedisError::Decode {
        id: id.to_owned(),
        error,
    })
}

/// `join`'s pub/sub connection, kept between calls.
pub(super) struct JoinConn(pub(super) redis::Connection);

impl std::fmt::Debug for JoinConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinConn")
    }
}

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a command's reply may take beyond the time the command itself
/// blocks on the server (`XREADGROUP BLOCK`): a server that stops
/// answering is an error after this, not a hang.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection that is opened again after it broke, and in a forked
/// child (which must not talk on its parent's socket: their replies would
/// cross).
struct Conn {
    client: redis::Client,
    conn: Option<redis::Connection>,
    /// The process the connection was opened in.
    pid: u32,
    /// The socket's read and write timeout now.
    timeout: Duration,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("client", &self.client)
            .field("open", &self.conn.is_some())
            .finish()
    }
}

impl Conn {
    fn new(client: redis::Client) -> Conn {
        Conn {
            client,
            conn: None,
            pid: std::process::id(),
            timeout: Duration::ZERO,
        }
    }

    /// The open connection, opening it if needed, with `timeout` on its
    /// reads and writes.
    fn get(&mut self, timeout: Duration) -> Result<&mut redis::Connection, RedisError> {
        use redis::ConnectionLike as _;
        let pid = std::process::id();
        if self.pid != pid {
            // Closing this process's copy of the descriptor leaves the
            // parent's connection as it is.
            self.conn = None;
            self.pid = pid;
        }
        if self.conn.as_ref().is_none_or(|c| !c.is_open()) {
            // A server that does not answer is an error, not a hang.
            self.conn = Some(self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?);
            self.timeout = Duration::ZERO;
        }
        let conn = self.conn.as_mut().expect("just opened");
        if self.timeout != timeout {
            conn.set_read_timeout(Some(timeout))?;
            conn.set_write_timeout(Some(timeout))?;
            self.timeout = timeout;
        }
        Ok(conn)
    }

    /// Run `f` on the connection; a connection that failed is dropped, so
    /// the next call opens a new one.
    fn run<R>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<R>,
    ) -> Result<R, RedisError> {
        self.run_blocking(Duration::ZERO, f)
    }

    /// [`run`](Self::run) for a command that blocks on the server for up
    /// to `block`.
    fn run_blocking<R>(
        &mut self,
        block: Duration,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<R>,
    ) -> Result<R, RedisError> {
        // Whole seconds: a timeout that stays the same is not set again,
        // so a stream of blocking reads makes no `setsockopt` per message.
        let block = Duration::from_secs(block.as_secs() + u64::from(block.subsec_nanos() > 0));
        let r = f(self.get(REPLY_TIMEOUT.saturating_add(block))?);
        if let Err(e) = &r
            && (e.is_io_error()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
                || e.is_timeout())
        {
            // A reply that timed out may still come: this connection is
            // out of step for good.
            self.conn = None;
        }
        Ok(r?)
    }
}
