//! A connection as a `futures` `Stream` of the values it receives and a
//! `Sink` for the values it sends (the `tokio` feature: the descriptor is
//! registered with tokio's reactor for the life of the stream).

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use futures_core::Stream;
use futures_sink::Sink;
use multiproc_sys::ready::Registration;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Waited;

use super::frame::MAX_HEADER_LEN;
use super::{Connection, RecvError, SendError, Transport, borrow_all, codec};

/// Bytes the sink accepts before `poll_ready` waits for them to go out
/// (`send_all` batches up to this much per write).
const HIGH_WATER: usize = 64 * 1024;

/// [`Connection::into_stream`]: the connection as a `Stream` of the values
/// it receives (ending at the peer's close) and a `Sink` for values to
/// send; `StreamExt::split` gives the two halves to two tasks.
///
/// Receiving is cancel safe as [`Connection::recv_async`] (a frame read in
/// part stays buffered). The sink writes whole frames in order: an item
/// that `start_send` accepted goes out, even in part, only as part of its
/// frame, and `poll_flush` returns once every accepted frame is written.
/// Handles in a value travel with its frame, as with
/// [`send`](Connection::send).
#[derive(Debug)]
pub struct ConnectionStream<T> {
    conn: Connection<T>,
    reg: Registration,
    /// Frames accepted and not yet written, in order; a frame's handles
    /// go out with its first byte (frames without handles are merged).
    out: VecDeque<(Vec<u8>, Vec<OwnedFd>)>,
    /// Bytes of `out`'s first frame already written.
    sent: usize,
    /// Bytes in `out` not yet written.
    queued: usize,
}

impl<T> Connection<T> {
    /// This connection as a `Stream` and `Sink` (see [`ConnectionStream`]).
    /// Needs a tokio runtime (the descriptor is registered with its
    /// reactor). Bytes of a message that a dropped
    /// [`send_async`](Self::send_async) left unsent go out first.
    pub fn into_stream(mut self) -> io::Result<ConnectionStream<T>> {
        let reg = Registration::new(self.fd.as_fd())?;
        let left = std::mem::take(&mut self.unsent);
        let mut out = VecDeque::new();
        let queued = left.len();
        if !left.is_empty() {
            out.push_back((left, Vec::new()));
        }
        Ok(ConnectionStream {
            conn: self,
            reg,
            out,
            sent: 0,
            queued,
        })
    }
}

impl<T> ConnectionStream<T> {
    /// The connection underneath.
    pub fn get_ref(&self) -> &Connection<T> {
        &self.conn
    }

    /// The connection back. Bytes accepted and not written yet stay with it
    /// and go out first with its next send. `Err(self)` when a frame
    /// carrying handles has not started yet (flush first): the connection
    /// has nowhere to keep its handles.
    pub fn into_inner(mut self) -> Result<Connection<T>, Box<Self>> {
        if self.out.iter().any(|(_, fds)| !fds.is_empty()) {
            return Err(Box::new(self));
        }
        let mut rest = Vec::with_capacity(self.queued);
        for (i, (bytes, _)) in self.out.drain(..).enumerate() {
            let from = if i == 0 { self.sent } else { 0 };
            rest.extend_from_slice(&bytes[from..]);
        }
        rest.append(&mut self.conn.unsent);
        self.conn.unsent = rest;
        Ok(self.conn)
    }

    /// Write until at most `limit` bytes are queued.
    fn poll_write_out(
        &mut self,
        cx: &mut Context<'_>,
        limit: usize,
    ) -> Poll<Result<(), SendError>> {
        let socket = self.conn.transport != Transport::Pipe;
        while self.queued > limit {
            let Some((bytes, fds)) = self.out.front_mut() else {
                break;
            };
            let r = multiproc_sys::io::write_nonblocking(
                self.conn.fd.as_fd(),
                socket,
                &[&bytes[self.sent..]],
                &borrow_all(fds),
            );
            match r {
                Ok(n) => {
                    if n > 0 {
                        // They went with this write's first byte.
                        fds.clear();
                    }
                    self.sent += n;
                    self.queued -= n;
                    if self.sent == bytes.len() {
                        self.out.pop_front();
                        self.sent = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.reg.poll_ready(cx, false))?;
                }
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: DeserializeOwned> Stream for ConnectionStream<T> {
    type Item = Result<T, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.conn.recv_until(Some(Instant::now())) {
                Ok(v) => return Poll::Ready(Some(Ok(v))),
                Err(Waited::GaveUp) => {
                    if let Err(e) = ready!(this.reg.poll_ready(cx, true)) {
                        return Poll::Ready(Some(Err(RecvError::Io(e))));
                    }
                }
                Err(Waited::Failed(RecvError::Eof)) => return Poll::Ready(None),
                Err(Waited::Failed(e)) => return Poll::Ready(Some(Err(e))),
            }
        }
    }
}

impl<T: Serialize> Sink<T> for ConnectionStream<T> {
    type Error = SendError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().poll_write_out(cx, HIGH_WATER - 1)
    }

    fn start_send(self: Pin<&mut Self>, item: T) -> Result<(), SendError> {
        let this = self.get_mut();
        this.conn.check_writable()?;
        // Encoded in the connection's reusable buffer (as `send` does), so
        // an item merged into the last frame allocates nothing.
        let mut wbuf = std::mem::take(&mut this.conn.wbuf);
        wbuf.clear();
        wbuf.resize(MAX_HEADER_LEN + 1, 0);
        let r = codec::encode(&item, &mut wbuf)
            .map_err(SendError::from)
            .and_then(|fds| Ok((this.conn.seal_frame(&mut wbuf, fds.len())?, fds)));
        let r = r.map(|(start, fds)| {
            let frame = &wbuf[start..];
            this.queued += frame.len();
            match this.out.back_mut() {
                // Merged into the last frame unless either carries handles
                // (they go with their own frame's first byte).
                Some((bytes, last_fds)) if fds.is_empty() && last_fds.is_empty() => {
                    bytes.extend_from_slice(frame);
                }
                _ => this.out.push_back((frame.to_vec(), fds)),
            }
        });
        this.conn.wbuf = wbuf;
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().poll_write_out(cx, 0)
    }

    /// Flushes; the connection itself closes when the stream is dropped.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().poll_write_out(cx, 0)
    }
}
