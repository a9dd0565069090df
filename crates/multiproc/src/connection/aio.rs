//! `async` receive and send (the `tokio` feature): the connection's
//! descriptor waits in tokio's reactor (`AsyncFd`), and every read or write
//! is non-blocking.

use std::os::fd::{AsFd, BorrowedFd};

use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Waited;

use super::frame::MAX_HEADER_LEN;
use super::{Connection, RecvError, SendError, borrow_all, codec};

use multiproc_sys::ready::ready;

impl<T> Connection<T> {
    /// Receive until `once` (a `try_` receive) has a whole message,
    /// awaiting readability in between.
    async fn recv_async_with<R>(
        &mut self,
        mut once: impl FnMut(&mut Self) -> Result<R, Waited<RecvError>>,
    ) -> Result<R, RecvError> {
        loop {
            match once(self) {
                Err(Waited::GaveUp) => {}
                r => return r.map_err(Waited::into_blocking),
            }
            ready(self.fd.as_fd(), true).await.map_err(RecvError::Io)?;
        }
    }

    /// [`recv_bytes`](Self::recv_bytes), awaiting the message instead of
    /// blocking the thread (needs a tokio runtime).
    ///
    /// Cancel safe: the bytes of a message read before the future was
    /// dropped stay buffered in the connection for the next receive.
    pub async fn recv_bytes_async(&mut self) -> Result<Vec<u8>, RecvError> {
        self.recv_async_with(|c| c.recv_bytes_until(Some(Instant::now())))
            .await
    }

    /// Write what is left of a frame whose first bytes went out, awaiting
    /// writability in between.
    async fn flush_async(&mut self) -> Result<(), SendError> {
        while !self.flush_unsent()? {
            ready(self.fd.as_fd(), false).await?;
        }
        Ok(())
    }

    /// Send one frame, the concatenation of `bufs`, with `fds`: the part
    /// that fits now, the rest kept as unsent (so a dropped future leaves
    /// the stream whole: the next send writes the rest first), then
    /// flushed.
    async fn send_frame_async(
        &mut self,
        bufs: &[&[u8]],
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), SendError> {
        while !self.try_start_frame(bufs, fds)? {
            ready(self.fd.as_fd(), false).await?;
        }
        self.flush_async().await
    }

    /// [`send_bytes`](Self::send_bytes), awaiting room instead of blocking
    /// the thread (needs a tokio runtime).
    ///
    /// Cancel safety: a future dropped before the first byte went out sent
    /// nothing; one dropped after it leaves the rest of the message to go
    /// out first with the next send on this connection, so the stream never
    /// holds half a message followed by another.
    pub async fn send_bytes_async(&mut self, buf: &[u8]) -> Result<(), SendError> {
        self.check_bytes(buf.len())?;
        let mut header = [0u8; MAX_HEADER_LEN];
        let header = super::frame::encode_header(buf.len(), &mut header);
        self.send_frame_async(&[header, buf], &[]).await
    }
}

impl<T: DeserializeOwned> Connection<T> {
    /// [`recv`](Self::recv), awaiting the value instead of blocking the
    /// thread (needs a tokio runtime). A peer that closed or died gives
    /// [`RecvError::Eof`].
    ///
    /// Cancel safe: the bytes of a message read before the future was
    /// dropped stay buffered in the connection for the next receive.
    pub async fn recv_async(&mut self) -> Result<T, RecvError> {
        self.recv_async_with(|c| c.recv_until(Some(Instant::now())))
            .await
    }
}

impl<T: Serialize> Connection<T> {
    /// [`send`](Self::send), awaiting room instead of blocking the thread
    /// (needs a tokio runtime). Cancel safety as
    /// [`send_bytes_async`](Self::send_bytes_async).
    pub async fn send_async(&mut self, value: &T) -> Result<(), SendError> {
        self.check_writable()?;
        let mut wbuf = vec![0; MAX_HEADER_LEN + 1];
        let fds = codec::encode(value, &mut wbuf)?;
        let start = self.seal_frame(&mut wbuf, fds.len())?;
        self.send_frame_async(&[&wbuf[start..]], &borrow_all(&fds))
            .await
    }
}
