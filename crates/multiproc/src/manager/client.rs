//! The client side: connections to a server, and the reference-counted
//! handle every proxy holds.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::objects::{Encode, WireCall};
use super::protocol::{
    HEARTBEAT_TIMEOUT, Owner, PROTOCOL_VERSION, RemoteError, Request, Response, ServerStats,
    max_frame,
};
use super::value::{ConvertError, DataValue};
use crate::connection::{Address, Client, ConnectError};
use crate::error::{TimeoutError, TryError};
use crate::{Connection, ProcessError, RecvError};

/// Why a manager operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The server is gone (died, shut down, or unreachable for longer than
    /// the heartbeat timeout). Every later call fails the same way.
    #[error("the manager server is gone")]
    ServerGone,
    /// Connecting failed: refused authkey, insecure socket directory, ….
    #[error(transparent)]
    Connect(ConnectError),
    /// The server refused or failed the request.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// A value did not convert to or from the proxy's Rust type.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// Starting the server process failed.
    #[error(transparent)]
    Spawn(#[from] ProcessError),
    /// A proxy was used in a process forked from the one that made it
    /// (its connections belong to the parent): hand proxies to children
    /// through [`Process::spawn`](crate::Process::spawn) instead.
    #[error("manager proxy used in a forked child; pass proxies to spawned processes instead")]
    Forked,
    /// The request exceeds the maximum frame size; nothing was sent.
    #[error("request of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The request's length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The server answered something that does not fit the request.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The `interrupted` check of [`Handle::call_interruptible`] said to
    /// stop, and the server confirmed that the call did nothing (a call
    /// that completed meanwhile returns its result instead).
    #[error("interrupted while waiting for the manager")]
    Interrupted,
    /// The OS reported an error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl ManagerError {
    /// Whether this is [`ManagerError::ServerGone`].
    pub fn is_server_gone(&self) -> bool {
        matches!(self, ManagerError::ServerGone)
    }

    /// Whether a wait timed out (or a `try_` form found nothing ready).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ManagerError::Remote(RemoteError::Timeout | RemoteError::Empty | RemoteError::Full)
        )
    }

    /// Whether the connection failed authentication.
    pub fn is_authentication(&self) -> bool {
        matches!(self, ManagerError::Connect(e) if e.is_authentication())
    }
}

impl From<ConnectError> for ManagerError {
    fn from(e: ConnectError) -> Self {
        match &e {
            ConnectError::Io(io)
                if matches!(
                    io.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::NotFound
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                ) =>
            {
                ManagerError::ServerGone
            }
            ConnectError::Timeout => ManagerError::ServerGone,
            _ => ManagerError::Connect(e),
        }
    }
}

/// How long a client looks for an answer before sleeping on the socket.
const SPIN: Duration = Duration::from_micros(50);

/// How often an interruptible call asks whether to stop.
const CHECK_SLICE: Duration = Duration::from_millis(50);

struct Conn {
    tx: Connection<Request>,
    rx: Connection<Response>,
}

impl Conn {
    /// Send `req` and wait for its answer. Silence for [`HEARTBEAT_TIMEOUT`]
    /// means the server is gone, unless `probe` (for calls that may run
    /// long without heartbeats: user methods) finds it still answering.
    ///
    /// Every [`CHECK_SLICE`] of waiting, `interrupted` is asked whether to
    /// stop. If it says so, the server is sent [`Request::Cancel`] and the
    /// wait goes on for its one answer: [`RemoteError::Cancelled`] (the call
    /// did nothing; [`ManagerError::Interrupted`]) or the call's result, if
    /// it completed first. Either way the connection stays in step, and
    /// nothing the call took (a queue's item) is dropped on the floor.
    fn request(
        &mut self,
        req: &Request,
        probe: Option<&dyn Fn() -> bool>,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Response, ManagerError> {
        self.tx.send(req).map_err(|e| match e {
            crate::SendError::TooLarge { len, max } => ManagerError::TooLarge { len, max },
            _ => ManagerError::ServerGone,
        })?;
        // Most answers come within microseconds: look for one briefly
        // (yielding, so a server on this CPU gets to run) before sleeping.
        let spin_until = Instant::now() + SPIN;
        loop {
            match self.rx.try_recv() {
                Ok(Response::Pending) => break,
                Ok(r) => return Ok(r),
                Err(TryError::WouldBlock) if Instant::now() < spin_until => {
                    std::thread::yield_now()
                }
                Err(TryError::WouldBlock) => break,
                Err(TryError::Failed(RecvError::Decode(e))) => {
                    return Err(ManagerError::Protocol(e.to_string()));
                }
                Err(_) => return Err(ManagerError::ServerGone),
            }
        }
        let mut heard = Instant::now();
        let mut cancelled = false;
        loop {
            let silence_ends = heard + HEARTBEAT_TIMEOUT;
            let until = if cancelled {
                silence_ends
            } else {
                silence_ends.min(Instant::now() + CHECK_SLICE)
            };
            match self.rx.recv_deadline(until) {
                Ok(Response::Pending) => heard = Instant::now(),
                Ok(Response::Error(RemoteError::Cancelled)) if cancelled => {
                    return Err(ManagerError::Interrupted);
                }
                Ok(r) => return Ok(r),
                Err(TimeoutError::Timeout) if Instant::now() < silence_ends => {
                    if !cancelled && interrupted() {
                        self.tx
                            .send(&Request::Cancel)
                            .map_err(|_| ManagerError::ServerGone)?;
                        cancelled = true;
                    }
                }
                Err(TimeoutError::Timeout) if probe.is_some_and(|alive| alive()) => {
                    heard = Instant::now();
                }
                Err(TimeoutError::Failed(RecvError::Decode(e))) => {
                    return Err(ManagerError::Protocol(e.to_string()));
                }
                Err(_) => return Err(ManagerError::ServerGone),
            }
        }
    }
}

/// A client of one server: a primary connection that holds the session's
/// references, and a pool of connections for calls (so a blocked call in
/// one thread does not hold up the others).
pub(crate) struct ClientInner {
    pub(crate) address: Address,
    pub(crate) authkey: Vec<u8>,
    session: u64,
    /// The process whose connections these are (a forked child must not
    /// touch them).
    pid: u32,
    primary: Mutex<Option<Conn>>,
    pool: Mutex<Vec<Conn>>,
    gone: AtomicBool,
}

impl fmt::Debug for ClientInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // Not secret: any value unique enough for a session id will do.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return t ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_le_bytes(b)
}

static THREAD_COUNTER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static THREAD_TOKEN: u64 = THREAD_COUNTER.fetch_add(1, Ordering::Relaxed);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Live clients of this process, so proxies that arrive for the same server
/// share one session.
static CLIENTS: Mutex<Vec<Weak<ClientInner>>> = Mutex::new(Vec::new());

impl ClientInner {
    fn open(
        address: &Address,
        authkey: &[u8],
        session: u64,
        primary: bool,
    ) -> Result<Conn, ManagerError> {
        let mut tx: Connection<Request> = Client::builder()
            .authkey(authkey)
            .connect_timeout(HEARTBEAT_TIMEOUT)
            .connect(address.clone())?;
        tx.set_max_message_size(max_frame());
        let mut rx: Connection<Response> = tx.try_clone()?.cast();
        rx.set_max_message_size(max_frame());
        let mut conn = Conn { tx, rx };
        match conn.request(
            &Request::Hello {
                version: PROTOCOL_VERSION,
                session,
                primary,
            },
            None,
            &mut || false,
        )? {
            Response::Value(_) => Ok(conn),
            Response::Error(e) => Err(ManagerError::Remote(e)),
            other => Err(ManagerError::Protocol(format!("unexpected {other:?}"))),
        }
    }

    /// Connect a new client (its own session).
    pub(crate) fn connect(
        address: Address,
        authkey: &[u8],
    ) -> Result<Arc<ClientInner>, ManagerError> {
        let session = random_u64();
        let primary = ClientInner::open(&address, authkey, session, true)?;
        let client = Arc::new(ClientInner {
            address,
            authkey: authkey.to_vec(),
            session,
            pid: std::process::id(),
            primary: Mutex::new(Some(primary)),
            pool: Mutex::new(Vec::new()),
            gone: AtomicBool::new(false),
        });
        let mut all = lock(&CLIENTS);
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&client));
        Ok(client)
    }

    /// The live client of this process for `address`, or a new one.
    pub(crate) fn shared(
        address: Address,
        authkey: &[u8],
    ) -> Result<Arc<ClientInner>, ManagerError> {
        {
            let all = lock(&CLIENTS);
            for w in all.iter() {
                if let Some(c) = w.upgrade() {
                    if c.ours()
                        && c.address == address
                        && c.authkey == authkey
                        && !c.gone.load(Ordering::Relaxed)
                    {
                        return Ok(c);
                    }
                }
            }
        }
        ClientInner::connect(address, authkey)
    }

    fn fail<T>(&self, e: ManagerError) -> Result<T, ManagerError> {
        if e.is_server_gone() {
            self.gone.store(true, Ordering::Relaxed);
        }
        Err(e)
    }

    /// A request on the primary connection (reference bookkeeping).
    /// Whether this process is the one that connected.
    fn ours(&self) -> bool {
        self.pid == std::process::id()
    }

    pub(crate) fn primary_request(&self, req: &Request) -> Result<Response, ManagerError> {
        if !self.ours() {
            return Err(ManagerError::Forked);
        }
        if self.gone.load(Ordering::Relaxed) {
            return Err(ManagerError::ServerGone);
        }
        let mut p = lock(&self.primary);
        let Some(conn) = p.as_mut() else {
            return Err(ManagerError::ServerGone);
        };
        match conn.request(req, None, &mut || false) {
            Ok(r) => Ok(r),
            Err(e) => {
                if e.is_server_gone() {
                    *p = None;
                }
                self.fail(e)
            }
        }
    }

    /// A request on a pooled connection.
    pub(crate) fn request(&self, req: &Request) -> Result<Response, ManagerError> {
        self.request_with(req, false, &mut || false)
    }

    /// A request on a pooled connection; `patient`: the answer may take
    /// longer than the heartbeat timeout without heartbeats (user methods),
    /// so silence is checked with a fresh connection before giving up.
    fn request_with(
        &self,
        req: &Request,
        patient: bool,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Response, ManagerError> {
        if !self.ours() {
            return Err(ManagerError::Forked);
        }
        if self.gone.load(Ordering::Relaxed) {
            return Err(ManagerError::ServerGone);
        }
        let conn = lock(&self.pool).pop();
        let mut conn = match conn {
            Some(c) => c,
            None => match ClientInner::open(&self.address, &self.authkey, self.session, false) {
                Ok(c) => c,
                Err(e) => return self.fail(e),
            },
        };
        let probe = || ClientInner::open(&self.address, &self.authkey, self.session, false).is_ok();
        let probe: Option<&dyn Fn() -> bool> = if patient { Some(&probe) } else { None };
        match conn.request(req, probe, interrupted) {
            Ok(r) => {
                lock(&self.pool).push(conn);
                Ok(r)
            }
            Err(ManagerError::Interrupted) => {
                // Answered, so still in step: reusable.
                lock(&self.pool).push(conn);
                Err(ManagerError::Interrupted)
            }
            Err(e) => self.fail(e),
        }
    }

    pub(crate) fn owner(&self) -> Owner {
        Owner {
            session: self.session,
            thread: THREAD_TOKEN.with(|t| *t),
        }
    }

    pub(crate) fn stats(&self) -> Result<ServerStats, ManagerError> {
        match self.request(&Request::Stats)? {
            Response::Stats(s) => Ok(s),
            Response::Error(e) => Err(e.into()),
            other => Err(ManagerError::Protocol(format!("unexpected {other:?}"))),
        }
    }

    /// Create an object; the returned handle owns its reference.
    pub(crate) fn create(self: &Arc<Self>, req: &Request) -> Result<Handle, ManagerError> {
        match self.primary_request(req)? {
            Response::Created(id) => Ok(Handle {
                client: self.clone(),
                id,
                patient: matches!(req, Request::CreateUser { .. }),
            }),
            Response::Error(e) => Err(e.into()),
            other => Err(ManagerError::Protocol(format!("unexpected {other:?}"))),
        }
    }
}

fn expect_value(r: Response) -> Result<DataValue, ManagerError> {
    match r {
        Response::Value(v) => Ok(v),
        Response::Error(e) => Err(e.into()),
        other => Err(ManagerError::Protocol(format!("unexpected {other:?}"))),
    }
}

/// One counted reference to a server object: what every proxy holds, and
/// the untyped proxy (for bindings to other languages).
///
/// Cloning takes another reference, dropping releases it, serializing lends
/// one to the process that deserializes it (which claims it on arrival,
/// connecting to the server itself).
pub struct Handle {
    pub(crate) client: Arc<ClientInner>,
    pub(crate) id: u64,
    /// A user object: its methods may run long without heartbeats.
    patient: bool,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "object {} at {}", self.id, self.client.address)
    }
}

impl Handle {
    /// The object's id on its server.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        &self.client.address
    }

    /// Call `method` with `args` (see the module docs for the methods of
    /// each kind); `timeout` `None` waits as long as it takes, zero does
    /// not wait.
    pub fn call(
        &self,
        method: &str,
        args: Vec<DataValue>,
        timeout: Option<Duration>,
    ) -> Result<DataValue, ManagerError> {
        self.call_interruptible(method, args, timeout, || false)
    }

    /// Run the typed operation `op` (how the Rust proxies call: the
    /// operation travels as its method name and arguments, which the server
    /// parses back into it).
    pub(crate) fn invoke(&self, op: impl Encode) -> Result<DataValue, ManagerError> {
        let WireCall {
            method,
            args,
            timeout,
        } = op.encode();
        self.call_interruptible(method, args, timeout, || false)
    }

    /// [`call`](Self::call) that asks `interrupted` every 50 ms of waiting
    /// whether to give up (how Python's proxies answer Ctrl-C). On `true`
    /// the server is told to cancel: the result is
    /// [`ManagerError::Interrupted`] if the call did nothing, or the call's
    /// own result if it completed first (a queue's item is then returned,
    /// never lost). Built-in blocking methods stop within the server's
    /// 20 ms wait slice; a user type's method runs to its end.
    pub fn call_interruptible(
        &self,
        method: &str,
        args: Vec<DataValue>,
        timeout: Option<Duration>,
        mut interrupted: impl FnMut() -> bool,
    ) -> Result<DataValue, ManagerError> {
        let req = Request::Call {
            id: self.id,
            method: method.to_owned(),
            args,
            timeout_ms: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            owner: self.client.owner(),
        };
        expect_value(
            self.client
                .request_with(&req, self.patient, &mut interrupted)?,
        )
    }

    /// The same object, for this process, from a handle this process
    /// inherited by `fork` (whose connections belong to the parent and
    /// which says [`ManagerError::Forked`]): this process connects its own
    /// client and takes a reference. Python's proxies do this after a fork.
    /// The object must still be alive (the parent holds its reference).
    pub fn reattach(&self) -> Result<Handle, ManagerError> {
        let mut h = Handle::attach(self.client.address.clone(), &self.client.authkey, self.id)?;
        h.patient = self.patient;
        Ok(h)
    }

    /// A new reference, for this process, to the object `id` of the server
    /// at `address`, which must still be alive (someone holds a reference
    /// or a loan): for bindings whose stored values name objects by id.
    pub fn attach(address: Address, authkey: &[u8], id: u64) -> Result<Handle, ManagerError> {
        let client = ClientInner::shared(address, authkey)?;
        match client.primary_request(&Request::IncRef(id))? {
            Response::Value(_) => Ok(Handle {
                client,
                id,
                patient: false,
            }),
            Response::Error(e) => Err(e.into()),
            other => Err(ManagerError::Protocol(format!("unexpected {other:?}"))),
        }
    }

    /// The authkey of the object's server.
    pub fn authkey(&self) -> &[u8] {
        &self.client.authkey
    }

    /// Keep the object alive without a proxy: a loan nobody claims (the
    /// server drops it 30 s after this process's session ends). For
    /// bindings that store a reference by id inside another object.
    pub fn lend(&self) -> Result<(), ManagerError> {
        match self.client.primary_request(&Request::Lend(self.id))? {
            Response::Value(_) => Ok(()),
            Response::Error(e) => Err(e.into()),
            other => Err(ManagerError::Protocol(format!("unexpected {other:?}"))),
        }
    }

    /// Whether this handle belongs to this process (not inherited by
    /// `fork`; see [`reattach`](Handle::reattach)).
    pub fn is_ours(&self) -> bool {
        self.client.ours()
    }
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        // If the server is gone the clone is as dead as the original.
        let _ = self.client.primary_request(&Request::IncRef(self.id));
        Handle {
            client: self.client.clone(),
            id: self.id,
            patient: self.patient,
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // (Skipped in a forked child: the parent's connection is not ours.)
        if !self.client.gone.load(Ordering::Relaxed) && self.client.ours() {
            let _ = self.client.primary_request(&Request::DecRef(self.id));
        }
    }
}

/// A proxy on the wire: where the server is, the key, the object and the
/// loan to claim. The authkey travels in these bytes (e.g. a spawn
/// argument), never in argv or the environment.
#[derive(Serialize, Deserialize)]
struct Wire {
    address: Address,
    #[serde(with = "serde_bytes")]
    authkey: Vec<u8>,
    id: u64,
    token: u64,
    patient: bool,
}

impl Serialize for Handle {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let token = match self.client.primary_request(&Request::Lend(self.id)) {
            Ok(Response::Value(DataValue::Int(t))) => t as u64,
            Ok(other) => return Err(S::Error::custom(format!("cannot lend proxy: {other:?}"))),
            Err(e) => return Err(S::Error::custom(format!("cannot lend proxy: {e}"))),
        };
        Wire {
            address: self.client.address.clone(),
            authkey: self.client.authkey.clone(),
            id: self.id,
            token,
            patient: self.patient,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Handle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        let client = ClientInner::shared(w.address, &w.authkey)
            .map_err(|e| D::Error::custom(format!("cannot reach the manager: {e}")))?;
        match client.primary_request(&Request::Claim {
            id: w.id,
            token: w.token,
        }) {
            Ok(Response::Value(_)) => Ok(Handle {
                client,
                id: w.id,
                patient: w.patient,
            }),
            Ok(other) => Err(D::Error::custom(format!("cannot claim proxy: {other:?}"))),
            Err(e) => Err(D::Error::custom(format!("cannot claim proxy: {e}"))),
        }
    }
}
