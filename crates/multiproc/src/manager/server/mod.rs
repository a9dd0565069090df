//! The manager server: an object table, one thread per connection, and the
//! built-in objects' server-side implementations.
//!
//! - [`table`]: every object's state, reference counts and loans.
//! - [`session`] and [`accept`]: one client connection's loop, and
//!   accepting them.
//! - [`dispatch`]: a method name to a kind's implementation;
//!   [`collections`], [`sync`] and [`queue`] implement the built-in kinds
//!   over the helpers of [`call`].
//! - [`user`]: user types ([`ManagedObject`]) and their registry.
//!
//! What may not live here: the wire format (`protocol`), values
//! (`value`), and anything a client runs (`client`, `proxies`).

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use crate::connection::{Address, Listener};
mod accept;
mod call;
mod collections;
mod dispatch;
mod queue;
mod session;
mod sync;
mod table;
mod user;

use accept::accept_loop;
use table::{Shared, Table};
pub use user::{CallError, Factory, ManagedObject, TypeRegistry};

// ----- the server --------------------------------------------------------------

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

/// Threads that accept connections. One is enough: the listener runs each
/// handshake on its own thread, so a client that connects and says nothing
/// holds up no one (and one address can keep at most
/// [`MAX_PREAUTH_PER_PEER`](crate::connection::MAX_PREAUTH_PER_PEER)
/// handshakes going).
const ACCEPTORS: usize = 1;

impl Server {
    /// Serve on `listener` (which does the authentication) with the
    /// built-in types and `types`.
    pub fn new(listener: Listener, types: TypeRegistry) -> Server {
        Server {
            listener: Arc::new(listener),
            shared: Arc::new(Shared {
                types,
                table: Mutex::new(Table::default()),
                shutdown: AtomicBool::new(false),
                connections: AtomicU64::new(0),
            }),
        }
    }

    /// The address clients connect to.
    pub fn address(&self) -> &Address {
        self.listener.address()
    }

    /// Serve until a client asks for shutdown. Connections still open then
    /// are served until the process exits or they close.
    pub fn serve(self) -> io::Result<()> {
        let mut acceptors = Vec::new();
        for i in 0..ACCEPTORS {
            let listener = self.listener.clone();
            let shared = self.shared.clone();
            acceptors.push(
                std::thread::Builder::new()
                    .name(format!("manager-accept-{i}"))
                    .spawn(move || accept_loop(&listener, &shared, i == 0))?,
            );
        }
        for a in acceptors {
            let _ = a.join();
        }
        Ok(())
    }
}
