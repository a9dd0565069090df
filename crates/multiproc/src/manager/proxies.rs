//! Typed proxies: one per object kind, generic over serde types.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::client::{Handle, ManagerError};
use super::protocol::{ObjectKind, RemoteError};
use super::value::{DataValue, from_value, to_value};

type Result<T> = std::result::Result<T, ManagerError>;

fn v<T: Serialize + ?Sized>(x: &T) -> Result<DataValue> {
    Ok(to_value(x)?)
}

fn t<T: DeserializeOwned>(d: DataValue) -> Result<T> {
    Ok(from_value(d)?)
}

fn unopt<T: DeserializeOwned>(d: DataValue) -> Result<Option<T>> {
    match d {
        DataValue::List(mut l) if l.len() <= 1 => l.pop().map(t).transpose(),
        other => Err(ManagerError::Protocol(format!(
            "expected an option, got {}",
            other.type_name()
        ))),
    }
}

fn int(d: DataValue) -> Result<i64> {
    d.as_i64().ok_or_else(|| {
        ManagerError::Protocol(format!("expected an integer, got {}", d.type_name()))
    })
}

fn boolean(d: DataValue) -> Result<bool> {
    match d {
        DataValue::Bool(b) => Ok(b),
        other => Err(ManagerError::Protocol(format!(
            "expected a bool, got {}",
            other.type_name()
        ))),
    }
}

/// `Ok(false)` where a wait timed out.
fn timed(r: Result<DataValue>) -> Result<bool> {
    match r {
        Ok(_) => Ok(true),
        Err(ManagerError::Remote(RemoteError::Timeout)) => Ok(false),
        Err(e) => Err(e),
    }
}

fn not_found<T>(r: Result<T>, missing: RemoteError) -> Result<Option<T>> {
    match r {
        Ok(x) => Ok(Some(x)),
        Err(ManagerError::Remote(e)) if e == missing => Ok(None),
        Err(e) => Err(e),
    }
}

/// A proxy type: made from a [`Handle`] to an object of kind [`Proxy::KIND`]
/// (used by [`Manager::named`](super::Manager::named)).
pub trait Proxy: Sized {
    /// The kind of object behind it.
    const KIND: ObjectKind;
    /// Wrap a handle (which must be to an object of [`Proxy::KIND`]).
    fn from_handle(handle: Handle) -> Self;
    /// The handle inside.
    fn handle(&self) -> &Handle;
}

macro_rules! proxy {
    ($(#[$m:meta])* $name:ident < $($p:ident),* >, $kind:expr) => {
        $(#[$m])*
        #[derive(Serialize, Deserialize)]
        #[serde(bound = "")]
        pub struct $name<$($p),*> {
            h: Handle,
            _t: PhantomData<fn() -> ($($p,)*)>,
        }

        impl<$($p),*> Clone for $name<$($p),*> {
            fn clone(&self) -> Self {
                $name { h: self.h.clone(), _t: PhantomData }
            }
        }

        impl<$($p),*> fmt::Debug for $name<$($p),*> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.h)
            }
        }

        impl<$($p),*> Proxy for $name<$($p),*> {
            const KIND: ObjectKind = $kind;
            fn from_handle(h: Handle) -> Self {
                $name { h, _t: PhantomData }
            }
            fn handle(&self) -> &Handle {
                &self.h
            }
        }

        impl<$($p),*> $name<$($p),*> {
            fn call(&self, method: &str, args: Vec<DataValue>) -> Result<DataValue> {
                self.h.call(method, args, None)
            }
            #[allow(dead_code, reason = "not every proxy blocks")]
            fn call_t(&self, method: &str, args: Vec<DataValue>, timeout: Option<Duration>) -> Result<DataValue> {
                self.h.call(method, args, timeout)
            }
        }
    };
}

// ----- dict --------------------------------------------------------------------

proxy!(
    /// A `dict` on the server (Python's `manager.dict()`), keys `K`, values `V`.
    DictProxy<K, V>,
    ObjectKind::Dict
);

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> DictProxy<K, V> {
    /// `d.get(k)`: the value, or `None`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        unopt(self.call("get", vec![v(key)?])?)
    }

    /// `d[k]`: the value, or `Remote(Key)`.
    pub fn get_item(&self, key: &K) -> Result<V> {
        t(self.call("getitem", vec![v(key)?])?)
    }

    /// `d[k] = v`; the value it replaced.
    pub fn insert(&self, key: &K, value: &V) -> Result<Option<V>> {
        unopt(self.call("setitem", vec![v(key)?, v(value)?])?)
    }

    /// `d.pop(k, None)`: remove and return the value.
    pub fn remove(&self, key: &K) -> Result<Option<V>> {
        unopt(self.call("pop", vec![v(key)?])?)
    }

    /// Same as [`remove`](Self::remove) (Python's name).
    pub fn pop(&self, key: &K) -> Result<Option<V>> {
        self.remove(key)
    }

    /// `d.popitem()`: remove the last inserted entry.
    pub fn popitem(&self) -> Result<Option<(K, V)>> {
        not_found(self.call("popitem", vec![]).and_then(t), RemoteError::Key)
    }

    /// `k in d`.
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        boolean(self.call("contains", vec![v(key)?])?)
    }

    /// `len(d)`.
    pub fn len(&self) -> Result<usize> {
        Ok(int(self.call("len", vec![])?)? as usize)
    }

    /// `len(d) == 0`.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The keys, in insertion order.
    pub fn keys(&self) -> Result<Vec<K>> {
        t(self.call("keys", vec![])?)
    }

    /// The values, in insertion order.
    pub fn values(&self) -> Result<Vec<V>> {
        t(self.call("values", vec![])?)
    }

    /// The entries, in insertion order (one round trip: a snapshot).
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        match self.call("items", vec![])? {
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
        self.call("update", vec![DataValue::Map(pairs)]).map(drop)
    }

    /// `d.clear()`.
    pub fn clear(&self) -> Result<()> {
        self.call("clear", vec![]).map(drop)
    }

    /// `d.setdefault(k, default)`: the value, inserting `default` if absent.
    pub fn setdefault(&self, key: &K, default: &V) -> Result<V> {
        t(self.call("setdefault", vec![v(key)?, v(default)?])?)
    }

    /// Add `delta` to the integer at `key` (absent counts as 0) on the
    /// server, atomically; the new value. No lock, one round trip.
    pub fn incr(&self, key: &K, delta: i64) -> Result<i64> {
        int(self.call("incr", vec![v(key)?, DataValue::Int(delta)])?)
    }
}

// ----- list --------------------------------------------------------------------

proxy!(
    /// A `list` on the server (Python's `manager.list()`).
    ListProxy<T>,
    ObjectKind::List
);

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// `l.append(x)`.
    pub fn push(&self, x: &T) -> Result<()> {
        self.call("append", vec![v(x)?]).map(drop)
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
        self.call("extend", vec![DataValue::List(items)]).map(drop)
    }

    /// `l[i]` (negative counts from the end); `Remote(Index)` out of range.
    pub fn get(&self, i: i64) -> Result<T> {
        t(self.call("getitem", vec![DataValue::Int(i)])?)
    }

    /// `l[i] = x`; the value replaced.
    pub fn set(&self, i: i64, x: &T) -> Result<T> {
        t(self.call("setitem", vec![DataValue::Int(i), v(x)?])?)
    }

    /// `del l[i]`; the value removed.
    pub fn delete(&self, i: i64) -> Result<T> {
        t(self.call("delitem", vec![DataValue::Int(i)])?)
    }

    /// `len(l)`.
    pub fn len(&self) -> Result<usize> {
        Ok(int(self.call("len", vec![])?)? as usize)
    }

    /// `len(l) == 0`.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// `l.pop()`: the last element, or `None` when empty.
    pub fn pop(&self) -> Result<Option<T>> {
        not_found(self.call("pop", vec![]).and_then(t), RemoteError::Index)
    }

    /// `l.pop(i)`; `Remote(Index)` out of range.
    pub fn pop_at(&self, i: i64) -> Result<T> {
        t(self.call("pop", vec![DataValue::Int(i)])?)
    }

    /// `l.insert(i, x)` (Python's clamping of `i`).
    pub fn insert(&self, i: i64, x: &T) -> Result<()> {
        self.call("insert", vec![DataValue::Int(i), v(x)?])
            .map(drop)
    }

    /// `l.remove(x)`: the first equal element; `Remote(Value)` if none.
    pub fn remove(&self, x: &T) -> Result<()> {
        self.call("remove", vec![v(x)?]).map(drop)
    }

    /// `l.index(x)`, or `None`.
    pub fn index(&self, x: &T) -> Result<Option<usize>> {
        match self.call("index", vec![v(x)?]) {
            Ok(d) => Ok(Some(int(d)? as usize)),
            Err(ManagerError::Remote(RemoteError::Value(_))) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `l.count(x)`.
    pub fn count(&self, x: &T) -> Result<usize> {
        Ok(int(self.call("count", vec![v(x)?])?)? as usize)
    }

    /// `x in l`.
    pub fn contains(&self, x: &T) -> Result<bool> {
        boolean(self.call("contains", vec![v(x)?])?)
    }

    /// A copy of the whole list (`l[:]`).
    pub fn to_vec(&self) -> Result<Vec<T>> {
        t(self.call("tolist", vec![])?)
    }

    /// `l.clear()`.
    pub fn clear(&self) -> Result<()> {
        self.call("clear", vec![]).map(drop)
    }

    /// `l.reverse()`.
    pub fn reverse(&self) -> Result<()> {
        self.call("reverse", vec![]).map(drop)
    }

    /// `l.sort()`, by the server's order of values (numbers, then strings…).
    pub fn sort(&self) -> Result<()> {
        self.call("sort", vec![]).map(drop)
    }

    /// Add `delta` to the integer at `i`, atomically; the new value.
    pub fn incr(&self, i: i64, delta: i64) -> Result<i64> {
        int(self.call("incr", vec![DataValue::Int(i), DataValue::Int(delta)])?)
    }
}

// ----- Namespace ---------------------------------------------------------------

proxy!(
    /// A `Namespace` on the server: named fields of any serde type
    /// (Python's `ns.x = 1`, `ns.x`).
    NamespaceProxy<>,
    ObjectKind::Namespace
);

impl NamespaceProxy {
    /// `ns.name`; `Remote(Key)` if unset.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        t(self.call("getattr", vec![name.into()])?)
    }

    /// `getattr(ns, name, None)`.
    pub fn get_opt<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        unopt(self.call("get", vec![name.into()])?)
    }

    /// `ns.name = value`.
    pub fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<()> {
        self.call("setattr", vec![name.into(), v(value)?]).map(drop)
    }

    /// `del ns.name`.
    pub fn delete(&self, name: &str) -> Result<()> {
        self.call("delattr", vec![name.into()]).map(drop)
    }

    /// `hasattr(ns, name)`.
    pub fn contains(&self, name: &str) -> Result<bool> {
        boolean(self.call("contains", vec![name.into()])?)
    }

    /// Every field, by name.
    pub fn fields(&self) -> Result<Vec<(String, DataValue)>> {
        match self.call("items", vec![])? {
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
        int(self.call("incr", vec![name.into(), DataValue::Int(delta)])?)
    }
}

// ----- locks (shared by Lock, RLock, Value, Array, Condition) ----------------------

/// Holds a proxy's lock; released on drop.
#[must_use = "the lock is released when the guard is dropped"]
pub struct ProxyGuard<'a> {
    h: &'a Handle,
}

impl fmt::Debug for ProxyGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyGuard({:?})", self.h)
    }
}

impl ProxyGuard<'_> {
    /// Release now, reporting errors (dropping ignores them).
    pub fn release(self) -> Result<()> {
        let r = self.h.call("release", vec![], None).map(drop);
        std::mem::forget(self);
        r
    }
}

impl Drop for ProxyGuard<'_> {
    fn drop(&mut self) {
        let _ = self.h.call("release", vec![], None);
    }
}

macro_rules! lock_methods {
    ($name:ident) => {
        lock_methods!($name<>);
    };
    ($name:ident < $($p:ident),* >) => {
        impl<$($p),*> $name<$($p),*> {
            /// Acquire, waiting as long as it takes.
            pub fn acquire(&self) -> Result<()> {
                self.call_t("acquire", vec![], None).map(drop)
            }

            /// Acquire if free now.
            pub fn try_acquire(&self) -> Result<bool> {
                timed(self.call_t("acquire", vec![], Some(Duration::ZERO)))
            }

            /// Acquire, waiting at most `timeout`; whether it was acquired.
            pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
                timed(self.call_t("acquire", vec![], Some(timeout)))
            }

            /// Release (Python's `release()`).
            pub fn release(&self) -> Result<()> {
                self.call("release", vec![]).map(drop)
            }

            /// Acquire and return a guard that releases on drop (`with lock:`).
            pub fn lock(&self) -> Result<ProxyGuard<'_>> {
                self.acquire()?;
                Ok(ProxyGuard { h: &self.h })
            }

            /// A guard if the lock is free now.
            pub fn try_lock(&self) -> Result<Option<ProxyGuard<'_>>> {
                Ok(self.try_acquire()?.then_some(ProxyGuard { h: &self.h }))
            }

            /// A guard, waiting at most `timeout`.
            pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<ProxyGuard<'_>>> {
                Ok(self.acquire_timeout(timeout)?.then_some(ProxyGuard { h: &self.h }))
            }

            /// Whether anyone holds the lock.
            pub fn locked(&self) -> Result<bool> {
                boolean(self.call("locked", vec![])?)
            }
        }
    };
}

proxy!(
    /// A `Lock` on the server. Any thread may release it (as
    /// `threading.Lock`); locks held by a client whose connection closes are
    /// released.
    LockProxy<>,
    ObjectKind::Lock
);
lock_methods!(LockProxy);

proxy!(
    /// An `RLock` on the server: reentrant, owned by the acquiring thread of
    /// the acquiring process.
    RLockProxy<>,
    ObjectKind::RLock
);
lock_methods!(RLockProxy);

// ----- Value / Array -----------------------------------------------------------------

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
        t(self.call("get", vec![])?)
    }

    /// `v.value = x`.
    pub fn set(&self, x: &T) -> Result<()> {
        self.call("set", vec![v(x)?]).map(drop)
    }

    /// Set and return the previous value, atomically.
    pub fn swap(&self, x: &T) -> Result<T> {
        t(self.call("set", vec![v(x)?])?)
    }

    /// Add `delta` to an integer value, atomically; the new value.
    pub fn incr(&self, delta: i64) -> Result<i64> {
        int(self.call("incr", vec![DataValue::Int(delta)])?)
    }

    /// Set to `new` if the value equals `current`; whether it did.
    pub fn compare_and_set(&self, current: &T, new: &T) -> Result<bool> {
        boolean(self.call("compare_and_set", vec![v(current)?, v(new)?])?)
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
        t(self.call("getitem", vec![DataValue::Int(i)])?)
    }

    /// `a[i] = x`.
    pub fn set(&self, i: i64, x: &T) -> Result<()> {
        self.call("setitem", vec![DataValue::Int(i), v(x)?])
            .map(drop)
    }

    /// `len(a)`.
    pub fn len(&self) -> Result<usize> {
        Ok(int(self.call("len", vec![])?)? as usize)
    }

    /// `len(a) == 0`.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// `a[:]`.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        t(self.call("tolist", vec![])?)
    }

    /// `a[:] = xs` (same length), atomically.
    pub fn set_all(&self, xs: &[T]) -> Result<()> {
        let items = xs.iter().map(v).collect::<Result<Vec<_>>>()?;
        self.call("setall", vec![DataValue::List(items)]).map(drop)
    }

    /// Add `delta` to the integer at `i`, atomically; the new value.
    pub fn incr(&self, i: i64, delta: i64) -> Result<i64> {
        int(self.call("incr", vec![DataValue::Int(i), DataValue::Int(delta)])?)
    }
}

// ----- queues ----------------------------------------------------------------------

macro_rules! queue_methods {
    ($name:ident) => {
        impl<T: Serialize + DeserializeOwned> $name<T> {
            /// Put, waiting while the queue is full.
            pub fn put(&self, x: &T) -> Result<()> {
                self.call_t("put", vec![v(x)?], None).map(drop)
            }

            /// Put if there is room now; `Remote(Full)` otherwise.
            pub fn try_put(&self, x: &T) -> Result<()> {
                self.call_t("put", vec![v(x)?], Some(Duration::ZERO))
                    .map(drop)
            }

            /// Put, waiting at most `timeout`; `Remote(Full)` then.
            pub fn put_timeout(&self, x: &T, timeout: Duration) -> Result<()> {
                self.call_t("put", vec![v(x)?], Some(timeout)).map(drop)
            }

            /// Get, waiting while the queue is empty.
            pub fn get(&self) -> Result<T> {
                t(self.call_t("get", vec![], None)?)
            }

            /// Get if an item is there now; `Remote(Empty)` otherwise.
            pub fn try_get(&self) -> Result<T> {
                t(self.call_t("get", vec![], Some(Duration::ZERO))?)
            }

            /// Get, waiting at most `timeout`; `Remote(Empty)` then.
            pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
                t(self.call_t("get", vec![], Some(timeout))?)
            }

            /// Items in the queue now.
            pub fn qsize(&self) -> Result<usize> {
                Ok(int(self.call("qsize", vec![])?)? as usize)
            }

            /// Whether the queue is empty now.
            pub fn empty(&self) -> Result<bool> {
                boolean(self.call("empty", vec![])?)
            }

            /// Whether the queue is full now.
            pub fn full(&self) -> Result<bool> {
                boolean(self.call("full", vec![])?)
            }
        }
    };
}

proxy!(
    /// A `Queue` on the server (Python's `manager.Queue()`).
    QueueProxy<T>,
    ObjectKind::Queue
);
queue_methods!(QueueProxy);

proxy!(
    /// A `JoinableQueue` on the server: a queue with `task_done` / `join`.
    JoinableQueueProxy<T>,
    ObjectKind::JoinableQueue
);
queue_methods!(JoinableQueueProxy);

impl<T> JoinableQueueProxy<T> {
    /// Mark one item got earlier as done.
    pub fn task_done(&self) -> Result<()> {
        self.call("task_done", vec![]).map(drop)
    }

    /// Wait until every item put has been marked done.
    pub fn join(&self) -> Result<()> {
        self.call_t("join", vec![], None).map(drop)
    }

    /// [`join`](Self::join), waiting at most `timeout`; whether all were done.
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        timed(self.call_t("join", vec![], Some(timeout)))
    }
}

// ----- semaphores, condition, event, barrier ----------------------------------------

proxy!(
    /// A `Semaphore` or `BoundedSemaphore` on the server.
    SemaphoreProxy<>,
    ObjectKind::Semaphore
);

impl SemaphoreProxy {
    /// Take a permit, waiting as long as it takes.
    pub fn acquire(&self) -> Result<()> {
        self.call_t("acquire", vec![], None).map(drop)
    }

    /// Take a permit if one is free now.
    pub fn try_acquire(&self) -> Result<bool> {
        timed(self.call_t("acquire", vec![], Some(Duration::ZERO)))
    }

    /// Take a permit, waiting at most `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        timed(self.call_t("acquire", vec![], Some(timeout)))
    }

    /// Return a permit (`Remote(Release)` above a bounded semaphore's bound).
    pub fn release(&self) -> Result<()> {
        self.release_n(1)
    }

    /// Return `n` permits.
    pub fn release_n(&self, n: u64) -> Result<()> {
        self.call(
            "release",
            vec![DataValue::Int(i64::try_from(n).unwrap_or(i64::MAX))],
        )
        .map(drop)
    }

    /// The permits free now.
    pub fn get_value(&self) -> Result<u64> {
        Ok(int(self.call("get_value", vec![])?)? as u64)
    }
}

proxy!(
    /// A `Condition` on the server, with its own `RLock`.
    ConditionProxy<>,
    ObjectKind::Condition
);
lock_methods!(ConditionProxy);

impl ConditionProxy {
    /// Release the lock, wait for a notification, take the lock back.
    pub fn wait(&self) -> Result<()> {
        self.call_t("wait", vec![], None).map(drop)
    }

    /// [`wait`](Self::wait) at most `timeout`; whether notified (the lock
    /// is held again either way).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        boolean(self.call_t("wait", vec![], Some(timeout))?)
    }

    /// Wait until `pred()` holds (checked with the lock held), at most
    /// `timeout` in all (`None`: forever); the last value of `pred`.
    pub fn wait_for(
        &self,
        mut pred: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        let deadline = timeout.and_then(crate::deadline::after);
        loop {
            if pred() {
                return Ok(true);
            }
            match deadline {
                None => self.wait()?,
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        return Ok(pred());
                    }
                    self.wait_timeout(d - now)?;
                }
            }
        }
    }

    /// Wake one waiter.
    pub fn notify(&self) -> Result<()> {
        self.notify_n(1)
    }

    /// Wake up to `n` waiters.
    pub fn notify_n(&self, n: u64) -> Result<()> {
        self.call(
            "notify",
            vec![DataValue::Int(i64::try_from(n).unwrap_or(i64::MAX))],
        )
        .map(drop)
    }

    /// Wake every waiter.
    pub fn notify_all(&self) -> Result<()> {
        self.call("notify_all", vec![]).map(drop)
    }
}

proxy!(
    /// An `Event` on the server.
    EventProxy<>,
    ObjectKind::Event
);

impl EventProxy {
    /// Set the flag and wake every waiter.
    pub fn set(&self) -> Result<()> {
        self.call("set", vec![]).map(drop)
    }

    /// Clear the flag.
    pub fn clear(&self) -> Result<()> {
        self.call("clear", vec![]).map(drop)
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> Result<bool> {
        boolean(self.call("is_set", vec![])?)
    }

    /// Wait until the flag is set.
    pub fn wait(&self) -> Result<()> {
        self.call_t("wait", vec![], None).map(drop)
    }

    /// Wait at most `timeout`; whether the flag is set.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        timed(self.call_t("wait", vec![], Some(timeout)))
    }
}

proxy!(
    /// A `Barrier` on the server.
    BarrierProxy<>,
    ObjectKind::Barrier
);

impl BarrierProxy {
    /// Wait for every party; this party's arrival index (0 for the first).
    /// `Remote(BrokenBarrier)` if the barrier is or gets broken.
    pub fn wait(&self) -> Result<u64> {
        Ok(int(self.call_t("wait", vec![], None)?)? as u64)
    }

    /// [`wait`](Self::wait) at most `timeout`; timing out breaks the
    /// barrier (as in Python) and gives `Remote(BrokenBarrier)`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u64> {
        Ok(int(self.call_t("wait", vec![], Some(timeout))?)? as u64)
    }

    /// Break the barrier: every waiter gets `BrokenBarrier`.
    pub fn abort(&self) -> Result<()> {
        self.call("abort", vec![]).map(drop)
    }

    /// Back to the initial, unbroken state.
    pub fn reset(&self) -> Result<()> {
        self.call("reset", vec![]).map(drop)
    }

    /// The number of parties.
    pub fn parties(&self) -> Result<u64> {
        Ok(int(self.call("parties", vec![])?)? as u64)
    }

    /// Parties waiting now.
    pub fn n_waiting(&self) -> Result<u64> {
        Ok(int(self.call("n_waiting", vec![])?)? as u64)
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> Result<bool> {
        boolean(self.call("broken", vec![])?)
    }
}

// ----- user types ------------------------------------------------------------------

/// A proxy to an instance of a registered user type
/// ([`ManagedObject`](super::ManagedObject)).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserProxy {
    h: Handle,
}

impl UserProxy {
    pub(crate) fn new(h: Handle) -> UserProxy {
        UserProxy { h }
    }

    /// Call an allow-listed `method` with `args`; its result.
    pub fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<R> {
        t(self.h.call(method, vec![v(args)?], None)?)
    }

    /// The handle inside.
    pub fn handle(&self) -> &Handle {
        &self.h
    }
}
