//! Named kernel objects: everything multiproc creates under a name, for
//! `multiproc ls` and `multiproc clean`.
//!
//! - [`Kind`]: the kinds (named segments, FIFOs, POSIX message queues,
//!   System V objects, socket files).
//! - [`NamedKind`]: what a kind can do (exists, remove, list), implemented
//!   next to each object; [`KINDS`] is the table of all of them.
//! - [`registry`]: the record store for the kinds that cannot carry their
//!   owner record themselves (everything but named segments).
//! - [`list`], [`exists`], [`remove`]: one listing and one removal for
//!   every kind, through the table.
//!
//! What may not live here: the objects themselves. This module only names
//! them; `os/`, `shared/` and `connection/` implement [`NamedKind`], and
//! nothing they import comes from this file (only from [`registry`] and the
//! leaf modules), so the imports stay a tree.

use std::io;

pub mod kind;
pub mod object;
pub mod registry;

pub use kind::{Kind, UnknownKind};
pub use object::{NamedKind, NamedObject};

use crate::connection::SOCKET_FILES;
use crate::os::fifo::FIFOS;
use crate::os::posix::POSIX_QUEUES;
use crate::os::sysv::{SYSV_MESSAGE_QUEUES, SYSV_SEMAPHORE_SETS, SYSV_SHARED_MEMORY};
use crate::shared::segment::NAMED_SEGMENTS;

/// Every kind of named object, in listing order ([`Kind::ALL`]'s).
pub static KINDS: [&dyn NamedKind; 7] = [
    &NAMED_SEGMENTS,
    &FIFOS,
    &POSIX_QUEUES,
    &SYSV_MESSAGE_QUEUES,
    &SYSV_SEMAPHORE_SETS,
    &SYSV_SHARED_MEMORY,
    &SOCKET_FILES,
];

/// The table entry of `kind`.
pub fn of(kind: Kind) -> &'static dyn NamedKind {
    KINDS
        .into_iter()
        .find(|k| k.kind() == kind)
        .expect("KINDS has an entry for every Kind")
}

/// Every named object multiproc created, or those of one `kind`: named
/// segments first, then the registry's records, each kind sorted by name.
pub fn list(kind: Option<Kind>) -> io::Result<Vec<NamedObject>> {
    let mut out = Vec::new();
    for k in KINDS {
        if kind.is_none_or(|want| want == k.kind()) {
            let mut objects = k.list()?;
            objects.sort_by(|a, b| a.name.cmp(&b.name));
            out.extend(objects);
        }
    }
    Ok(out)
}

/// Whether the object `name` of `kind` exists.
pub fn exists(kind: Kind, name: &str) -> bool {
    of(kind).exists(name)
}

/// Remove the object `name` of `kind` and its owner record. An object that
/// is already gone only loses its record.
pub fn remove(kind: Kind, name: &str) -> io::Result<()> {
    match of(kind).remove(name) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ if kind == Kind::Shm => Ok(()),
        _ => registry::forget(kind, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_every_kind_once_in_listing_order() {
        let kinds: Vec<Kind> = KINDS.iter().map(|k| k.kind()).collect();
        assert_eq!(kinds, Kind::ALL);
    }
}
