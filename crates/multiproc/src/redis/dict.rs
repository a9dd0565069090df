//! `Dict` on a Redis hash.

use std::marker::PhantomData;
use std::sync::Mutex;

use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Conn, RedisError, decode, encode, key};

/// What a `Dict` takes and gives, for its `PhantomData`.
type KeyValue<K, V> = fn(K, V) -> (K, V);

/// A dict on a Redis hash, with the Manager dict proxy's method names
/// (`get`, `insert`, `remove`, `items`, `incr`, …). Keys and values are
/// encoded with the local queues' codec: equal keys of one type encode
/// alike, so a key is found whichever process wrote it.
#[derive(Debug)]
pub struct Dict<K, V> {
    hash: String,
    conn: Mutex<Conn>,
    _kv: PhantomData<KeyValue<K, V>>,
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> Dict<K, V> {
    /// Open the dict `name` on the server at `url` (it exists once a key
    /// is set).
    pub fn open(url: &str, name: &str) -> Result<Self, RedisError> {
        let client = redis::Client::open(url)?;
        let mut conn = Conn::new(client);
        conn.get()?;
        Ok(Dict {
            hash: key(name, "dict"),
            conn: Mutex::new(conn),
            _kv: PhantomData,
        })
    }

    fn run<R>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<R>,
    ) -> Result<R, RedisError> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).run(f)
    }

    fn value(&self, raw: Option<Vec<u8>>, k: &[u8]) -> Result<Option<V>, RedisError> {
        raw.map(|b| decode(&b, &String::from_utf8_lossy(k)))
            .transpose()
    }

    /// `d.get(k)`: the value, or `None`.
    pub fn get(&self, key: &K) -> Result<Option<V>, RedisError> {
        let k = encode(key)?;
        let raw: Option<Vec<u8>> =
            self.run(|c| redis::cmd("HGET").arg(&self.hash).arg(&k).query(c))?;
        self.value(raw, &k)
    }

    /// `d[k] = v`: the previous value, if any (one atomic step).
    pub fn insert(&self, key: &K, value: &V) -> Result<Option<V>, RedisError> {
        let v = encode(value)?;
        self.swap(key, "HSET", Some(&v))
    }

    /// `d[k] = v` without reading the previous value.
    pub fn set(&self, key: &K, value: &V) -> Result<(), RedisError> {
        let (k, v) = (encode(key)?, encode(value)?);
        self.run(|c| {
            redis::cmd("HSET")
                .arg(&self.hash)
                .arg(&k)
                .arg(&v)
                .query::<()>(c)
        })
    }

    /// `d.pop(k, None)`: remove `key`, returning its value (one atomic
    /// step).
    pub fn remove(&self, key: &K) -> Result<Option<V>, RedisError> {
        self.swap(key, "HDEL", None)
    }

    /// Read `key`'s value and run `HSET key value` or `HDEL key` in one
    /// transaction; the value read.
    fn swap(&self, key: &K, command: &str, value: Option<&[u8]>) -> Result<Option<V>, RedisError> {
        let k = encode(key)?;
        let (old, _): (Option<Vec<u8>>, i64) = self.run(|c| {
            let mut p = redis::pipe();
            p.atomic().cmd("HGET").arg(&self.hash).arg(&k);
            p.cmd(command).arg(&self.hash).arg(&k);
            if let Some(v) = value {
                p.arg(v);
            }
            p.query(c)
        })?;
        self.value(old, &k)
    }

    /// `del d[k]`: whether the key was there.
    pub fn delete(&self, key: &K) -> Result<bool, RedisError> {
        let k = encode(key)?;
        let n: i64 = self.run(|c| redis::cmd("HDEL").arg(&self.hash).arg(&k).query(c))?;
        Ok(n > 0)
    }

    /// `k in d`.
    pub fn contains_key(&self, key: &K) -> Result<bool, RedisError> {
        let k = encode(key)?;
        self.run(|c| redis::cmd("HEXISTS").arg(&self.hash).arg(&k).query(c))
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
        while let (Some(Value::BulkString(k)), Some(Value::BulkString(v))) = (it.next(), it.next())
        {
            let name = String::from_utf8_lossy(&k).into_owned();
            out.push((decode(&k, &name)?, decode(&v, &name)?));
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
    /// atomically against every other writer (optimistic: `WATCH`, and
    /// again if another wrote the hash in between); the new value.
    pub fn incr(&self, key: &K, delta: i64) -> Result<i64, RedisError> {
        let k = encode(key)?;
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let new = conn.run(|c| {
                redis::cmd("WATCH").arg(&self.hash).query::<()>(c)?;
                let raw: Option<Vec<u8>> = redis::cmd("HGET").arg(&self.hash).arg(&k).query(c)?;
                Ok(raw)
            })?;
            let old: i64 = match new {
                Some(b) => decode(&b, &String::from_utf8_lossy(&k))?,
                None => 0,
            };
            let Some(sum) = old.checked_add(delta) else {
                let _ = conn.run(|c| redis::cmd("UNWATCH").query::<()>(c));
                return Err(RedisError::Protocol(format!(
                    "{old} + {delta} overflows an i64"
                )));
            };
            let v = encode(&sum)?;
            // EXEC answers nil when the watched hash changed: try again.
            let done: Option<(i64,)> = conn.run(|c| {
                redis::pipe()
                    .atomic()
                    .cmd("HSET")
                    .arg(&self.hash)
                    .arg(&k)
                    .arg(&v)
                    .query(c)
            })?;
            if done.is_some() {
                return Ok(sum);
            }
        }
    }
}
