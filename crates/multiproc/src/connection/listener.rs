//! Listeners and clients: Python's `multiprocessing.connection.Listener`,
//! `Client` and `wait`, over a Unix socket path or TCP.
//!
//! Every connection is the same [`Connection<T>`] that [`duplex`] makes; over
//! a Unix socket it carries handles too, over TCP bytes only (a message with
//! handles is [`SendError::HandlesNeedSocket`]).
//!
//! # Authentication
//!
//! With an authkey both sides prove they know it by Python's mutual
//! challenge, byte for byte: the server delivers a challenge and then answers
//! the client's; the client answers first, then delivers its own.
//!
//! - **HMAC-SHA256** (Python 3.12 and later, the default here): a challenge
//!   is `#CHALLENGE#{sha256}` + 40 random bytes; the answer is `{sha256}` +
//!   HMAC-SHA256(authkey, the challenge after `#CHALLENGE#`, prefix included).
//! - **HMAC-MD5** (Python 3.11 and earlier): a challenge of 20 raw random
//!   bytes answered by the raw 16-byte HMAC-MD5. Only with
//!   [`AuthPolicy::AllowLegacyMd5`]; otherwise an MD5 answer or an
//!   unprefixed challenge fails with [`HandshakeError::Authentication`].
//!
//! Every challenge is a fresh nonce from the OS (`getrandom`), so a recorded
//! answer is worthless on the next connection; answers are compared in
//! constant time. Before the handshake succeeds nothing is decoded: only raw
//! byte frames of at most [`MAX_HANDSHAKE_FRAME`] bytes are read, a longer
//! one fails with [`HandshakeError::FrameTooLarge`], and the whole exchange
//! must finish within the handshake timeout (default
//! [`DEFAULT_HANDSHAKE_TIMEOUT`]).
//!
//! As in Python, [`Listener::accept`] runs the handshake inline: a client that
//! connects and says nothing holds `accept` for at most the handshake
//! timeout, then `accept` returns [`HandshakeError::Timeout`] and the next call
//! serves the next client. A server that must not be slowed by such clients
//! accepts in several threads (`accept` takes `&self`).
//!
//! # Unix socket files
//!
//! The socket's directory must be private: created here with mode 0700 if it
//! is missing, and checked with `lstat` (a directory, not a symlink, owned by
//! the effective uid, no group or other bits), unless the builder says
//! [`insecure_shared_directory`](ListenerBuilder::insecure_shared_directory).
//! The socket file itself has mode 0600. A path longer than 107 bytes is an
//! error, never truncated. A live listener holds an `flock` on the sibling
//! `<path>.lock`; a socket file left by a dead listener (the lock is free and
//! `connect` is refused) is removed and the path reused, a live one gives
//! [`BindError::AddrInUse`]. The listener removes both files when dropped
//! and records the socket in the [registry](crate::names::registry) meanwhile.
//!
//! # Abstract-namespace addresses (Linux)
//!
//! [`Address::Abstract`] (Python's `"\0name"`; parsed from `"\0name"` or
//! `"@name"`) is a socket with no file: nothing to create, lock, record or
//! remove, and the name is free again as soon as the listener closes. A
//! second listener on a name in use gets [`BindError::AddrInUse`]. Such a
//! socket has no permissions either: any process in the same network
//! namespace can connect. So the listener checks every peer's credentials
//! (`SO_PEERCRED`) before anything else and refuses a peer whose uid is not
//! its own effective uid: the connection is closed, `accept` returns
//! [`AcceptError::ForeignPeer`], and the next `accept` serves the next client.
//! This check is always on; the authkey, when given, is checked as usual on
//! top of it (give one: the uid check does not tell two programs of the same
//! user apart).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::connection::Connection;
use crate::error::{TimeoutError, TryError, Waited, waited};
use crate::names::kind::Kind;
use crate::names::object::NamedKind;
use crate::names::registry;

use super::address::{Address, MAX_UNIX_PATH, SocketPathError, check_len};
use super::auth::{AuthOptions, AuthPolicy, HandshakeError, random_bytes, server_handshake};
#[cfg(doc)]
use crate::connection::duplex;

/// Why [`ListenerBuilder::bind`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// Another live listener holds the address.
    #[error("address {0} is in use")]
    AddrInUse(Address),
    /// The path or name is too long, or its directory is not private.
    #[error(transparent)]
    Path(#[from] SocketPathError),
    /// A TCP listener needs an authkey, or the explicit
    /// [`insecure_no_authkey`](ListenerBuilder::insecure_no_authkey).
    #[error("a TCP listener needs an authkey")]
    TcpWithoutAuthkey,
    /// The OS reported an error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Why [`Listener::accept`] returned no connection. `try_accept` adds
/// "none pending" ([`TryError::WouldBlock`]) and `accept_timeout`/
/// `accept_deadline` "none in time" ([`TimeoutError::Timeout`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// A client connected but failed the handshake; the listener keeps
    /// serving and the next `accept` waits for the next client.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// A client of another user connected to an abstract-namespace
    /// listener; its connection was closed, the listener keeps serving.
    #[error("refused a connection from uid {uid} (this listener serves uid {expected} only)")]
    ForeignPeer {
        /// The peer's effective uid (`SO_PEERCRED`).
        uid: u32,
        /// The uid this listener accepts (its own effective uid).
        expected: u32,
    },
    /// The OS reported an error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl AcceptError {
    /// Whether this is an authentication failure.
    pub fn is_authentication(&self) -> bool {
        matches!(self, AcceptError::Handshake(h) if h.is_authentication())
    }
}

// ----- private directories ----------------------------------------------------

/// Check that `dir` is a private directory: a directory (not a symlink)
/// owned by the effective uid, without group or other bits.
pub(super) fn check_private_dir(dir: &Path) -> Result<(), (PathBuf, &'static str)> {
    let bad = |reason| (dir.to_owned(), reason);
    let info = multiproc_sys::net::dir_info(dir).map_err(|_| bad("cannot lstat it"))?;
    if !info.is_dir {
        return Err(bad("not a directory (or a symlink)"));
    }
    if !info.owned_by_me {
        return Err(bad("not owned by the effective uid"));
    }
    if info.mode & 0o077 != 0 {
        return Err(bad("group or other have permissions on it"));
    }
    Ok(())
}

pub(super) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

pub(super) fn path_len(path: &Path) -> usize {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().len()
}

/// The name a socket path is recorded under: absolute, so that `multiproc
/// clean` finds it from any directory.
fn registry_name(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .to_string_lossy()
        .into_owned()
}

fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// What a Unix listener removes when dropped.
struct UnixFiles {
    path: PathBuf,
    lock_path: PathBuf,
    /// Holds the `flock` that marks the path as live.
    _lock: OwnedFd,
    /// The directory, if the listener created it.
    created_dir: Option<PathBuf>,
    creator: u32,
}

impl Drop for UnixFiles {
    fn drop(&mut self) {
        if multiproc_sys::process::pid() != self.creator {
            return;
        }
        let _ = std::fs::remove_file(&self.path);
        let _ = registry::forget(Kind::Socket, &registry_name(&self.path));
        let _ = std::fs::remove_file(&self.lock_path);
        if let Some(d) = &self.created_dir {
            let _ = std::fs::remove_dir(d);
        }
    }
}

// ----- the listener -----------------------------------------------------------

/// Options for a [`Listener`]; from [`Listener::builder`].
#[derive(Clone)]
pub struct ListenerBuilder {
    auth: AuthOptions,
    backlog: i32,
}

impl fmt::Debug for ListenerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerBuilder")
            .field("auth", &self.auth)
            .field("backlog", &self.backlog)
            .finish()
    }
}

impl Default for ListenerBuilder {
    fn default() -> Self {
        ListenerBuilder {
            auth: AuthOptions::default(),
            backlog: 128,
        }
    }
}

impl ListenerBuilder {
    auth_setters!();

    /// The `listen` backlog (default 128).
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Listen on a Unix socket in a new private directory (under
    /// `$XDG_RUNTIME_DIR`, else the temp dir), like Python's
    /// `Listener()` without an address; see
    /// [`bind_private_in`](Self::bind_private_in).
    pub fn bind_private(self) -> Result<Listener, BindError> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        self.bind_private_in(base)
    }

    /// Listen on a Unix socket in a new private directory under `base`:
    /// `base/mp-<random>/s`, 16 bytes longer than `base` (Python's own
    /// `Listener()` adds 32), so it fits wherever the standard library's
    /// does. When even that is longer than a socket path may be, it listens
    /// on an abstract socket instead (no file; clients of other users are
    /// refused by their peer credentials).
    pub fn bind_private_in(self, base: impl AsRef<Path>) -> Result<Listener, BindError> {
        let mut nonce = [0u8; 5];
        random_bytes(&mut nonce)?;
        let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let path = base.as_ref().join(format!("mp-{hex}")).join("s");
        if path_len(&path) > MAX_UNIX_PATH {
            let pid = multiproc_sys::process::pid();
            return self.bind(Address::Abstract(
                format!("multiproc-{pid}-{hex}").into_bytes(),
            ));
        }
        self.bind(Address::Unix(path))
    }

    /// Bind and listen on `address`.
    pub fn bind(self, address: impl Into<Address>) -> Result<Listener, BindError> {
        let address = address.into();
        match address {
            Address::Tcp(addr) => {
                if self.auth.authkey.is_none() && !self.auth.insecure_no_authkey {
                    return Err(BindError::TcpWithoutAuthkey);
                }
                let fd = multiproc_sys::net::tcp_listen(addr, self.backlog).map_err(|e| {
                    if e.kind() == io::ErrorKind::AddrInUse {
                        BindError::AddrInUse(address.clone())
                    } else {
                        BindError::Io(e)
                    }
                })?;
                let local = multiproc_sys::net::local_inet_addr(&fd)?;
                Ok(Listener {
                    fd,
                    address: Address::Tcp(local),
                    opts: self,
                    gate: OnceLock::new(),
                    _unix: None,
                })
            }
            Address::Unix(ref path) => self.bind_unix(path.clone()),
            Address::Abstract(ref name) => {
                check_len(name.len())?;
                let fd = multiproc_sys::net::abstract_listen(name, self.backlog).map_err(|e| {
                    if e.kind() == io::ErrorKind::AddrInUse {
                        BindError::AddrInUse(address.clone())
                    } else {
                        BindError::Io(e)
                    }
                })?;
                Ok(Listener {
                    fd,
                    address,
                    opts: self,
                    gate: OnceLock::new(),
                    _unix: None,
                })
            }
        }
    }

    fn bind_unix(self, path: PathBuf) -> Result<Listener, BindError> {
        check_len(path_len(&path))?;
        let dir = parent_dir(&path);
        let mut created_dir = None;
        match multiproc_sys::net::mkdir_private(&dir) {
            Ok(()) => created_dir = Some(dir.clone()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        // From here on a failure removes the directory we created.
        let cleanup_dir = |created: &Option<PathBuf>| {
            if let Some(d) = created {
                let _ = std::fs::remove_dir(d);
            }
        };
        if !self.auth.insecure_shared_directory {
            if let Err((path, reason)) = check_private_dir(&dir) {
                cleanup_dir(&created_dir);
                return Err(SocketPathError::InsecureDirectory { path, reason }.into());
            }
        }
        let result = self.bind_unix_locked(&path);
        match result {
            Ok((fd, lock)) => {
                // For `multiproc clean` after a kill -9: the directory is
                // ours to remove too.
                if created_dir.is_some() {
                    let _ = multiproc_sys::net::write_lock_note(&lock, CREATED_DIR_NOTE);
                }
                let _ = registry::record(Kind::Socket, &registry_name(&path));
                Ok(Listener {
                    fd,
                    address: Address::Unix(path.clone()),
                    opts: self,
                    gate: OnceLock::new(),
                    _unix: Some(UnixFiles {
                        lock_path: lock_path(&path),
                        path,
                        _lock: lock,
                        created_dir,
                        creator: multiproc_sys::process::pid(),
                    }),
                })
            }
            Err(e) => {
                cleanup_dir(&created_dir);
                Err(e)
            }
        }
    }

    /// Take the path's lock, reclaim a stale socket file, bind.
    fn bind_unix_locked(&self, path: &Path) -> Result<(OwnedFd, OwnedFd), BindError> {
        let in_use = || BindError::AddrInUse(Address::Unix(path.to_owned()));
        let lock = multiproc_sys::net::open_lock_file(&lock_path(path))?;
        if !multiproc_sys::net::try_lock_exclusive(&lock)? {
            return Err(in_use());
        }
        // We hold the lock: on failure its file goes too.
        self.bind_unix_holding(path, lock).inspect_err(|_| {
            let _ = std::fs::remove_file(lock_path(path));
        })
    }

    /// [`bind_unix_locked`](Self::bind_unix_locked) once the lock is held.
    fn bind_unix_holding(
        &self,
        path: &Path,
        lock: OwnedFd,
    ) -> Result<(OwnedFd, OwnedFd), BindError> {
        let in_use = || BindError::AddrInUse(Address::Unix(path.to_owned()));
        match multiproc_sys::net::is_socket_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
            Ok(false) => return Err(in_use()),
            Ok(true) => match multiproc_sys::net::unix_connect(path) {
                // Someone listens there without our lock (another program).
                Ok(_) => return Err(in_use()),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    // Stale: its listener is gone and we hold the lock.
                    match std::fs::remove_file(path) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                        _ => {}
                    }
                }
                Err(e) => return Err(e.into()),
            },
        }
        let fd = multiproc_sys::net::unix_listen(path, 0o600, self.backlog).map_err(|e| {
            if e.kind() == io::ErrorKind::AddrInUse {
                in_use()
            } else {
                BindError::Io(e)
            }
        })?;
        Ok((fd, lock))
    }
}

/// A listening socket that accepts authenticated [`Connection`]s (Python's
/// `multiprocessing.connection.Listener`).
///
/// ```no_run
/// use multiproc::connection::{Address, Client, Listener};
///
/// let listener = Listener::bind(Address::localhost(0), b"secret").unwrap();
/// let addr = listener.address().clone();
/// let t = std::thread::spawn(move || {
///     let mut c = Client::connect::<String>(addr, b"secret").unwrap();
///     c.send(&"hello".into()).unwrap();
/// });
/// let mut conn = listener.accept::<String>().unwrap();
/// assert_eq!(conn.recv().unwrap(), "hello");
/// t.join().unwrap();
/// ```
pub struct Listener {
    fd: OwnedFd,
    address: Address,
    opts: ListenerBuilder,
    /// Handshakes in progress and their outcomes (created on first use).
    gate: OnceLock<Arc<Gate>>,
    /// Removes the socket and lock files on drop.
    _unix: Option<UnixFiles>,
}

/// The most unauthenticated connections one peer address (a TCP client's
/// IP; all local peers of a Unix socket together) may hold in handshakes at
/// once; more are closed at once.
pub const MAX_PREAUTH_PER_PEER: usize = 16;
/// The most unauthenticated connections in handshakes at once, in all.
pub const MAX_PREAUTH: usize = 256;

/// Handshakes run on their own threads, so that `accept` never waits behind
/// a client that connects and says nothing: it takes new connections while
/// others authenticate, and returns outcomes (an authenticated connection,
/// or a client's failure) as they come.
struct Gate {
    state: Mutex<GateState>,
    /// A byte is written here whenever an outcome is queued.
    wake_rx: OwnedFd,
    wake_tx: Arc<OwnedFd>,
}

#[derive(Default)]
struct GateState {
    outcomes: VecDeque<Result<Connection<()>, AcceptError>>,
    /// Handshakes in progress per peer address (`None`: local peers).
    pending: HashMap<Option<std::net::IpAddr>, usize>,
    total: usize,
}

impl Gate {
    fn new() -> io::Result<Gate> {
        let (wake_rx, wake_tx) = multiproc_sys::fd::pipe()?;
        multiproc_sys::fd::set_nonblocking(&wake_rx, true)?;
        Ok(Gate {
            state: Mutex::new(GateState::default()),
            wake_rx,
            wake_tx: Arc::new(wake_tx),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("fd", &self.fd.as_raw_fd())
            .field("address", &self.address)
            .field("authenticated", &self.opts.auth.authkey.is_some())
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Options: authkey, digest policy, handshake timeout, backlog.
    pub fn builder() -> ListenerBuilder {
        ListenerBuilder::default()
    }

    /// Listen on `address`, authenticating clients with `authkey`.
    pub fn bind(address: impl Into<Address>, authkey: &[u8]) -> Result<Listener, BindError> {
        Listener::builder().authkey(authkey).bind(address)
    }

    /// The address clients connect to (for TCP port 0: the port chosen).
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Accept the next connection and run the handshake (bounded by the
    /// handshake timeout). Blocks until a client connects.
    pub fn accept<T>(&self) -> Result<Connection<T>, AcceptError> {
        waited(self.accept_until(None)).map_err(Waited::into_blocking)
    }

    /// Accept a connection that is already pending; never waits for one
    /// ([`TryError::WouldBlock`] when none is), though the handshake may
    /// take up to the handshake timeout.
    pub fn try_accept<T>(&self) -> Result<Connection<T>, TryError<AcceptError>> {
        waited(self.accept_until(Some(Instant::now()))).map_err(Waited::into_try)
    }

    /// Accept a connection, waiting at most `timeout` for one to arrive;
    /// the handshake then has its own timeout.
    pub fn accept_timeout<T>(
        &self,
        timeout: Duration,
    ) -> Result<Connection<T>, TimeoutError<AcceptError>> {
        waited(self.accept_until(crate::deadline::after(timeout))).map_err(Waited::into_timeout)
    }

    /// Accept a connection, waiting until `deadline` for one to arrive; the
    /// handshake then has its own timeout.
    pub fn accept_deadline<T>(
        &self,
        deadline: Instant,
    ) -> Result<Connection<T>, TimeoutError<AcceptError>> {
        waited(self.accept_until(Some(deadline))).map_err(Waited::into_timeout)
    }

    /// `None`: no connection before `deadline`.
    fn accept_until<T>(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<Connection<T>>, AcceptError> {
        let Some(key) = &self.opts.auth.authkey else {
            // Nothing to wait for after the connect.
            let Some(fd) = multiproc_sys::net::accept(self.fd.as_fd(), deadline)? else {
                return Ok(None);
            };
            return self.admit(fd).map(|c| Some(Connection::cast(c)));
        };
        let gate = match self.gate.get() {
            Some(g) => g,
            None => {
                let g = Arc::new(Gate::new()?);
                self.gate.get_or_init(|| g)
            }
        };
        loop {
            if let Some(outcome) = gate.state().outcomes.pop_front() {
                return outcome.map(|c| Some(Connection::cast(c)));
            }
            let ready = multiproc_sys::poll::wait_any_readable(
                &[self.fd.as_fd(), gate.wake_rx.as_fd()],
                deadline,
            )?;
            if ready[1] {
                let mut sink = [0u8; 64];
                while matches!(multiproc_sys::io::read(gate.wake_rx.as_fd(), &mut sink), Ok(n) if n > 0)
                {
                }
            }
            if ready[0] {
                // Never waits: the socket said a connection is pending (or
                // another thread took it, then nothing happens).
                if let Some(fd) = multiproc_sys::net::accept(self.fd.as_fd(), Some(Instant::now()))?
                {
                    self.start_handshake(gate, fd, key);
                }
            }
            if !ready.iter().any(|&r| r) {
                return Ok(None);
            }
        }
    }

    /// Start authenticating `fd` on its own thread, unless its peer address
    /// already has [`MAX_PREAUTH_PER_PEER`] handshakes going (or all peers
    /// [`MAX_PREAUTH`]): then it is closed at once.
    fn start_handshake(&self, gate: &Arc<Gate>, fd: OwnedFd, key: &[u8]) {
        let peer = multiproc_sys::net::peer_ip(&fd);
        {
            let mut st = gate.state();
            let n = st.pending.get(&peer).copied().unwrap_or(0);
            if n >= MAX_PREAUTH_PER_PEER || st.total >= MAX_PREAUTH {
                return; // dropping `fd` closes it
            }
            st.pending.insert(peer, n + 1);
            st.total += 1;
        }
        let deadline = crate::deadline::instant_after(self.opts.auth.handshake_timeout);
        let (key, policy) = (key.to_vec(), self.opts.auth.policy);
        let admitted = self.admit(fd);
        let gate = gate.clone();
        let finish = move |outcome: Result<Connection<()>, AcceptError>| {
            let mut st = gate.state();
            if let Some(n) = st.pending.get_mut(&peer) {
                *n -= 1;
                if *n == 0 {
                    st.pending.remove(&peer);
                }
            }
            st.total -= 1;
            st.outcomes.push_back(outcome);
            drop(st);
            let _ = multiproc_sys::io::write_all(gate.wake_tx.as_fd(), b"!");
        };
        let handshake = move || {
            let outcome = admitted.and_then(|mut conn| {
                server_handshake(&mut conn, &key, policy, deadline)?;
                Ok(conn)
            });
            finish(outcome);
        };
        if let Err(e) = std::thread::Builder::new()
            .name("multiproc-handshake".into())
            .spawn(handshake)
        {
            // No thread: the connection is refused, as a full backlog
            // would. (The closure, and the connection, were dropped.)
            let mut st = self.gate.get().expect("gate").state();
            if let Some(n) = st.pending.get_mut(&peer) {
                *n -= 1;
            }
            st.total -= 1;
            st.outcomes.push_back(Err(AcceptError::Io(e)));
        }
    }

    /// The checks and options of a freshly accepted connection, before any
    /// handshake.
    fn admit(&self, fd: OwnedFd) -> Result<Connection<()>, AcceptError> {
        if self.address.is_tcp() {
            multiproc_sys::net::set_nodelay(&fd)?;
        }
        if matches!(self.address, Address::Abstract(_)) {
            // No file permissions guard an abstract name: check the peer
            // before reading a byte from it. Dropping `fd` closes it.
            let uid = multiproc_sys::net::peer_uid(&fd)?;
            let expected = multiproc_sys::shm::euid();
            if !peer_allowed(uid, expected) {
                return Err(AcceptError::ForeignPeer { uid, expected });
            }
        }
        Ok(Connection::from_fd(fd, true, true)?)
    }

    /// Stop listening and remove the socket file (same as dropping it).
    pub fn close(self) {}
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Whether an abstract-namespace listener running as `expected` serves a
/// peer whose effective uid is `uid`: only its own user (root too is
/// refused by a non-root listener, since root can reach the user's data by
/// other means and needs no socket).
fn peer_allowed(uid: u32, expected: u32) -> bool {
    uid == expected
}

/// What a listener writes into its socket's `<path>.lock` file when it
/// created the socket's private directory itself.
pub(crate) const CREATED_DIR_NOTE: &[u8] = b"created-dir\n";

/// A listening socket's leftovers beside the socket file: its `.lock` file,
/// and the private directory when the listener created it (removed only if
/// empty, never through a symlink).
fn remove_socket_leftovers(path: &str) {
    let lock = format!("{path}.lock");
    let Ok(meta) = std::fs::symlink_metadata(&lock) else {
        return;
    };
    if !meta.file_type().is_file() || meta.len() > 64 {
        return;
    }
    let created_dir = std::fs::read(&lock).is_ok_and(|note| note == CREATED_DIR_NOTE);
    let _ = std::fs::remove_file(&lock);
    if created_dir && let Some(dir) = std::path::Path::new(path).parent() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Listening Unix socket files, for [`crate::names`].
pub(crate) struct SocketFiles;

/// The table entry of socket files.
pub(crate) static SOCKET_FILES: SocketFiles = SocketFiles;

impl NamedKind for SocketFiles {
    fn kind(&self) -> Kind {
        Kind::Socket
    }
    fn exists(&self, name: &str) -> bool {
        std::fs::symlink_metadata(name).is_ok()
    }
    /// The socket file, its `.lock` file and the private directory its
    /// listener created with it.
    fn remove(&self, name: &str) -> io::Result<()> {
        let r = std::fs::remove_file(name);
        if r.as_ref().is_ok()
            || r.as_ref()
                .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
        {
            remove_socket_leftovers(name);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abstract_peer_check_serves_only_our_uid() {
        assert!(peer_allowed(1000, 1000));
        assert!(peer_allowed(0, 0));
        assert!(!peer_allowed(65534, 1000));
        assert!(!peer_allowed(0, 1000));
        assert!(!peer_allowed(1000, 0));
    }
}
