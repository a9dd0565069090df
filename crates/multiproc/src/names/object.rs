//! What every kind of named object can do ([`NamedKind`]): tell whether an
//! object exists, remove it, list them; and the listing's row
//! ([`NamedObject`]).
//!
//! The implementations live next to the objects they name (`os/`,
//! `shared/segment`, `connection/listener`); the table of all of them is
//! [`crate::names::KINDS`].

use std::io;

use super::kind::Kind;
use super::registry;

/// One named object multiproc created, whatever its kind: what
/// `multiproc ls` lists and `multiproc clean` removes (the CLI and the
/// Python package's command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedObject {
    /// What it is.
    pub kind: Kind,
    /// The object's name (a segment's name without its prefix, a path, an
    /// id).
    pub name: String,
    /// Size in bytes, where the kind has one.
    pub size: Option<u64>,
    /// Pid of the creating process (0 when unknown).
    pub owner_pid: u32,
    /// Whether the owner is still alive (a later process that reused the
    /// pid does not count).
    pub owner_alive: bool,
    /// The object exists and is what its record says.
    pub valid: bool,
}

/// One kind of named object: how to tell whether one exists, remove it,
/// and list those multiproc created. Implemented next to each object
/// (FIFOs, POSIX message queues, System V objects, socket files, named
/// segments); [`crate::names::KINDS`] is the table of all of them.
pub trait NamedKind: Sync {
    /// Which kind this is.
    fn kind(&self) -> Kind;

    /// Whether the object `name` still exists.
    fn exists(&self, name: &str) -> bool;

    /// Remove the object `name`. One that is already gone is `NotFound`.
    fn remove(&self, name: &str) -> io::Result<()>;

    /// The objects of this kind multiproc created. By default the records
    /// of this kind in the default [`registry`], each checked with
    /// [`exists`](Self::exists).
    fn list(&self) -> io::Result<Vec<NamedObject>> {
        Ok(registry::list()?
            .into_iter()
            .filter(|r| r.kind == self.kind())
            .map(|r| NamedObject {
                kind: r.kind,
                valid: self.exists(&r.name),
                name: r.name,
                size: None,
                owner_pid: r.owner_pid,
                owner_alive: r.owner_alive,
            })
            .collect())
    }
}
