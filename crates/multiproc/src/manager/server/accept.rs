//! Accepting connections: one thread each, and the sweeper of expired loans.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::connection::Listener;
use crate::manager::protocol::Request;

use super::session::serve_connection;
use super::table::Shared;

pub(super) fn accept_loop(listener: &Arc<Listener>, shared: &Arc<Shared>, sweeper: bool) {
    while !shared.shutdown.load(Ordering::Relaxed) {
        if sweeper {
            shared.table().sweep_loans(Instant::now());
        }
        match listener.accept_timeout::<Request>(Duration::from_millis(100)) {
            Ok(conn) => {
                let shared = shared.clone();
                let tcp = listener.address().is_tcp();
                let _ = std::thread::Builder::new()
                    .name("manager-conn".into())
                    .spawn(move || serve_connection(&shared, conn, tcp));
            }
            Err(crate::connection::AcceptError::Timeout) => {}
            Err(e) if e.is_authentication() => {}
            Err(crate::connection::AcceptError::Io(_)) => {
                // Out of descriptors or memory: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => {}
        }
    }
}
