//! `multiproc ls` and `multiproc clean` for the Python package's command:
//! the named objects multiproc created, read by
//! [`multiproc::names::list`] (the same as the Rust CLI's).

use multiproc::names::{self, Kind};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The named objects (of one kind, when given) as dicts with `kind`,
/// `name`, `size`, `owner_pid`, `owner_alive` and `valid`.
#[pyfunction]
#[pyo3(signature = (kind = None))]
pub fn named_objects_list<'py>(
    py: Python<'py>,
    kind: Option<&str>,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let kind = parse_kind(kind)?;
    let objs = crate::detach(py, || names::list(kind))?;
    objs.into_iter()
        .map(|o| {
            let d = PyDict::new(py);
            d.set_item("kind", o.kind.as_str())?;
            d.set_item("name", o.name)?;
            d.set_item("size", o.size)?;
            d.set_item("owner_pid", o.owner_pid)?;
            d.set_item("owner_alive", o.owner_alive)?;
            d.set_item("valid", o.valid)?;
            Ok(d)
        })
        .collect()
}

/// Remove the named object `name` of `kind` (as listed); `False` when it
/// is no longer there.
#[pyfunction]
pub fn remove_named_object(py: Python<'_>, kind: &str, name: &str) -> PyResult<bool> {
    let kind = Kind::parse(kind).map_err(value_error)?;
    crate::detach(py, || {
        if !names::list(Some(kind))?.iter().any(|o| o.name == name) {
            return Ok(false);
        }
        names::remove(kind, name).map(|()| true)
    })
    .map_err(PyErr::from)
}

fn value_error(e: names::UnknownKind) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(e.to_string())
}

fn parse_kind(kind: Option<&str>) -> PyResult<Option<Kind>> {
    kind.map(Kind::parse).transpose().map_err(value_error)
}
