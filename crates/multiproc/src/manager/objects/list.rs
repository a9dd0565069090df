//! `list`: a sequence with Python's indexing (negative from the end) and
//! equality.

use std::time::Duration;

use super::args::{Delta, incr, index, len_value};
use super::{Args, Cell, Ctx, Encode, ServerObject, WireCall};
use crate::manager::error::{RemoteError, TypeError, ValueError};
use crate::manager::kind::ObjectKind;
use crate::manager::value::DataValue;

/// A `list`.
#[derive(Debug, Default)]
pub(crate) struct List {
    items: Vec<DataValue>,
}

/// An operation on a `list`. Indexes count from the end when negative.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ListOp {
    /// `append(x)`.
    Append(DataValue),
    /// `extend([x, …])`.
    Extend(Vec<DataValue>),
    /// `getitem(i)`, or [`RemoteError::Index`].
    GetItem(i64),
    /// `setitem(i, x)`: the element replaced.
    SetItem(i64, DataValue),
    /// `delitem(i)`: the element removed.
    DelItem(i64),
    /// `pop([i])`: the element removed (the last one without `i`).
    Pop(Option<i64>),
    /// `insert(i, x)`, with Python's clamping of `i`.
    Insert(i64, DataValue),
    /// `remove(x)`: the first equal element, or a [`RemoteError::Value`].
    Remove(DataValue),
    /// `index(x)`: the first equal element's index, or a
    /// [`RemoteError::Value`].
    Index(DataValue),
    /// `count(x)`.
    Count(DataValue),
    /// `contains(x)`.
    Contains(DataValue),
    /// `len`.
    Len,
    /// `tolist`: the whole list.
    ToList,
    /// `clear`.
    Clear,
    /// `reverse`.
    Reverse,
    /// `sort`, by the values' order.
    Sort,
    /// `incr(i, delta)`: add to the number at `i`; the sum.
    Incr(i64, Delta),
}

impl List {
    /// A `list` of `init`'s elements (null: empty).
    pub(crate) fn new(init: DataValue) -> Result<List, TypeError> {
        match init {
            DataValue::Null => Ok(List::default()),
            DataValue::List(items) => Ok(List { items }),
            other => Err(TypeError::BadInit {
                kind: ObjectKind::List,
                found: other.value_type(),
            }),
        }
    }

    /// Run `op`.
    fn run(&mut self, op: ListOp) -> Result<DataValue, RemoteError> {
        let l = &mut self.items;
        Ok(match op {
            ListOp::Append(x) => {
                l.push(x);
                DataValue::Null
            }
            ListOp::Extend(xs) => {
                l.extend(xs);
                DataValue::Null
            }
            ListOp::GetItem(i) => l[index(l.len(), i)?].clone(),
            ListOp::SetItem(i, x) => {
                let i = index(l.len(), i)?;
                std::mem::replace(&mut l[i], x)
            }
            ListOp::DelItem(i) => l.remove(index(l.len(), i)?),
            ListOp::Pop(i) => l.remove(index(l.len(), i.unwrap_or(-1))?),
            ListOp::Insert(i, x) => {
                let len = i64::try_from(l.len()).unwrap_or(i64::MAX);
                let i = if i < 0 {
                    i.saturating_add(len).max(0)
                } else {
                    i.min(len)
                };
                l.insert(i as usize, x);
                DataValue::Null
            }
            ListOp::Remove(x) => {
                let i = l
                    .iter()
                    .position(|y| *y == x)
                    .ok_or(ValueError::RemoveMissing)?;
                l.remove(i);
                DataValue::Null
            }
            ListOp::Index(x) => len_value(
                l.iter()
                    .position(|y| *y == x)
                    .ok_or(ValueError::IndexMissing)?,
            ),
            ListOp::Count(x) => len_value(l.iter().filter(|y| **y == x).count()),
            ListOp::Contains(x) => DataValue::Bool(l.contains(&x)),
            ListOp::Len => len_value(l.len()),
            ListOp::ToList => DataValue::List(l.clone()),
            ListOp::Clear => {
                l.clear();
                DataValue::Null
            }
            ListOp::Reverse => {
                l.reverse();
                DataValue::Null
            }
            ListOp::Sort => {
                l.sort();
                DataValue::Null
            }
            ListOp::Incr(i, delta) => {
                let i = index(l.len(), i)?;
                incr(&mut l[i], delta)?
            }
        })
    }
}

impl ServerObject for List {
    type Op = ListOp;

    fn parse(
        &self,
        method: &str,
        mut a: Args,
        _timeout: Option<Duration>,
    ) -> Result<Option<ListOp>, RemoteError> {
        Ok(Some(match method {
            "append" => ListOp::Append(a.value()?),
            "extend" => ListOp::Extend(a.list("extend")?),
            "getitem" => ListOp::GetItem(a.int()?),
            "setitem" => ListOp::SetItem(a.int()?, a.value()?),
            "delitem" => ListOp::DelItem(a.int()?),
            "pop" => ListOp::Pop(a.optional_int()?),
            "insert" => ListOp::Insert(a.int()?, a.value()?),
            "remove" => ListOp::Remove(a.value()?),
            "index" => ListOp::Index(a.value()?),
            "count" => ListOp::Count(a.value()?),
            "contains" => ListOp::Contains(a.value()?),
            "len" => ListOp::Len,
            "tolist" => ListOp::ToList,
            "clear" => ListOp::Clear,
            "reverse" => ListOp::Reverse,
            "sort" => ListOp::Sort,
            "incr" => ListOp::Incr(a.int()?, a.delta()?),
            _ => return Ok(None),
        }))
    }

    fn apply(cell: &Cell<Self>, op: ListOp, _cx: &mut Ctx<'_>) -> Result<DataValue, RemoteError> {
        cell.lock().run(op)
    }
}

impl Encode for ListOp {
    fn encode(self) -> WireCall {
        let i = DataValue::Int;
        let (method, args) = match self {
            ListOp::Append(x) => ("append", vec![x]),
            ListOp::Extend(xs) => ("extend", vec![DataValue::List(xs)]),
            ListOp::GetItem(n) => ("getitem", vec![i(n)]),
            ListOp::SetItem(n, x) => ("setitem", vec![i(n), x]),
            ListOp::DelItem(n) => ("delitem", vec![i(n)]),
            ListOp::Pop(n) => ("pop", n.map(i).into_iter().collect()),
            ListOp::Insert(n, x) => ("insert", vec![i(n), x]),
            ListOp::Remove(x) => ("remove", vec![x]),
            ListOp::Index(x) => ("index", vec![x]),
            ListOp::Count(x) => ("count", vec![x]),
            ListOp::Contains(x) => ("contains", vec![x]),
            ListOp::Len => ("len", vec![]),
            ListOp::ToList => ("tolist", vec![]),
            ListOp::Clear => ("clear", vec![]),
            ListOp::Reverse => ("reverse", vec![]),
            ListOp::Sort => ("sort", vec![]),
            ListOp::Incr(n, delta) => ("incr", vec![i(n), delta.to_value()]),
        };
        WireCall::new(method, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::objects::testing::{parse, round_trips};
    use crate::manager::value::ValueType;

    fn int(i: i64) -> DataValue {
        DataValue::Int(i)
    }

    fn ints(v: &[i64]) -> DataValue {
        DataValue::List(v.iter().copied().map(int).collect())
    }

    fn list(v: &[i64]) -> List {
        List::new(ints(v)).unwrap()
    }

    #[test]
    fn every_op_round_trips_through_its_name() {
        round_trips(
            &List::default(),
            vec![
                ListOp::Append(int(1)),
                ListOp::Extend(vec![int(1), DataValue::Null]),
                ListOp::GetItem(-1),
                ListOp::SetItem(2, int(3)),
                ListOp::DelItem(0),
                ListOp::Pop(None),
                ListOp::Pop(Some(-2)),
                ListOp::Insert(5, int(1)),
                ListOp::Remove(int(1)),
                ListOp::Index(int(1)),
                ListOp::Count(int(1)),
                ListOp::Contains(int(1)),
                ListOp::Len,
                ListOp::ToList,
                ListOp::Clear,
                ListOp::Reverse,
                ListOp::Sort,
                ListOp::Incr(0, Delta::Int(4)),
            ],
        );
    }

    #[test]
    fn unknown_names_and_bad_arguments_are_refused_at_the_parse() {
        let l = List::default();
        assert_eq!(parse(&l, "keys", vec![]), Ok(None));
        assert_eq!(parse(&l, "__len__", vec![]), Ok(None));
        assert_eq!(
            parse(&l, "getitem", vec![DataValue::Str("0".into())]),
            Err(TypeError::NotAnInteger {
                position: 1,
                found: ValueType::Str
            }
            .into())
        );
        assert_eq!(
            parse(&l, "getitem", vec![]),
            Err(TypeError::MissingArgument { position: 1 }.into())
        );
        assert_eq!(
            parse(&l, "extend", vec![int(1)]),
            Err(TypeError::NotAList {
                method: "extend".into()
            }
            .into())
        );
        assert_eq!(
            parse(&l, "pop", vec![DataValue::Null]),
            Ok(Some(ListOp::Pop(None)))
        );
        assert_eq!(
            parse(&l, "pop", vec![DataValue::Float(1.5)]),
            Err(TypeError::NotAnInteger {
                position: 1,
                found: ValueType::Float
            }
            .into())
        );
    }

    #[test]
    fn semantics_follow_python() {
        let mut l = list(&[1, 2, 3]);
        l.run(ListOp::Append(int(4))).unwrap();
        l.run(ListOp::Extend(vec![int(5), int(6)])).unwrap();
        assert_eq!(l.run(ListOp::Len), Ok(int(6)));
        assert_eq!(l.run(ListOp::GetItem(0)), Ok(int(1)));
        assert_eq!(l.run(ListOp::GetItem(-1)), Ok(int(6)));
        assert_eq!(l.run(ListOp::SetItem(1, int(20))), Ok(int(2)));
        assert_eq!(l.run(ListOp::Pop(None)), Ok(int(6)));
        assert_eq!(l.run(ListOp::Pop(Some(0))), Ok(int(1)));
        l.run(ListOp::Insert(0, int(0))).unwrap();
        l.run(ListOp::Insert(100, int(99))).unwrap();
        l.run(ListOp::Insert(-100, int(-9))).unwrap();
        l.run(ListOp::Insert(i64::MIN, int(-10))).unwrap();
        assert_eq!(
            l.run(ListOp::ToList),
            Ok(ints(&[-10, -9, 0, 20, 3, 4, 5, 99]))
        );
        l.run(ListOp::Remove(int(-10))).unwrap();
        l.run(ListOp::Remove(DataValue::Float(-9.0))).unwrap();
        assert_eq!(l.run(ListOp::Index(int(3))), Ok(int(2)));
        assert_eq!(l.run(ListOp::Count(int(3))), Ok(int(1)));
        assert_eq!(l.run(ListOp::Contains(int(4))), Ok(DataValue::Bool(true)));
        assert_eq!(l.run(ListOp::DelItem(0)), Ok(int(0)));
        l.run(ListOp::Reverse).unwrap();
        assert_eq!(l.run(ListOp::ToList), Ok(ints(&[99, 5, 4, 3, 20])));
        l.run(ListOp::Sort).unwrap();
        assert_eq!(l.run(ListOp::ToList), Ok(ints(&[3, 4, 5, 20, 99])));
        assert_eq!(l.run(ListOp::Incr(0, Delta::Int(10))), Ok(int(13)));
        l.run(ListOp::Clear).unwrap();
        assert_eq!(l.run(ListOp::Pop(None)), Err(RemoteError::Index));
    }

    #[test]
    fn index_and_value_errors() {
        let mut l = list(&[1, 2]);
        for op in [
            ListOp::GetItem(2),
            ListOp::GetItem(-3),
            ListOp::SetItem(5, int(0)),
            ListOp::DelItem(-3),
            ListOp::Pop(Some(9)),
            ListOp::Incr(2, Delta::Int(1)),
        ] {
            assert_eq!(l.run(op.clone()), Err(RemoteError::Index), "{op:?}");
        }
        assert_eq!(
            l.run(ListOp::Remove(int(7))),
            Err(ValueError::RemoveMissing.into())
        );
        assert_eq!(
            l.run(ListOp::Index(int(7))),
            Err(ValueError::IndexMissing.into())
        );
        l.run(ListOp::Append(DataValue::Str("s".into()))).unwrap();
        assert_eq!(
            l.run(ListOp::Incr(-1, Delta::Int(1))),
            Err(TypeError::NotAddable {
                found: ValueType::Str
            }
            .into())
        );
        assert_eq!(
            l.run(ListOp::ToList),
            Ok(DataValue::List(vec![
                int(1),
                int(2),
                DataValue::Str("s".into())
            ]))
        );
        assert_eq!(
            List::new(DataValue::Int(1)).unwrap_err(),
            TypeError::BadInit {
                kind: ObjectKind::List,
                found: ValueType::Int
            }
        );
    }
}
