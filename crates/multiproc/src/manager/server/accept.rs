//! Accepting connections: each authenticated one gets a thread running its
//! session; the first acceptor also sweeps expired loans.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Shared;
use super::session::serve_connection;
use crate::connection::{AcceptError, Listener};
use crate::error::TimeoutError;
use crate::manager::protocol::Request;

/// Threads that accept connections. One is enough: the listener runs each
/// handshake on its own thread, so a client that connects and says nothing
/// holds up no one (and one address can keep at most
/// [`MAX_PREAUTH_PER_PEER`](crate::connection::MAX_PREAUTH_PER_PEER)
/// handshakes going).
const ACCEPTORS: usize = 1;

/// How long an acceptor waits for a connection before looking at the
/// shutdown flag (and sweeping loans) again.
const POLL: Duration = Duration::from_millis(100);

/// Accept until a client asks for shutdown.
pub(super) fn run(listener: &Arc<Listener>, shared: &Arc<Shared>) -> io::Result<()> {
    let mut acceptors = Vec::new();
    for i in 0..ACCEPTORS {
        let listener = listener.clone();
        let shared = shared.clone();
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

fn accept_loop(listener: &Arc<Listener>, shared: &Arc<Shared>, sweeper: bool) {
    // Ordering::Relaxed: a flag polled every `POLL`.
    while !shared.shutdown.load(Ordering::Relaxed) {
        if sweeper {
            shared.table().sweep_loans(Instant::now());
        }
        match listener.accept_timeout::<Request>(POLL) {
            Ok(conn) => {
                let shared = shared.clone();
                let tcp = listener.address().is_tcp();
                let _ = std::thread::Builder::new()
                    .name("manager-conn".into())
                    .spawn(move || serve_connection(&shared, conn, tcp));
            }
            Err(TimeoutError::Timeout) => {}
            Err(TimeoutError::Failed(e)) if e.is_authentication() => {}
            Err(TimeoutError::Failed(AcceptError::Io(_))) => {
                // Out of descriptors or memory: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => {}
        }
    }
}
