//! [`SimpleQueue`]: Python's `SimpleQueue`, a [`Queue`] without size or join.

use std::fmt;
use std::io;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{GetError, PutError};
use super::mpmc::{Queue, QueueBuilder};

// ----- SimpleQueue -------------------------------------------------------------------

/// Python's `multiprocessing.SimpleQueue`: `put`, `get`, `is_empty`,
/// `close` (an unbounded [`Queue`] with the short interface).
pub struct SimpleQueue<T> {
    pub(super) q: Queue<T>,
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue { q: self.q.clone() }
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SimpleQueue").field(&self.q).finish()
    }
}

impl<T> SimpleQueue<T> {
    /// A new simple queue.
    pub fn new() -> io::Result<Self> {
        QueueBuilder::default().build_simple()
    }

    /// Whether the queue is empty now (Python's `empty()`).
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Close the queue: later puts fail, gets drain what is left.
    pub fn close(&self) {
        self.q.close()
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.q.is_closed()
    }
}

impl<T: Serialize> SimpleQueue<T> {
    /// Put an item.
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.q.put(item)
    }
}

impl<T: DeserializeOwned> SimpleQueue<T> {
    /// Get an item, blocking while the queue is empty.
    pub fn get(&self) -> Result<T, GetError> {
        self.q.get()
    }
}

impl<T> Serialize for SimpleQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.q.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SimpleQueue {
            q: Queue::deserialize(d)?,
        })
    }
}
