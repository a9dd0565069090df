//! Reading a call's positional arguments into typed values (each a typed
//! [`TypeError`] when it does not fit), and the value helpers several kinds
//! share: Python-style indexes, atomic `incr`, lengths and options.

use std::time::{Duration, Instant};

use crate::manager::error::{Count, RemoteError, TypeError};
use crate::manager::value::DataValue;

/// A call's positional arguments, taken in order. Arguments past those a
/// method takes are ignored.
#[derive(Debug)]
pub(crate) struct Args {
    items: std::vec::IntoIter<DataValue>,
    /// Arguments taken so far (the last one's position, counting from 1).
    taken: u32,
}

impl Args {
    /// The arguments of a call.
    pub(crate) fn new(args: Vec<DataValue>) -> Args {
        Args {
            items: args.into_iter(),
            taken: 0,
        }
    }

    /// The position of the argument taken last.
    fn position(&self) -> u32 {
        self.taken
    }

    /// The next argument, which must be there.
    pub(crate) fn value(&mut self) -> Result<DataValue, TypeError> {
        self.taken += 1;
        self.items.next().ok_or(TypeError::MissingArgument {
            position: self.taken,
        })
    }

    /// The next argument, if there is one and it is not null.
    pub(crate) fn optional(&mut self) -> Option<DataValue> {
        self.taken += 1;
        self.items.next().filter(|v| !matches!(v, DataValue::Null))
    }

    /// The next argument, or null if there is none (a user method's one
    /// argument).
    pub(crate) fn value_or_null(&mut self) -> DataValue {
        self.optional().unwrap_or(DataValue::Null)
    }

    /// The next argument as an integer (an index).
    pub(crate) fn int(&mut self) -> Result<i64, TypeError> {
        let v = self.value()?;
        self.as_int(&v)
    }

    /// The next argument as an integer, if there is one and it is not null.
    pub(crate) fn optional_int(&mut self) -> Result<Option<i64>, TypeError> {
        match self.optional() {
            None => Ok(None),
            Some(v) => self.as_int(&v).map(Some),
        }
    }

    fn as_int(&self, v: &DataValue) -> Result<i64, TypeError> {
        v.as_i64().ok_or(TypeError::NotAnInteger {
            position: self.position(),
            found: v.value_type(),
        })
    }

    /// The next argument as a list (the argument of `method`).
    pub(crate) fn list(&mut self, method: &str) -> Result<Vec<DataValue>, TypeError> {
        match self.value()? {
            DataValue::List(l) => Ok(l),
            _ => Err(TypeError::NotAList {
                method: method.to_owned(),
            }),
        }
    }

    /// The next argument as an `incr` delta.
    pub(crate) fn delta(&mut self) -> Result<Delta, TypeError> {
        Delta::from_value(self.value()?)
    }

    /// The next argument as a count; absent or null is `default`.
    pub(crate) fn count_or(&mut self, what: Count, default: u64) -> Result<u64, TypeError> {
        match self.optional() {
            None => Ok(default),
            Some(v) => count(&v, what),
        }
    }
}

/// A non-negative integer (null counts as 0).
pub(crate) fn count(v: &DataValue, what: Count) -> Result<u64, TypeError> {
    match v {
        DataValue::Null => Ok(0),
        v => v
            .as_i64()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or(TypeError::NotACount { what }),
    }
}

/// A count as the wire carries it.
pub(crate) fn count_value(n: u64) -> DataValue {
    DataValue::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// What `incr` adds: an integer, or a float (which makes the sum a float).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Delta {
    /// Integer addition, checked for overflow.
    Int(i64),
    /// Float addition.
    Float(f64),
}

impl Delta {
    /// A delta from the wire.
    pub(crate) fn from_value(v: DataValue) -> Result<Delta, TypeError> {
        match v {
            DataValue::Float(f) => Ok(Delta::Float(f)),
            v => v.as_i64().map(Delta::Int).ok_or(TypeError::NotANumber),
        }
    }

    /// The delta as the wire carries it.
    pub(crate) fn to_value(self) -> DataValue {
        match self {
            Delta::Int(i) => DataValue::Int(i),
            Delta::Float(f) => DataValue::Float(f),
        }
    }
}

/// Add `delta` to the number in `slot` (null counts as 0); the new value.
pub(crate) fn incr(slot: &mut DataValue, delta: Delta) -> Result<DataValue, RemoteError> {
    let base = |slot: &DataValue| match slot {
        DataValue::Null => Ok(0),
        v => v.as_i64().ok_or(RemoteError::Overflow),
    };
    let new = match (&*slot, delta) {
        (DataValue::Float(a), Delta::Float(f)) => DataValue::Float(a + f),
        (DataValue::Float(a), Delta::Int(d)) => DataValue::Float(a + d as f64),
        (DataValue::Null | DataValue::Int(_) | DataValue::UInt(_), Delta::Float(f)) => {
            DataValue::Float(base(slot)? as f64 + f)
        }
        (DataValue::Null | DataValue::Int(_) | DataValue::UInt(_), Delta::Int(d)) => {
            DataValue::Int(base(slot)?.checked_add(d).ok_or(RemoteError::Overflow)?)
        }
        (other, _) => {
            return Err(TypeError::NotAddable {
                found: other.value_type(),
            }
            .into());
        }
    };
    *slot = new.clone();
    Ok(new)
}

/// Python-style index: negative counts from the end.
pub(crate) fn index(len: usize, i: i64) -> Result<usize, RemoteError> {
    let len_i = i64::try_from(len).map_err(|_| RemoteError::Index)?;
    let j = if i < 0 { i + len_i } else { i };
    if (0..len_i).contains(&j) {
        Ok(j as usize)
    } else {
        Err(RemoteError::Index)
    }
}

/// A length as the wire carries it.
pub(crate) fn len_value(n: usize) -> DataValue {
    DataValue::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// `Some(v)` / `None` on the wire: a list of zero or one element.
pub(crate) fn opt(v: Option<DataValue>) -> DataValue {
    DataValue::List(v.into_iter().collect())
}

/// The deadline of a blocking operation (`None`: wait forever, also for a
/// timeout too long for the clock).
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(crate::deadline::after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::value::ValueType;

    #[test]
    fn arguments_are_taken_in_order_with_typed_errors() {
        let mut a = Args::new(vec![
            DataValue::Int(3),
            DataValue::Str("x".into()),
            DataValue::Null,
        ]);
        assert_eq!(a.int(), Ok(3));
        assert_eq!(
            a.int(),
            Err(TypeError::NotAnInteger {
                position: 2,
                found: ValueType::Str
            })
        );
        assert_eq!(a.optional(), None, "null is absent");
        assert_eq!(a.value(), Err(TypeError::MissingArgument { position: 4 }));
        let mut a = Args::new(vec![DataValue::Map(vec![])]);
        assert_eq!(
            a.list("extend"),
            Err(TypeError::NotAList {
                method: "extend".into()
            })
        );
        assert_eq!(
            Args::new(vec![DataValue::Int(-1)]).count_or(Count::N, 1),
            Err(TypeError::NotACount { what: Count::N })
        );
        assert_eq!(Args::new(vec![]).count_or(Count::N, 1), Ok(1));
        assert_eq!(
            Args::new(vec![DataValue::Null]).count_or(Count::N, 1),
            Ok(1)
        );
        assert_eq!(count(&DataValue::Null, Count::MaxSize), Ok(0));
        assert_eq!(
            Args::new(vec![DataValue::Bool(true)]).delta(),
            Err(TypeError::NotANumber)
        );
        assert_eq!(
            Args::new(vec![DataValue::UInt(u64::MAX)]).delta(),
            Err(TypeError::NotANumber)
        );
    }

    #[test]
    fn incr_follows_the_number_types() {
        let mut slot = DataValue::Null;
        assert_eq!(incr(&mut slot, Delta::Int(2)), Ok(DataValue::Int(2)));
        assert_eq!(
            incr(&mut slot, Delta::Float(0.5)),
            Ok(DataValue::Float(2.5))
        );
        assert_eq!(incr(&mut slot, Delta::Int(1)), Ok(DataValue::Float(3.5)));
        let mut big = DataValue::Int(i64::MAX);
        assert_eq!(incr(&mut big, Delta::Int(1)), Err(RemoteError::Overflow));
        assert_eq!(big, DataValue::Int(i64::MAX), "unchanged on error");
        let mut huge = DataValue::UInt(u64::MAX);
        assert_eq!(incr(&mut huge, Delta::Int(0)), Err(RemoteError::Overflow));
        let mut s = DataValue::Str("a".into());
        assert_eq!(
            incr(&mut s, Delta::Int(1)),
            Err(TypeError::NotAddable {
                found: ValueType::Str
            }
            .into())
        );
    }

    #[test]
    fn indexes_count_from_either_end() {
        assert_eq!(index(3, 0), Ok(0));
        assert_eq!(index(3, -1), Ok(2));
        assert_eq!(index(3, 3), Err(RemoteError::Index));
        assert_eq!(index(3, -4), Err(RemoteError::Index));
        assert_eq!(index(0, 0), Err(RemoteError::Index));
        assert_eq!(index(3, i64::MIN), Err(RemoteError::Index));
    }
}
