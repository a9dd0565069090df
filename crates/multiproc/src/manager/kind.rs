//! The kinds of object a manager server holds, as named on the wire.

use serde::{Deserialize, Serialize};

/// The built-in object kinds (Python's `SyncManager` type ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ObjectKind {
    /// `dict`: init is a map (or null).
    Dict,
    /// `list`: init is a list (or null).
    List,
    /// `Namespace`: init is a map of string keys (or null).
    Namespace,
    /// `Value`: init is the value.
    Value,
    /// `Array`: init is a list.
    Array,
    /// `Queue`: init is the maximum size (0 or null: unbounded).
    Queue,
    /// `JoinableQueue`: init is the maximum size.
    JoinableQueue,
    /// `Lock`.
    Lock,
    /// `RLock`.
    RLock,
    /// `Semaphore`: init is the initial value.
    Semaphore,
    /// `BoundedSemaphore`: init is the initial (and maximum) value.
    BoundedSemaphore,
    /// `Condition` (with its own `RLock`).
    Condition,
    /// `Event`.
    Event,
    /// `Barrier`: init is the number of parties.
    Barrier,
}

impl ObjectKind {
    /// Every kind.
    pub const ALL: [ObjectKind; 14] = [
        ObjectKind::Dict,
        ObjectKind::List,
        ObjectKind::Namespace,
        ObjectKind::Value,
        ObjectKind::Array,
        ObjectKind::Queue,
        ObjectKind::JoinableQueue,
        ObjectKind::Lock,
        ObjectKind::RLock,
        ObjectKind::Semaphore,
        ObjectKind::BoundedSemaphore,
        ObjectKind::Condition,
        ObjectKind::Event,
        ObjectKind::Barrier,
    ];

    /// Python's type id: `dict`, `list`, `Namespace`, `Queue`, ….
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Dict => "dict",
            ObjectKind::List => "list",
            ObjectKind::Namespace => "Namespace",
            ObjectKind::Value => "Value",
            ObjectKind::Array => "Array",
            ObjectKind::Queue => "Queue",
            ObjectKind::JoinableQueue => "JoinableQueue",
            ObjectKind::Lock => "Lock",
            ObjectKind::RLock => "RLock",
            ObjectKind::Semaphore => "Semaphore",
            ObjectKind::BoundedSemaphore => "BoundedSemaphore",
            ObjectKind::Condition => "Condition",
            ObjectKind::Event => "Event",
            ObjectKind::Barrier => "Barrier",
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no [`ObjectKind`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown type {0:?}")]
pub struct UnknownKind(pub String);

impl std::str::FromStr for ObjectKind {
    type Err = UnknownKind;

    /// The kind of a [`name`](ObjectKind::name).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ObjectKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| UnknownKind(name.to_owned()))
    }
}
