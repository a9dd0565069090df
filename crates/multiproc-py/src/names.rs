//! `multiproc ls` and `multiproc clean` for the Python package's command:
//! the named objects multiproc created, read by
//! [`multiproc::names::registry::named_objects`] (the same as the Rust CLI's).

use multiproc::names::registry::named_objects;
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
    let objs = py
        .detach(|| named_objects(kind))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput => {
                pyo3::exceptions::PyValueError::new_err(e.to_string())
            }
            _ => PyErr::from(e),
        })?;
    objs.into_iter()
        .map(|o| {
            let d = PyDict::new(py);
            d.set_item("kind", o.kind)?;
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
    py.detach(|| {
        let Some(o) = named_objects(Some(kind))?
            .into_iter()
            .find(|o| o.name == name)
        else {
            return Ok(false);
        };
        o.remove().map(|()| true)
    })
    .map_err(PyErr::from)
}
