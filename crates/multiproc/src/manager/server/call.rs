//! One call on an object: the call context that can wait in slices (and
//! notice a dead connection), and the argument helpers every kind uses.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::manager::protocol::{Owner, RemoteError};
use crate::manager::value::DataValue;

use super::table::{Object, State, type_err};

// ----- calls -------------------------------------------------------------------

/// Checks, between waits, that the client is still there and tells it the
/// server is.
pub(super) trait Tick {
    /// `Err` ends the wait: [`RemoteError::Cancelled`] when the client
    /// asked to stop, [`RemoteError::ShuttingDown`] when the server stops or
    /// the client is gone.
    fn tick(&mut self) -> Result<(), RemoteError>;
}

/// A call being served: the object, the caller, its deadline.
pub(super) struct Call<'a> {
    pub(super) obj: &'a Object,
    pub(super) owner: Owner,
    pub(super) deadline: Option<Instant>,
    pub(super) tick: &'a mut dyn Tick,
}

/// How often a waiting call looks at its client (a cancel takes effect
/// within this).
pub(super) const SLICE: Duration = Duration::from_millis(20);

impl Call<'_> {
    /// Run `attempt` under the object's lock until it gives a result,
    /// waiting on the object's condvar in between (up to the deadline).
    pub(super) fn wait_for<R>(
        &mut self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&mut State) -> Result<Option<R>, RemoteError>,
    ) -> Result<R, RemoteError> {
        loop {
            let mut st = self.obj.lock();
            if let Some(r) = attempt(&mut st)? {
                drop(st);
                self.obj.cv.notify_all();
                return Ok(r);
            }
            let now = Instant::now();
            let slice = match deadline {
                Some(d) if now >= d => return Err(RemoteError::Timeout),
                Some(d) => (d - now).min(SLICE),
                None => SLICE,
            };
            let (st, _) = self
                .obj
                .cv
                .wait_timeout(st, slice)
                .unwrap_or_else(|e| e.into_inner());
            drop(st);
            self.tick.tick()?;
        }
    }
}

pub(super) fn arg(args: &[DataValue], i: usize) -> Result<&DataValue, RemoteError> {
    args.get(i)
        .ok_or_else(|| type_err(format!("missing argument {}", i + 1)))
}

pub(super) fn int_arg(args: &[DataValue], i: usize) -> Result<i64, RemoteError> {
    let a = arg(args, i)?;
    a.as_i64().ok_or_else(|| {
        type_err(format!(
            "argument {} must be an integer, not {}",
            i + 1,
            a.type_name()
        ))
    })
}

/// Python-style index: negative counts from the end.
pub(super) fn index(len: usize, i: i64) -> Result<usize, RemoteError> {
    let len_i = i64::try_from(len).map_err(|_| RemoteError::Index)?;
    let j = if i < 0 { i + len_i } else { i };
    if (0..len_i).contains(&j) {
        Ok(j as usize)
    } else {
        Err(RemoteError::Index)
    }
}

pub(super) fn incr(slot: &mut DataValue, delta: &DataValue) -> Result<DataValue, RemoteError> {
    let new = match (&*slot, delta) {
        (DataValue::Float(a), d) => DataValue::Float(
            a + match d {
                DataValue::Float(f) => *f,
                d => d
                    .as_i64()
                    .ok_or_else(|| type_err("delta must be a number"))? as f64,
            },
        ),
        (DataValue::Null | DataValue::Int(_) | DataValue::UInt(_), DataValue::Float(f)) => {
            let a = if *slot == DataValue::Null {
                0
            } else {
                slot.as_i64().ok_or(RemoteError::Overflow)?
            };
            DataValue::Float(a as f64 + f)
        }
        (DataValue::Null | DataValue::Int(_) | DataValue::UInt(_), d) => {
            let a = if *slot == DataValue::Null {
                0
            } else {
                slot.as_i64().ok_or(RemoteError::Overflow)?
            };
            let d = d
                .as_i64()
                .ok_or_else(|| type_err("delta must be a number"))?;
            DataValue::Int(a.checked_add(d).ok_or(RemoteError::Overflow)?)
        }
        (other, _) => {
            return Err(type_err(format!("cannot add to a {}", other.type_name())));
        }
    };
    *slot = new.clone();
    Ok(new)
}

/// `Some(v)` / `None` on the wire: a list of zero or one element.
pub(super) fn opt(v: Option<DataValue>) -> DataValue {
    DataValue::List(v.into_iter().collect())
}

pub(super) fn len_value(n: usize) -> DataValue {
    DataValue::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

pub(super) fn ordered(map: &HashMap<DataValue, (u64, DataValue)>) -> Vec<(&DataValue, &DataValue)> {
    let mut v: Vec<(&DataValue, &(u64, DataValue))> = map.iter().collect();
    v.sort_by_key(|(_, (seq, _))| *seq);
    v.into_iter().map(|(k, (_, v))| (k, v)).collect()
}

pub(super) fn pairs_of(v: &DataValue) -> Result<Vec<(DataValue, DataValue)>, RemoteError> {
    match v {
        DataValue::Map(m) => Ok(m.clone()),
        DataValue::List(l) => l
            .iter()
            .map(|p| match p.as_list() {
                Some([k, v]) => Ok((k.clone(), v.clone())),
                _ => Err(type_err("expected (key, value) pairs")),
            })
            .collect(),
        other => Err(type_err(format!(
            "cannot update from {}",
            other.type_name()
        ))),
    }
}

pub(super) fn unknown(kind: &str, method: &str) -> RemoteError {
    RemoteError::UnknownMethod {
        kind: kind.to_owned(),
        method: method.to_owned(),
    }
}
