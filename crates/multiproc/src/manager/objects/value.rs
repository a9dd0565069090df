//! `Value`: one value, with its own reentrant lock for read-modify-write
//! sequences, and atomic `incr` and `compare_and_set` that need none.

use std::time::Duration;

use super::args::{Delta, incr};
use super::lock::{HasLock, LockState, WithLock, apply_lock};
use super::{Args, Cell, Ctx, Encode, ServerObject, WireCall};
use crate::manager::error::RemoteError;
use crate::manager::value::DataValue;

/// A `Value`.
#[derive(Debug)]
pub(crate) struct Value {
    value: DataValue,
    lock: LockState,
}

/// An operation on a `Value` (besides those on its lock,
/// [`LockOp`](super::LockOp)).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValueOp {
    /// `get`.
    Get,
    /// `set(x)`: the value replaced.
    Set(DataValue),
    /// `incr(delta)`: the sum.
    Incr(Delta),
    /// `compare_and_set(current, new)`: whether the value was `current`
    /// (and is now `new`).
    CompareAndSet(DataValue, DataValue),
}

impl Value {
    /// A `Value` holding `init`.
    pub(crate) fn new(init: DataValue) -> Value {
        Value {
            value: init,
            lock: LockState::new(true),
        }
    }
}

impl HasLock for Value {
    fn lock_state(&mut self) -> &mut LockState {
        &mut self.lock
    }
}

impl ServerObject for Value {
    type Op = WithLock<ValueOp>;

    fn parse(
        &self,
        method: &str,
        mut a: Args,
        timeout: Option<Duration>,
    ) -> Result<Option<Self::Op>, RemoteError> {
        WithLock::parse(method, timeout, || {
            Ok(Some(match method {
                "get" => ValueOp::Get,
                "set" => ValueOp::Set(a.value()?),
                "incr" => ValueOp::Incr(a.delta()?),
                "compare_and_set" => ValueOp::CompareAndSet(a.value()?, a.value()?),
                _ => return Ok(None),
            }))
        })
    }

    fn apply(cell: &Cell<Self>, op: Self::Op, cx: &mut Ctx<'_>) -> Result<DataValue, RemoteError> {
        let op = match op {
            WithLock::Lock(op) => return apply_lock(cell, op, cx),
            WithLock::Own(op) => op,
        };
        let v = &mut cell.lock().value;
        match op {
            ValueOp::Get => Ok(v.clone()),
            ValueOp::Set(x) => Ok(std::mem::replace(v, x)),
            ValueOp::Incr(delta) => incr(v, delta),
            ValueOp::CompareAndSet(current, new) => {
                let equal = *v == current;
                if equal {
                    *v = new;
                }
                Ok(DataValue::Bool(equal))
            }
        }
    }

    fn release_session(&mut self, session: u64) -> bool {
        self.lock.release_session(session)
    }
}

impl Encode for ValueOp {
    fn encode(self) -> WireCall {
        let (method, args) = match self {
            ValueOp::Get => ("get", vec![]),
            ValueOp::Set(x) => ("set", vec![x]),
            ValueOp::Incr(delta) => ("incr", vec![delta.to_value()]),
            ValueOp::CompareAndSet(c, n) => ("compare_and_set", vec![c, n]),
        };
        WireCall::new(method, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::error::TypeError;
    use crate::manager::objects::LockOp;
    use crate::manager::objects::testing::{owner, parse, round_trips, run, run_as};
    use crate::manager::value::ValueType;

    #[test]
    fn every_op_round_trips_through_its_name() {
        round_trips(
            &Value::new(DataValue::Null),
            vec![
                WithLock::Lock(LockOp::Acquire {
                    timeout: Some(Duration::from_millis(5)),
                }),
                WithLock::Lock(LockOp::Release),
                WithLock::Lock(LockOp::Locked),
                WithLock::Own(ValueOp::Get),
                WithLock::Own(ValueOp::Set(DataValue::Str("x".into()))),
                WithLock::Own(ValueOp::Incr(Delta::Int(1))),
                WithLock::Own(ValueOp::CompareAndSet(DataValue::Int(1), DataValue::Int(2))),
            ],
        );
        let v = Value::new(DataValue::Null);
        assert_eq!(parse(&v, "getitem", vec![DataValue::Int(0)]), Ok(None));
        assert_eq!(
            parse(&v, "compare_and_set", vec![DataValue::Int(0)]),
            Err(TypeError::MissingArgument { position: 2 }.into())
        );
    }

    #[test]
    fn get_set_incr_compare_and_set() {
        let cell = Cell::new(Value::new(DataValue::Int(5)));
        assert_eq!(
            run(&cell, WithLock::Own(ValueOp::Get)),
            Ok(DataValue::Int(5))
        );
        assert_eq!(
            run(&cell, WithLock::Own(ValueOp::Set(DataValue::Int(6)))),
            Ok(DataValue::Int(5))
        );
        assert_eq!(
            run(&cell, WithLock::Own(ValueOp::Incr(Delta::Int(4)))),
            Ok(DataValue::Int(10))
        );
        assert_eq!(
            run(
                &cell,
                WithLock::Own(ValueOp::CompareAndSet(
                    DataValue::Float(10.0),
                    DataValue::Int(11)
                ))
            ),
            Ok(DataValue::Bool(true))
        );
        assert_eq!(
            run(
                &cell,
                WithLock::Own(ValueOp::CompareAndSet(
                    DataValue::Int(10),
                    DataValue::Int(12)
                ))
            ),
            Ok(DataValue::Bool(false))
        );
        assert_eq!(
            run(&cell, WithLock::Own(ValueOp::Get)),
            Ok(DataValue::Int(11))
        );
        run(
            &cell,
            WithLock::Own(ValueOp::Set(DataValue::Bytes(vec![1]))),
        )
        .unwrap();
        assert_eq!(
            run(&cell, WithLock::Own(ValueOp::Incr(Delta::Int(1)))),
            Err(TypeError::NotAddable {
                found: ValueType::Bytes
            }
            .into())
        );
    }

    #[test]
    fn its_lock_is_reentrant_and_released_with_the_session() {
        let cell = Cell::new(Value::new(DataValue::Null));
        let now = Some(Duration::ZERO);
        run(&cell, WithLock::Lock(LockOp::Acquire { timeout: now })).unwrap();
        run(&cell, WithLock::Lock(LockOp::Acquire { timeout: now })).unwrap();
        assert_eq!(
            run_as(
                &cell,
                WithLock::Lock(LockOp::Acquire { timeout: now }),
                owner(2)
            ),
            Err(RemoteError::Timeout)
        );
        // The value stays usable without the lock (it is advisory).
        assert_eq!(
            run_as(
                &cell,
                WithLock::Own(ValueOp::Set(DataValue::Int(1))),
                owner(2)
            ),
            Ok(DataValue::Null)
        );
        assert!(cell.lock().release_session(1));
        assert_eq!(
            run(&cell, WithLock::Lock(LockOp::Locked)),
            Ok(DataValue::Bool(false))
        );
    }
}
