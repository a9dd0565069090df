//! Objects to and from (state bytes, fds), the form the Python layer
//! pickles through `multiprocessing.reduction.DupFd`.

use crate::errors;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};

/// The encoded state of `obj` and duplicates of the descriptors it refers
/// to, owned by the caller: the Python layer hands each to
/// `_reduction.dup_fds`, which closes it once pickling no longer needs it.
pub(crate) fn state<'py, T: Serialize>(
    py: Python<'py>,
    obj: &T,
) -> PyResult<(Bound<'py, PyBytes>, Vec<RawFd>)> {
    let mut out = Vec::new();
    let fds = multiproc::connection::codec::encode(obj, &mut out).map_err(errors::handle)?;
    Ok((
        PyBytes::new(py, &out),
        fds.into_iter().map(IntoRawFd::into_raw_fd).collect(),
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
