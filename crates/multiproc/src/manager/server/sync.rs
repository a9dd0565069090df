//! The built-in synchronization kinds: locks, conditions and barriers.

use crate::manager::protocol::RemoteError;
use crate::manager::value::DataValue;

use super::call::{Call, unknown};
use super::table::{LockState, RESETS_KEPT, State, as_count};

/// `acquire`/`release`/`locked` of a lock inside a state.
pub(super) fn lock_of(st: &mut State) -> Option<&mut LockState> {
    match st {
        State::Lock(l) | State::Value(_, l) | State::Array(_, l) => Some(l),
        State::Condition(c) => Some(&mut c.lock),
        _ => None,
    }
}

pub(super) fn lock_method(
    c: &mut Call<'_>,
    method: &str,
    args: &[DataValue],
) -> Option<Result<DataValue, RemoteError>> {
    let owner = c.owner;
    Some(match method {
        "acquire" => {
            let deadline = c.deadline;
            c.wait_for(deadline, |st| {
                Ok(lock_of(st).and_then(|l| l.try_take(owner).then_some(DataValue::Bool(true))))
            })
        }
        "release" => {
            let mut st = c.obj.lock();
            let r = lock_of(&mut st).map_or(Err(RemoteError::Index), |l| l.release(owner));
            drop(st);
            c.obj.cv.notify_all();
            r.map(|()| DataValue::Null)
        }
        "locked" => {
            let mut st = c.obj.lock();
            Ok(DataValue::Bool(
                lock_of(&mut st).is_some_and(|l| l.owner.is_some()),
            ))
        }
        _ => {
            let _ = args;
            return None;
        }
    })
}

pub(super) fn call_condition(
    c: &mut Call<'_>,
    kind: &str,
    method: &str,
    args: Vec<DataValue>,
) -> Result<DataValue, RemoteError> {
    if let Some(r) = lock_method(c, method, &args) {
        return r;
    }
    let owner = c.owner;
    match method {
        "notify" | "notify_all" => {
            let n = if method == "notify_all" {
                u64::MAX
            } else {
                match args.first() {
                    None | Some(DataValue::Null) => 1,
                    Some(v) => as_count(v, "n")?,
                }
            };
            let mut st = c.obj.lock();
            let State::Condition(cs) = &mut *st else {
                return Err(RemoteError::Protocol("corrupt object".into()));
            };
            if cs.lock.owner != Some(owner) {
                return Err(RemoteError::Release(
                    "cannot notify on un-acquired lock".into(),
                ));
            }
            let mut k = 0;
            while k < n {
                let Some(t) = cs.waiters.pop_front() else {
                    break;
                };
                cs.notified.insert(t);
                k += 1;
            }
            drop(st);
            c.obj.cv.notify_all();
            Ok(DataValue::Null)
        }
        "wait" => {
            // Release the lock entirely, remembering the recursion count.
            let (ticket, count) = {
                let mut st = c.obj.lock();
                let State::Condition(cs) = &mut *st else {
                    return Err(RemoteError::Protocol("corrupt object".into()));
                };
                if cs.lock.owner != Some(owner) {
                    return Err(RemoteError::Release(
                        "cannot wait on un-acquired lock".into(),
                    ));
                }
                let count = cs.lock.count;
                cs.lock.owner = None;
                cs.lock.count = 0;
                cs.next_ticket += 1;
                let t = cs.next_ticket;
                cs.waiters.push_back(t);
                (t, count)
            };
            c.obj.cv.notify_all();
            let deadline = c.deadline;
            let notified = c.wait_for(deadline, |st| {
                let State::Condition(cs) = st else {
                    return Err(RemoteError::Protocol("corrupt object".into()));
                };
                Ok(cs.notified.remove(&ticket).then_some(true))
            });
            // Cancelled: the caller takes the lock back before it hears
            // so (as Python's `wait` does on KeyboardInterrupt), unless a
            // notification reached it first: then the wait completed.
            let mut cancelled = false;
            let notified = match notified {
                Ok(b) => b,
                Err(e) => {
                    let mut st = c.obj.lock();
                    let State::Condition(cs) = &mut *st else {
                        return Err(RemoteError::Protocol("corrupt object".into()));
                    };
                    // A waiter that is gone must not swallow a notification.
                    cs.waiters.retain(|t| *t != ticket);
                    let notified = cs.notified.remove(&ticket);
                    match e {
                        RemoteError::Timeout => notified,
                        RemoteError::Cancelled if !notified => {
                            cancelled = true;
                            false
                        }
                        RemoteError::Cancelled => true,
                        e => return Err(e),
                    }
                }
            };
            // Take the lock back, however long that takes.
            c.wait_for(None, |st| {
                let State::Condition(cs) = st else {
                    return Err(RemoteError::Protocol("corrupt object".into()));
                };
                if cs.lock.owner.is_none() {
                    cs.lock.owner = Some(owner);
                    cs.lock.count = count;
                    Ok(Some(DataValue::Bool(notified)))
                } else {
                    Ok(None)
                }
            })
            .and_then(|v| {
                if cancelled {
                    Err(RemoteError::Cancelled)
                } else {
                    Ok(v)
                }
            })
        }
        _ => Err(unknown(kind, method)),
    }
}

pub(super) fn call_barrier(
    c: &mut Call<'_>,
    kind: &str,
    method: &str,
) -> Result<DataValue, RemoteError> {
    let corrupt = || RemoteError::Protocol("corrupt object".into());
    match method {
        "wait" => {
            let (index, generation) = {
                let mut st = c.obj.lock();
                let State::Barrier(b) = &mut *st else {
                    return Err(corrupt());
                };
                if b.broken {
                    return Err(RemoteError::BrokenBarrier);
                }
                let index = b.count;
                b.count += 1;
                if b.count == b.parties {
                    b.count = 0;
                    b.generation += 1;
                    drop(st);
                    c.obj.cv.notify_all();
                    return Ok(DataValue::Int(index as i64));
                }
                (index, b.generation)
            };
            let deadline = c.deadline;
            let mut passed = |st: &mut State| {
                let State::Barrier(b) = st else {
                    return Err(corrupt());
                };
                if b.generation != generation {
                    if b.reset_generations.contains(&generation) {
                        Err(RemoteError::BrokenBarrier)
                    } else {
                        Ok(Some(DataValue::Int(index as i64)))
                    }
                } else if b.broken {
                    Err(RemoteError::BrokenBarrier)
                } else {
                    Ok(None)
                }
            };
            let r = c.wait_for(deadline, &mut passed);
            if matches!(r, Err(RemoteError::Cancelled)) {
                // The party leaves and the barrier holds (as multiproc's own
                // `Barrier` does on Ctrl-C), unless it passed or broke first.
                let mut st = c.obj.lock();
                return match passed(&mut st)? {
                    Some(v) => Ok(v),
                    None => {
                        if let State::Barrier(b) = &mut *st {
                            b.count = b.count.saturating_sub(1);
                        }
                        Err(RemoteError::Cancelled)
                    }
                };
            }
            if matches!(r, Err(RemoteError::Timeout | RemoteError::ShuttingDown)) {
                // A party that gives up (or dies) breaks the barrier, as in Python.
                if let State::Barrier(b) = &mut *c.obj.lock() {
                    if b.generation == generation {
                        b.broken = true;
                        b.count = b.count.saturating_sub(1);
                    }
                }
                c.obj.cv.notify_all();
                return match r {
                    Err(RemoteError::Timeout) => Err(RemoteError::BrokenBarrier),
                    r => r,
                };
            }
            r
        }
        "abort" | "reset" => {
            if let State::Barrier(b) = &mut *c.obj.lock() {
                if method == "abort" {
                    b.broken = true;
                } else {
                    // Waiters of this generation get `BrokenBarrier`, as in Python.
                    if b.count > 0 {
                        if b.reset_generations.len() == RESETS_KEPT {
                            b.reset_generations.pop_front();
                        }
                        b.reset_generations.push_back(b.generation);
                    }
                    b.generation += 1;
                    b.count = 0;
                    b.broken = false;
                }
            }
            c.obj.cv.notify_all();
            Ok(DataValue::Null)
        }
        "parties" | "n_waiting" | "broken" => {
            let st = c.obj.lock();
            let State::Barrier(b) = &*st else {
                return Err(corrupt());
            };
            Ok(match method {
                "parties" => DataValue::Int(b.parties as i64),
                "n_waiting" => DataValue::Int(b.count as i64),
                _ => DataValue::Bool(b.broken),
            })
        }
        _ => Err(unknown(kind, method)),
    }
}
