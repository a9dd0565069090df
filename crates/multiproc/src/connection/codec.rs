//! Serde messages with handles inside.
//!
//! Values are encoded with postcard. A multiproc handle (a [`Connection`],
//! an [`Fd`], …) inside a value serializes as an index into the list of file
//! descriptors that travel with the message (`SCM_RIGHTS`); on the receiving
//! side the index is turned back into an owned descriptor.
//!
//! # Who owns the descriptors
//!
//! [`encode`] hands back its own duplicate of every descriptor in the value
//! ([`OwnedFd`]s, in index order), not numbers or borrows: serde gives a
//! handle's `Serialize` only `&self`, and a value with interior mutability
//! could close the original while the message is still on its way, so a
//! borrow could not be proven to outlive the send. ([`encode_borrowed`] is
//! the `unsafe` form for the one caller that needs the originals, with that
//! proof obligation written on it.) The duplicates cost one
//! `fcntl` per handle and are closed when the caller drops them; messages
//! without handles cost nothing extra. [`decode`] takes the received
//! descriptors by value and gives each to the handle that names its index;
//! the ones no handle takes are closed.
//!
//! # The scope of one encode or decode
//!
//! serde offers no channel between a format and the `Serialize` or
//! `Deserialize` impl of one field, so the descriptors of the message being
//! encoded or decoded sit in a per-thread slot that [`encode`] and [`decode`]
//! set on entry and restore on exit (re-entrant). Outside those calls the
//! slot is empty, so serializing a handle with any other serde format is an
//! error ([`HandleError::OutsideMultiproc`]) rather than a silent copy of a
//! number.
//!
//! A serde payload on the wire is one byte with the number of descriptors
//! that belong to it, then the postcard bytes.
//!
//! [`Connection`]: crate::Connection

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use serde::de::DeserializeOwned;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What this thread is doing: the handles' `Serialize`/`Deserialize` impls
/// read it to know where their descriptor goes or comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Not inside [`encode`] or [`decode`]: handles refuse.
    Outside,
    /// Inside [`encode`]: each handle adds a duplicate.
    EncodeDuplicates,
    /// Inside [`encode_borrowed`]: each handle adds its own number.
    EncodeBorrowed,
    /// Inside [`decode`]: each handle takes a received descriptor.
    Decode,
}

/// The lists of the scope: touched only when a value holds a handle or a
/// handle fails, so a value without handles costs two `Cell` writes.
#[derive(Default)]
struct Slots {
    duplicates: Vec<OwnedFd>,
    borrowed: Vec<RawFd>,
    incoming: Vec<Option<OwnedFd>>,
    error: Option<HandleError>,
}

thread_local! {
    static MODE: Cell<Mode> = const { Cell::new(Mode::Outside) };
    /// Whether this scope has put anything into `SLOTS`.
    static TOUCHED: Cell<bool> = const { Cell::new(false) };
    static SLOTS: RefCell<Slots> = const {
        RefCell::new(Slots {
            duplicates: Vec::new(),
            borrowed: Vec::new(),
            incoming: Vec::new(),
            error: None,
        })
    };
}

/// One encode or decode: sets the mode (and the received descriptors) on
/// entry, hands back what the scope collected on exit, and restores the
/// enclosing scope (scopes nest when a value's `Serialize` encodes another).
/// Small on purpose: a value without handles moves no lists around.
struct ScopeGuard {
    mode: Mode,
    touched: bool,
    outer: Option<Box<Slots>>,
}

impl ScopeGuard {
    #[inline]
    fn enter(mode: Mode, incoming: Vec<OwnedFd>) -> ScopeGuard {
        let outer_mode = MODE.replace(mode);
        let outer_touched = TOUCHED.replace(!incoming.is_empty());
        let mut outer = None;
        if outer_touched || !incoming.is_empty() {
            SLOTS.with(|s| {
                let mut s = s.borrow_mut();
                if outer_touched {
                    outer = Some(Box::new(std::mem::take(&mut *s)));
                }
                s.incoming = incoming.into_iter().map(Some).collect();
            });
        }
        ScopeGuard {
            mode: outer_mode,
            touched: outer_touched,
            outer,
        }
    }

    /// What this scope collected: `None` unless a handle was seen.
    #[inline]
    fn collected(&self) -> Option<Box<Slots>> {
        TOUCHED
            .get()
            .then(|| Box::new(SLOTS.with(|s| std::mem::take(&mut *s.borrow_mut()))))
    }
}

impl Drop for ScopeGuard {
    #[inline]
    fn drop(&mut self) {
        if TOUCHED.get() || self.outer.is_some() {
            let outer = self.outer.take().map(|b| *b).unwrap_or_default();
            SLOTS.with(|s| *s.borrow_mut() = outer);
        }
        MODE.set(self.mode);
        TOUCHED.set(self.touched);
    }
}

/// Put something into this scope's slots.
fn with_slots<R>(f: impl FnOnce(&mut Slots) -> R) -> R {
    TOUCHED.set(true);
    SLOTS.with(|s| f(&mut s.borrow_mut()))
}

/// Why a handle inside a value could not travel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// A handle was serialized or deserialized by something other than
    /// multiproc's [`encode`] and [`decode`] (another serde format).
    #[error("multiproc handles can only be serialized by multiproc (send, spawn, put)")]
    OutsideMultiproc,
    /// The descriptor could not be duplicated for the message.
    #[error("cannot duplicate the descriptor: {0}")]
    Duplicate(#[source] io::Error),
    /// A connection that holds unread buffered data cannot be sent (its
    /// buffered messages would stay behind).
    #[error("cannot send a connection that holds unread buffered data")]
    BufferedData,
    /// The message names a descriptor index beyond those that arrived.
    #[error("handle {index} out of range: {available} arrived")]
    OutOfRange {
        /// The index in the message.
        index: usize,
        /// Descriptors that arrived.
        available: usize,
    },
    /// The message names one descriptor twice.
    #[error("handle {index} is used twice in one message")]
    UsedTwice {
        /// The index in the message.
        index: usize,
    },
    /// The descriptor arrived but is not the object the type expects (a
    /// segment of another layout, an unsealed file, …).
    #[error("handle is not the expected object: {0}")]
    WrongObject(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl HandleError {
    /// A descriptor that is not the object the type expects, for the
    /// `Deserialize` impls of handle types.
    pub(crate) fn wrong_object(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        HandleError::WrongObject(Box::new(e))
    }
}

/// Fail a handle's `Serialize` with `e`, which [`encode`] reports.
pub(crate) fn handle_error<E: serde::ser::Error>(e: HandleError) -> E {
    let err = E::custom(&e);
    record_error(e);
    err
}

/// Fail a handle's `Deserialize` with `e`, which [`decode`] reports.
pub(crate) fn handle_error_de<E: serde::de::Error>(e: HandleError) -> E {
    let err = E::custom(&e);
    record_error(e);
    err
}

/// Keep a handle's failure for the scope's caller (postcard keeps no
/// custom message). Outside a scope there is nobody to report to.
fn record_error(e: HandleError) {
    if MODE.get() != Mode::Outside {
        with_slots(|s| s.error = Some(e));
    }
}

/// A value could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The serializer failed (a type that postcard cannot represent).
    #[error("cannot encode message: {0}")]
    Serde(#[from] postcard::Error),
    /// A handle in the value could not be sent.
    #[error("cannot send handle: {0}")]
    Handle(#[source] HandleError),
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
    /// A handle in the message could not be taken (bad index, or not the
    /// object its type expects).
    #[error("bad handle in message: {0}")]
    Handle(#[source] HandleError),
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

/// Encode `value` into `out` (appending), returning a duplicate of the
/// descriptor of every handle inside it, in index order (see the module
/// docs on why duplicates). On error `out` is as it was.
pub fn encode<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<Vec<OwnedFd>, EncodeError> {
    Ok(encode_with(value, out, Mode::EncodeDuplicates)?
        .map(|s| s.duplicates)
        .unwrap_or_default())
}

/// [`encode`] without the duplicates: the descriptors of the handles in
/// `value`, borrowed from it. For bindings that must hand the value's own
/// descriptor numbers to another layer (Python's pickling passes them to
/// `multiprocessing.reduction.DupFd`, and a spawned child must receive the
/// number of the object itself, not of a copy that would keep a pipe's end
/// open in the parent).
///
/// # Safety
///
/// Every descriptor a handle inside `value` serializes must stay open for
/// `'v`. multiproc's own handle types guarantee it (each owns its
/// descriptors and never closes or replaces them while borrowed); a value
/// with interior mutability around a handle (a `Mutex<Option<Fd>>` that
/// another thread may empty) does not, and must go through [`encode`].
pub unsafe fn encode_borrowed<'v, T: Serialize + ?Sized>(
    value: &'v T,
    out: &mut Vec<u8>,
) -> Result<Vec<BorrowedFd<'v>>, EncodeError> {
    let fds = encode_with(value, out, Mode::EncodeBorrowed)?
        .map(|s| s.borrowed)
        .unwrap_or_default();
    Ok(fds
        .into_iter()
        // SAFETY: each number was serialized by a handle inside `value`,
        // which is borrowed for 'v; the caller guarantees those descriptors
        // stay open for 'v.
        .map(|fd| unsafe { BorrowedFd::borrow_raw(fd) })
        .collect())
}

/// Encode `value` into `out` in `mode`; the handles' descriptors come back
/// in the slots.
fn encode_with<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    mode: Mode,
) -> Result<Option<Box<Slots>>, EncodeError> {
    let scope = ScopeGuard::enter(mode, Vec::new());
    let start = out.len();
    let result = postcard::serialize_with_flavor(value, AppendTo(out));
    let got = scope.collected();
    drop(scope);
    let Some(mut got) = got else {
        // No handle: the common case.
        return match result {
            Ok(()) => Ok(None),
            Err(e) => {
                out.truncate(start);
                Err(EncodeError::Serde(e))
            }
        };
    };
    if let Err(e) = result {
        out.truncate(start);
        return Err(got
            .error
            .take()
            .map_or(EncodeError::Serde(e), EncodeError::Handle));
    }
    let count = got.duplicates.len().max(got.borrowed.len());
    if count > MAX_HANDLES {
        out.truncate(start);
        return Err(EncodeError::TooManyHandles {
            count,
            max: MAX_HANDLES,
        });
    }
    Ok(Some(got))
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
    let scope = ScopeGuard::enter(Mode::Decode, fds);
    let result = postcard::from_bytes(bytes);
    // Descriptors no handle took are closed here, with what was collected.
    let got = scope.collected();
    drop(scope);
    result.map_err(|e| {
        got.and_then(|mut g| g.error.take())
            .map_or(DecodeError::Serde(e), DecodeError::Handle)
    })
}

/// Serialize a descriptor as a handle index: the message gets its own
/// duplicate (or, inside [`encode_borrowed`], the number itself). Only
/// valid inside [`encode`].
pub(crate) fn serialize_fd<S: Serializer>(fd: BorrowedFd<'_>, s: S) -> Result<S::Ok, S::Error> {
    let index = match MODE.get() {
        Mode::EncodeDuplicates => match multiproc_sys::fd::dup(fd) {
            Ok(dup) => Ok(with_slots(|slots| {
                slots.duplicates.push(dup);
                slots.duplicates.len() - 1
            })),
            Err(e) => Err(HandleError::Duplicate(e)),
        },
        Mode::EncodeBorrowed => Ok(with_slots(|slots| {
            slots.borrowed.push(fd.as_raw_fd());
            slots.borrowed.len() - 1
        })),
        Mode::Outside | Mode::Decode => Err(HandleError::OutsideMultiproc),
    };
    match index {
        Ok(i) => s.serialize_u32(u32::try_from(i).map_err(S::Error::custom)?),
        Err(e) => Err(handle_error(e)),
    }
}

/// Deserialize a handle index into the descriptor that arrived with the
/// message. Only valid inside [`decode`].
pub(crate) fn deserialize_fd<'de, D: Deserializer<'de>>(d: D) -> Result<OwnedFd, D::Error> {
    let index = u32::deserialize(d)? as usize;
    if MODE.get() != Mode::Decode {
        return Err(handle_error_de(HandleError::OutsideMultiproc));
    }
    let taken = with_slots(|slots| {
        let available = slots.incoming.len();
        match slots.incoming.get_mut(index) {
            Some(fd) => fd.take().ok_or(HandleError::UsedTwice { index }),
            None => Err(HandleError::OutOfRange { index, available }),
        }
    });
    taken.map_err(handle_error_de)
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
    use std::os::fd::AsRawFd;

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
        // Duplicates of the value's descriptors, in index order: the same
        // open files, other numbers.
        assert_eq!(fds.len(), 2);
        let id = |fd: &OwnedFd| {
            use std::os::unix::fs::MetadataExt as _;
            let m = std::fs::File::from(fd.try_clone().unwrap())
                .metadata()
                .unwrap();
            (m.dev(), m.ino())
        };
        let same = |a: &OwnedFd, b: &Fd| id(a) == id(&b.0);
        assert!(same(&fds[0], &value.1) && same(&fds[1], &value.3));
        assert!(fds[0].as_raw_fd() != value.1.0.as_raw_fd());
        let back: (u8, Fd, String, Fd) = decode(&bytes, fds).unwrap();
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
