//! One client connection: reading requests, running them, answering, and
//! noticing when the client is gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::manager::protocol::{
    HEARTBEAT, ObjectKind, PROTOCOL_VERSION, RemoteError, Request, Response, max_frame,
};
use crate::manager::value::DataValue;
use crate::{Connection, RecvError};

use super::call::{Call, Tick};
use super::dispatch::dispatch;
use super::table::{Loan, Object, Shared, State, kind_name, new_state, type_err};

// ----- connections -------------------------------------------------------------

pub(super) struct ConnTick<'a> {
    rx: &'a mut Connection<Request>,
    tx: &'a mut Connection<Response>,
    last_beat: Instant,
    shared: &'a Shared,
}

impl Tick for ConnTick<'_> {
    fn tick(&mut self) -> Result<(), RemoteError> {
        if self.shared.shutdown.load(Ordering::Relaxed) {
            return Err(RemoteError::ShuttingDown);
        }
        // A client sends nothing while it waits for an answer but a
        // `Cancel`: anything else (end of file, mostly) means it is gone.
        match self.rx.try_recv() {
            Err(RecvError::Empty) => {}
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

pub(super) struct ConnCount<'a>(&'a AtomicU64);

impl Drop for ConnCount<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) fn serve_connection(shared: &Shared, mut rx: Connection<Request>, tcp: bool) {
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
    let (session, primary) = match rx.recv_timeout(crate::manager::protocol::HEARTBEAT_TIMEOUT) {
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
            let _ = tx.send(&Response::Error(RemoteError::Protocol(
                "expected Hello".into(),
            )));
            return;
        }
        Err(_) => return,
    };
    if primary {
        let mut t = shared.table();
        if t.sessions.contains_key(&session) {
            drop(t);
            let _ = tx.send(&Response::Error(RemoteError::Protocol(
                "session already has a primary connection".into(),
            )));
            return;
        }
        t.sessions.insert(session, HashMap::new());
    }
    if tx
        .send(&Response::Value(DataValue::Int(i64::from(
            PROTOCOL_VERSION,
        ))))
        .is_ok()
    {
        connection_loop(shared, session, &mut rx, &mut tx);
    }
    if primary {
        shared.end_session(session);
    }
}

pub(super) fn connection_loop(
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
                if tx
                    .send(&Response::Error(RemoteError::Protocol(format!(
                        "bad request: {e}"
                    ))))
                    .is_err()
                {
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

/// TCP keepalive of server connections: a vanished client is dropped
/// after about idle + interval × probes (25 s).
pub(super) const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
pub(super) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
pub(super) const KEEPALIVE_PROBES: u32 = 3;

/// How long a connection's thread looks for the next request before
/// sleeping on the socket (clients often call again at once).
pub(super) const SPIN: Duration = Duration::from_micros(50);

pub(super) fn recv_request(rx: &mut Connection<Request>) -> Result<Request, RecvError> {
    let spin_until = Instant::now() + SPIN;
    loop {
        match rx.try_recv() {
            Err(RecvError::Empty) if Instant::now() < spin_until => std::thread::yield_now(),
            Err(RecvError::Empty) => return rx.recv(),
            r => return r,
        }
    }
}

pub(super) fn handle(
    shared: &Shared,
    session: u64,
    req: Request,
    rx: &mut Connection<Request>,
    tx: &mut Connection<Response>,
) -> Response {
    let result = match req {
        Request::Hello { .. } => Err(RemoteError::Protocol("Hello twice".into())),
        Request::Create { kind, init } => new_state(kind, init).and_then(|st| {
            shared
                .table()
                .insert(session, builtin_object(kind, st))
                .map(Response::Created)
        }),
        Request::CreateUser { type_name, args } => match shared.types.types.get(&type_name) {
            None => Err(RemoteError::UnknownType(type_name)),
            Some(factory) => factory(args)
                .map_err(|e| RemoteError::User(e.to_string()))
                .and_then(|u| {
                    shared
                        .table()
                        .insert(
                            session,
                            Object {
                                kind: type_name,
                                builtin: None,
                                state: Mutex::new(State::User(u)),
                                cv: Condvar::new(),
                            },
                        )
                        .map(Response::Created)
                }),
        },
        Request::Named { name, kind, init } => {
            let mut t = shared.table();
            match t.names.get(&name).copied() {
                Some(id) => match t.objects.get(&id) {
                    Some(e) if e.obj.builtin == Some(kind) => {
                        t.add_ref(session, id).map(|()| Response::Created(id))
                    }
                    Some(e) => Err(type_err(format!("{name:?} is a {}", e.obj.kind))),
                    None => Err(RemoteError::UnknownObject(id)),
                },
                None => new_state(kind, init).and_then(|st| {
                    let id = t.insert(session, builtin_object(kind, st))?;
                    t.names.insert(name, id);
                    if let Some(e) = t.objects.get_mut(&id) {
                        e.refs += 1;
                    }
                    Ok(Response::Created(id))
                }),
            }
        }
        Request::IncRef(id) => shared
            .table()
            .add_ref(session, id)
            .map(|()| Response::Value(DataValue::Null)),
        Request::DecRef(id) => {
            let mut t = shared.table();
            let held = t.sessions.get_mut(&session).and_then(|r| {
                let n = r.get_mut(&id)?;
                *n -= 1;
                if *n == 0 {
                    r.remove(&id);
                }
                Some(())
            });
            match held {
                Some(()) => {
                    t.drop_ref(id);
                    Ok(Response::Value(DataValue::Null))
                }
                None => Err(RemoteError::UnknownObject(id)),
            }
        }
        Request::Lend(id) => {
            let mut t = shared.table();
            if !t.sessions.contains_key(&session) {
                Err(RemoteError::Protocol(
                    "session has no primary connection".into(),
                ))
            } else if let Some(e) = t.objects.get_mut(&id) {
                e.refs += 1;
                t.next_token += 1;
                let token = t.next_token;
                t.loans.insert(
                    token,
                    Loan {
                        session,
                        id,
                        orphaned: None,
                    },
                );
                Ok(Response::Value(DataValue::Int(token as i64)))
            } else {
                Err(RemoteError::UnknownObject(id))
            }
        }
        Request::Claim { id, token } => {
            let mut t = shared.table();
            match t.loans.get(&token).map(|l| l.id) {
                Some(lent) if lent == id => match t.sessions.get_mut(&session) {
                    Some(r) => {
                        *r.entry(id).or_insert(0) += 1;
                        t.loans.remove(&token);
                        Ok(Response::Value(DataValue::Null))
                    }
                    None => Err(RemoteError::Protocol(
                        "session has no primary connection".into(),
                    )),
                },
                _ => t
                    .add_ref(session, id)
                    .map(|()| Response::Value(DataValue::Null)),
            }
        }
        Request::Call {
            id,
            method,
            args,
            timeout_ms,
            owner,
        } => shared.object(id).and_then(|obj| {
            // A timeout too long to represent is no timeout (never a panic).
            let deadline =
                timeout_ms.and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)));
            let mut tick = ConnTick {
                rx,
                tx,
                last_beat: Instant::now(),
                shared,
            };
            let mut call = Call {
                obj: &obj,
                owner,
                deadline,
                tick: &mut tick,
            };
            dispatch(&mut call, &method, args).map(Response::Value)
        }),
        Request::Stats => Ok(Response::Stats(shared.stats())),
        // Taken care of by `connection_loop` (and `ConnTick`).
        Request::Cancel => Err(RemoteError::Protocol(
            "Cancel with nothing to cancel".into(),
        )),
        Request::Shutdown => {
            shared.shutdown.store(true, Ordering::Relaxed);
            Ok(Response::Value(DataValue::Null))
        }
    };
    result.unwrap_or_else(Response::Error)
}

pub(super) fn builtin_object(kind: ObjectKind, st: State) -> Object {
    Object {
        kind: kind_name(kind).to_owned(),
        builtin: Some(kind),
        state: Mutex::new(st),
        cv: Condvar::new(),
    }
}
