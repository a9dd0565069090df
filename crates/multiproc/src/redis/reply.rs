//! Reading the server's replies: the shapes of stream entries and arrays,
//! with a typed error for anything else.

use std::collections::VecDeque;

use redis::Value;

use super::RedisError;

fn protocol(what: &str, v: &Option<Value>) -> RedisError {
    RedisError::Protocol(format!("{what}, got {v:?}"))
}

pub(super) fn as_array(v: Value) -> Result<Vec<Value>, RedisError> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        Value::Nil => Ok(Vec::new()),
        other => Err(protocol("expected an array", &Some(other))),
    }
}

pub(super) fn as_bytes(v: Option<Value>) -> Result<Vec<u8>, RedisError> {
    match v {
        Some(Value::BulkString(b)) => Ok(b),
        Some(Value::SimpleString(s)) => Ok(s.into_bytes()),
        other => Err(protocol("expected a string", &other)),
    }
}

pub(super) fn as_string(v: Option<Value>) -> Result<String, RedisError> {
    let b = as_bytes(v)?;
    String::from_utf8(b).map_err(|e| RedisError::Protocol(format!("not UTF-8: {e}")))
}

pub(super) fn as_int(v: Option<Value>) -> Result<i64, RedisError> {
    match v {
        Some(Value::Int(i)) => Ok(i),
        Some(Value::BulkString(b)) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| RedisError::Protocol("expected an integer".into())),
        other => Err(protocol("expected an integer", &other)),
    }
}

/// Stream entries read: each id with its payload (`None` for an entry
/// deleted while pending).
pub(super) type Entries = VecDeque<(String, Option<Vec<u8>>)>;

/// Entries `[[id, [field, value, ...]], ...]`.
pub(super) fn parse_entries(v: Value) -> Result<Entries, RedisError> {
    let mut out = VecDeque::new();
    for e in as_array(v)? {
        let mut e = as_array(e)?.into_iter();
        let id = as_string(e.next())?;
        let mut data = None;
        let mut f = as_array(e.next().unwrap_or(Value::Nil))?.into_iter();
        while let (Some(k), Some(v)) = (f.next(), f.next()) {
            if as_bytes(Some(k))? == b"d" {
                data = Some(as_bytes(Some(v))?);
            }
        }
        out.push_back((id, data));
    }
    Ok(out)
}

/// An `XREADGROUP` reply `[[stream, entries]]` (nil when it timed out).
pub(super) fn parse_read(v: Value) -> Result<Entries, RedisError> {
    let mut out = VecDeque::new();
    for s in as_array(v)? {
        let mut s = as_array(s)?.into_iter();
        let _name = s.next();
        out.extend(parse_entries(s.next().unwrap_or(Value::Nil))?);
    }
    Ok(out)
}
