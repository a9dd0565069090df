//! The client side of a connection: [`Client::connect`] and its options.

use std::fmt;
use std::io;
use std::time::Duration;

#[cfg(doc)]
use super::Listener;
use super::address::{Address, SocketPathError, check_len};
use super::auth::{AuthOptions, AuthPolicy, HandshakeError, client_handshake};
use super::listener::{check_private_dir, parent_dir, path_len};
use crate::connection::Connection;

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
    /// The path or name is too long, or its directory is not private.
    #[error(transparent)]
    Path(#[from] SocketPathError),
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

// ----- the client -------------------------------------------------------------

/// Options for a client connection; from [`Client::builder`].
#[derive(Clone, Default)]
pub struct ClientBuilder {
    auth: AuthOptions,
    connect_timeout: Option<Duration>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("auth", &self.auth)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl ClientBuilder {
    auth_setters!();

    /// How long a TCP connect may take (default: the kernel's limit). A
    /// Unix-socket connect does not wait for the server (it fails at once
    /// when nobody listens), except while the listener's backlog is full.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Connect to `address` and run the handshake.
    pub fn connect<T>(&self, address: impl Into<Address>) -> Result<Connection<T>, ConnectError> {
        let address = address.into();
        let fd = match &address {
            Address::Tcp(addr) => {
                if self.auth.authkey.is_none() && !self.auth.insecure_no_authkey {
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
                check_len(name.len())?;
                multiproc_sys::net::abstract_connect(name)?
            }
            Address::Unix(path) => {
                check_len(path_len(path))?;
                if !self.auth.insecure_shared_directory {
                    check_private_dir(&parent_dir(path)).map_err(|(path, reason)| {
                        SocketPathError::InsecureDirectory { path, reason }
                    })?;
                }
                multiproc_sys::net::unix_connect(path)?
            }
        };
        let mut conn = Connection::from_fd(fd, true, true)?;
        if let Some(key) = &self.auth.authkey {
            let deadline = crate::deadline::instant_after(self.auth.handshake_timeout);
            client_handshake(&mut conn, key, self.auth.policy, deadline)?;
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
