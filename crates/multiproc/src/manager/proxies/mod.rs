//! Typed proxies: one per object kind, generic over serde types, grouped by
//! family ([`collections`]: dict, list, Namespace; [`values`]: Value,
//! Array; [`queues`]; [`sync`]: locks, semaphores, Condition, Event,
//! Barrier), and [`UserProxy`] for user types.
//!
//! A proxy method builds its kind's typed operation (`DictOp::Get(key)`,
//! `LockOp::Acquire { timeout }`, …, from
//! [`objects`](super::objects)) and sends it with
//! [`Handle::invoke`]; it converts between its Rust types and
//! [`DataValue`]s on the way. What may not live here: method names (they
//! are the operations' encoding, in `objects/`), and anything the server
//! decides.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::client::{Handle, ManagerError};
use super::error::RemoteError;
use super::kind::ObjectKind;
use super::objects::LockOp;
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

fn count(d: DataValue) -> Result<u64> {
    Ok(int(d)? as u64)
}

fn len(d: DataValue) -> Result<usize> {
    Ok(int(d)? as usize)
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

/// Don't wait (the `try_` forms).
const NOW: Option<Duration> = Some(Duration::ZERO);

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
            /// Run `op` on the object.
            fn op(&self, op: impl $crate::manager::objects::Encode) -> Result<DataValue> {
                self.h.invoke(op)
            }
        }
    };
}

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
        let r = self.h.invoke(LockOp::Release).map(drop);
        std::mem::forget(self);
        r
    }
}

impl Drop for ProxyGuard<'_> {
    fn drop(&mut self) {
        let _ = self.h.invoke(LockOp::Release);
    }
}

/// The lock methods of a proxy whose object has a lock (`Lock`, `RLock`,
/// `Value`, `Array`, `Condition`: they all take [`LockOp`]s).
macro_rules! lock_methods {
    ($name:ident) => {
        lock_methods!($name<>);
    };
    ($name:ident < $($p:ident),* >) => {
        impl<$($p),*> $name<$($p),*> {
            /// Acquire, waiting as long as it takes.
            pub fn acquire(&self) -> Result<()> {
                self.op(LockOp::Acquire { timeout: None }).map(drop)
            }

            /// Acquire if free now.
            pub fn try_acquire(&self) -> Result<bool> {
                timed(self.op(LockOp::Acquire { timeout: NOW }))
            }

            /// Acquire, waiting at most `timeout`; whether it was acquired.
            pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
                timed(self.op(LockOp::Acquire { timeout: Some(timeout) }))
            }

            /// Release (Python's `release()`).
            pub fn release(&self) -> Result<()> {
                self.op(LockOp::Release).map(drop)
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
                boolean(self.op(LockOp::Locked)?)
            }
        }
    };
}

mod collections;
mod queues;
mod sync;
mod values;

pub use collections::{DictProxy, ListProxy, NamespaceProxy};
pub use queues::{JoinableQueueProxy, QueueProxy};
pub use sync::{BarrierProxy, ConditionProxy, EventProxy, LockProxy, RLockProxy, SemaphoreProxy};
pub use values::{ArrayProxy, ValueProxy};

/// A proxy to an instance of a registered user type
/// ([`ManagedObject`](super::ManagedObject)). User types are called by
/// name: their methods are theirs to name.
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
