//! Where listeners listen: Unix socket paths, abstract names and TCP addresses.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The longest Unix socket path, in bytes.
pub const MAX_UNIX_PATH: usize = multiproc_sys::net::UNIX_PATH_MAX;

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

/// Why a Unix or abstract socket address cannot be bound or connected to
/// (the same rules for [`Listener`](super::Listener)s and
/// [`Client`](super::Client)s).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketPathError {
    /// The Unix socket path, or abstract name, is longer than
    /// [`MAX_UNIX_PATH`] bytes (or empty).
    #[error("Unix socket path of {len} bytes is longer than {max} bytes (or empty)")]
    PathTooLong {
        /// The path's length in bytes.
        len: usize,
        /// The longest allowed.
        max: usize,
    },
    /// The socket's directory is not private (see the
    /// [`Listener`](super::Listener) docs).
    #[error("directory {path} is not private: {reason}")]
    InsecureDirectory {
        /// The directory.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Refuse a Unix path or abstract name of `len` bytes that is empty or
/// longer than [`MAX_UNIX_PATH`].
pub(super) fn check_len(len: usize) -> Result<(), SocketPathError> {
    if len == 0 || len > MAX_UNIX_PATH {
        return Err(SocketPathError::PathTooLong {
            len,
            max: MAX_UNIX_PATH,
        });
    }
    Ok(())
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
}
