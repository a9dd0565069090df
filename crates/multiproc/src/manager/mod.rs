//! Managers: shared objects held by a server process and used through
//! proxies, from any process — on this machine or another (Python's
//! `multiprocessing.Manager`, without pickle).
//!
//! ```no_run
//! use multiproc::Process;
//! use multiproc::manager::{DictProxy, Manager};
//!
//! fn f(d: DictProxy<String, i64>) {
//!     d.insert(&"answer".into(), &42).unwrap();
//!     d.incr(&"hits".into(), 1).unwrap(); // atomic on the server: no lock
//! }
//!
//! fn main() {
//!     multiproc::init();
//!     let manager = Manager::start().unwrap();     // spawns the server process
//!     let d = manager.dict::<String, i64>().unwrap();
//!     Process::spawn(f, d.clone()).unwrap().join().unwrap(); // the proxy travels
//!     assert_eq!(d.get(&"answer".into()).unwrap(), Some(42));
//! } // the manager shuts its server down
//! ```
//!
//! # Servers and clients
//!
//! [`Manager::start`] spawns a server process (a daemon of this one) that
//! listens on a Unix socket in a new private directory, with a random
//! 32-byte authkey; dropping that `Manager` (or [`Manager::shutdown`]) stops
//! it. [`Manager::serve`] (and `multiproc manager serve --listen ADDR
//! --authkey-file FILE`) runs a standalone server on any address; TCP needs
//! an authkey. [`Manager::connect`] reaches a running server. Connections
//! are authenticated by the [`Listener`]'s
//! HMAC-SHA256 challenge before anything is decoded.
//!
//! Proxies are `Serialize`: handed to a spawned child (or sent in a
//! message) they carry the server's address, the authkey and the object id,
//! and reconnect on arrival. Each proxy holds a counted reference; an
//! object lives while any proxy of it does, in any process. A client's
//! references (and the locks it holds) are dropped when its process exits,
//! even by `kill -9`; a TCP client whose machine vanishes (no FIN, no RST)
//! is dropped by the server's TCP keepalive, after about 25 s. A proxy used
//! in a child made by `fork` (rather than handed to a spawned process) says
//! [`ManagerError::Forked`]: its connections belong to the parent.
//! Processes that share no proxy (say, on two machines) find an object by
//! name with [`Manager::named`].
//!
//! A server that dies makes every call return [`ManagerError::ServerGone`]:
//! at once over a Unix socket (end of file), and over TCP within
//! [`HEARTBEAT_TIMEOUT`] (a server waiting on a client's behalf sends a
//! heartbeat every [`HEARTBEAT`]; silence means it is gone). A user type's
//! method may run longer than that without heartbeats: after the timeout
//! the client checks with a fresh connection that the server still answers,
//! and keeps waiting if it does.
//!
//! # Data
//!
//! The server stores [`DataValue`]s (null, bool, int, float, str, bytes,
//! list, map), never the clients' Rust types: a `DictProxy<K, V>` converts
//! its keys and values through serde. Integers can be updated on the server
//! atomically (`incr`), which is what a Python user reaches for a lock for.
//!
//! # User types
//!
//! A [`ManagedObject`] is compiled into the server binary, registered by
//! name in a [`TypeRegistry`] (through a [`Registrar`] for spawned servers),
//! and called by allow-listed method names with serde arguments — Python's
//! `BaseManager.register`, without code from the wire. An unknown type or
//! method is refused with [`RemoteError::UnknownType`] /
//! [`RemoteError::UnknownMethod`] and nothing runs.
//!
//! # Wire protocol (version 3)
//!
//! After the handshake each connection carries postcard-encoded
//! [`Request`]s and [`Response`]s (see [`protocol`]); frames are at most
//! [`max_frame`] bytes (default [`MAX_FRAME`]) and values at most [`MAX_DEPTH`] levels deep. A
//! `Call` names an object id, a method and positional arguments. The
//! server reads the name and arguments once, when the call arrives, into a
//! typed operation of the object's kind (a name the kind lacks is
//! [`RemoteError::UnknownMethod`], arguments that do not fit are a
//! [`RemoteError::Type`] with a typed [`TypeError`]); the Rust proxies
//! build those operations and send them as their name and arguments, which
//! is what every other client (Python's proxies, [`Handle::call`]) sends
//! too. Errors carry typed details ([`TypeError`], [`ValueError`],
//! [`ReleaseError`], [`ProtocolError`]; version 2 sent strings). The
//! methods of the built-in kinds (`opt` is a list of zero or one element):
//!
//! | kind | methods |
//! |---|---|
//! | dict | `get(k)->opt`, `getitem(k)`, `setitem(k,v)->opt`, `delitem(k)`, `pop(k)->opt`, `popitem`, `contains(k)`, `len`, `keys`, `values`, `items`, `copy`, `update(map)`, `clear`, `setdefault(k,d)`, `incr(k,delta)` |
//! | list | `append(x)`, `extend(list)`, `getitem(i)`, `setitem(i,x)`, `delitem(i)`, `pop([i])`, `insert(i,x)`, `remove(x)`, `index(x)`, `count(x)`, `contains(x)`, `len`, `tolist`, `clear`, `reverse`, `sort`, `incr(i,delta)` |
//! | Namespace | `getattr(name)`, `get(name)->opt`, `setattr(name,v)`, `delattr(name)`, `contains(name)`, `items`, `incr(name,delta)` |
//! | Value | `get`, `set(x)->old`, `incr(delta)`, `compare_and_set(cur,new)`, `acquire`, `release`, `locked` |
//! | Array | `getitem(i)`, `setitem(i,x)`, `len`, `tolist`, `setall(list)`, `incr(i,delta)`, `acquire`, `release`, `locked` |
//! | Queue, JoinableQueue | `put(x)`, `get`, `qsize`, `empty`, `full`; joinable: `task_done`, `join` |
//! | Lock, RLock | `acquire`, `release`, `locked` |
//! | Semaphore, BoundedSemaphore | `acquire`, `release([n])`, `get_value` |
//! | Condition | `acquire`, `release`, `locked`, `wait`, `notify([n])`, `notify_all` |
//! | Event | `set`, `clear`, `is_set`, `wait` |
//! | Barrier | `wait`, `abort`, `reset`, `parties`, `n_waiting`, `broken` |
//!
//! Blocking methods honour the call's `timeout_ms` (a timed-out `acquire`,
//! `get`, `put`, `wait` or `join` answers `Timeout`, `Empty` or `Full`).

mod client;
mod error;
#[doc(hidden)]
pub mod fuzz;
mod kind;
mod objects;
pub mod protocol;
mod proxies;
mod server;
mod value;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use client::{Handle, ManagerError};
pub use error::{Count, ProtocolError, ReleaseError, RemoteError, TypeError, ValueError};
pub use objects::{CallError, Factory, ManagedObject, TypeRegistry};
pub use protocol::{
    HEARTBEAT, HEARTBEAT_TIMEOUT, MAX_FRAME, ObjectKind, PROTOCOL_VERSION, Request, Response,
    ServerStats, UnknownKind, max_frame, set_max_frame,
};
pub use proxies::{
    ArrayProxy, BarrierProxy, ConditionProxy, DictProxy, EventProxy, JoinableQueueProxy, ListProxy,
    LockProxy, NamespaceProxy, Proxy, ProxyGuard, QueueProxy, RLockProxy, SemaphoreProxy,
    UserProxy, ValueProxy,
};
pub use server::Server;
pub use value::{
    ConvertError, DataValue, EQ_TAG, MAX_DEPTH, PICKLE_TAG, TUPLE_TAG, ValueType, from_value,
    to_value,
};

use crate::Connection;
use crate::connection::{Address, Listener};
use crate::process::{Builder, Process};
use client::ClientInner;

/// Registers user types in a server started by [`Manager::start_with`] (the
/// spawned server process calls it: the types are compiled into the binary).
pub trait Registrar: 'static {
    /// Add the types.
    fn register(types: &mut TypeRegistry);
}

/// No user types.
impl Registrar for () {
    fn register(_: &mut TypeRegistry) {}
}

/// The length of the random authkey of a started server.
const AUTHKEY_LEN: usize = 32;

/// How long a started server may take to report its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize)]
struct ServerArg {
    #[serde(with = "serde_bytes")]
    authkey: Vec<u8>,
    address: Option<Address>,
    report: Connection<Result<Address, String>>,
}

fn server_main<R: Registrar>(arg: ServerArg) {
    let ServerArg {
        authkey,
        address,
        mut report,
    } = arg;
    let builder = Listener::builder().authkey(&authkey);
    let listener = match address {
        Some(a) => builder.bind(a),
        None => builder.bind_private(),
    };
    let listener = match listener {
        Ok(l) => l,
        Err(e) => {
            let _ = report.send(&Err(e.to_string()));
            return;
        }
    };
    let mut types = TypeRegistry::new();
    R::register(&mut types);
    let server = Server::new(listener, types);
    if report.send(&Ok(server.address().clone())).is_err() {
        return;
    }
    drop(report);
    let _ = server.serve();
}

/// A connection to a manager server, and the factory of its objects.
///
/// The `Manager` that [`start`](Manager::start)ed the server owns it: dropping
/// that one shuts the server down. One from [`connect`](Manager::connect)
/// does not.
pub struct Manager {
    client: Arc<ClientInner>,
    server: Option<Process<()>>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("address", &self.client.address)
            .field("owner", &self.server.is_some())
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// Spawn a server process on a private Unix socket with a random
    /// authkey, and connect to it (Python's `multiprocessing.Manager()`).
    pub fn start() -> Result<Manager, ManagerError> {
        Manager::start_with::<()>()
    }

    /// [`start`](Manager::start) a server that also serves `R`'s user types.
    pub fn start_with<R: Registrar>() -> Result<Manager, ManagerError> {
        Manager::start_at::<R>(None, None)
    }

    /// Spawn a server listening on `address` (e.g. a TCP address to serve
    /// other machines) with `authkey` (random if `None`), and connect to it.
    pub fn start_at<R: Registrar>(
        address: Option<Address>,
        authkey: Option<&[u8]>,
    ) -> Result<Manager, ManagerError> {
        let authkey = match authkey {
            Some(k) => k.to_vec(),
            None => {
                let mut k = vec![0u8; AUTHKEY_LEN];
                getrandom::fill(&mut k)
                    .map_err(|e| std::io::Error::other(format!("getrandom: {e}")))?;
                k
            }
        };
        let (mut rx, tx) = crate::pipe::<Result<Address, String>>()?;
        let arg = ServerArg {
            authkey: authkey.clone(),
            address,
            report: tx,
        };
        let mut server = Builder::new()
            .name("multiproc-manager")
            .daemon(true)
            .spawn(server_main::<R>, arg)?;
        let address = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                let _ = server.join();
                return Err(ManagerError::Io(std::io::Error::other(format!(
                    "manager server failed to start: {e}"
                ))));
            }
            Err(_) => {
                let _ = server.kill();
                let _ = server.join();
                return Err(ManagerError::ServerGone);
            }
        };
        let client = ClientInner::connect(address, &authkey)?;
        Ok(Manager {
            client,
            server: Some(server),
        })
    }

    /// Connect to a running server (Python's `BaseManager(address,
    /// authkey).connect()`).
    pub fn connect(address: impl Into<Address>, authkey: &[u8]) -> Result<Manager, ManagerError> {
        Ok(Manager {
            client: ClientInner::connect(address.into(), authkey)?,
            server: None,
        })
    }

    /// Run a server with the built-in types on `address` in this thread
    /// until a client asks it to shut down.
    pub fn serve(address: impl Into<Address>, authkey: &[u8]) -> Result<(), ManagerError> {
        Manager::serve_with(address, authkey, TypeRegistry::new())
    }

    /// [`serve`](Manager::serve) with user types.
    pub fn serve_with(
        address: impl Into<Address>,
        authkey: &[u8],
        types: TypeRegistry,
    ) -> Result<(), ManagerError> {
        let listener = Listener::bind(address, authkey)
            .map_err(|e| ManagerError::Io(std::io::Error::other(e.to_string())))?;
        Server::new(listener, types).serve()?;
        Ok(())
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        &self.client.address
    }

    /// The authkey (to hand to processes that [`connect`](Manager::connect)).
    pub fn authkey(&self) -> &[u8] {
        &self.client.authkey
    }

    /// The server process's id, for a `Manager` that started it.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().and_then(Process::pid)
    }

    /// Object, reference and connection counts on the server.
    pub fn stats(&self) -> Result<ServerStats, ManagerError> {
        self.client.stats()
    }

    fn create<P: Proxy>(&self, init: DataValue) -> Result<P, ManagerError> {
        self.client
            .create(&Request::Create {
                kind: P::KIND,
                init,
            })
            .map(P::from_handle)
    }

    /// Get the object published under `name`, creating an empty one of
    /// `P`'s kind if there is none: how processes that share no proxies
    /// find each other's objects (Python's `register('get_queue', …)`
    /// pattern). Named objects live until the server stops.
    pub fn named<P: Proxy>(&self, name: &str) -> Result<P, ManagerError> {
        let init = match P::KIND {
            ObjectKind::Array => DataValue::List(Vec::new()),
            ObjectKind::Barrier => DataValue::Int(1),
            _ => DataValue::Null,
        };
        self.client
            .create(&Request::Named {
                name: name.to_owned(),
                kind: P::KIND,
                init,
            })
            .map(P::from_handle)
    }

    /// A new object of `kind` from `init` (see [`ObjectKind`]), as an
    /// untyped [`Handle`] (for bindings; Rust code uses the typed methods).
    pub fn create_object(&self, kind: ObjectKind, init: DataValue) -> Result<Handle, ManagerError> {
        self.client.create(&Request::Create { kind, init })
    }

    /// A new empty `dict`.
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>, ManagerError> {
        self.create(DataValue::Null)
    }

    /// A new `dict` with `entries`.
    pub fn dict_from<'a, K: Serialize + 'a, V: Serialize + 'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a K, &'a V)>,
    ) -> Result<DictProxy<K, V>, ManagerError> {
        let pairs = entries
            .into_iter()
            .map(|(k, v)| Ok((to_value(k)?, to_value(v)?)))
            .collect::<Result<Vec<_>, ConvertError>>()?;
        self.create(DataValue::Map(pairs))
    }

    /// A new empty `list`.
    pub fn list<T>(&self) -> Result<ListProxy<T>, ManagerError> {
        self.create(DataValue::Null)
    }

    /// A new `list` of `items`.
    pub fn list_from<T: Serialize>(&self, items: &[T]) -> Result<ListProxy<T>, ManagerError> {
        let items = items.iter().map(to_value).collect::<Result<Vec<_>, _>>()?;
        self.create(DataValue::List(items))
    }

    /// A new empty `Namespace`.
    pub fn namespace(&self) -> Result<NamespaceProxy, ManagerError> {
        self.create(DataValue::Null)
    }

    /// A new `Value` holding `value`.
    pub fn value<T: Serialize>(&self, value: &T) -> Result<ValueProxy<T>, ManagerError> {
        self.create(to_value(value)?)
    }

    /// A new `Array` of `items` (its length is fixed).
    pub fn array<T: Serialize>(&self, items: &[T]) -> Result<ArrayProxy<T>, ManagerError> {
        let items = items.iter().map(to_value).collect::<Result<Vec<_>, _>>()?;
        self.create(DataValue::List(items))
    }

    /// A new unbounded `Queue`.
    pub fn queue<T>(&self) -> Result<QueueProxy<T>, ManagerError> {
        self.create(DataValue::Null)
    }

    /// A new `Queue` of at most `maxsize` items.
    pub fn queue_bounded<T>(&self, maxsize: usize) -> Result<QueueProxy<T>, ManagerError> {
        self.create(DataValue::Int(i64::try_from(maxsize).unwrap_or(i64::MAX)))
    }

    /// A new unbounded `JoinableQueue`.
    pub fn joinable_queue<T>(&self) -> Result<JoinableQueueProxy<T>, ManagerError> {
        self.create(DataValue::Null)
    }

    /// A new `JoinableQueue` of at most `maxsize` items.
    pub fn joinable_queue_bounded<T>(
        &self,
        maxsize: usize,
    ) -> Result<JoinableQueueProxy<T>, ManagerError> {
        self.create(DataValue::Int(i64::try_from(maxsize).unwrap_or(i64::MAX)))
    }

    /// A new `Lock`.
    pub fn lock(&self) -> Result<LockProxy, ManagerError> {
        self.create(DataValue::Null)
    }

    /// A new `RLock`.
    pub fn rlock(&self) -> Result<RLockProxy, ManagerError> {
        self.create(DataValue::Null)
    }

    /// A new `Semaphore` with `value` permits.
    pub fn semaphore(&self, value: u64) -> Result<SemaphoreProxy, ManagerError> {
        self.create(DataValue::Int(i64::try_from(value).unwrap_or(i64::MAX)))
    }

    /// A new `BoundedSemaphore` with `value` permits (and at most that many).
    pub fn bounded_semaphore(&self, value: u64) -> Result<SemaphoreProxy, ManagerError> {
        self.client
            .create(&Request::Create {
                kind: ObjectKind::BoundedSemaphore,
                init: DataValue::Int(i64::try_from(value).unwrap_or(i64::MAX)),
            })
            .map(SemaphoreProxy::from_handle)
    }

    /// A new `Condition`.
    pub fn condition(&self) -> Result<ConditionProxy, ManagerError> {
        self.create(DataValue::Null)
    }

    /// A new `Event`.
    pub fn event(&self) -> Result<EventProxy, ManagerError> {
        self.create(DataValue::Null)
    }

    /// A new `Barrier` for `parties` parties.
    pub fn barrier(&self, parties: u64) -> Result<BarrierProxy, ManagerError> {
        self.create(DataValue::Int(i64::try_from(parties).unwrap_or(i64::MAX)))
    }

    /// A new instance of the registered user type `type_name`, made from
    /// `args`.
    pub fn create_user<A: Serialize + ?Sized>(
        &self,
        type_name: &str,
        args: &A,
    ) -> Result<UserProxy, ManagerError> {
        self.client
            .create(&Request::CreateUser {
                type_name: type_name.to_owned(),
                args: to_value(args)?,
            })
            .map(UserProxy::new)
    }

    /// Ask the server to stop; for the owning `Manager`, wait for its
    /// process to exit (killing it after a few seconds).
    pub fn shutdown(mut self) -> Result<(), ManagerError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), ManagerError> {
        let r = match self.client.request(&Request::Shutdown) {
            Ok(_) | Err(ManagerError::ServerGone) => Ok(()),
            Err(e) => Err(e),
        };
        if let Some(mut p) = self.server.take() {
            if p.join_timeout(Duration::from_secs(5)).is_err() {
                let _ = p.kill();
                let _ = p.join();
            }
        }
        r
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if self.server.is_some() {
            let _ = self.stop();
        }
    }
}

/// Why an authkey file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthkeyFileError {
    /// The file could not be read.
    #[error("cannot read authkey file {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Others than its owner may read or write it, or it is not ours.
    #[error(
        "authkey file {path} must be a regular file owned by us with mode 0600 or 0400 (it is {mode:o})"
    )]
    Insecure {
        /// The file.
        path: std::path::PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The file is empty (after trimming one trailing newline).
    #[error("authkey file {0} is empty")]
    Empty(std::path::PathBuf),
}

/// Read an authkey from a file that only its owner (us) can read: mode
/// 0600 or stricter, a regular file, not a symlink. One trailing newline is
/// dropped. Keys belong in files, never in argv or the environment.
pub fn read_authkey_file(path: &std::path::Path) -> Result<Vec<u8>, AuthkeyFileError> {
    use std::os::unix::fs::MetadataExt as _;
    let io = |source| AuthkeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    let mode = meta.mode() & 0o7777;
    if !meta.file_type().is_file() || mode & 0o077 != 0 || meta.uid() != multiproc_sys::shm::euid()
    {
        return Err(AuthkeyFileError::Insecure {
            path: path.to_owned(),
            mode,
        });
    }
    let mut key = std::fs::read(path).map_err(io)?;
    if key.last() == Some(&b'\n') {
        key.pop();
    }
    if key.is_empty() {
        return Err(AuthkeyFileError::Empty(path.to_owned()));
    }
    Ok(key)
}
