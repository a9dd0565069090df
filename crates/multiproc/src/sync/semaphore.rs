//! [`Semaphore`] and [`BoundedSemaphore`].

use std::io;
use std::time::{Duration, Instant};

use multiproc_shm::RawSemaphore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::shared::segment::{self};

#[cfg(doc)]
use super::Lock;
use super::handle::Handle;
use super::{ENV, ReleaseError, deadline};

// ----- Semaphore / BoundedSemaphore --------------------------------------------

const SEM_LAYOUT: u64 = segment::layout_hash("multiproc::Semaphore", 16, 4);

/// A counting semaphore shared by processes (Python's
/// `multiprocessing.Semaphore`).
///
/// Permits are not owned: one process may acquire and another release. So
/// when a process dies holding permits, they are not given back (unlike
/// System V's `SEM_UNDO`, which [`sysv`](crate) semaphore sets offer):
/// there is no record of whose permit is whose, and guessing would let more
/// processes in than the count allows. Use a [`Lock`] where a holder's death
/// must be detected.
#[derive(Clone, Debug)]
pub struct Semaphore {
    h: Handle<RawSemaphore>,
}
handle_object!(Semaphore);

/// A semaphore that refuses to be released above its initial value (Python's
/// `multiprocessing.BoundedSemaphore`).
#[derive(Clone, Debug)]
pub struct BoundedSemaphore {
    h: Handle<RawSemaphore>,
}
handle_object!(BoundedSemaphore);

macro_rules! semaphore_methods {
    ($ty:ident, $bounded:expr) => {
        impl $ty {
            /// A semaphore with `value` permits.
            pub fn new(value: u32) -> io::Result<$ty> {
                Ok($ty {
                    h: Handle::create("semaphore", SEM_LAYOUT, 0, |s: &RawSemaphore| {
                        s.init(value, $bounded)
                    })?,
                })
            }

            fn raw(&self) -> &RawSemaphore {
                self.h.get()
            }

            /// Take a permit, blocking.
            pub fn acquire(&self) {
                self.raw().acquire(&ENV, None);
            }

            /// Take a permit if one is free now.
            pub fn try_acquire(&self) -> bool {
                self.raw().try_acquire()
            }

            /// Take a permit, waiting at most `timeout`; `false` on timeout.
            pub fn acquire_timeout(&self, timeout: Duration) -> bool {
                self.raw().acquire(&ENV, deadline(timeout))
            }

            /// Take a permit, waiting until `deadline`; `false` if none came.
            pub fn acquire_deadline(&self, deadline: Instant) -> bool {
                self.raw().acquire(&ENV, Some(deadline))
            }

            /// [`acquire`](Self::acquire), awaiting a permit instead of
            /// blocking the thread. Cancel safe: a dropped future took no
            /// permit.
            pub async fn acquire_async(&self) {
                super::aio::acquire(self.raw(), None).await;
            }

            /// [`acquire_timeout`](Self::acquire_timeout), awaiting instead
            /// of blocking; whether a permit was taken. Cancel safe.
            pub async fn acquire_timeout_async(&self, timeout: Duration) -> bool {
                super::aio::acquire(self.raw(), deadline(timeout)).await
            }

            /// Give back one permit.
            pub fn release(&self) -> Result<(), ReleaseError> {
                self.release_n(1)
            }

            /// Give back `n` permits at once.
            pub fn release_n(&self, n: u32) -> Result<(), ReleaseError> {
                self.raw()
                    .release(&ENV, n)
                    .map_err(|_| ReleaseError::OverRelease)
            }

            /// Permits free now (Python's `get_value()`).
            pub fn get_value(&self) -> u32 {
                self.raw().value()
            }
        }
    };
}

semaphore_methods!(Semaphore, false);
semaphore_methods!(BoundedSemaphore, true);
