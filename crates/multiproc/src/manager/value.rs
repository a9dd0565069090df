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

/// A self-describing value: what a manager's objects hold.
///
/// Integers are `Int` when they fit an `i64`, `UInt` above that. Maps keep
/// their entries in order as pairs. Floats compare and hash by their bits
/// (so `NaN` is a usable key and `0.0 != -0.0`), but `serde_json`, the
/// bridge from Rust types, turns non-finite floats into `Null`.
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

impl DataValue {
    fn rank(&self) -> u8 {
        match self {
            DataValue::Null => 0,
            DataValue::Bool(_) => 1,
            DataValue::Int(_) => 2,
            DataValue::UInt(_) => 3,
            DataValue::Float(_) => 4,
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
        match self {
            DataValue::Null => "null",
            DataValue::Bool(_) => "bool",
            DataValue::Int(_) | DataValue::UInt(_) => "int",
            DataValue::Float(_) => "float",
            DataValue::Str(_) => "str",
            DataValue::Bytes(_) => "bytes",
            DataValue::List(_) => "list",
            DataValue::Map(_) => "map",
        }
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
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (UInt(a), UInt(b)) => a.cmp(b),
            (Float(a), Float(b)) => a.total_cmp(b),
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
        self.rank().hash(state);
        match self {
            DataValue::Null => {}
            DataValue::Bool(b) => b.hash(state),
            DataValue::Int(i) => i.hash(state),
            DataValue::UInt(u) => u.hash(state),
            DataValue::Float(f) => f.to_bits().hash(state),
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
}
