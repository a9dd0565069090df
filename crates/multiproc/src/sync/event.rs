//! [`Event`]: a flag processes wait on.

use std::io;
use std::time::{Duration, Instant};

use multiproc_shm::RawEvent;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::shared::segment::{self};

use super::handle::Handle;
use super::{ENV, deadline};

// ----- Event -------------------------------------------------------------------

const EVENT_LAYOUT: u64 = segment::layout_hash("multiproc::Event", 8, 4);

/// A flag processes wait for (Python's `multiprocessing.Event`).
///
/// A process asleep in `wait` when `set` is called returns `true` even if
/// `clear` follows at once, as in Python.
#[derive(Clone, Debug)]
pub struct Event {
    h: Handle<RawEvent>,
}
handle_object!(Event);

impl Event {
    /// A new, clear event.
    pub fn new() -> io::Result<Event> {
        Ok(Event {
            h: Handle::create("event", EVENT_LAYOUT, 0, |_: &RawEvent| {})?,
        })
    }

    fn raw(&self) -> &RawEvent {
        self.h.get()
    }

    /// Set the flag; wake every waiter.
    pub fn set(&self) {
        self.raw().set(&ENV);
    }

    /// Clear the flag.
    pub fn clear(&self) {
        self.raw().clear();
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.raw().is_set()
    }

    /// Wait until the flag is set.
    pub fn wait(&self) {
        self.raw().wait(&ENV, None);
    }

    /// Wait at most `timeout`; whether the flag was set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.raw().wait(&ENV, deadline(timeout))
    }

    /// Wait until the flag is set or `deadline` passes; whether it is set.
    pub fn wait_deadline(&self, deadline: Instant) -> bool {
        self.raw().wait(&ENV, Some(deadline))
    }

    /// [`wait`](Self::wait), awaiting instead of blocking the thread. Cancel
    /// safe: it only looks.
    pub async fn wait_async(&self) {
        super::aio::wait(self.raw(), None).await;
    }

    /// [`wait_timeout`](Self::wait_timeout), awaiting instead of blocking;
    /// whether the flag was set.
    pub async fn wait_timeout_async(&self, timeout: Duration) -> bool {
        super::aio::wait(self.raw(), deadline(timeout)).await
    }

    /// Whether the flag is set, without waiting (the `try` form of
    /// [`wait`](Self::wait); the same as [`is_set`](Self::is_set)).
    pub fn try_wait(&self) -> bool {
        self.is_set()
    }
}
