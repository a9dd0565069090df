//! [`DataValue`]: the self-describing data the server stores.
//!
//! The server never sees the clients' Rust types: a proxy converts its `T`
//! into a [`DataValue`] (through `serde_json`'s data model) before sending it
//! and back after receiving it. Decoding a [`DataValue`] from the wire is
//! bounded: at most [`MAX_DEPTH`] levels of nesting (deeper input is a
//! decode error, never a stack overflow); sizes are bounded by the
//! connection's maximum message size.

use std::cell::Cell;
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};

/// The deepest nesting of lists and maps accepted from the wire.
pub const MAX_DEPTH: usize = 64;

/// The key of a map that holds a value only Python clients read: the
/// pickle's bytes, optionally followed by an [`EQ_TAG`] entry.
pub const PICKLE_TAG: &str = "\u{0}multiproc.pickle";

/// The key of a pickled value's second entry, its *equality form*: a plain
/// value equal to it in Python, with the same hash (`numpy.int64(1)` has
/// `1`, a `namedtuple` its plain tuple). The value compares, orders and
/// hashes as that form.
pub const EQ_TAG: &str = "\u{0}multiproc.eq";

/// The key of a map that stands for a Python tuple: `{TUPLE_TAG: [items]}`
/// (so `(1, 2)` is not the list `[1, 2]`, as in Python).
pub const TUPLE_TAG: &str = "\u{0}multiproc.tuple";

/// A self-describing value: what a manager's objects hold.
///
/// Integers are `Int` when they fit an `i64`, `UInt` above that. Maps keep
/// their entries in order as pairs.
///
/// Equality, order and hashing follow Python's, so that dict keys and
/// `list.index` behave as in Python whichever client stored them:
/// - numbers compare by value across `Bool`, `Int`, `UInt` and `Float`
///   (`true == 1 == 1.0`, `0.0 == -0.0`); `NaN`s compare by their bits (so
///   `NaN` is a usable key) and after every other number;
/// - a pickled value with an equality form ([`EQ_TAG`]) is that form;
/// - otherwise values of different kinds differ (`"1" != 1`), and maps and
///   lists compare element by element.
///
/// `serde_json`, the bridge from Rust types, turns non-finite floats into
/// `Null`.
#[derive(Debug, Clone, Serialize)]
pub enum DataValue {
    /// Python's `None`, Rust's `()` and `None`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer above `i64::MAX`.
    UInt(u64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// Raw bytes (from clients that have them; Rust `Vec<u8>` travels as a
    /// list of integers).
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A sequence.
    List(Vec<DataValue>),
    /// A map, as ordered pairs.
    Map(Vec<(DataValue, DataValue)>),
}

/// The wire mirror of [`DataValue`] (same variants, same order): derived,
/// while [`DataValue`]'s own `Deserialize` counts the depth around it.
#[derive(Deserialize)]
enum Repr {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    List(Vec<DataValue>),
    Map(Vec<(DataValue, DataValue)>),
}

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

struct DepthGuard;

impl DepthGuard {
    fn enter() -> Option<DepthGuard> {
        DEPTH.with(|d| {
            if d.get() >= MAX_DEPTH {
                None
            } else {
                d.set(d.get() + 1);
                Some(DepthGuard)
            }
        })
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

impl<'de> Deserialize<'de> for DataValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Some(_guard) = DepthGuard::enter() else {
            return Err(D::Error::custom(format!(
                "value nested deeper than {MAX_DEPTH} levels"
            )));
        };
        Ok(match Repr::deserialize(d)? {
            Repr::Null => DataValue::Null,
            Repr::Bool(b) => DataValue::Bool(b),
            Repr::Int(i) => DataValue::Int(i),
            Repr::UInt(u) => DataValue::UInt(u),
            Repr::Float(f) => DataValue::Float(f),
            Repr::Str(s) => DataValue::Str(s),
            Repr::Bytes(b) => DataValue::Bytes(b),
            Repr::List(l) => DataValue::List(l),
            Repr::Map(m) => DataValue::Map(m),
        })
    }
}

/// A number as it compares: integral values (of any variant) as integers,
/// the rest as floats.
#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

/// 2^127: floats at least this large (in magnitude) stay floats.
const I128_LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;

impl Num {
    fn cmp(self, other: Num) -> Ordering {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            (Num::Float(a), Num::Float(b)) => match (a.is_nan(), b.is_nan()) {
                (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
                (true, true) => a.to_bits().cmp(&b.to_bits()),
                (false, true) => Ordering::Less,
                (true, false) => Ordering::Greater,
            },
            (Num::Int(i), Num::Float(f)) => Num::int_vs_float(i, f),
            (Num::Float(f), Num::Int(i)) => Num::int_vs_float(i, f).reverse(),
        }
    }

    /// `i` against a float that is not integral (or is NaN, infinite, or
    /// beyond `i128`).
    fn int_vs_float(i: i128, f: f64) -> Ordering {
        if f.is_nan() || f >= I128_LIMIT {
            Ordering::Less
        } else if f < -I128_LIMIT {
            Ordering::Greater
        } else if i <= f.floor() as i128 {
            // `f` is not integral, so it lies above its floor.
            Ordering::Less
        } else {
            Ordering::Greater
        }
    }
}

impl DataValue {
    /// What this value compares, orders and hashes as: a pickled value
    /// with an equality form is that form.
    fn eq_view(&self) -> &DataValue {
        if let DataValue::Map(m) = self {
            if let [
                (DataValue::Str(p), DataValue::Bytes(_)),
                (DataValue::Str(e), v),
            ] = m.as_slice()
            {
                if p == PICKLE_TAG && e == EQ_TAG {
                    return v.eq_view();
                }
            }
        }
        self
    }

    fn num(&self) -> Option<Num> {
        Some(match *self {
            DataValue::Bool(b) => Num::Int(i128::from(b)),
            DataValue::Int(i) => Num::Int(i128::from(i)),
            DataValue::UInt(u) => Num::Int(i128::from(u)),
            DataValue::Float(f) if f.fract() == 0.0 && f.abs() < I128_LIMIT => Num::Int(f as i128),
            DataValue::Float(f) => Num::Float(f),
            _ => return None,
        })
    }

    fn rank(&self) -> u8 {
        match self {
            DataValue::Null => 0,
            DataValue::Bool(_) | DataValue::Int(_) | DataValue::UInt(_) | DataValue::Float(_) => 1,
            DataValue::Str(_) => 5,
            DataValue::Bytes(_) => 6,
            DataValue::List(_) => 7,
            DataValue::Map(_) => 8,
        }
    }

    /// The integer, if this is one that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            DataValue::Int(i) => Some(i),
            DataValue::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            DataValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is a list.
    pub fn as_list(&self) -> Option<&[DataValue]> {
        match self {
            DataValue::List(l) => Some(l),
            _ => None,
        }
    }

    /// A short name of the variant, for error messages.
    pub fn type_name(&self) -> &'static str {
        self.value_type().name()
    }

    /// The variant, for typed error messages.
    pub fn value_type(&self) -> ValueType {
        match self {
            DataValue::Null => ValueType::Null,
            DataValue::Bool(_) => ValueType::Bool,
            DataValue::Int(_) | DataValue::UInt(_) => ValueType::Int,
            DataValue::Float(_) => ValueType::Float,
            DataValue::Str(_) => ValueType::Str,
            DataValue::Bytes(_) => ValueType::Bytes,
            DataValue::List(_) => ValueType::List,
            DataValue::Map(_) => ValueType::Map,
        }
    }
}

/// The type of a [`DataValue`] (`Int` and `UInt` are one: `int`), as error
/// messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ValueType {
    /// `null`.
    Null,
    /// `bool`.
    Bool,
    /// `int`.
    Int,
    /// `float`.
    Float,
    /// `str`.
    Str,
    /// `bytes`.
    Bytes,
    /// `list`.
    List,
    /// `map`.
    Map,
}

impl ValueType {
    /// The short name: `null`, `bool`, `int`, `float`, `str`, `bytes`,
    /// `list` or `map`.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Null => "null",
            ValueType::Bool => "bool",
            ValueType::Int => "int",
            ValueType::Float => "float",
            ValueType::Str => "str",
            ValueType::Bytes => "bytes",
            ValueType::List => "list",
            ValueType::Map => "map",
        }
    }
}

impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq for DataValue {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DataValue {}

impl PartialOrd for DataValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DataValue {
    fn cmp(&self, other: &Self) -> Ordering {
        use DataValue::*;
        let (a, b) = (self.eq_view(), other.eq_view());
        if let (Some(x), Some(y)) = (a.num(), b.num()) {
            return x.cmp(y);
        }
        match (a, b) {
            (Null, Null) => Ordering::Equal,
            (Str(a), Str(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (List(a), List(b)) => a.cmp(b),
            (Map(a), Map(b)) => a.cmp(b),
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }
}

impl Hash for DataValue {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let v = self.eq_view();
        v.rank().hash(state);
        match v.num() {
            Some(Num::Int(i)) => return (0u8, i).hash(state),
            Some(Num::Float(f)) => return (1u8, f.to_bits()).hash(state),
            None => {}
        }
        match v {
            DataValue::Null
            | DataValue::Bool(_)
            | DataValue::Int(_)
            | DataValue::UInt(_)
            | DataValue::Float(_) => {}
            DataValue::Str(s) => s.hash(state),
            DataValue::Bytes(b) => b.hash(state),
            DataValue::List(l) => l.hash(state),
            DataValue::Map(m) => m.hash(state),
        }
    }
}

impl From<i64> for DataValue {
    fn from(i: i64) -> Self {
        DataValue::Int(i)
    }
}

impl From<&str> for DataValue {
    fn from(s: &str) -> Self {
        DataValue::Str(s.to_owned())
    }
}

impl From<String> for DataValue {
    fn from(s: String) -> Self {
        DataValue::Str(s)
    }
}

impl From<bool> for DataValue {
    fn from(b: bool) -> Self {
        DataValue::Bool(b)
    }
}

/// Why a Rust value and a [`DataValue`] could not be converted.
#[derive(Debug, thiserror::Error)]
#[error("cannot convert between the Rust type and the manager's data: {0}")]
pub struct ConvertError(pub String);

fn from_json(v: serde_json::Value) -> DataValue {
    match v {
        serde_json::Value::Null => DataValue::Null,
        serde_json::Value::Bool(b) => DataValue::Bool(b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                DataValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                DataValue::UInt(u)
            } else {
                DataValue::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => DataValue::Str(s),
        serde_json::Value::Array(a) => DataValue::List(a.into_iter().map(from_json).collect()),
        serde_json::Value::Object(o) => DataValue::Map(
            o.into_iter()
                .map(|(k, v)| (DataValue::Str(k), from_json(v)))
                .collect(),
        ),
    }
}

fn key_string(k: DataValue) -> String {
    match k {
        DataValue::Str(s) => s,
        DataValue::Int(i) => i.to_string(),
        DataValue::UInt(u) => u.to_string(),
        DataValue::Bool(b) => b.to_string(),
        DataValue::Float(f) => f.to_string(),
        DataValue::Null => "null".to_owned(),
        other => format!("{other:?}"),
    }
}

fn to_json(v: DataValue) -> serde_json::Value {
    match v {
        DataValue::Null => serde_json::Value::Null,
        DataValue::Bool(b) => serde_json::Value::Bool(b),
        DataValue::Int(i) => i.into(),
        DataValue::UInt(u) => u.into(),
        DataValue::Float(f) => serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        DataValue::Str(s) => serde_json::Value::String(s),
        DataValue::Bytes(b) => b.into(),
        DataValue::List(l) => serde_json::Value::Array(l.into_iter().map(to_json).collect()),
        DataValue::Map(m) => serde_json::Value::Object(
            m.into_iter()
                .map(|(k, v)| (key_string(k), to_json(v)))
                .collect(),
        ),
    }
}

/// Convert a Rust value into a [`DataValue`].
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<DataValue, ConvertError> {
    serde_json::to_value(value)
        .map(from_json)
        .map_err(|e| ConvertError(e.to_string()))
}

/// Convert a [`DataValue`] into a Rust value.
pub fn from_value<T: DeserializeOwned>(value: DataValue) -> Result<T, ConvertError> {
    serde_json::from_value(to_json(value)).map_err(|e| ConvertError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_depth_limit() {
        let v = to_value(&(1i32, "a", vec![1.5f64], Some(3u64))).unwrap();
        let back: (i32, String, Vec<f64>, Option<u64>) = from_value(v).unwrap();
        assert_eq!(back, (1, "a".into(), vec![1.5], Some(3)));
        let mut deep = DataValue::Null;
        for _ in 0..200 {
            deep = DataValue::List(vec![deep]);
        }
        let bytes = postcard::to_stdvec(&deep).unwrap();
        assert!(postcard::from_bytes::<DataValue>(&bytes).is_err());
        let mut ok = DataValue::Null;
        for _ in 0..(MAX_DEPTH - 1) {
            ok = DataValue::List(vec![ok]);
        }
        let bytes = postcard::to_stdvec(&ok).unwrap();
        assert_eq!(postcard::from_bytes::<DataValue>(&bytes).unwrap(), ok);
    }

    fn hash_of(v: &DataValue) -> u64 {
        use std::collections::hash_map::DefaultHasher;
        let mut h = DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    fn pickled(eq: DataValue) -> DataValue {
        DataValue::Map(vec![
            (
                DataValue::Str(PICKLE_TAG.into()),
                DataValue::Bytes(vec![1, 2]),
            ),
            (DataValue::Str(EQ_TAG.into()), eq),
        ])
    }

    /// Python's rules: what is equal hashes the same, and the order is a
    /// total order consistent with it.
    #[test]
    fn equality_order_and_hash_follow_python() {
        use DataValue::*;
        let equal_groups = [
            vec![Bool(true), Int(1), UInt(1), Float(1.0), pickled(Int(1))],
            vec![Bool(false), Int(0), Float(0.0), Float(-0.0)],
            vec![UInt(1 << 63), Float(9_223_372_036_854_775_808.0)],
            vec![Float(2.5), pickled(Float(2.5))],
            vec![Str("k".into()), pickled(Str("k".into()))],
            vec![Float(f64::NAN), pickled(Float(f64::NAN))],
        ];
        for g in &equal_groups {
            for a in g {
                for b in g {
                    assert_eq!(a, b, "{a:?} == {b:?}");
                    assert_eq!(hash_of(a), hash_of(b), "hash {a:?} == hash {b:?}");
                }
            }
        }
        let ascending = [
            Null,
            Float(f64::NEG_INFINITY),
            Int(i64::MIN),
            Float(-1.5),
            Bool(false),
            Float(0.5),
            Int(1),
            Float(1.5),
            UInt(u64::MAX),
            Float(1e30),
            Float(f64::INFINITY),
            Float(f64::NAN),
            Str("a".into()),
            Bytes(vec![0]),
            List(vec![Int(1)]),
            List(vec![Float(1.5)]),
        ];
        for (i, a) in ascending.iter().enumerate() {
            for (j, b) in ascending.iter().enumerate() {
                assert_eq!(a.cmp(b), i.cmp(&j), "{a:?} vs {b:?}");
            }
        }
        // 2^64 - 1 is not a float (it rounds to 2^64), as in Python.
        assert_ne!(UInt(u64::MAX), Float(18_446_744_073_709_551_616.0));
        // Different kinds stay different; containers compare elementwise.
        assert_ne!(Str("1".into()), Int(1));
        assert_ne!(Bytes(b"a".to_vec()), Str("a".into()));
        assert_eq!(List(vec![Int(1), Int(2)]), List(vec![Float(1.0), UInt(2)]));
        let tuple = |v| Map(vec![(Str(TUPLE_TAG.into()), List(v))]);
        assert_eq!(tuple(vec![Int(1), Int(2)]), tuple(vec![Float(1.0), Int(2)]));
        assert_ne!(tuple(vec![Int(1), Int(2)]), List(vec![Int(1), Int(2)]));
        assert_eq!(pickled(tuple(vec![Int(1)])), tuple(vec![Bool(true)]));
        // A map keeps the first key of equal ones, as Python's dict does.
        let mut m = std::collections::HashMap::new();
        m.insert(Bool(true), 1);
        assert_eq!(m.get(&Float(1.0)), Some(&1));
        assert_eq!(m.get(&pickled(Int(1))), Some(&1));
    }
}
