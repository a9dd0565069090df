//! Objects to and from (state bytes, fds), the form the Python layer
//! pickles through `multiprocessing.reduction.DupFd`.

use crate::errors;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The encoded state of `obj` and the numbers of the descriptors it refers
/// to (its own, valid while `obj` lives): the Python layer wraps them in
/// `DupFd` at once, and a spawned child must get the object's own
/// descriptor, not a copy that would keep a pipe's end open in the parent.
pub(crate) fn state<'py, T: Serialize>(
    py: Python<'py>,
    obj: &T,
) -> PyResult<(Bound<'py, PyBytes>, Vec<RawFd>)> {
    let mut out = Vec::new();
    // SAFETY: `T` is one of multiproc's own handle types (a lock, queue,
    // connection, shared memory or manager handle, borrowed here from its
    // Python object), which own their descriptors and never close or
    // replace them while borrowed.
    let fds = unsafe { multiproc::connection::codec::encode_borrowed(obj, &mut out) }
        .map_err(errors::handle)?;
    Ok((
        PyBytes::new(py, &out),
        fds.iter().map(AsRawFd::as_raw_fd).collect(),
    ))
}

/// Rebuild an object from its state, taking ownership of `fds`.
pub(crate) fn rebuild<T: DeserializeOwned>(state: &[u8], fds: Vec<RawFd>) -> PyResult<T> {
    let owned = fds
        .into_iter()
        .map(|fd| {
            if fd < 0 {
                return Err(pyo3::exceptions::PyValueError::new_err("invalid fd"));
            }
            // SAFETY: the Python layer passes descriptors it detached from
            // `DupFd` (or duplicated itself): each is open and owned by
            // nobody else, so this `OwnedFd` is its only owner.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .collect::<PyResult<Vec<_>>>()?;
    multiproc::connection::codec::decode(state, owned).map_err(errors::handle)
}
