//! One connection's session: the `Hello`, then each request answered in
//! turn (with heartbeats while a call waits), until the client goes away.
//! A primary connection's end ends its session.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Shared;
use crate::error::TryError;
use crate::manager::error::{ProtocolError, RemoteError};
use crate::manager::objects::{self, Ctx, Tick};
use crate::manager::protocol::{
    HEARTBEAT, HEARTBEAT_TIMEOUT, PROTOCOL_VERSION, Request, Response, max_frame,
};
use crate::manager::value::DataValue;
use crate::{Connection, RecvError};

/// TCP keepalive of server connections: a vanished client is dropped
/// after about idle + interval × probes (25 s).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_PROBES: u32 = 3;

/// How long a connection's thread looks for the next request before
/// sleeping on the socket (clients often call again at once).
const SPIN: Duration = Duration::from_micros(50);

/// A waiting call's check on its client, over the call's connection.
struct ConnTick<'a> {
    rx: &'a mut Connection<Request>,
    tx: &'a mut Connection<Response>,
    last_beat: Instant,
    shared: &'a Shared,
}

impl Tick for ConnTick<'_> {
    fn tick(&mut self) -> Result<(), RemoteError> {
        // Ordering::Relaxed: a flag polled between waits.
        if self.shared.shutdown.load(Ordering::Relaxed) {
            return Err(RemoteError::ShuttingDown);
        }
        // A client sends nothing while it waits for an answer but a
        // `Cancel`: anything else (end of file, mostly) means it is gone.
        match self.rx.try_recv() {
            Err(TryError::WouldBlock) => {}
            Ok(Request::Cancel) => return Err(RemoteError::Cancelled),
            _ => return Err(RemoteError::ShuttingDown),
        }
        if self.last_beat.elapsed() >= HEARTBEAT {
            self.last_beat = Instant::now();
            if self.tx.send(&Response::Pending).is_err() {
                return Err(RemoteError::ShuttingDown);
            }
        }
        Ok(())
    }
}

/// Counts a connection while it is open.
struct ConnCount<'a>(&'a AtomicU64);

impl Drop for ConnCount<'_> {
    fn drop(&mut self) {
        // Ordering::Relaxed: a count for monitoring.
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serve the connection `rx` until it closes.
pub(super) fn serve_connection(shared: &Shared, mut rx: Connection<Request>, tcp: bool) {
    // Ordering::Relaxed: a count for monitoring.
    shared.connections.fetch_add(1, Ordering::Relaxed);
    let _count = ConnCount(&shared.connections);
    if tcp {
        // A TCP client that vanishes (no FIN, no RST) is noticed by the
        // kernel's probes; its session then ends like any other.
        let _ = multiproc_sys::net::set_keepalive(
            &rx,
            KEEPALIVE_IDLE,
            KEEPALIVE_INTERVAL,
            KEEPALIVE_PROBES,
        );
    }
    rx.set_max_message_size(max_frame());
    let Ok(mut tx) = rx.try_clone().map(|c| c.cast::<Response>()) else {
        return;
    };
    tx.set_max_message_size(max_frame());
    // Hello first.
    let (session, primary) = match rx.recv_timeout(HEARTBEAT_TIMEOUT) {
        Ok(Request::Hello {
            version,
            session,
            primary,
        }) => {
            if version != PROTOCOL_VERSION {
                let _ = tx.send(&Response::Error(RemoteError::Version {
                    server: PROTOCOL_VERSION,
                    client: version,
                }));
                return;
            }
            (session, primary)
        }
        Ok(_) => {
            let _ = tx.send(&Response::Error(ProtocolError::ExpectedHello.into()));
            return;
        }
        Err(_) => return,
    };
    if primary {
        let opened = shared.table().open_session(session);
        if let Err(e) = opened {
            let _ = tx.send(&Response::Error(e.into()));
            return;
        }
    }
    if tx
        .send(&Response::Value(DataValue::Int(i64::from(
            PROTOCOL_VERSION,
        ))))
        .is_ok()
    {
        session_loop(shared, session, &mut rx, &mut tx);
    }
    if primary {
        shared.end_session(session);
    }
}

/// Answer requests until the client goes away or asks for shutdown.
fn session_loop(
    shared: &Shared,
    session: u64,
    rx: &mut Connection<Request>,
    tx: &mut Connection<Response>,
) {
    loop {
        let req = match recv_request(rx) {
            Ok(r) => r,
            Err(RecvError::Decode(e)) => {
                // The frame was whole but is not a request: refuse it, keep going.
                let e = ProtocolError::BadRequest(e.to_string());
                if tx.send(&Response::Error(e.into())).is_err() {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        if matches!(req, Request::Cancel) {
            // The call it was meant for has answered already.
            continue;
        }
        let shutdown = matches!(req, Request::Shutdown);
        let resp = handle(shared, session, req, rx, tx);
        match tx.send(&resp) {
            Ok(()) => {}
            Err(crate::SendError::TooLarge { len, max }) => {
                // Nothing was written: say why instead of the answer.
                let e = RemoteError::TooLarge { len, max };
                if tx.send(&Response::Error(e)).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
        if shutdown {
            return;
        }
    }
}

fn recv_request(rx: &mut Connection<Request>) -> Result<Request, RecvError> {
    let spin_until = Instant::now() + SPIN;
    loop {
        match rx.try_recv() {
            Err(TryError::WouldBlock) if Instant::now() < spin_until => std::thread::yield_now(),
            Err(TryError::WouldBlock) => return rx.recv(),
            Err(TryError::Failed(e)) => return Err(e),
            Ok(r) => return Ok(r),
        }
    }
}

/// The answer to `req` from `session`.
fn handle(
    shared: &Shared,
    session: u64,
    req: Request,
    rx: &mut Connection<Request>,
    tx: &mut Connection<Response>,
) -> Response {
    let done = |()| Response::Value(DataValue::Null);
    let result = match req {
        Request::Hello { .. } => Err(ProtocolError::HelloTwice.into()),
        Request::Create { kind, init } => objects::new_builtin(kind, init)
            .and_then(|obj| shared.table().insert(session, obj))
            .map(Response::Created),
        Request::CreateUser { type_name, args } => match shared.types.factory(&type_name) {
            None => Err(RemoteError::UnknownType(type_name)),
            Some(factory) => factory(args)
                .map_err(|e| RemoteError::User(e.to_string()))
                .and_then(|u| {
                    let obj = objects::new_user(type_name, u);
                    shared.table().insert(session, obj)
                })
                .map(Response::Created),
        },
        Request::Named { name, kind, init } => shared
            .table()
            .named(session, name, kind, || objects::new_builtin(kind, init))
            .map(Response::Created),
        Request::IncRef(id) => shared.table().add_ref(session, id).map(done),
        Request::DecRef(id) => shared.table().dec_ref(session, id).map(done),
        Request::Lend(id) => shared
            .table()
            .lend(session, id)
            .map(|token| Response::Value(DataValue::Int(token as i64))),
        Request::Claim { id, token } => shared.table().claim(session, id, token).map(done),
        Request::Call {
            id,
            method,
            args,
            timeout_ms,
            owner,
        } => shared.object(id).and_then(|obj| {
            let mut tick = ConnTick {
                rx,
                tx,
                last_beat: Instant::now(),
                shared,
            };
            let timeout = timeout_ms.map(Duration::from_millis);
            obj.call(method, args, timeout, &mut Ctx::new(owner, &mut tick))
                .map(Response::Value)
        }),
        Request::Stats => Ok(Response::Stats(shared.stats())),
        // Taken care of by `session_loop` (and `ConnTick`).
        Request::Cancel => Err(ProtocolError::NothingToCancel.into()),
        Request::Shutdown => {
            // Ordering::Relaxed: a flag polled by the acceptor and waits.
            shared.shutdown.store(true, Ordering::Relaxed);
            Ok(Response::Value(DataValue::Null))
        }
    };
    result.unwrap_or_else(Response::Error)
}
