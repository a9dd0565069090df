//! Proxies of `Queue` and `JoinableQueue`.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{NOW, Proxy, Result, boolean, len, t, timed, v};
use crate::manager::client::Handle;
use crate::manager::kind::ObjectKind;
use crate::manager::objects::QueueOp;
use crate::manager::value::DataValue;

macro_rules! queue_methods {
    ($name:ident) => {
        impl<T: Serialize + DeserializeOwned> $name<T> {
            fn put_op(&self, x: &T, timeout: Option<Duration>) -> Result<()> {
                self.op(QueueOp::Put {
                    item: v(x)?,
                    timeout,
                })
                .map(drop)
            }

            fn get_op(&self, timeout: Option<Duration>) -> Result<T> {
                t(self.op(QueueOp::Get { timeout })?)
            }

            /// Put, waiting while the queue is full.
            pub fn put(&self, x: &T) -> Result<()> {
                self.put_op(x, None)
            }

            /// Put if there is room now; `Remote(Full)` otherwise.
            pub fn try_put(&self, x: &T) -> Result<()> {
                self.put_op(x, NOW)
            }

            /// Put, waiting at most `timeout`; `Remote(Full)` then.
            pub fn put_timeout(&self, x: &T, timeout: Duration) -> Result<()> {
                self.put_op(x, Some(timeout))
            }

            /// Get, waiting while the queue is empty.
            pub fn get(&self) -> Result<T> {
                self.get_op(None)
            }

            /// Get if an item is there now; `Remote(Empty)` otherwise.
            pub fn try_get(&self) -> Result<T> {
                self.get_op(NOW)
            }

            /// Get, waiting at most `timeout`; `Remote(Empty)` then.
            pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
                self.get_op(Some(timeout))
            }

            /// Items in the queue now.
            pub fn qsize(&self) -> Result<usize> {
                len(self.op(QueueOp::QSize)?)
            }

            /// Whether the queue is empty now.
            pub fn empty(&self) -> Result<bool> {
                boolean(self.op(QueueOp::Empty)?)
            }

            /// Whether the queue is full now.
            pub fn full(&self) -> Result<bool> {
                boolean(self.op(QueueOp::Full)?)
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
        self.op(QueueOp::TaskDone).map(drop)
    }

    /// Wait until every item put has been marked done.
    pub fn join(&self) -> Result<()> {
        self.op(QueueOp::Join { timeout: None }).map(drop)
    }

    /// [`join`](Self::join), waiting at most `timeout`; whether all were done.
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        timed(self.op(QueueOp::Join {
            timeout: Some(timeout),
        }))
    }
}
