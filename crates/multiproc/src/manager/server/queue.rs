//! The built-in queues.

use crate::manager::protocol::{ObjectKind, RemoteError};
use crate::manager::value::DataValue;

use super::call::{Call, arg, len_value, unknown};
use super::table::State;

pub(super) fn call_queue(
    c: &mut Call<'_>,
    builtin: ObjectKind,
    kind: &str,
    method: &str,
    args: Vec<DataValue>,
) -> Result<DataValue, RemoteError> {
    let deadline = c.deadline;
    let joinable = builtin == ObjectKind::JoinableQueue;
    match method {
        "put" => {
            let mut item = Some(arg(&args, 0)?.clone());
            let r = c.wait_for(deadline, |st| {
                let State::Queue(q) = st else {
                    return Err(RemoteError::Protocol("corrupt object".into()));
                };
                if q.maxsize != 0 && q.items.len() >= q.maxsize {
                    return Ok(None);
                }
                q.items.extend(item.take());
                q.unfinished += 1;
                Ok(Some(DataValue::Null))
            });
            match r {
                Err(RemoteError::Timeout) => Err(RemoteError::Full),
                r => r,
            }
        }
        "get" => {
            let r = c.wait_for(deadline, |st| {
                let State::Queue(q) = st else {
                    return Err(RemoteError::Protocol("corrupt object".into()));
                };
                Ok(q.items.pop_front())
            });
            match r {
                Err(RemoteError::Timeout) => Err(RemoteError::Empty),
                r => r,
            }
        }
        "qsize" | "empty" | "full" => {
            let st = c.obj.lock();
            let State::Queue(q) = &*st else {
                return Err(RemoteError::Protocol("corrupt object".into()));
            };
            Ok(match method {
                "qsize" => len_value(q.items.len()),
                "empty" => DataValue::Bool(q.items.is_empty()),
                _ => DataValue::Bool(q.maxsize != 0 && q.items.len() >= q.maxsize),
            })
        }
        "task_done" if joinable => {
            let mut st = c.obj.lock();
            let State::Queue(q) = &mut *st else {
                return Err(RemoteError::Protocol("corrupt object".into()));
            };
            if q.unfinished == 0 {
                return Err(RemoteError::TaskDone);
            }
            q.unfinished -= 1;
            drop(st);
            c.obj.cv.notify_all();
            Ok(DataValue::Null)
        }
        "join" if joinable => c.wait_for(deadline, |st| {
            let State::Queue(q) = st else {
                return Err(RemoteError::Protocol("corrupt object".into()));
            };
            Ok((q.unfinished == 0).then_some(DataValue::Null))
        }),
        _ => Err(unknown(kind, method)),
    }
}
