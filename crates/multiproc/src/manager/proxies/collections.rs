//! Proxies of the collections: `dict`, `list` and `Namespace`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Proxy, Result, boolean, int, len, not_found, t, unopt, v};
use crate::manager::client::{Handle, ManagerError};
use crate::manager::error::RemoteError;
use crate::manager::error::ValueError;
use crate::manager::kind::ObjectKind;
use crate::manager::objects::{Delta, DictOp, ListOp, NamespaceOp};
use crate::manager::value::DataValue;

proxy!(
    /// A `dict` on the server (Python's `manager.dict()`), keys `K`, values `V`.
    DictProxy<K, V>,
    ObjectKind::Dict
);

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> DictProxy<K, V> {
    /// `d.get(k)`: the value, or `None`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        unopt(self.op(DictOp::Get(v(key)?))?)
    }

    /// `d[k]`: the value, or `Remote(Key)`.
    pub fn get_item(&self, key: &K) -> Result<V> {
        t(self.op(DictOp::GetItem(v(key)?))?)
    }

    /// `d[k] = v`; the value it replaced.
    pub fn insert(&self, key: &K, value: &V) -> Result<Option<V>> {
        unopt(self.op(DictOp::SetItem(v(key)?, v(value)?))?)
    }

    /// `d.pop(k, None)`: remove and return the value.
    pub fn remove(&self, key: &K) -> Result<Option<V>> {
        unopt(self.op(DictOp::Pop(v(key)?))?)
    }

    /// Same as [`remove`](Self::remove) (Python's name).
    pub fn pop(&self, key: &K) -> Result<Option<V>> {
        self.remove(key)
    }

    /// `d.popitem()`: remove the last inserted entry.
    pub fn popitem(&self) -> Result<Option<(K, V)>> {
        not_found(self.op(DictOp::PopItem).and_then(t), RemoteError::Key)
    }

    /// `k in d`.
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        boolean(self.op(DictOp::Contains(v(key)?))?)
    }

    /// `len(d)`.
    pub fn len(&self) -> Result<usize> {
        len(self.op(DictOp::Len)?)
    }

    /// `len(d) == 0`.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The keys, in insertion order.
    pub fn keys(&self) -> Result<Vec<K>> {
        t(self.op(DictOp::Keys)?)
    }

    /// The values, in insertion order.
    pub fn values(&self) -> Result<Vec<V>> {
        t(self.op(DictOp::Values)?)
    }

    /// The entries, in insertion order (one round trip: a snapshot).
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        match self.op(DictOp::Items)? {
            DataValue::Map(m) => m.into_iter().map(|(k, x)| Ok((t(k)?, t(x)?))).collect(),
            other => Err(ManagerError::Protocol(format!(
                "expected a map, got {}",
                other.type_name()
            ))),
        }
    }

    /// `d.update(entries)`, atomically.
    pub fn update<'a>(&self, entries: impl IntoIterator<Item = (&'a K, &'a V)>) -> Result<()>
    where
        K: 'a,
        V: 'a,
    {
        let pairs = entries
            .into_iter()
            .map(|(k, x)| Ok((v(k)?, v(x)?)))
            .collect::<Result<Vec<_>>>()?;
        self.op(DictOp::Update(pairs)).map(drop)
    }

    /// `d.clear()`.
    pub fn clear(&self) -> Result<()> {
        self.op(DictOp::Clear).map(drop)
    }

    /// `d.setdefault(k, default)`: the value, inserting `default` if absent.
    pub fn setdefault(&self, key: &K, default: &V) -> Result<V> {
        t(self.op(DictOp::SetDefault(v(key)?, v(default)?))?)
    }

    /// Add `delta` to the integer at `key` (absent counts as 0) on the
    /// server, atomically; the new value. No lock, one round trip.
    pub fn incr(&self, key: &K, delta: i64) -> Result<i64> {
        int(self.op(DictOp::Incr(v(key)?, Delta::Int(delta)))?)
    }
}

proxy!(
    /// A `list` on the server (Python's `manager.list()`).
    ListProxy<T>,
    ObjectKind::List
);

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// `l.append(x)`.
    pub fn push(&self, x: &T) -> Result<()> {
        self.op(ListOp::Append(v(x)?)).map(drop)
    }

    /// Same as [`push`](Self::push) (Python's name).
    pub fn append(&self, x: &T) -> Result<()> {
        self.push(x)
    }

    /// `l.extend(xs)`, atomically.
    pub fn extend<'a>(&self, xs: impl IntoIterator<Item = &'a T>) -> Result<()>
    where
        T: 'a,
    {
        let items = xs.into_iter().map(v).collect::<Result<Vec<_>>>()?;
        self.op(ListOp::Extend(items)).map(drop)
    }

    /// `l[i]` (negative counts from the end); `Remote(Index)` out of range.
    pub fn get(&self, i: i64) -> Result<T> {
        t(self.op(ListOp::GetItem(i))?)
    }

    /// `l[i] = x`; the value replaced.
    pub fn set(&self, i: i64, x: &T) -> Result<T> {
        t(self.op(ListOp::SetItem(i, v(x)?))?)
    }

    /// `del l[i]`; the value removed.
    pub fn delete(&self, i: i64) -> Result<T> {
        t(self.op(ListOp::DelItem(i))?)
    }

    /// `len(l)`.
    pub fn len(&self) -> Result<usize> {
        len(self.op(ListOp::Len)?)
    }

    /// `len(l) == 0`.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// `l.pop()`: the last element, or `None` when empty.
    pub fn pop(&self) -> Result<Option<T>> {
        not_found(self.op(ListOp::Pop(None)).and_then(t), RemoteError::Index)
    }

    /// `l.pop(i)`; `Remote(Index)` out of range.
    pub fn pop_at(&self, i: i64) -> Result<T> {
        t(self.op(ListOp::Pop(Some(i)))?)
    }

    /// `l.insert(i, x)` (Python's clamping of `i`).
    pub fn insert(&self, i: i64, x: &T) -> Result<()> {
        self.op(ListOp::Insert(i, v(x)?)).map(drop)
    }

    /// `l.remove(x)`: the first equal element; `Remote(Value)` if none.
    pub fn remove(&self, x: &T) -> Result<()> {
        self.op(ListOp::Remove(v(x)?)).map(drop)
    }

    /// `l.index(x)`, or `None`.
    pub fn index(&self, x: &T) -> Result<Option<usize>> {
        match self.op(ListOp::Index(v(x)?)) {
            Ok(d) => Ok(Some(len(d)?)),
            Err(ManagerError::Remote(RemoteError::Value(ValueError::IndexMissing))) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `l.count(x)`.
    pub fn count(&self, x: &T) -> Result<usize> {
        len(self.op(ListOp::Count(v(x)?))?)
    }

    /// `x in l`.
    pub fn contains(&self, x: &T) -> Result<bool> {
        boolean(self.op(ListOp::Contains(v(x)?))?)
    }

    /// A copy of the whole list (`l[:]`).
    pub fn to_vec(&self) -> Result<Vec<T>> {
        t(self.op(ListOp::ToList)?)
    }

    /// `l.clear()`.
    pub fn clear(&self) -> Result<()> {
        self.op(ListOp::Clear).map(drop)
    }

    /// `l.reverse()`.
    pub fn reverse(&self) -> Result<()> {
        self.op(ListOp::Reverse).map(drop)
    }

    /// `l.sort()`, by the server's order of values (numbers, then strings…).
    pub fn sort(&self) -> Result<()> {
        self.op(ListOp::Sort).map(drop)
    }

    /// Add `delta` to the integer at `i`, atomically; the new value.
    pub fn incr(&self, i: i64, delta: i64) -> Result<i64> {
        int(self.op(ListOp::Incr(i, Delta::Int(delta)))?)
    }
}

proxy!(
    /// A `Namespace` on the server: named fields of any serde type
    /// (Python's `ns.x = 1`, `ns.x`).
    NamespaceProxy<>,
    ObjectKind::Namespace
);

impl NamespaceProxy {
    /// `ns.name`; `Remote(Key)` if unset.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        t(self.op(NamespaceOp::GetAttr(name.into()))?)
    }

    /// `getattr(ns, name, None)`.
    pub fn get_opt<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        unopt(self.op(NamespaceOp::Get(name.into()))?)
    }

    /// `ns.name = value`.
    pub fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<()> {
        self.op(NamespaceOp::SetAttr(name.into(), v(value)?))
            .map(drop)
    }

    /// `del ns.name`.
    pub fn delete(&self, name: &str) -> Result<()> {
        self.op(NamespaceOp::DelAttr(name.into())).map(drop)
    }

    /// `hasattr(ns, name)`.
    pub fn contains(&self, name: &str) -> Result<bool> {
        boolean(self.op(NamespaceOp::Contains(name.into()))?)
    }

    /// Every field, by name.
    pub fn fields(&self) -> Result<Vec<(String, DataValue)>> {
        match self.op(NamespaceOp::Items)? {
            DataValue::Map(m) => Ok(m
                .into_iter()
                .filter_map(|(k, x)| match k {
                    DataValue::Str(k) => Some((k, x)),
                    _ => None,
                })
                .collect()),
            other => Err(ManagerError::Protocol(format!(
                "expected a map, got {}",
                other.type_name()
            ))),
        }
    }

    /// Add `delta` to the integer field `name` (unset counts as 0),
    /// atomically; the new value.
    pub fn incr(&self, name: &str, delta: i64) -> Result<i64> {
        int(self.op(NamespaceOp::Incr(name.into(), Delta::Int(delta)))?)
    }
}
