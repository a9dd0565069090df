//! `dict`: a map that keeps insertion order, with Python's key equality.

use std::collections::HashMap;
use std::time::Duration;

use super::args::{Delta, incr, len_value, opt};
use super::{Args, Cell, Ctx, Encode, ServerObject, WireCall};
use crate::manager::error::{RemoteError, TypeError};
use crate::manager::kind::ObjectKind;
use crate::manager::value::DataValue;

/// A `dict`: each value with its insertion sequence number.
#[derive(Debug, Default)]
pub(crate) struct Dict {
    map: HashMap<DataValue, (u64, DataValue)>,
    seq: u64,
}

/// An operation on a `dict` (`opt` answers are lists of zero or one
/// element).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DictOp {
    /// `get(k)`: the value, as an `opt`.
    Get(DataValue),
    /// `getitem(k)`: the value, or [`RemoteError::Key`].
    GetItem(DataValue),
    /// `setitem(k, v)` (or `insert`): the value replaced, as an `opt`.
    SetItem(DataValue, DataValue),
    /// `delitem(k)`: the value removed, or [`RemoteError::Key`].
    DelItem(DataValue),
    /// `pop(k)`: the value removed, as an `opt`.
    Pop(DataValue),
    /// `popitem`: the last inserted `[k, v]`, or [`RemoteError::Key`].
    PopItem,
    /// `contains(k)`.
    Contains(DataValue),
    /// `len`.
    Len,
    /// `keys`, in insertion order.
    Keys,
    /// `values`, in insertion order.
    Values,
    /// `items` (or `copy`): the whole map, in insertion order.
    Items,
    /// `update(map or [[k, v], …])`.
    Update(Vec<(DataValue, DataValue)>),
    /// `clear`.
    Clear,
    /// `setdefault(k, d)`: the value, inserting `d` if there is none.
    SetDefault(DataValue, DataValue),
    /// `incr(k, delta)`: add to the number at `k` (absent: 0); the sum.
    Incr(DataValue, Delta),
}

/// The entries of `update`'s argument: a map, or a list of `[k, v]` pairs.
fn pairs(v: DataValue) -> Result<Vec<(DataValue, DataValue)>, TypeError> {
    match v {
        DataValue::Map(m) => Ok(m),
        DataValue::List(l) => l
            .into_iter()
            .map(|p| match p {
                DataValue::List(kv) => match <[DataValue; 2]>::try_from(kv) {
                    Ok([k, v]) => Ok((k, v)),
                    Err(_) => Err(TypeError::NotPairs),
                },
                _ => Err(TypeError::NotPairs),
            })
            .collect(),
        other => Err(TypeError::NotAMapping {
            found: other.value_type(),
        }),
    }
}

impl Dict {
    /// A `dict` from a map (or null: empty).
    pub(crate) fn new(init: DataValue) -> Result<Dict, TypeError> {
        let mut d = Dict::default();
        match init {
            DataValue::Null => {}
            DataValue::Map(entries) => {
                for (k, v) in entries {
                    d.seq += 1;
                    d.map.insert(k, (d.seq, v));
                }
            }
            other => {
                return Err(TypeError::BadInit {
                    kind: ObjectKind::Dict,
                    found: other.value_type(),
                });
            }
        }
        Ok(d)
    }

    /// Set `k` to `v`; the value replaced.
    fn insert(&mut self, k: DataValue, v: DataValue) -> Option<DataValue> {
        match self.map.get_mut(&k) {
            Some(slot) => Some(std::mem::replace(&mut slot.1, v)),
            None => {
                self.seq += 1;
                self.map.insert(k, (self.seq, v));
                None
            }
        }
    }

    fn ordered(&self) -> impl Iterator<Item = (&DataValue, &DataValue)> {
        let mut v: Vec<(&DataValue, &(u64, DataValue))> = self.map.iter().collect();
        v.sort_by_key(|(_, (seq, _))| *seq);
        v.into_iter().map(|(k, (_, v))| (k, v))
    }

    /// Run `op`.
    fn run(&mut self, op: DictOp) -> Result<DataValue, RemoteError> {
        Ok(match op {
            DictOp::Get(k) => opt(self.map.get(&k).map(|e| e.1.clone())),
            DictOp::GetItem(k) => self
                .map
                .get(&k)
                .map(|e| e.1.clone())
                .ok_or(RemoteError::Key)?,
            DictOp::SetItem(k, v) => opt(self.insert(k, v)),
            DictOp::DelItem(k) => self.map.remove(&k).map(|e| e.1).ok_or(RemoteError::Key)?,
            DictOp::Pop(k) => opt(self.map.remove(&k).map(|e| e.1)),
            DictOp::PopItem => {
                let last = self
                    .map
                    .iter()
                    .max_by_key(|(_, (s, _))| *s)
                    .map(|(k, _)| k.clone())
                    .ok_or(RemoteError::Key)?;
                let (_, v) = self.map.remove(&last).ok_or(RemoteError::Key)?;
                DataValue::List(vec![last, v])
            }
            DictOp::Contains(k) => DataValue::Bool(self.map.contains_key(&k)),
            DictOp::Len => len_value(self.map.len()),
            DictOp::Keys => DataValue::List(self.ordered().map(|(k, _)| k.clone()).collect()),
            DictOp::Values => DataValue::List(self.ordered().map(|(_, v)| v.clone()).collect()),
            DictOp::Items => DataValue::Map(
                self.ordered()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            DictOp::Update(entries) => {
                for (k, v) in entries {
                    self.insert(k, v);
                }
                DataValue::Null
            }
            DictOp::Clear => {
                self.map.clear();
                DataValue::Null
            }
            DictOp::SetDefault(k, d) => match self.map.get(&k) {
                Some(e) => e.1.clone(),
                None => {
                    self.insert(k, d.clone());
                    d
                }
            },
            DictOp::Incr(k, delta) => {
                if !self.map.contains_key(&k) {
                    self.insert(k.clone(), DataValue::Int(0));
                }
                let slot = self.map.get_mut(&k).ok_or(RemoteError::Key)?;
                incr(&mut slot.1, delta)?
            }
        })
    }
}

impl ServerObject for Dict {
    type Op = DictOp;

    fn parse(
        &self,
        method: &str,
        mut a: Args,
        _timeout: Option<Duration>,
    ) -> Result<Option<DictOp>, RemoteError> {
        Ok(Some(match method {
            "get" => DictOp::Get(a.value()?),
            "getitem" => DictOp::GetItem(a.value()?),
            "setitem" | "insert" => DictOp::SetItem(a.value()?, a.value()?),
            "delitem" => DictOp::DelItem(a.value()?),
            "pop" => DictOp::Pop(a.value()?),
            "popitem" => DictOp::PopItem,
            "contains" => DictOp::Contains(a.value()?),
            "len" => DictOp::Len,
            "keys" => DictOp::Keys,
            "values" => DictOp::Values,
            "items" | "copy" => DictOp::Items,
            "update" => DictOp::Update(pairs(a.value()?)?),
            "clear" => DictOp::Clear,
            "setdefault" => DictOp::SetDefault(a.value()?, a.value()?),
            "incr" => DictOp::Incr(a.value()?, a.delta()?),
            _ => return Ok(None),
        }))
    }

    fn apply(cell: &Cell<Self>, op: DictOp, _cx: &mut Ctx<'_>) -> Result<DataValue, RemoteError> {
        cell.lock().run(op)
    }
}

impl Encode for DictOp {
    fn encode(self) -> WireCall {
        let (method, args) = match self {
            DictOp::Get(k) => ("get", vec![k]),
            DictOp::GetItem(k) => ("getitem", vec![k]),
            DictOp::SetItem(k, v) => ("setitem", vec![k, v]),
            DictOp::DelItem(k) => ("delitem", vec![k]),
            DictOp::Pop(k) => ("pop", vec![k]),
            DictOp::PopItem => ("popitem", vec![]),
            DictOp::Contains(k) => ("contains", vec![k]),
            DictOp::Len => ("len", vec![]),
            DictOp::Keys => ("keys", vec![]),
            DictOp::Values => ("values", vec![]),
            DictOp::Items => ("items", vec![]),
            DictOp::Update(entries) => ("update", vec![DataValue::Map(entries)]),
            DictOp::Clear => ("clear", vec![]),
            DictOp::SetDefault(k, d) => ("setdefault", vec![k, d]),
            DictOp::Incr(k, delta) => ("incr", vec![k, delta.to_value()]),
        };
        WireCall::new(method, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::objects::testing::{parse, round_trips};
    use crate::manager::value::ValueType;

    fn s(x: &str) -> DataValue {
        DataValue::Str(x.into())
    }

    fn int(i: i64) -> DataValue {
        DataValue::Int(i)
    }

    #[test]
    fn every_op_round_trips_through_its_name() {
        let d = Dict::default();
        round_trips(
            &d,
            vec![
                DictOp::Get(s("k")),
                DictOp::GetItem(s("k")),
                DictOp::SetItem(s("k"), int(1)),
                DictOp::DelItem(s("k")),
                DictOp::Pop(s("k")),
                DictOp::PopItem,
                DictOp::Contains(int(3)),
                DictOp::Len,
                DictOp::Keys,
                DictOp::Values,
                DictOp::Items,
                DictOp::Update(vec![(s("a"), int(1)), (int(2), DataValue::Null)]),
                DictOp::Clear,
                DictOp::SetDefault(s("k"), int(5)),
                DictOp::Incr(s("k"), Delta::Int(-2)),
                DictOp::Incr(s("k"), Delta::Float(0.5)),
            ],
        );
        // Python's other names.
        assert_eq!(
            parse(&d, "insert", vec![s("k"), int(1)]),
            Ok(Some(DictOp::SetItem(s("k"), int(1))))
        );
        assert_eq!(parse(&d, "copy", vec![]), Ok(Some(DictOp::Items)));
    }

    #[test]
    fn unknown_names_and_bad_arguments_are_refused_at_the_parse() {
        let d = Dict::default();
        assert_eq!(parse(&d, "__class__", vec![]), Ok(None));
        assert_eq!(parse(&d, "append", vec![int(1)]), Ok(None));
        assert_eq!(
            parse(&d, "setitem", vec![s("k")]),
            Err(TypeError::MissingArgument { position: 2 }.into())
        );
        assert_eq!(
            parse(&d, "incr", vec![s("k"), s("1")]),
            Err(TypeError::NotANumber.into())
        );
        assert_eq!(
            parse(&d, "update", vec![int(1)]),
            Err(TypeError::NotAMapping {
                found: ValueType::Int
            }
            .into())
        );
        assert_eq!(
            parse(
                &d,
                "update",
                vec![DataValue::List(vec![DataValue::List(vec![int(1)])])]
            ),
            Err(TypeError::NotPairs.into())
        );
        assert_eq!(
            parse(&d, "update", vec![DataValue::List(vec![int(1)])]),
            Err(TypeError::NotPairs.into())
        );
    }

    #[test]
    fn semantics_follow_python() {
        let mut d = Dict::new(DataValue::Map(vec![(s("a"), int(1))])).unwrap();
        assert_eq!(d.run(DictOp::SetItem(s("b"), int(2))), Ok(opt(None)));
        assert_eq!(
            d.run(DictOp::SetItem(s("a"), int(10))),
            Ok(opt(Some(int(1))))
        );
        assert_eq!(d.run(DictOp::Get(s("a"))), Ok(opt(Some(int(10)))));
        assert_eq!(d.run(DictOp::Get(s("zz"))), Ok(opt(None)));
        assert_eq!(d.run(DictOp::GetItem(s("zz"))), Err(RemoteError::Key));
        assert_eq!(d.run(DictOp::DelItem(s("zz"))), Err(RemoteError::Key));
        // 1, 1.0 and true are one key, as in Python.
        assert_eq!(d.run(DictOp::SetItem(int(1), s("one"))), Ok(opt(None)));
        assert_eq!(d.run(DictOp::GetItem(DataValue::Float(1.0))), Ok(s("one")));
        assert_eq!(
            d.run(DictOp::Contains(DataValue::Bool(true))),
            Ok(DataValue::Bool(true))
        );
        assert_eq!(
            d.run(DictOp::Pop(DataValue::Bool(true))),
            Ok(opt(Some(s("one"))))
        );
        // Insertion order, kept by a replaced value.
        assert_eq!(
            d.run(DictOp::Keys),
            Ok(DataValue::List(vec![s("a"), s("b")]))
        );
        assert_eq!(
            d.run(DictOp::Values),
            Ok(DataValue::List(vec![int(10), int(2)]))
        );
        d.run(DictOp::Update(vec![(s("c"), int(3)), (s("a"), int(11))]))
            .unwrap();
        assert_eq!(
            d.run(DictOp::Items),
            Ok(DataValue::Map(vec![
                (s("a"), int(11)),
                (s("b"), int(2)),
                (s("c"), int(3))
            ]))
        );
        assert_eq!(d.run(DictOp::SetDefault(s("c"), int(99))), Ok(int(3)));
        assert_eq!(d.run(DictOp::SetDefault(s("e"), int(5))), Ok(int(5)));
        assert_eq!(d.run(DictOp::Len), Ok(int(4)));
        assert_eq!(
            d.run(DictOp::PopItem),
            Ok(DataValue::List(vec![s("e"), int(5)]))
        );
        assert_eq!(d.run(DictOp::Incr(s("a"), Delta::Int(5))), Ok(int(16)));
        assert_eq!(d.run(DictOp::Incr(s("new"), Delta::Int(-3))), Ok(int(-3)));
        assert_eq!(
            d.run(DictOp::Incr(s("f"), Delta::Float(0.5))),
            Ok(DataValue::Float(0.5))
        );
        d.run(DictOp::Clear).unwrap();
        assert_eq!(d.run(DictOp::PopItem), Err(RemoteError::Key));
        assert_eq!(d.run(DictOp::Len), Ok(int(0)));
    }

    #[test]
    fn wrong_types_are_type_errors() {
        let mut d = Dict::default();
        d.run(DictOp::SetItem(s("s"), s("x"))).unwrap();
        assert_eq!(
            d.run(DictOp::Incr(s("s"), Delta::Int(1))),
            Err(TypeError::NotAddable {
                found: ValueType::Str
            }
            .into())
        );
        d.run(DictOp::SetItem(s("max"), int(i64::MAX))).unwrap();
        assert_eq!(
            d.run(DictOp::Incr(s("max"), Delta::Int(1))),
            Err(RemoteError::Overflow)
        );
        assert_eq!(
            Dict::new(DataValue::List(vec![])).unwrap_err(),
            TypeError::BadInit {
                kind: ObjectKind::Dict,
                found: ValueType::List
            }
        );
    }
}
