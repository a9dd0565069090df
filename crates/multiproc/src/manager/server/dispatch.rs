//! Method names to the built-in kinds' implementations.

use crate::manager::protocol::{ObjectKind, RemoteError};
use crate::manager::value::DataValue;

use super::call::{Call, arg, incr, index, int_arg, len_value, unknown};
use super::collections::{call_dict, call_list, call_ns};
use super::queue::call_queue;
use super::sync::{call_barrier, call_condition, lock_method};
use super::table::{State, as_count, type_err};
use super::user::CallError;

pub(super) fn dispatch(
    c: &mut Call<'_>,
    method: &str,
    args: Vec<DataValue>,
) -> Result<DataValue, RemoteError> {
    let kind = c.obj.kind.clone();
    let Some(builtin) = c.obj.builtin else {
        let mut st = c.obj.lock();
        let State::User(u) = &mut *st else {
            return Err(RemoteError::Protocol("corrupt object".into()));
        };
        if !u.methods().contains(&method) {
            return Err(unknown(&kind, method));
        }
        let arg = args.into_iter().next().unwrap_or(DataValue::Null);
        return u.call(method, arg).map_err(|e| match e {
            CallError::BadArguments(m) => RemoteError::Type(m),
            CallError::Failed(m) => RemoteError::User(m),
        });
    };
    match builtin {
        ObjectKind::Dict | ObjectKind::List | ObjectKind::Namespace => {
            let mut st = c.obj.lock();
            match &mut *st {
                State::Dict { map, seq } => call_dict(map, seq, method, &args),
                State::List(l) => call_list(l, method, &args),
                State::Namespace(ns) => call_ns(ns, method, &args),
                _ => Err(RemoteError::Protocol("corrupt object".into())),
            }
        }
        ObjectKind::Value | ObjectKind::Array => {
            if let Some(r) = lock_method(c, method, &args) {
                return r;
            }
            let mut st = c.obj.lock();
            match (&mut *st, method) {
                (State::Value(v, _), "get") => Ok(v.clone()),
                (State::Value(v, _), "set") => Ok(std::mem::replace(v, arg(&args, 0)?.clone())),
                (State::Value(v, _), "incr") => incr(v, arg(&args, 0)?),
                (State::Value(v, _), "compare_and_set") => {
                    if v == arg(&args, 0)? {
                        *v = arg(&args, 1)?.clone();
                        Ok(DataValue::Bool(true))
                    } else {
                        Ok(DataValue::Bool(false))
                    }
                }
                (State::Array(a, _), "getitem") => {
                    Ok(a[index(a.len(), int_arg(&args, 0)?)?].clone())
                }
                (State::Array(a, _), "setitem") => {
                    let i = index(a.len(), int_arg(&args, 0)?)?;
                    Ok(std::mem::replace(&mut a[i], arg(&args, 1)?.clone()))
                }
                (State::Array(a, _), "incr") => {
                    let i = index(a.len(), int_arg(&args, 0)?)?;
                    incr(&mut a[i], arg(&args, 1)?)
                }
                (State::Array(a, _), "len") => Ok(len_value(a.len())),
                (State::Array(a, _), "tolist") => Ok(DataValue::List(a.clone())),
                (State::Array(a, _), "setall") => {
                    let new = arg(&args, 0)?
                        .as_list()
                        .ok_or_else(|| type_err("setall takes a list"))?;
                    if new.len() != a.len() {
                        return Err(RemoteError::Value("an Array's length is fixed".into()));
                    }
                    a.clone_from_slice(new);
                    Ok(DataValue::Null)
                }
                _ => Err(unknown(&kind, method)),
            }
        }
        ObjectKind::Lock | ObjectKind::RLock => {
            lock_method(c, method, &args).unwrap_or_else(|| Err(unknown(&kind, method)))
        }
        ObjectKind::Queue | ObjectKind::JoinableQueue => {
            call_queue(c, builtin, &kind, method, args)
        }
        ObjectKind::Semaphore | ObjectKind::BoundedSemaphore => match method {
            "acquire" => {
                let deadline = c.deadline;
                c.wait_for(deadline, |st| match st {
                    State::Semaphore { value, .. } if *value > 0 => {
                        *value -= 1;
                        Ok(Some(DataValue::Bool(true)))
                    }
                    _ => Ok(None),
                })
            }
            "release" => {
                let n = match args.first() {
                    None | Some(DataValue::Null) => 1,
                    Some(v) => as_count(v, "n")?,
                };
                let mut st = c.obj.lock();
                let State::Semaphore { value, bound } = &mut *st else {
                    return Err(RemoteError::Protocol("corrupt object".into()));
                };
                let new = value.checked_add(n).ok_or(RemoteError::Overflow)?;
                if bound.is_some_and(|b| new > b) {
                    return Err(RemoteError::Release(
                        "semaphore released too many times".into(),
                    ));
                }
                *value = new;
                drop(st);
                c.obj.cv.notify_all();
                Ok(DataValue::Null)
            }
            "get_value" => match &*c.obj.lock() {
                State::Semaphore { value, .. } => {
                    Ok(DataValue::Int(i64::try_from(*value).unwrap_or(i64::MAX)))
                }
                _ => Err(RemoteError::Protocol("corrupt object".into())),
            },
            _ => Err(unknown(&kind, method)),
        },
        ObjectKind::Condition => call_condition(c, &kind, method, args),
        ObjectKind::Event => match method {
            "set" | "clear" => {
                if let State::Event(e) = &mut *c.obj.lock() {
                    *e = method == "set";
                }
                c.obj.cv.notify_all();
                Ok(DataValue::Null)
            }
            "is_set" => Ok(DataValue::Bool(matches!(
                &*c.obj.lock(),
                State::Event(true)
            ))),
            "wait" => {
                let deadline = c.deadline;
                c.wait_for(deadline, |st| {
                    Ok(matches!(st, State::Event(true)).then_some(DataValue::Bool(true)))
                })
            }
            _ => Err(unknown(&kind, method)),
        },
        ObjectKind::Barrier => call_barrier(c, &kind, method),
    }
}
