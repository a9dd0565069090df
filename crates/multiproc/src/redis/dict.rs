//! `Dict` on a Redis hash.

use std::marker::PhantomData;
use std::sync::Mutex;

use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Conn, REPLY_TIMEOUT, RedisError, decode, encode, key, sign, verify};

/// What a `Dict` takes and gives, for its `PhantomData`.
type KeyValue<K, V> = fn(K, V) -> (K, V);

/// A dict on a Redis hash, with the Manager dict proxy's method names
/// (`get`, `insert`, `remove`, `items`, `incr`, …). Keys and values are
/// encoded with the local queues' codec: equal keys of one type encode
/// alike, so a key is found whichever process wrote it.
///
/// With an authkey ([`open_with`](Self::open_with)) every field and value
/// carries an HMAC-SHA256 (a field's is deterministic, so lookups still
/// find it; a value's covers its field, so it cannot be moved to another
/// key), and what lacks the right one is refused, not decoded.
#[derive(Debug)]
pub struct Dict<K, V> {
    hash: String,
    conn: Mutex<Conn>,
    authkey: Option<Vec<u8>>,
    _kv: PhantomData<KeyValue<K, V>>,
}

/// The context a field's tag covers.
const FIELD: &[u8] = b"multiproc dict field";

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> Dict<K, V> {
    /// Open the dict `name` on the server at `url` (it exists once a key
    /// is set).
    pub fn open(url: &str, name: &str) -> Result<Self, RedisError> {
        Self::open_with(url, name, None)
    }

    /// [`open`](Self::open) with an authkey every handle of the dict shares.
    pub fn open_with(url: &str, name: &str, authkey: Option<Vec<u8>>) -> Result<Self, RedisError> {
        let client = redis::Client::open(url)?;
        let mut conn = Conn::new(client);
        conn.get(REPLY_TIMEOUT)?;
        Ok(Dict {
            hash: key(name, "dict"),
            conn: Mutex::new(conn),
            authkey,
            _kv: PhantomData,
        })
    }

    /// The hash field of `key`.
    fn field(&self, key: &K) -> Result<Vec<u8>, RedisError> {
        Ok(sign(self.authkey.as_deref(), FIELD, encode(key)?))
    }

    /// The stored form of `value` at `field`.
    fn stored(&self, field: &[u8], value: &V) -> Result<Vec<u8>, RedisError> {
        Ok(sign(self.authkey.as_deref(), field, encode(value)?))
    }

    fn key_of(&self, field: &[u8]) -> Result<K, RedisError> {
        let name = String::from_utf8_lossy(field);
        decode(verify(self.authkey.as_deref(), FIELD, field, &name)?, &name)
    }

    fn run<R>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<R>,
    ) -> Result<R, RedisError> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).run(f)
    }

    fn value(&self, raw: Option<Vec<u8>>, field: &[u8]) -> Result<Option<V>, RedisError> {
        raw.map(|b| {
            let name = String::from_utf8_lossy(field);
            decode(verify(self.authkey.as_deref(), field, &b, &name)?, &name)
        })
        .transpose()
    }

    /// The raw value at `field`.
    fn raw(&self, field: &[u8]) -> Result<Option<Vec<u8>>, RedisError> {
        self.run(|c| redis::cmd("HGET").arg(&self.hash).arg(field).query(c))
    }

    /// `d.get(k)`: the value, or `None`.
    pub fn get(&self, key: &K) -> Result<Option<V>, RedisError> {
        let f = self.field(key)?;
        let raw = self.raw(&f)?;
        self.value(raw, &f)
    }

    /// `d[k] = v`: the previous value, if any (one atomic step).
    pub fn insert(&self, key: &K, value: &V) -> Result<Option<V>, RedisError> {
        let f = self.field(key)?;
        let v = self.stored(&f, value)?;
        self.swap(&f, "HSET", Some(&v))
    }

    /// `d[k] = v` without reading the previous value.
    pub fn set(&self, key: &K, value: &V) -> Result<(), RedisError> {
        let f = self.field(key)?;
        let v = self.stored(&f, value)?;
        self.run(|c| {
            redis::cmd("HSET")
                .arg(&self.hash)
                .arg(&f)
                .arg(&v)
                .query::<()>(c)
        })
    }

    /// `d.pop(k, None)`: remove `key`, returning its value (one atomic
    /// step).
    pub fn remove(&self, key: &K) -> Result<Option<V>, RedisError> {
        let f = self.field(key)?;
        self.swap(&f, "HDEL", None)
    }

    /// Read `field`'s value and run `HSET field value` or `HDEL field` in
    /// one transaction; the value read.
    fn swap(
        &self,
        field: &[u8],
        command: &str,
        value: Option<&[u8]>,
    ) -> Result<Option<V>, RedisError> {
        let (old, _): (Option<Vec<u8>>, i64) = self.run(|c| {
            let mut p = redis::pipe();
            p.atomic().cmd("HGET").arg(&self.hash).arg(field);
            p.cmd(command).arg(&self.hash).arg(field);
            if let Some(v) = value {
                p.arg(v);
            }
            p.query(c)
        })?;
        self.value(old, field)
    }

    /// Set `key` to `new` only if its value is `expected` now (`None`:
    /// absent), compared as encoded; whether it was set. The building block
    /// of read-modify-write updates that no other writer can interleave
    /// with (Python's `incr` on pickled numbers is one).
    pub fn compare_and_set(
        &self,
        key: &K,
        expected: Option<&V>,
        new: &V,
    ) -> Result<bool, RedisError> {
        let f = self.field(key)?;
        let want = expected.map(|v| self.stored(&f, v)).transpose()?;
        let v = self.stored(&f, new)?;
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.run(|c| {
            redis::cmd("WATCH").arg(&self.hash).query::<()>(c)?;
            let now: Option<Vec<u8>> = redis::cmd("HGET").arg(&self.hash).arg(&f).query(c)?;
            if now != want {
                redis::cmd("UNWATCH").query::<()>(c)?;
                return Ok(false);
            }
            // EXEC answers nil when the watched hash changed.
            let done: Option<(i64,)> = redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(&self.hash)
                .arg(&f)
                .arg(&v)
                .query(c)?;
            Ok(done.is_some())
        })
        .inspect_err(|_| {
            // A refusal may leave the WATCH on this connection, where it
            // would fail a later compare-and-set for nothing (a broken
            // connection is dropped, and its WATCH with it).
            let _ = conn.run(|c| redis::cmd("UNWATCH").query::<()>(c));
        })
    }

    /// `del d[k]`: whether the key was there.
    pub fn delete(&self, key: &K) -> Result<bool, RedisError> {
        let f = self.field(key)?;
        let n: i64 = self.run(|c| redis::cmd("HDEL").arg(&self.hash).arg(&f).query(c))?;
        Ok(n > 0)
    }

    /// `k in d`.
    pub fn contains_key(&self, key: &K) -> Result<bool, RedisError> {
        let f = self.field(key)?;
        self.run(|c| redis::cmd("HEXISTS").arg(&self.hash).arg(&f).query(c))
    }

    /// `len(d)`.
    pub fn len(&self) -> Result<usize, RedisError> {
        self.run(|c| redis::cmd("HLEN").arg(&self.hash).query(c))
    }

    /// `len(d) == 0`.
    pub fn is_empty(&self) -> Result<bool, RedisError> {
        Ok(self.len()? == 0)
    }

    /// `d.items()` (in the server's order).
    pub fn items(&self) -> Result<Vec<(K, V)>, RedisError> {
        let v: Value = self.run(|c| redis::cmd("HGETALL").arg(&self.hash).query(c))?;
        let flat = match v {
            Value::Array(a) => a,
            Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            Value::Nil => Vec::new(),
            other => return Err(RedisError::Protocol(format!("HGETALL gave {other:?}"))),
        };
        let mut out = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(Value::BulkString(f)), Some(Value::BulkString(v))) = (it.next(), it.next())
        {
            let value = self.value(Some(v), &f)?.expect("a value was given");
            out.push((self.key_of(&f)?, value));
        }
        Ok(out)
    }

    /// `list(d.keys())`.
    pub fn keys(&self) -> Result<Vec<K>, RedisError> {
        Ok(self.items()?.into_iter().map(|(k, _)| k).collect())
    }

    /// `list(d.values())`.
    pub fn values(&self) -> Result<Vec<V>, RedisError> {
        Ok(self.items()?.into_iter().map(|(_, v)| v).collect())
    }

    /// `d.clear()`.
    pub fn clear(&self) -> Result<(), RedisError> {
        self.run(|c| redis::cmd("DEL").arg(&self.hash).query::<()>(c))
    }
}

impl<K: Serialize + DeserializeOwned> Dict<K, i64> {
    /// Add `delta` to the integer at `key` (absent counts as 0),
    /// atomically against every other writer (a compare-and-set, again
    /// while another writes in between); the new value.
    pub fn incr(&self, key: &K, delta: i64) -> Result<i64, RedisError> {
        loop {
            let old = self.get(key)?;
            let sum = old.unwrap_or(0).checked_add(delta).ok_or_else(|| {
                RedisError::Protocol(format!("{old:?} + {delta} overflows an i64"))
            })?;
            if self.compare_and_set(key, old.as_ref(), &sum)? {
                return Ok(sum);
            }
        }
    }
}
