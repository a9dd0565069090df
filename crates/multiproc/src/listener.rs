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
//! and records the socket in the [registry](crate::registry) meanwhile.
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
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};

use crate::connection::{Connection, RecvError, SendError};
use crate::frame::FrameError;
use crate::process::Process;
use crate::registry::{self, Kind};

#[cfg(doc)]
use crate::connection::duplex;

/// The longest handshake frame read before authentication (Python's
/// `recv_bytes(256)`).
pub const MAX_HANDSHAKE_FRAME: usize = 256;

/// How long a handshake may take by default, on either side.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest Unix socket path, in bytes.
pub const MAX_UNIX_PATH: usize = multiproc_sys::net::UNIX_PATH_MAX;

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
const SHA256_PREFIX: &[u8] = b"{sha256}";
/// Random bytes in a SHA-256 challenge (Python 3.12's `MESSAGE_LENGTH`).
const NONCE_LEN: usize = 40;
/// Python 3.11's challenge length and MD5's digest length: the unprefixed
/// ("legacy") message lengths.
const LEGACY_CHALLENGE_LEN: usize = 20;
const MD5_LEN: usize = 16;

// ----- addresses --------------------------------------------------------------

/// Where a listener listens: a Unix socket path or a TCP address.
///
/// Plain data: it can be sent to another process (e.g. in a spawn argument).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Address {
    /// A Unix-domain stream socket at this path (Python's `'AF_UNIX'`).
    Unix(PathBuf),
    /// A TCP address (Python's `'AF_INET'`).
    Tcp(SocketAddr),
    /// A Linux abstract-namespace Unix socket: the name, without the leading
    /// NUL (Python's `"\0name"`). See the module docs on peer checks.
    Abstract(Vec<u8>),
}

/// Why a string is not an [`Address`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The string is empty.
    #[error("empty address")]
    Empty,
    /// `host:port` whose host does not resolve.
    #[error("cannot resolve {0:?}")]
    Unresolved(String),
    /// An abstract name (after `\0` or `@`) that is empty or longer than
    /// [`MAX_UNIX_PATH`] bytes.
    #[error("an abstract socket name must have 1 to {max} bytes, not {len}")]
    AbstractName {
        /// The name's length in bytes.
        len: usize,
        /// The longest allowed.
        max: usize,
    },
}

impl Address {
    /// Parse like Python: `host:port` (an IP address, a name, or nothing
    /// before the colon, which means `127.0.0.1`; `[v6]:port` too) is TCP;
    /// `\0name` (Python's form) or `@name` (the form `ss` prints, and this
    /// type's [`Display`](fmt::Display)) is an abstract-namespace socket;
    /// anything else is a Unix socket path (write a relative path that
    /// starts with `@` as `./@name`).
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if let Some(name) = s.strip_prefix('\0').or_else(|| s.strip_prefix('@')) {
            return Address::abstract_name(name.as_bytes());
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Address::Tcp(a));
        }
        if !s.contains('/') {
            if let Some((host, port)) = s.rsplit_once(':') {
                if let Ok(port) = port.parse::<u16>() {
                    if host.is_empty() {
                        return Ok(Address::Tcp(SocketAddr::new(
                            IpAddr::V4(Ipv4Addr::LOCALHOST),
                            port,
                        )));
                    }
                    return (host, port)
                        .to_socket_addrs()
                        .ok()
                        .and_then(|mut a| a.next())
                        .map(Address::Tcp)
                        .ok_or_else(|| AddressError::Unresolved(s.to_owned()));
                }
            }
        }
        Ok(Address::Unix(PathBuf::from(s)))
    }

    /// TCP on `127.0.0.1:port` (port 0: the kernel picks one).
    pub fn localhost(port: u16) -> Address {
        Address::Tcp(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
    }

    /// A Linux abstract-namespace socket named `name` (without the leading
    /// NUL): 1 to [`MAX_UNIX_PATH`] bytes.
    pub fn abstract_name(name: &[u8]) -> Result<Address, AddressError> {
        if name.is_empty() || name.len() > MAX_UNIX_PATH {
            return Err(AddressError::AbstractName {
                len: name.len(),
                max: MAX_UNIX_PATH,
            });
        }
        Ok(Address::Abstract(name.to_vec()))
    }

    /// Whether this is a TCP address.
    pub fn is_tcp(&self) -> bool {
        matches!(self, Address::Tcp(_))
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Address, AddressError> {
        Address::parse(s)
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Address {
        Address::Unix(p)
    }
}

impl From<&Path> for Address {
    fn from(p: &Path) -> Address {
        Address::Unix(p.to_owned())
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address::Tcp(a)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "{}", p.display()),
            Address::Tcp(a) => write!(f, "{a}"),
            Address::Abstract(n) => write!(f, "@{}", String::from_utf8_lossy(n)),
        }
    }
}

// ----- errors ---------------------------------------------------------------

/// Why the peer was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The peer's answer to our challenge is wrong (wrong authkey, or a
    /// replayed answer to another challenge).
    #[error("the peer's digest is wrong")]
    WrongDigest,
    /// The peer rejected our answer (`#FAILURE#`): our authkey is wrong.
    #[error("the peer rejected our digest")]
    Rejected,
    /// The peer used HMAC-MD5 (a raw MD5 answer or an unprefixed
    /// challenge) and the policy does not allow it.
    #[error("the peer uses legacy HMAC-MD5, which the policy does not allow")]
    LegacyMd5NotAllowed,
    /// The challenge or answer has an unsupported digest or form.
    #[error("unsupported digest or malformed handshake message")]
    Unsupported,
    /// The first message is not a `#CHALLENGE#`.
    #[error("expected a challenge")]
    NotAChallenge,
    /// The reply to our answer is neither `#WELCOME#` nor `#FAILURE#`.
    #[error("unexpected reply to our digest")]
    UnexpectedReply,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer did not prove it knows the authkey (Python's
    /// `AuthenticationError`).
    #[error("authentication failed: {0}")]
    Authentication(AuthFailure),
    /// The handshake did not finish within the handshake timeout.
    #[error("the handshake timed out")]
    Timeout,
    /// A handshake frame is longer than [`MAX_HANDSHAKE_FRAME`] bytes, or
    /// malformed; nothing of it was kept.
    #[error("malformed or oversize handshake frame: {0}")]
    Frame(FrameError),
    /// The peer closed the connection during the handshake.
    #[error("the peer closed the connection during the handshake")]
    Disconnected,
    /// The OS reported an error.
    #[error(transparent)]
    Io(io::Error),
}

impl HandshakeError {
    /// Whether this is an authentication failure.
    pub fn is_authentication(&self) -> bool {
        matches!(self, HandshakeError::Authentication(_))
    }
}

impl From<RecvError> for HandshakeError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Timeout | RecvError::Empty => HandshakeError::Timeout,
            RecvError::Eof | RecvError::Broken => HandshakeError::Disconnected,
            RecvError::Frame(f) => HandshakeError::Frame(f),
            RecvError::Io(e) => HandshakeError::Io(e),
            other => HandshakeError::Io(io::Error::other(other.to_string())),
        }
    }
}

impl From<SendError> for HandshakeError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Disconnected => HandshakeError::Disconnected,
            SendError::Io(e) => HandshakeError::Io(e),
            other => HandshakeError::Io(io::Error::other(other.to_string())),
        }
    }
}

/// Why [`ListenerBuilder::bind`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// Another live listener holds the address.
    #[error("address {0} is in use")]
    AddrInUse(Address),
    /// The Unix socket path is longer than [`MAX_UNIX_PATH`] bytes (or empty).
    #[error("Unix socket path of {len} bytes is longer than {max} bytes (or empty)")]
    PathTooLong {
        /// The path's length in bytes.
        len: usize,
        /// The longest allowed.
        max: usize,
    },
    /// The socket's directory is not private (see the module docs).
    #[error("directory {path} is not private: {reason}")]
    InsecureDirectory {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A TCP listener needs an authkey, or the explicit
    /// [`insecure_no_authkey`](ListenerBuilder::insecure_no_authkey).
    #[error("a TCP listener needs an authkey")]
    TcpWithoutAuthkey,
    /// The OS reported an error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Why [`Listener::accept`] returned no connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// [`Listener::accept_timeout`] saw no connection in time (or
    /// [`Listener::try_accept`] none pending).
    #[error("no connection arrived in time")]
    Timeout,
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

/// Why [`Client::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The connection was made but the handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// No connection within the connect timeout.
    #[error("timed out connecting")]
    Timeout,
    /// The Unix socket path is longer than [`MAX_UNIX_PATH`] bytes (or empty).
    #[error("Unix socket path of {len} bytes is longer than {max} bytes (or empty)")]
    PathTooLong {
        /// The path's length in bytes.
        len: usize,
        /// The longest allowed.
        max: usize,
    },
    /// The socket's directory is not private (see the module docs).
    #[error("directory {path} is not private: {reason}")]
    InsecureDirectory {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A TCP client needs an authkey, or the explicit
    /// [`insecure_no_authkey`](ClientBuilder::insecure_no_authkey).
    #[error("a TCP client needs an authkey")]
    TcpWithoutAuthkey,
    /// The OS reported an error (`ConnectionRefused`: nobody listens).
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl ConnectError {
    /// Whether this is an authentication failure.
    pub fn is_authentication(&self) -> bool {
        matches!(self, ConnectError::Handshake(h) if h.is_authentication())
    }
}

// ----- the handshake ----------------------------------------------------------

/// Which digests a handshake accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuthPolicy {
    /// HMAC-SHA256 only (Python 3.12+).
    #[default]
    Sha256Only,
    /// HMAC-SHA256, and also HMAC-MD5 from peers that speak only that
    /// (Python 3.11 and earlier): a raw MD5 answer to our challenge is
    /// accepted, and an unprefixed challenge is answered with MD5. MD5 is
    /// weaker; opt in only to talk to old Pythons.
    AllowLegacyMd5,
}

fn auth_err(f: AuthFailure) -> HandshakeError {
    HandshakeError::Authentication(f)
}

fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    getrandom::fill(buf).map_err(|e| io::Error::other(format!("getrandom: {e}")))
}

fn hmac_sha256(key: &[u8]) -> Hmac<sha2::Sha256> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length")
}

fn hmac_md5(key: &[u8]) -> Hmac<md5::Md5> {
    <Hmac<md5::Md5> as Mac>::new_from_slice(key).expect("HMAC accepts any key length")
}

/// The answer to `message` (a challenge without `#CHALLENGE#`), as Python
/// 3.12's `_create_response`, under `policy`.
pub(crate) fn create_response(
    authkey: &[u8],
    message: &[u8],
    policy: AuthPolicy,
) -> Result<Vec<u8>, AuthFailure> {
    if message.starts_with(SHA256_PREFIX) {
        if message.len() < SHA256_PREFIX.len() + LEGACY_CHALLENGE_LEN {
            return Err(AuthFailure::Unsupported);
        }
        let mut mac = hmac_sha256(authkey);
        mac.update(message);
        let mut out = SHA256_PREFIX.to_vec();
        out.extend_from_slice(&mac.finalize().into_bytes());
        return Ok(out);
    }
    if message.len() == LEGACY_CHALLENGE_LEN || message.len() == MD5_LEN {
        if policy != AuthPolicy::AllowLegacyMd5 {
            return Err(AuthFailure::LegacyMd5NotAllowed);
        }
        let mut mac = hmac_md5(authkey);
        mac.update(message);
        return Ok(mac.finalize().into_bytes().to_vec());
    }
    Err(AuthFailure::Unsupported)
}

/// Check `response` to our `message`, as Python 3.12's `_verify_challenge`,
/// under `policy`; constant-time.
pub(crate) fn verify_response(
    authkey: &[u8],
    message: &[u8],
    response: &[u8],
    policy: AuthPolicy,
) -> Result<(), AuthFailure> {
    if let Some(tag) = response.strip_prefix(SHA256_PREFIX) {
        let mut mac = hmac_sha256(authkey);
        mac.update(message);
        return mac.verify_slice(tag).map_err(|_| AuthFailure::WrongDigest);
    }
    if response.len() == MD5_LEN || response.len() == LEGACY_CHALLENGE_LEN {
        if policy != AuthPolicy::AllowLegacyMd5 {
            return Err(AuthFailure::LegacyMd5NotAllowed);
        }
        let mut mac = hmac_md5(authkey);
        mac.update(message);
        return mac
            .verify_slice(response)
            .map_err(|_| AuthFailure::WrongDigest);
    }
    if response.starts_with(b"{") {
        return Err(AuthFailure::Unsupported);
    }
    Err(AuthFailure::WrongDigest)
}

/// Python's `deliver_challenge`: send a fresh challenge, check the answer,
/// send `#WELCOME#` or `#FAILURE#`.
fn deliver_challenge<T>(
    conn: &mut Connection<T>,
    authkey: &[u8],
    policy: AuthPolicy,
    deadline: Instant,
) -> Result<(), HandshakeError> {
    let mut frame = Vec::with_capacity(CHALLENGE.len() + SHA256_PREFIX.len() + NONCE_LEN);
    frame.extend_from_slice(CHALLENGE);
    frame.extend_from_slice(SHA256_PREFIX);
    let start = frame.len();
    frame.resize(start + NONCE_LEN, 0);
    random_bytes(&mut frame[start..]).map_err(HandshakeError::Io)?;
    conn.send_bytes(&frame)?;
    let message = &frame[CHALLENGE.len()..];
    let response = conn.recv_bytes_bounded(MAX_HANDSHAKE_FRAME, deadline)?;
    match verify_response(authkey, message, &response, policy) {
        Ok(()) => {
            conn.send_bytes(WELCOME)?;
            Ok(())
        }
        Err(f) => {
            let _ = conn.send_bytes(FAILURE);
            Err(auth_err(f))
        }
    }
}

/// Python's `answer_challenge`: read a challenge, answer it, expect
/// `#WELCOME#`.
fn answer_challenge<T>(
    conn: &mut Connection<T>,
    authkey: &[u8],
    policy: AuthPolicy,
    deadline: Instant,
) -> Result<(), HandshakeError> {
    let message = conn.recv_bytes_bounded(MAX_HANDSHAKE_FRAME, deadline)?;
    let Some(message) = message.strip_prefix(CHALLENGE) else {
        return Err(auth_err(AuthFailure::NotAChallenge));
    };
    let response = create_response(authkey, message, policy).map_err(auth_err)?;
    conn.send_bytes(&response)?;
    let reply = conn.recv_bytes_bounded(MAX_HANDSHAKE_FRAME, deadline)?;
    if reply == WELCOME {
        Ok(())
    } else if reply == FAILURE {
        Err(auth_err(AuthFailure::Rejected))
    } else {
        Err(auth_err(AuthFailure::UnexpectedReply))
    }
}

/// The server's side of the handshake on a fresh connection: challenge the
/// client, then answer its challenge, all before `deadline`.
///
/// Public for fuzzing and for servers built on their own sockets.
pub fn server_handshake<T>(
    conn: &mut Connection<T>,
    authkey: &[u8],
    policy: AuthPolicy,
    deadline: Instant,
) -> Result<(), HandshakeError> {
    deliver_challenge(conn, authkey, policy, deadline)?;
    answer_challenge(conn, authkey, policy, deadline)
}

/// The client's side of the handshake: answer the server's challenge, then
/// challenge it, all before `deadline`.
pub fn client_handshake<T>(
    conn: &mut Connection<T>,
    authkey: &[u8],
    policy: AuthPolicy,
    deadline: Instant,
) -> Result<(), HandshakeError> {
    answer_challenge(conn, authkey, policy, deadline)?;
    deliver_challenge(conn, authkey, policy, deadline)
}

/// One fuzz input for the handshake: the first byte picks the side (server
/// or client) and the policy, the rest is what the peer sends, followed by
/// end of file. Nothing may panic or hang (the deadline is 1 s, and end of
/// file comes first). Shared by the `cargo fuzz` target and the corpus
/// replay test.
#[doc(hidden)]
pub fn fuzz_handshake(data: &[u8]) {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    // Stay under the socket buffer, so the write never blocks.
    let input = &input[..input.len().min(64 << 10)];
    let Ok((mine, peer)) = multiproc_sys::fd::socketpair() else {
        return;
    };
    if multiproc_sys::io::write_all(&peer, input).is_err()
        || multiproc_sys::net::shutdown_write(&peer).is_err()
    {
        return;
    }
    let Ok(mut conn) = Connection::<()>::from_fd(mine, true, true) else {
        return;
    };
    let policy = if mode & 2 == 0 {
        AuthPolicy::Sha256Only
    } else {
        AuthPolicy::AllowLegacyMd5
    };
    let deadline = Instant::now() + Duration::from_secs(1);
    let _ = if mode & 1 == 0 {
        server_handshake(&mut conn, b"fuzz key", policy, deadline)
    } else {
        client_handshake(&mut conn, b"fuzz key", policy, deadline)
    };
    drop(peer);
}

// ----- private directories ----------------------------------------------------

/// Check that `dir` is a private directory: a directory (not a symlink)
/// owned by the effective uid, without group or other bits.
fn check_private_dir(dir: &Path) -> Result<(), (PathBuf, &'static str)> {
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

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn path_len(path: &Path) -> usize {
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
    authkey: Option<Vec<u8>>,
    policy: AuthPolicy,
    handshake_timeout: Duration,
    backlog: i32,
    insecure_no_authkey: bool,
    insecure_shared_directory: bool,
}

impl fmt::Debug for ListenerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerBuilder")
            .field("authkey", &self.authkey.as_ref().map(|_| "<hidden>"))
            .field("policy", &self.policy)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("backlog", &self.backlog)
            .field("insecure_no_authkey", &self.insecure_no_authkey)
            .field("insecure_shared_directory", &self.insecure_shared_directory)
            .finish()
    }
}

impl Default for ListenerBuilder {
    fn default() -> Self {
        ListenerBuilder {
            authkey: None,
            policy: AuthPolicy::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            backlog: 128,
            insecure_no_authkey: false,
            insecure_shared_directory: false,
        }
    }
}

impl ListenerBuilder {
    /// Clients must prove they know `key` (and the listener proves it too).
    pub fn authkey(mut self, key: &[u8]) -> Self {
        self.authkey = Some(key.to_vec());
        self
    }

    /// Which digests the handshake accepts (default SHA-256 only).
    pub fn policy(mut self, policy: AuthPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How long one handshake may take (default 5 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The `listen` backlog (default 128).
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Allow a TCP listener without an authkey: anyone who can reach the
    /// port can connect.
    pub fn insecure_no_authkey(mut self) -> Self {
        self.insecure_no_authkey = true;
        self
    }

    /// Skip the private-directory check of a Unix socket's directory (the
    /// socket file still gets mode 0600).
    pub fn insecure_shared_directory(mut self) -> Self {
        self.insecure_shared_directory = true;
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
                if self.authkey.is_none() && !self.insecure_no_authkey {
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
                if name.is_empty() || name.len() > MAX_UNIX_PATH {
                    return Err(BindError::PathTooLong {
                        len: name.len(),
                        max: MAX_UNIX_PATH,
                    });
                }
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
        let len = path_len(&path);
        if len == 0 || len > MAX_UNIX_PATH {
            return Err(BindError::PathTooLong {
                len,
                max: MAX_UNIX_PATH,
            });
        }
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
        if !self.insecure_shared_directory {
            if let Err((path, reason)) = check_private_dir(&dir) {
                cleanup_dir(&created_dir);
                return Err(BindError::InsecureDirectory { path, reason });
            }
        }
        let result = self.bind_unix_locked(&path);
        match result {
            Ok((fd, lock)) => {
                // For `multiproc clean` after a kill -9: the directory is
                // ours to remove too.
                if created_dir.is_some() {
                    let _ = multiproc_sys::net::write_lock_note(&lock, registry::CREATED_DIR_NOTE);
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
            .field("authenticated", &self.opts.authkey.is_some())
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
        self.accept_deadline(None)
    }

    /// Accept a connection that is already pending; never waits for one
    /// ([`AcceptError::Timeout`] when none is), though the handshake may
    /// take up to the handshake timeout.
    pub fn try_accept<T>(&self) -> Result<Connection<T>, AcceptError> {
        self.accept_deadline(Some(Instant::now()))
    }

    /// Accept a connection, waiting at most `timeout` for one to arrive;
    /// the handshake then has its own timeout.
    pub fn accept_timeout<T>(&self, timeout: Duration) -> Result<Connection<T>, AcceptError> {
        self.accept_deadline(crate::deadline::after(timeout))
    }

    fn accept_deadline<T>(&self, deadline: Option<Instant>) -> Result<Connection<T>, AcceptError> {
        let Some(key) = &self.opts.authkey else {
            // Nothing to wait for after the connect.
            let Some(fd) = multiproc_sys::net::accept(self.fd.as_fd(), deadline)? else {
                return Err(AcceptError::Timeout);
            };
            return self.admit(fd).map(Connection::cast);
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
                return outcome.map(Connection::cast);
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
                return Err(AcceptError::Timeout);
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
        let deadline = crate::deadline::instant_after(self.opts.handshake_timeout);
        let (key, policy) = (key.to_vec(), self.opts.policy);
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

// ----- the client -------------------------------------------------------------

/// Options for a client connection; from [`Client::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    authkey: Option<Vec<u8>>,
    policy: AuthPolicy,
    handshake_timeout: Duration,
    connect_timeout: Option<Duration>,
    insecure_no_authkey: bool,
    insecure_shared_directory: bool,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("authkey", &self.authkey.as_ref().map(|_| "<hidden>"))
            .field("policy", &self.policy)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            authkey: None,
            policy: AuthPolicy::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            connect_timeout: None,
            insecure_no_authkey: false,
            insecure_shared_directory: false,
        }
    }
}

impl ClientBuilder {
    /// Authenticate with `key` (and require the server to).
    pub fn authkey(mut self, key: &[u8]) -> Self {
        self.authkey = Some(key.to_vec());
        self
    }

    /// Which digests the handshake accepts (default SHA-256 only).
    pub fn policy(mut self, policy: AuthPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How long the handshake may take (default 5 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long a TCP connect may take (default: the kernel's limit). A
    /// Unix-socket connect does not wait for the server (it fails at once
    /// when nobody listens), except while the listener's backlog is full.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Allow a TCP connection without an authkey.
    pub fn insecure_no_authkey(mut self) -> Self {
        self.insecure_no_authkey = true;
        self
    }

    /// Skip the private-directory check before connecting to a Unix socket.
    pub fn insecure_shared_directory(mut self) -> Self {
        self.insecure_shared_directory = true;
        self
    }

    /// Connect to `address` and run the handshake.
    pub fn connect<T>(&self, address: impl Into<Address>) -> Result<Connection<T>, ConnectError> {
        let address = address.into();
        let fd = match &address {
            Address::Tcp(addr) => {
                if self.authkey.is_none() && !self.insecure_no_authkey {
                    return Err(ConnectError::TcpWithoutAuthkey);
                }
                let deadline = self.connect_timeout.and_then(crate::deadline::after);
                multiproc_sys::net::tcp_connect(*addr, deadline).map_err(|e| {
                    if e.kind() == io::ErrorKind::TimedOut {
                        ConnectError::Timeout
                    } else {
                        ConnectError::Io(e)
                    }
                })?
            }
            Address::Abstract(name) => {
                if name.is_empty() || name.len() > MAX_UNIX_PATH {
                    return Err(ConnectError::PathTooLong {
                        len: name.len(),
                        max: MAX_UNIX_PATH,
                    });
                }
                multiproc_sys::net::abstract_connect(name)?
            }
            Address::Unix(path) => {
                let len = path_len(path);
                if len == 0 || len > MAX_UNIX_PATH {
                    return Err(ConnectError::PathTooLong {
                        len,
                        max: MAX_UNIX_PATH,
                    });
                }
                if !self.insecure_shared_directory {
                    check_private_dir(&parent_dir(path)).map_err(|(path, reason)| {
                        ConnectError::InsecureDirectory { path, reason }
                    })?;
                }
                multiproc_sys::net::unix_connect(path)?
            }
        };
        let mut conn = Connection::from_fd(fd, true, true)?;
        if let Some(key) = &self.authkey {
            let deadline = crate::deadline::instant_after(self.handshake_timeout);
            client_handshake(&mut conn, key, self.policy, deadline)?;
        }
        Ok(conn)
    }
}

/// Connects to a [`Listener`] (Python's `multiprocessing.connection.Client`).
#[derive(Debug, Clone, Copy)]
pub struct Client;

impl Client {
    /// Options: authkey, digest policy, timeouts.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Connect to `address` and authenticate with `authkey`.
    pub fn connect<T>(
        address: impl Into<Address>,
        authkey: &[u8],
    ) -> Result<Connection<T>, ConnectError> {
        Client::builder().authkey(authkey).connect(address)
    }

    /// Connect, waiting at most `timeout` for the TCP connection (the
    /// handshake has its own timeout).
    pub fn connect_timeout<T>(
        address: impl Into<Address>,
        authkey: &[u8],
        timeout: Duration,
    ) -> Result<Connection<T>, ConnectError> {
        Client::builder()
            .authkey(authkey)
            .connect_timeout(timeout)
            .connect(address)
    }
}

/// Whether an abstract-namespace listener running as `expected` serves a
/// peer whose effective uid is `uid`: only its own user (root too is
/// refused by a non-root listener, since root can reach the user's data by
/// other means and needs no socket).
fn peer_allowed(uid: u32, expected: u32) -> bool {
    uid == expected
}

// ----- wait -------------------------------------------------------------------

/// Something [`wait`] can wait on: connections, listeners, process
/// sentinels, raw descriptors.
pub trait Waitable {
    /// The descriptor to poll for readability; `None` means ready now
    /// (e.g. a process already joined).
    fn wait_fd(&self) -> Option<BorrowedFd<'_>>;

    /// Whether it is ready without polling (e.g. a connection holding a
    /// whole buffered message).
    fn ready_now(&self) -> bool {
        false
    }
}

impl<T> Waitable for Connection<T> {
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
    fn ready_now(&self) -> bool {
        self.has_buffered_frame()
    }
}

impl Waitable for Listener {
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }
}

impl<R> Waitable for Process<R> {
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        self.sentinel()
    }
}

impl Waitable for BorrowedFd<'_> {
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(*self)
    }
}

impl Waitable for OwnedFd {
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}

/// Wait until some of `objects` are ready, or `timeout` passes (`None`:
/// forever); the indices of the ready ones, in order (empty on timeout).
/// Python's `multiprocessing.connection.wait`.
///
/// A connection is ready when a message or end of file can be read (or a
/// whole message is already buffered), a listener when a client is waiting
/// to be accepted, a process when it has ended. With nothing to wait on it
/// returns an empty list after `timeout` (at once when `None`).
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> io::Result<Vec<usize>> {
    let mut ready: Vec<usize> = objects
        .iter()
        .enumerate()
        .filter(|(_, o)| o.ready_now() || o.wait_fd().is_none())
        .map(|(i, _)| i)
        .collect();
    let polled: Vec<(usize, BorrowedFd<'_>)> = objects
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.wait_fd().map(|fd| (i, fd)))
        .collect();
    let fds: Vec<BorrowedFd<'_>> = polled.iter().map(|(_, fd)| *fd).collect();
    let deadline = if ready.is_empty() {
        timeout.and_then(crate::deadline::after)
    } else {
        Some(Instant::now())
    };
    if !fds.is_empty() {
        let flags = multiproc_sys::poll::wait_any_readable(&fds, deadline)?;
        for ((i, _), r) in polled.iter().zip(flags) {
            if r && !ready.contains(i) {
                ready.push(*i);
            }
        }
        ready.sort_unstable();
    } else if ready.is_empty() {
        if let Some(d) = deadline {
            std::thread::sleep(d.saturating_duration_since(Instant::now()));
        }
    }
    Ok(ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_addresses() {
        assert_eq!(
            Address::parse("127.0.0.1:80").unwrap(),
            Address::localhost(80)
        );
        assert_eq!(Address::parse(":81").unwrap(), Address::localhost(81));
        assert_eq!(
            Address::parse("/tmp/x.sock").unwrap(),
            Address::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            Address::parse("sock").unwrap(),
            Address::Unix("sock".into())
        );
        assert!(matches!(
            Address::parse("localhost:82").unwrap(),
            Address::Tcp(a) if a.port() == 82
        ));
        assert!(Address::parse("").is_err());
        assert_eq!(
            Address::parse("\0name").unwrap(),
            Address::Abstract(b"name".to_vec())
        );
        assert_eq!(
            Address::parse("@name").unwrap(),
            Address::Abstract(b"name".to_vec())
        );
        assert_eq!(
            Address::parse("./@name").unwrap(),
            Address::Unix("./@name".into())
        );
        assert!(matches!(
            Address::parse("@"),
            Err(AddressError::AbstractName { len: 0, .. })
        ));
        assert!(Address::parse(&format!("@{}", "x".repeat(MAX_UNIX_PATH + 1))).is_err());
        let a = Address::Abstract(b"n:1".to_vec());
        assert_eq!(Address::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn abstract_peer_check_serves_only_our_uid() {
        assert!(peer_allowed(1000, 1000));
        assert!(peer_allowed(0, 0));
        assert!(!peer_allowed(65534, 1000));
        assert!(!peer_allowed(0, 1000));
        assert!(!peer_allowed(1000, 0));
    }

    #[test]
    fn sha256_answer_verifies_and_md5_needs_opt_in() {
        let msg = [b"{sha256}".as_slice(), &[7u8; 40]].concat();
        let r = create_response(b"k", &msg, AuthPolicy::Sha256Only).unwrap();
        assert!(r.starts_with(b"{sha256}"));
        verify_response(b"k", &msg, &r, AuthPolicy::Sha256Only).unwrap();
        assert_eq!(
            verify_response(b"other", &msg, &r, AuthPolicy::Sha256Only),
            Err(AuthFailure::WrongDigest)
        );
        let legacy = [9u8; 20];
        assert_eq!(
            create_response(b"k", &legacy, AuthPolicy::Sha256Only),
            Err(AuthFailure::LegacyMd5NotAllowed)
        );
        let md5 = create_response(b"k", &legacy, AuthPolicy::AllowLegacyMd5).unwrap();
        assert_eq!(md5.len(), 16);
        // A 3.11 client answers our prefixed challenge with raw MD5 over all of it.
        let mut mac = hmac_md5(b"k");
        mac.update(&msg);
        let raw = mac.finalize().into_bytes().to_vec();
        assert_eq!(
            verify_response(b"k", &msg, &raw, AuthPolicy::Sha256Only),
            Err(AuthFailure::LegacyMd5NotAllowed)
        );
        verify_response(b"k", &msg, &raw, AuthPolicy::AllowLegacyMd5).unwrap();
    }
}
