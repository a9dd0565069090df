//! `Namespace`: named fields (Python's `ns.x = 1`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::args::{Delta, incr, opt};
use super::{Args, Cell, Ctx, Encode, ServerObject, WireCall};
use crate::manager::error::{RemoteError, TypeError};
use crate::manager::kind::ObjectKind;
use crate::manager::value::DataValue;

/// A `Namespace`.
#[derive(Debug, Default)]
pub(crate) struct Namespace {
    fields: BTreeMap<String, DataValue>,
}

/// An operation on a `Namespace`; attribute names are strings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NamespaceOp {
    /// `getattr(name)`: the field, or [`RemoteError::Key`].
    GetAttr(String),
    /// `get(name)`: the field, as a list of zero or one element.
    Get(String),
    /// `setattr(name, v)`.
    SetAttr(String, DataValue),
    /// `delattr(name)`: the field removed, or [`RemoteError::Key`].
    DelAttr(String),
    /// `contains(name)`.
    Contains(String),
    /// `items`: every field, by name.
    Items,
    /// `incr(name, delta)`: add to the number field (unset: 0); the sum.
    Incr(String, Delta),
}

/// The next argument as an attribute name.
fn name(a: &mut Args) -> Result<String, TypeError> {
    match a.value()? {
        DataValue::Str(s) => Ok(s),
        _ => Err(TypeError::AttributeName),
    }
}

impl Namespace {
    /// A `Namespace` from a map of string keys (or null: empty).
    pub(crate) fn new(init: DataValue) -> Result<Namespace, TypeError> {
        let mut fields = BTreeMap::new();
        match init {
            DataValue::Null => {}
            DataValue::Map(entries) => {
                for (k, v) in entries {
                    let DataValue::Str(k) = k else {
                        return Err(TypeError::FieldName);
                    };
                    fields.insert(k, v);
                }
            }
            other => {
                return Err(TypeError::BadInit {
                    kind: ObjectKind::Namespace,
                    found: other.value_type(),
                });
            }
        }
        Ok(Namespace { fields })
    }

    /// Run `op`.
    fn run(&mut self, op: NamespaceOp) -> Result<DataValue, RemoteError> {
        let ns = &mut self.fields;
        Ok(match op {
            NamespaceOp::GetAttr(n) => ns.get(&n).cloned().ok_or(RemoteError::Key)?,
            NamespaceOp::Get(n) => opt(ns.get(&n).cloned()),
            NamespaceOp::SetAttr(n, v) => {
                ns.insert(n, v);
                DataValue::Null
            }
            NamespaceOp::DelAttr(n) => ns.remove(&n).ok_or(RemoteError::Key)?,
            NamespaceOp::Contains(n) => DataValue::Bool(ns.contains_key(&n)),
            NamespaceOp::Items => DataValue::Map(
                ns.iter()
                    .map(|(k, v)| (DataValue::Str(k.clone()), v.clone()))
                    .collect(),
            ),
            NamespaceOp::Incr(n, delta) => incr(ns.entry(n).or_insert(DataValue::Int(0)), delta)?,
        })
    }
}

impl ServerObject for Namespace {
    type Op = NamespaceOp;

    fn parse(
        &self,
        method: &str,
        mut a: Args,
        _timeout: Option<Duration>,
    ) -> Result<Option<NamespaceOp>, RemoteError> {
        Ok(Some(match method {
            "getattr" => NamespaceOp::GetAttr(name(&mut a)?),
            "get" => NamespaceOp::Get(name(&mut a)?),
            "setattr" => NamespaceOp::SetAttr(name(&mut a)?, a.value()?),
            "delattr" => NamespaceOp::DelAttr(name(&mut a)?),
            "contains" => NamespaceOp::Contains(name(&mut a)?),
            "items" => NamespaceOp::Items,
            "incr" => NamespaceOp::Incr(name(&mut a)?, a.delta()?),
            _ => return Ok(None),
        }))
    }

    fn apply(
        cell: &Cell<Self>,
        op: NamespaceOp,
        _cx: &mut Ctx<'_>,
    ) -> Result<DataValue, RemoteError> {
        cell.lock().run(op)
    }
}

impl Encode for NamespaceOp {
    fn encode(self) -> WireCall {
        let s = DataValue::Str;
        let (method, args) = match self {
            NamespaceOp::GetAttr(n) => ("getattr", vec![s(n)]),
            NamespaceOp::Get(n) => ("get", vec![s(n)]),
            NamespaceOp::SetAttr(n, v) => ("setattr", vec![s(n), v]),
            NamespaceOp::DelAttr(n) => ("delattr", vec![s(n)]),
            NamespaceOp::Contains(n) => ("contains", vec![s(n)]),
            NamespaceOp::Items => ("items", vec![]),
            NamespaceOp::Incr(n, delta) => ("incr", vec![s(n), delta.to_value()]),
        };
        WireCall::new(method, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::objects::testing::{parse, round_trips};
    use crate::manager::value::ValueType;

    fn n(x: &str) -> String {
        x.to_owned()
    }

    #[test]
    fn every_op_round_trips_through_its_name() {
        round_trips(
            &Namespace::default(),
            vec![
                NamespaceOp::GetAttr(n("x")),
                NamespaceOp::Get(n("x")),
                NamespaceOp::SetAttr(n("x"), DataValue::Int(1)),
                NamespaceOp::DelAttr(n("x")),
                NamespaceOp::Contains(n("x")),
                NamespaceOp::Items,
                NamespaceOp::Incr(n("x"), Delta::Float(-1.5)),
            ],
        );
    }

    #[test]
    fn names_must_be_strings() {
        let ns = Namespace::default();
        assert_eq!(
            parse(&ns, "getattr", vec![DataValue::Int(1)]),
            Err(TypeError::AttributeName.into())
        );
        assert_eq!(
            parse(&ns, "setattr", vec![DataValue::Str("x".into())]),
            Err(TypeError::MissingArgument { position: 2 }.into())
        );
        assert_eq!(parse(&ns, "__dict__", vec![]), Ok(None));
        assert_eq!(
            Namespace::new(DataValue::Map(vec![(DataValue::Int(1), DataValue::Null)])).unwrap_err(),
            TypeError::FieldName
        );
        assert_eq!(
            Namespace::new(DataValue::List(vec![])).unwrap_err(),
            TypeError::BadInit {
                kind: ObjectKind::Namespace,
                found: ValueType::List
            }
        );
    }

    #[test]
    fn fields_set_get_delete_and_count() {
        let mut ns = Namespace::new(DataValue::Map(vec![(
            DataValue::Str("name".into()),
            DataValue::Str("seed".into()),
        )]))
        .unwrap();
        ns.run(NamespaceOp::SetAttr(n("x"), DataValue::Int(1)))
            .unwrap();
        assert_eq!(ns.run(NamespaceOp::GetAttr(n("x"))), Ok(DataValue::Int(1)));
        assert_eq!(
            ns.run(NamespaceOp::GetAttr(n("nope"))),
            Err(RemoteError::Key)
        );
        assert_eq!(
            ns.run(NamespaceOp::Get(n("nope"))),
            Ok(DataValue::List(vec![]))
        );
        assert_eq!(
            ns.run(NamespaceOp::Incr(n("x"), Delta::Int(2))),
            Ok(DataValue::Int(3))
        );
        assert_eq!(
            ns.run(NamespaceOp::Incr(n("y"), Delta::Int(2))),
            Ok(DataValue::Int(2))
        );
        assert_eq!(
            ns.run(NamespaceOp::Incr(n("name"), Delta::Int(2))),
            Err(TypeError::NotAddable {
                found: ValueType::Str
            }
            .into())
        );
        let DataValue::Map(items) = ns.run(NamespaceOp::Items).unwrap() else {
            panic!("items is a map")
        };
        assert_eq!(items.len(), 3);
        assert_eq!(ns.run(NamespaceOp::DelAttr(n("x"))), Ok(DataValue::Int(3)));
        assert_eq!(ns.run(NamespaceOp::DelAttr(n("x"))), Err(RemoteError::Key));
        assert_eq!(
            ns.run(NamespaceOp::Contains(n("x"))),
            Ok(DataValue::Bool(false))
        );
    }
}
