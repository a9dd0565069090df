//! A queue as a `futures` `Stream` of its items and a `Sink` for them (the
//! `tokio` feature, which brings `futures-core` and `futures-sink`; they
//! run on any executor).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use futures_sink::Sink;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{TryError, TrySendError};

use super::Queue;
use super::error::{GetError, PutError};

type Pending<R> = Pin<Box<dyn Future<Output = R> + Send>>;

/// [`Queue::into_stream`]: the queue's items, each got as by
/// [`get_async`](Queue::get_async), until the queue is closed and drained.
/// An item that fails to decode comes as an `Err` and the stream goes on.
///
/// Dropping the stream while it waits takes no item. A wait allocates one
/// boxed future; an item that is already there costs no allocation.
pub struct QueueStream<T> {
    q: Queue<T>,
    waiting: Option<Pending<Result<T, GetError>>>,
}

impl<T> fmt::Debug for QueueStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueStream")
            .field("q", &self.q)
            .field("waiting", &self.waiting.is_some())
            .finish()
    }
}

impl<T: DeserializeOwned + Send + 'static> Stream for QueueStream<T> {
    type Item = Result<T, GetError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let r = match &mut this.waiting {
            Some(w) => {
                let r = ready!(w.as_mut().poll(cx));
                this.waiting = None;
                r
            }
            None => match this.q.try_get() {
                Ok(t) => Ok(t),
                Err(TryError::Failed(e)) => Err(e),
                Err(TryError::WouldBlock) => {
                    let q = this.q.clone();
                    let w = this
                        .waiting
                        .insert(Box::pin(async move { q.get_async().await }));
                    let r = ready!(w.as_mut().poll(cx));
                    this.waiting = None;
                    r
                }
            },
        };
        Poll::Ready(match r {
            Err(GetError::Closed) => None,
            r => Some(r),
        })
    }
}

/// [`Queue::into_sink`]: puts items, each as by
/// [`put_async`](Queue::put_async). An item that finds room goes in at
/// `start_send`; one that must wait is held until room comes, which
/// `poll_ready` and `poll_flush` await. Dropping the sink while an item
/// waits drops that item.
pub struct QueueSink<T> {
    q: Queue<T>,
    waiting: Option<Pending<Result<(), PutError<T>>>>,
}

impl<T> fmt::Debug for QueueSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueSink")
            .field("q", &self.q)
            .field("waiting", &self.waiting.is_some())
            .finish()
    }
}

impl<T: Serialize + Send + 'static> QueueSink<T> {
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PutError<T>>> {
        if let Some(w) = &mut self.waiting {
            let r = ready!(w.as_mut().poll(cx));
            self.waiting = None;
            r?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: Serialize + Send + 'static> Sink<T> for QueueSink<T> {
    type Error = PutError<T>;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.drive(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: T) -> Result<(), Self::Error> {
        match self.q.try_put(item) {
            Ok(()) => Ok(()),
            Err(TrySendError::Failed(e)) => Err(e),
            Err(TrySendError::Full(item)) => {
                let q = self.q.clone();
                self.waiting = Some(Box::pin(async move { q.put_async(item).await }));
                Ok(())
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.drive(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.drive(cx)
    }
}

impl<T> Queue<T> {
    /// This queue (a handle to it) as a `Stream` of its items.
    pub fn into_stream(self) -> QueueStream<T> {
        QueueStream {
            q: self,
            waiting: None,
        }
    }

    /// This queue (a handle to it) as a `Sink` for items.
    pub fn into_sink(self) -> QueueSink<T> {
        QueueSink {
            q: self,
            waiting: None,
        }
    }
}
