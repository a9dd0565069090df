//! Serde messages with handles inside.
//!
//! Values are encoded with postcard. A multiproc handle (a [`Connection`],
//! an [`Fd`], …) inside a value serializes as an index into the list of file
//! descriptors that travel with the message (`SCM_RIGHTS`); on the receiving
//! side the index is turned back into an owned descriptor. The handle list
//! lives in a thread-local that is set only for the duration of one
//! [`encode`] or [`decode`], so serializing a handle with any other serde
//! format is an error rather than a silent copy of a number.
//!
//! A serde payload on the wire is one byte with the number of descriptors
//! that belong to it, then the postcard bytes.
//!
//! [`Connection`]: crate::Connection

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use serde::de::DeserializeOwned;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

thread_local! {
    static OUTGOING: RefCell<Option<Vec<RawFd>>> = const { RefCell::new(None) };
    static INCOMING: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
    /// Postcard drops custom error messages; the handle code leaves its reason here.
    static HANDLE_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

pub(crate) fn handle_error<E: serde::ser::Error>(msg: String) -> E {
    let e = E::custom(&msg);
    HANDLE_ERROR.with(|h| *h.borrow_mut() = Some(msg));
    e
}

pub(crate) fn handle_error_de<E: serde::de::Error>(msg: String) -> E {
    let e = E::custom(&msg);
    HANDLE_ERROR.with(|h| *h.borrow_mut() = Some(msg));
    e
}

fn take_handle_error() -> Option<String> {
    HANDLE_ERROR.with(|h| h.borrow_mut().take())
}

/// A value could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The serializer failed (a type that postcard cannot represent, or a
    /// handle refused to be sent).
    #[error("cannot encode message: {0}")]
    Serde(#[from] postcard::Error),
    /// A handle in the value could not be sent.
    #[error("cannot send handle: {0}")]
    Handle(String),
    /// More handles than one message can carry.
    #[error("a message can carry at most {max} handles, this one has {count}")]
    TooManyHandles {
        /// Handles in the value.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// A message could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not a valid encoding of the expected type.
    #[error("cannot decode message: {0}")]
    Serde(#[from] postcard::Error),
    /// A handle index in the message is invalid (out of range or used twice).
    #[error("bad handle in message: {0}")]
    Handle(String),
    /// The message is empty: not even its handle count is there.
    #[error("empty message")]
    Empty,
    /// The message names handles that did not arrive with it.
    #[error("message expects {expected} handles, {available} arrived")]
    MissingHandles {
        /// Handles the message declares.
        expected: usize,
        /// Handles that arrived.
        available: usize,
    },
}

/// The most handles one message may carry (the kernel's `SCM_MAX_FD`).
pub const MAX_HANDLES: usize = multiproc_sys::io::MAX_FDS_PER_MESSAGE;

/// Encode `value` into `out` (appending), returning the descriptors of the
/// handles inside it in index order. The descriptors are borrowed from
/// `value`: they stay valid while it lives.
pub fn encode<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<Vec<RawFd>, EncodeError> {
    let saved = OUTGOING.with(|o| o.replace(Some(Vec::new())));
    take_handle_error();
    let start = out.len();
    let result = postcard::serialize_with_flavor(value, AppendTo(out));
    let fds = OUTGOING.with(|o| o.replace(saved)).unwrap_or_default();
    if let Err(e) = result {
        out.truncate(start);
        return Err(take_handle_error().map_or(EncodeError::Serde(e), EncodeError::Handle));
    }
    if fds.len() > MAX_HANDLES {
        return Err(EncodeError::TooManyHandles {
            count: fds.len(),
            max: MAX_HANDLES,
        });
    }
    Ok(fds)
}

/// A postcard output that appends to a borrowed vector with
/// `extend_from_slice` (one `memcpy` per byte string).
struct AppendTo<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Decode a `T` from `bytes`, giving it the received `fds` by index.
/// Descriptors the value does not take are closed.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T, DecodeError> {
    let saved = INCOMING.with(|i| i.replace(Some(fds.into_iter().map(Some).collect())));
    take_handle_error();
    let result = postcard::from_bytes(bytes);
    INCOMING.with(|i| i.replace(saved));
    result.map_err(|e| take_handle_error().map_or(DecodeError::Serde(e), DecodeError::Handle))
}

/// Serialize a descriptor as a handle index. Only valid inside [`encode`].
pub(crate) fn serialize_fd<S: Serializer>(fd: BorrowedFd<'_>, s: S) -> Result<S::Ok, S::Error> {
    let index = OUTGOING.with(|o| {
        o.borrow_mut().as_mut().map(|v| {
            v.push(fd.as_raw_fd());
            v.len() - 1
        })
    });
    match index {
        Some(i) => s.serialize_u32(u32::try_from(i).map_err(S::Error::custom)?),
        None => Err(handle_error(
            "multiproc handles can only be serialized by multiproc (send, spawn)".into(),
        )),
    }
}

/// Deserialize a handle index into the descriptor that arrived with the
/// message. Only valid inside [`decode`].
pub(crate) fn deserialize_fd<'de, D: Deserializer<'de>>(d: D) -> Result<OwnedFd, D::Error> {
    let index = u32::deserialize(d)? as usize;
    INCOMING.with(|i| {
        let mut slot = i.borrow_mut();
        let Some(fds) = slot.as_mut() else {
            return Err(handle_error_de(
                "multiproc handles can only be deserialized by multiproc (recv, spawn)".into(),
            ));
        };
        match fds.get_mut(index) {
            Some(fd) => fd.take().ok_or_else(|| {
                handle_error_de(format!("handle {index} is used twice in one message"))
            }),
            None => Err(handle_error_de(format!(
                "handle {index} out of range: {} arrived",
                fds.len()
            ))),
        }
    })
}

/// Any file descriptor, sendable inside a message (Python's
/// `multiprocessing.reduction.send_handle`).
///
/// The receiver gets its own descriptor for the same open file.
#[derive(Debug)]
pub struct Fd(pub OwnedFd);

impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl From<OwnedFd> for Fd {
    fn from(fd: OwnedFd) -> Self {
        Fd(fd)
    }
}

impl Serialize for Fd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_fd(self.0.as_fd(), s)
    }
}

impl<'de> Deserialize<'de> for Fd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_fd(d).map(Fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_only_serialize_inside_multiproc() {
        let (r, _w) = multiproc_sys::fd::pipe().unwrap();
        let err = serde_json::to_string(&Fd(r)).unwrap_err();
        assert!(err.to_string().contains("only be serialized by multiproc"));
    }

    #[test]
    fn handles_round_trip_by_index() {
        let (r, w) = multiproc_sys::fd::pipe().unwrap();
        let value = (7u8, Fd(r), "x".to_string(), Fd(w));
        let mut bytes = Vec::new();
        let fds = encode(&value, &mut bytes).unwrap();
        assert_eq!(
            fds,
            vec![value.1.as_fd().as_raw_fd(), value.3.as_fd().as_raw_fd()]
        );
        let dups: Vec<OwnedFd> = fds
            .iter()
            // SAFETY: the fds are owned by `value`, which is alive here.
            .map(|&fd| multiproc_sys::fd::dup(unsafe { BorrowedFd::borrow_raw(fd) }).unwrap())
            .collect();
        let back: (u8, Fd, String, Fd) = decode(&bytes, dups).unwrap();
        assert_eq!(back.0, 7);
        assert_eq!(back.2, "x");
    }

    #[test]
    fn missing_or_reused_handles_are_errors() {
        let mut bytes = Vec::new();
        postcard::to_extend(&(0u32, 0u32), Vec::new())
            .map(|v| bytes = v)
            .unwrap();
        let (r, _w) = multiproc_sys::fd::pipe().unwrap();
        let e = decode::<(Fd, Fd)>(&bytes, vec![r]).unwrap_err();
        assert!(e.to_string().contains("used twice"), "{e}");
        let e = decode::<(Fd, Fd)>(&bytes, vec![]).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    }
}
