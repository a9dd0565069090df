//! The manager server: the object table with its references, loans and
//! names ([`table`]), one thread per connection running that connection's
//! session ([`session`]), and the thread that accepts connections
//! ([`accept`]).
//!
//! What lives here: who holds what, and the wire. What may not: the
//! objects' own semantics, and method names. A call reaches its object
//! through [`AnyObject::call`], which parses the name into the object's
//! typed operation (see [`objects`](super::objects)); nothing here reads
//! one.

mod accept;
mod session;
mod table;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::error::RemoteError;
use super::objects::{AnyObject, TypeRegistry};
use super::protocol::ServerStats;
use crate::connection::{Address, Listener};
use table::Table;

/// What every connection's thread shares.
struct Shared {
    types: TypeRegistry,
    table: Mutex<Table>,
    shutdown: AtomicBool,
    connections: AtomicU64,
}

impl Shared {
    fn new(types: TypeRegistry) -> Shared {
        Shared {
            types,
            table: Mutex::new(Table::default()),
            shutdown: AtomicBool::new(false),
            connections: AtomicU64::new(0),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn object(&self, id: u64) -> Result<Arc<dyn AnyObject>, RemoteError> {
        self.table().object(id)
    }

    /// A session's primary connection closed: release its locks, loans and
    /// references.
    fn end_session(&self, session: u64) {
        // The objects' locks are taken with the table's released.
        let objects = self.table().objects();
        for obj in objects {
            obj.end_session(session);
        }
        self.table().end_session(session, Instant::now());
    }

    fn stats(&self) -> ServerStats {
        let mut t = self.table();
        t.sweep_loans(Instant::now());
        let (objects, refs, sessions) = t.counts();
        ServerStats {
            objects,
            refs,
            // Ordering::Relaxed: a count for monitoring.
            connections: self.connections.load(Ordering::Relaxed),
            sessions,
        }
    }
}

/// A manager server: serves the built-in objects and registered user types
/// to authenticated clients, one thread per connection.
pub struct Server {
    listener: Arc<Listener>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("address", self.listener.address())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Serve on `listener` (which does the authentication) with the
    /// built-in types and `types`.
    pub fn new(listener: Listener, types: TypeRegistry) -> Server {
        Server {
            listener: Arc::new(listener),
            shared: Arc::new(Shared::new(types)),
        }
    }

    /// The address clients connect to.
    pub fn address(&self) -> &Address {
        self.listener.address()
    }

    /// Serve until a client asks for shutdown. Connections still open then
    /// are served until the process exits or they close.
    pub fn serve(self) -> io::Result<()> {
        accept::run(&self.listener, &self.shared)
    }
}
