//! `async` gets, puts and joins (see [`crate::aio`] for how they wait).
//!
//! Cancel safety, for every method here: the operation happens in one step
//! inside a poll, so a future dropped before it completed took or put
//! nothing. A dropped `put_async` drops its item with it (as tokio's
//! `Sender::send`); a dropped `get_async` leaves the item in the queue for
//! the next getter.

use std::time::{Duration, Instant};

use multiproc_shm::{QueueError, QueueWait};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::aio::{Attempt, ENV, wait_until};
use crate::error::{HandsBack, Waited, WaitedWith};

use super::error::{GetError, GetTimeoutError, JoinError, PutError, PutTimeoutError};
use super::{JoinableQueue, Queue, deadline, passed};

impl<T> Queue<T> {
    /// Get with `once` (a `try_` get) until it finds an item, sleeping on
    /// the queue's `not_empty` in between.
    async fn get_async_with<R, E>(
        &self,
        deadline: Option<Instant>,
        mut once: impl FnMut() -> Result<R, Waited<E>>,
    ) -> Result<R, Waited<E>> {
        // The fast path (an item is there): no wait state built at all.
        match once() {
            Err(Waited::GaveUp) => {}
            r => return r,
        }
        let raw = self.inner.raw();
        let attempt = |_| match once() {
            Err(Waited::GaveUp) => Attempt::Again,
            r => Attempt::Done(r),
        };
        let watch = || Some(raw.watch(&ENV, QueueWait::Items));
        wait_until(deadline, attempt, watch)
            .await
            .unwrap_or(Err(Waited::GaveUp))
    }

    /// Put `item` with `once` (a `try_` put) until there is room, sleeping
    /// on the queue's `not_full` in between.
    async fn put_async_with<E: HandsBack>(
        &self,
        deadline: Option<Instant>,
        item: E::Item,
        mut once: impl FnMut(E::Item) -> Result<(), WaitedWith<E>>,
    ) -> Result<(), WaitedWith<E>> {
        // The fast path (there is room): no wait state built at all.
        let item = match once(item) {
            Err(WaitedWith::GaveUp(item)) => item,
            r => return r,
        };
        let raw = self.inner.raw();
        let mut slot = Some(item);
        let attempt = |_| {
            let Some(item) = slot.take() else {
                // Never: every refused attempt hands the item back.
                return Attempt::Done(Ok(()));
            };
            match once(item) {
                Err(WaitedWith::GaveUp(item)) => {
                    slot = Some(item);
                    Attempt::Again
                }
                r => Attempt::Done(r),
            }
        };
        let watch = || Some(raw.watch(&ENV, QueueWait::Room));
        let r = wait_until(deadline, attempt, watch).await;
        match (r, slot) {
            (Some(r), _) => r,
            (None, Some(item)) => Err(WaitedWith::GaveUp(item)),
            (None, None) => Ok(()),
        }
    }

    /// [`get_bytes`](Self::get_bytes), awaiting an item instead of
    /// blocking the thread. Cancel safe: a dropped future took nothing.
    pub async fn get_bytes_async(&self) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.get_bytes_into_async(&mut v).await?;
        Ok(v)
    }

    /// [`get_bytes_into`](Self::get_bytes_into), awaiting an item instead of
    /// blocking the thread: no allocation once `buf` has grown to size.
    /// Cancel safe: a dropped future took nothing (and left `buf` as it
    /// was, or cleared).
    pub async fn get_bytes_into_async(&self, buf: &mut Vec<u8>) -> Result<(), GetError> {
        self.get_async_with(None, || self.get_bytes_until(buf, passed()))
            .await
            .map_err(Waited::into_blocking)
    }

    /// [`put_bytes`](Self::put_bytes), awaiting room instead of blocking
    /// the thread. Cancel safe: a dropped future put nothing.
    pub async fn put_bytes_async(&self, bytes: &[u8]) -> Result<(), PutError<()>> {
        self.put_async_with(None, (), |()| self.put_bytes_until(bytes, passed()))
            .await
            .map_err(WaitedWith::into_blocking)
    }
}

impl<T: DeserializeOwned> Queue<T> {
    /// [`get`](Self::get), awaiting an item instead of blocking the thread.
    ///
    /// Cancel safe: dropping the future before it completes takes no item
    /// (the item stays for the next getter), so it can be used in
    /// `tokio::select!`.
    pub async fn get_async(&self) -> Result<T, GetError> {
        self.get_async_with(None, || self.get_item(passed()))
            .await
            .map_err(Waited::into_blocking)
    }

    /// [`get_timeout`](Self::get_timeout), awaiting instead of blocking.
    /// Cancel safe, as [`get_async`](Self::get_async).
    pub async fn get_timeout_async(&self, timeout: Duration) -> Result<T, GetTimeoutError> {
        self.get_async_with(deadline(timeout), || self.get_item(passed()))
            .await
            .map_err(Waited::into_timeout)
    }
}

impl<T: Serialize> Queue<T> {
    /// [`put`](Self::put), awaiting room instead of blocking the thread.
    ///
    /// Cancel safe in that a dropped future put nothing; the item is
    /// dropped with it (as with tokio's `Sender::send`).
    pub async fn put_async(&self, item: T) -> Result<(), PutError<T>> {
        self.put_async_with(None, item, |item| self.put_item(item, passed()))
            .await
            .map_err(WaitedWith::into_blocking)
    }

    /// [`put_timeout`](Self::put_timeout), awaiting instead of blocking;
    /// the item comes back on timeout. Cancel safe, as
    /// [`put_async`](Self::put_async).
    pub async fn put_timeout_async(
        &self,
        item: T,
        timeout: Duration,
    ) -> Result<(), PutTimeoutError<T>> {
        self.put_async_with(deadline(timeout), item, |item| {
            self.put_item(item, passed())
        })
        .await
        .map_err(WaitedWith::into_timeout)
    }
}

impl<T> JoinableQueue<T> {
    /// [`join`](Self::join), awaiting instead of blocking the thread: every
    /// item put marked done, or [`JoinError::Abandoned`] when the tasks
    /// left are held by dead processes. Cancel safe (it only looks).
    pub async fn join_async(&self) -> Result<(), JoinError> {
        let inner = &self.q.inner;
        let raw = inner.raw();
        let saved = || inner.join_progress();
        let mut progress = *saved();
        let attempt = |_| match raw.try_join(&ENV, &mut progress, true) {
            Ok(true) => Attempt::Done(Ok(())),
            Ok(false) | Err(QueueError::Timeout) => Attempt::Again,
            Err(QueueError::Abandoned) => Attempt::Done(Err(JoinError::Abandoned {
                tasks: progress.abandoned(),
            })),
            Err(_) => Attempt::Done(Err(JoinError::Corrupted)),
        };
        let watch = || Some(raw.watch(&ENV, QueueWait::AllDone));
        let r = wait_until(None, attempt, watch).await;
        *saved() = progress;
        r.unwrap_or(Ok(()))
    }
}
