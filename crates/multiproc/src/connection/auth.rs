//! Python's connection handshake: the HMAC challenge and answer, both sides.
//! The handshake runs before anything else on a connection and reads at most
//! [`MAX_HANDSHAKE_FRAME`] bytes per frame.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};

use crate::connection::frame::FrameError;
use crate::connection::{Connection, RecvError, SendError};
use crate::error::Waited;

/// The longest handshake frame read before authentication (Python's
/// `recv_bytes(256)`).
pub const MAX_HANDSHAKE_FRAME: usize = 256;

/// How long a handshake may take by default, on either side.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

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

impl From<Waited<RecvError>> for HandshakeError {
    fn from(e: Waited<RecvError>) -> Self {
        match e {
            Waited::GaveUp => HandshakeError::Timeout,
            Waited::Failed(e) => e.into(),
        }
    }
}

impl From<RecvError> for HandshakeError {
    fn from(e: RecvError) -> Self {
        match e {
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

// ----- the handshake ----------------------------------------------------------

/// The security options a [`ListenerBuilder`](super::ListenerBuilder) and
/// a [`ClientBuilder`](super::ClientBuilder) share: the authkey, the digest
/// policy, the handshake's time limit and the two explicit opt-outs. Both
/// builders take it whole ([`auth`](super::ListenerBuilder::auth)) or one
/// option at a time through setters of the same names.
#[derive(Clone)]
pub struct AuthOptions {
    pub(super) authkey: Option<Vec<u8>>,
    pub(super) policy: AuthPolicy,
    pub(super) handshake_timeout: Duration,
    pub(super) insecure_no_authkey: bool,
    pub(super) insecure_shared_directory: bool,
}

impl Default for AuthOptions {
    fn default() -> Self {
        AuthOptions {
            authkey: None,
            policy: AuthPolicy::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            insecure_no_authkey: false,
            insecure_shared_directory: false,
        }
    }
}

impl fmt::Debug for AuthOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthOptions")
            .field("authkey", &self.authkey.as_ref().map(|_| "<hidden>"))
            .field("policy", &self.policy)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("insecure_no_authkey", &self.insecure_no_authkey)
            .field("insecure_shared_directory", &self.insecure_shared_directory)
            .finish()
    }
}

/// The setters of [`AuthOptions`], on a builder that holds one in its
/// `auth` field (so the two builders cannot drift apart).
macro_rules! auth_setters {
    () => {
        /// Use these security options (authkey, policy, handshake timeout,
        /// opt-outs) in place of the current ones.
        pub fn auth(mut self, auth: AuthOptions) -> Self {
            self.auth = auth;
            self
        }

        /// Authenticate with `key`: the peer must prove it knows the key,
        /// and this side proves it too.
        pub fn authkey(mut self, key: &[u8]) -> Self {
            self.auth.authkey = Some(key.to_vec());
            self
        }

        /// Which digests the handshake accepts (default SHA-256 only).
        pub fn policy(mut self, policy: AuthPolicy) -> Self {
            self.auth.policy = policy;
            self
        }

        /// How long one handshake may take (default 5 s).
        pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
            self.auth.handshake_timeout = timeout;
            self
        }

        /// Allow TCP without an authkey: anyone who can reach the port can
        /// connect (or be connected to).
        pub fn insecure_no_authkey(mut self) -> Self {
            self.auth.insecure_no_authkey = true;
            self
        }

        /// Skip the private-directory check of a Unix socket's directory
        /// (a listener's socket file still gets mode 0600).
        pub fn insecure_shared_directory(mut self) -> Self {
            self.auth.insecure_shared_directory = true;
            self
        }
    };
}

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

pub(super) fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
