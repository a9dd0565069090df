//! Proxies of `Value` and `Array`: shared values with their own reentrant
//! lock.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{NOW, Proxy, ProxyGuard, Result, boolean, int, len, t, timed, v};
use crate::manager::client::Handle;
use crate::manager::kind::ObjectKind;
use crate::manager::objects::{ArrayOp, Delta, LockOp, ValueOp};
use crate::manager::value::DataValue;

proxy!(
    /// A `Value` on the server (Python's `manager.Value`), with its own
    /// reentrant lock for read-modify-write sequences, and atomic
    /// [`incr`](Self::incr) / [`compare_and_set`](Self::compare_and_set)
    /// that need none.
    ValueProxy<T>,
    ObjectKind::Value
);
lock_methods!(ValueProxy<T>);

impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    /// `v.value`.
    pub fn get(&self) -> Result<T> {
        t(self.op(ValueOp::Get)?)
    }

    /// `v.value = x`.
    pub fn set(&self, x: &T) -> Result<()> {
        self.op(ValueOp::Set(v(x)?)).map(drop)
    }

    /// Set and return the previous value, atomically.
    pub fn swap(&self, x: &T) -> Result<T> {
        t(self.op(ValueOp::Set(v(x)?))?)
    }

    /// Add `delta` to an integer value, atomically; the new value.
    pub fn incr(&self, delta: i64) -> Result<i64> {
        int(self.op(ValueOp::Incr(Delta::Int(delta)))?)
    }

    /// Set to `new` if the value equals `current`; whether it did.
    pub fn compare_and_set(&self, current: &T, new: &T) -> Result<bool> {
        boolean(self.op(ValueOp::CompareAndSet(v(current)?, v(new)?))?)
    }
}

proxy!(
    /// An `Array` on the server (fixed length), with its own reentrant lock.
    ArrayProxy<T>,
    ObjectKind::Array
);
lock_methods!(ArrayProxy<T>);

impl<T: Serialize + DeserializeOwned> ArrayProxy<T> {
    /// `a[i]`.
    pub fn get(&self, i: i64) -> Result<T> {
        t(self.op(ArrayOp::GetItem(i))?)
    }

    /// `a[i] = x`.
    pub fn set(&self, i: i64, x: &T) -> Result<()> {
        self.op(ArrayOp::SetItem(i, v(x)?)).map(drop)
    }

    /// `len(a)`.
    pub fn len(&self) -> Result<usize> {
        len(self.op(ArrayOp::Len)?)
    }

    /// `len(a) == 0`.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// `a[:]`.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        t(self.op(ArrayOp::ToList)?)
    }

    /// `a[:] = xs` (same length), atomically.
    pub fn set_all(&self, xs: &[T]) -> Result<()> {
        let items = xs.iter().map(v).collect::<Result<Vec<_>>>()?;
        self.op(ArrayOp::SetAll(items)).map(drop)
    }

    /// Add `delta` to the integer at `i`, atomically; the new value.
    pub fn incr(&self, i: i64, delta: i64) -> Result<i64> {
        int(self.op(ArrayOp::Incr(i, Delta::Int(delta)))?)
    }
}
