//! `Array`: a fixed-length sequence, with its own reentrant lock.

use std::time::Duration;

use super::args::{Delta, incr, index, len_value};
use super::lock::{HasLock, LockState, WithLock, apply_lock};
use super::{Args, Cell, Ctx, Encode, ServerObject, WireCall};
use crate::manager::error::{RemoteError, TypeError, ValueError};
use crate::manager::kind::ObjectKind;
use crate::manager::value::DataValue;

/// An `Array`.
#[derive(Debug)]
pub(crate) struct Array {
    items: Vec<DataValue>,
    lock: LockState,
}

/// An operation on an `Array` (besides those on its lock,
/// [`LockOp`](super::LockOp)).
/// Indexes count from the end when negative.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ArrayOp {
    /// `getitem(i)`, or [`RemoteError::Index`].
    GetItem(i64),
    /// `setitem(i, x)`: the element replaced.
    SetItem(i64, DataValue),
    /// `incr(i, delta)`: add to the number at `i`; the sum.
    Incr(i64, Delta),
    /// `len`.
    Len,
    /// `tolist`: the whole array.
    ToList,
    /// `setall([x, …])`: replace every element (same length, or a
    /// [`RemoteError::Value`]).
    SetAll(Vec<DataValue>),
}

impl Array {
    /// An `Array` of `init`'s elements (a list).
    pub(crate) fn new(init: DataValue) -> Result<Array, TypeError> {
        match init {
            DataValue::List(items) => Ok(Array {
                items,
                lock: LockState::new(true),
            }),
            other => Err(TypeError::BadInit {
                kind: ObjectKind::Array,
                found: other.value_type(),
            }),
        }
    }
}

impl HasLock for Array {
    fn lock_state(&mut self) -> &mut LockState {
        &mut self.lock
    }
}

impl ServerObject for Array {
    type Op = WithLock<ArrayOp>;

    fn parse(
        &self,
        method: &str,
        mut a: Args,
        timeout: Option<Duration>,
    ) -> Result<Option<Self::Op>, RemoteError> {
        WithLock::parse(method, timeout, || {
            Ok(Some(match method {
                "getitem" => ArrayOp::GetItem(a.int()?),
                "setitem" => ArrayOp::SetItem(a.int()?, a.value()?),
                "incr" => ArrayOp::Incr(a.int()?, a.delta()?),
                "len" => ArrayOp::Len,
                "tolist" => ArrayOp::ToList,
                "setall" => ArrayOp::SetAll(a.list("setall")?),
                _ => return Ok(None),
            }))
        })
    }

    fn apply(cell: &Cell<Self>, op: Self::Op, cx: &mut Ctx<'_>) -> Result<DataValue, RemoteError> {
        let op = match op {
            WithLock::Lock(op) => return apply_lock(cell, op, cx),
            WithLock::Own(op) => op,
        };
        let a = &mut cell.lock().items;
        Ok(match op {
            ArrayOp::GetItem(i) => a[index(a.len(), i)?].clone(),
            ArrayOp::SetItem(i, x) => {
                let i = index(a.len(), i)?;
                std::mem::replace(&mut a[i], x)
            }
            ArrayOp::Incr(i, delta) => {
                let i = index(a.len(), i)?;
                incr(&mut a[i], delta)?
            }
            ArrayOp::Len => len_value(a.len()),
            ArrayOp::ToList => DataValue::List(a.clone()),
            ArrayOp::SetAll(new) => {
                if new.len() != a.len() {
                    return Err(ValueError::ArrayLength.into());
                }
                *a = new;
                DataValue::Null
            }
        })
    }

    fn release_session(&mut self, session: u64) -> bool {
        self.lock.release_session(session)
    }
}

impl Encode for ArrayOp {
    fn encode(self) -> WireCall {
        let i = DataValue::Int;
        let (method, args) = match self {
            ArrayOp::GetItem(n) => ("getitem", vec![i(n)]),
            ArrayOp::SetItem(n, x) => ("setitem", vec![i(n), x]),
            ArrayOp::Incr(n, delta) => ("incr", vec![i(n), delta.to_value()]),
            ArrayOp::Len => ("len", vec![]),
            ArrayOp::ToList => ("tolist", vec![]),
            ArrayOp::SetAll(xs) => ("setall", vec![DataValue::List(xs)]),
        };
        WireCall::new(method, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::objects::LockOp;
    use crate::manager::objects::testing::{owner, parse, round_trips, run, run_as};
    use crate::manager::value::ValueType;

    fn ints(v: &[i64]) -> Vec<DataValue> {
        v.iter().copied().map(DataValue::Int).collect()
    }

    #[test]
    fn every_op_round_trips_through_its_name() {
        let a = Array::new(DataValue::List(vec![])).unwrap();
        round_trips(
            &a,
            vec![
                WithLock::Lock(LockOp::Acquire { timeout: None }),
                WithLock::Lock(LockOp::Release),
                WithLock::Lock(LockOp::Locked),
                WithLock::Own(ArrayOp::GetItem(-1)),
                WithLock::Own(ArrayOp::SetItem(0, DataValue::Int(1))),
                WithLock::Own(ArrayOp::Incr(1, Delta::Int(2))),
                WithLock::Own(ArrayOp::Len),
                WithLock::Own(ArrayOp::ToList),
                WithLock::Own(ArrayOp::SetAll(ints(&[1, 2]))),
            ],
        );
        // A list's methods that change the length are not an array's.
        for name in [
            "append", "extend", "pop", "insert", "remove", "delitem", "clear",
        ] {
            assert_eq!(parse(&a, name, ints(&[1])), Ok(None), "{name}");
        }
        assert_eq!(
            parse(&a, "setall", ints(&[1])),
            Err(TypeError::NotAList {
                method: "setall".into()
            }
            .into())
        );
    }

    #[test]
    fn fixed_length_indexing_and_incr() {
        let cell = Cell::new(Array::new(DataValue::List(ints(&[0, 0, 0, 0]))).unwrap());
        assert_eq!(
            run(&cell, WithLock::Own(ArrayOp::SetItem(1, DataValue::Int(5)))),
            Ok(DataValue::Int(0))
        );
        assert_eq!(
            run(&cell, WithLock::Own(ArrayOp::GetItem(1))),
            Ok(DataValue::Int(5))
        );
        assert_eq!(
            run(&cell, WithLock::Own(ArrayOp::Incr(1, Delta::Int(2)))),
            Ok(DataValue::Int(7))
        );
        assert_eq!(
            run(&cell, WithLock::Own(ArrayOp::Len)),
            Ok(DataValue::Int(4))
        );
        run(&cell, WithLock::Own(ArrayOp::SetAll(ints(&[1, 2, 3, 4])))).unwrap();
        assert_eq!(
            run(&cell, WithLock::Own(ArrayOp::SetAll(ints(&[1])))),
            Err(ValueError::ArrayLength.into())
        );
        assert_eq!(
            run(&cell, WithLock::Own(ArrayOp::ToList)),
            Ok(DataValue::List(ints(&[1, 2, 3, 4])))
        );
        assert_eq!(
            run(&cell, WithLock::Own(ArrayOp::GetItem(4))),
            Err(RemoteError::Index)
        );
        assert_eq!(
            run(&cell, WithLock::Own(ArrayOp::GetItem(-5))),
            Err(RemoteError::Index)
        );
        assert_eq!(
            run(&cell, WithLock::Own(ArrayOp::SetItem(4, DataValue::Null))),
            Err(RemoteError::Index)
        );
        assert_eq!(
            Array::new(DataValue::Null).unwrap_err(),
            TypeError::BadInit {
                kind: ObjectKind::Array,
                found: ValueType::Null
            }
        );
    }

    #[test]
    fn its_lock() {
        let cell = Cell::new(Array::new(DataValue::List(vec![])).unwrap());
        run(&cell, WithLock::Lock(LockOp::Acquire { timeout: None })).unwrap();
        assert_eq!(
            run(&cell, WithLock::Lock(LockOp::Locked)),
            Ok(DataValue::Bool(true))
        );
        assert_eq!(
            run_as(
                &cell,
                WithLock::Lock(LockOp::Acquire {
                    timeout: Some(Duration::from_millis(10))
                }),
                owner(2)
            ),
            Err(RemoteError::Timeout)
        );
        run(&cell, WithLock::Lock(LockOp::Release)).unwrap();
        assert_eq!(
            run(&cell, WithLock::Lock(LockOp::Locked)),
            Ok(DataValue::Bool(false))
        );
    }
}
