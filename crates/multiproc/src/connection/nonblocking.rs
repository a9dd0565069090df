//! Sends that never block, for event loops that wait for writability
//! themselves: the steps of [`Connection::send_bytes_async`] (tokio) and of
//! Python's `send_bytes_async` (asyncio).
//!
//! A message goes out whole or not at all, even when the sender gives up
//! half-way (a cancelled task): once its first byte is written, the rest is
//! kept in the connection and written before anything else.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use super::frame::MAX_HEADER_LEN;
use super::{Connection, SendError, Transport};

impl<T> Connection<T> {
    /// Write what an interrupted or cancelled send left of its message,
    /// without blocking: `Ok(true)` when nothing is left, `Ok(false)` when
    /// the descriptor is full (wait until it is writable and call again).
    pub fn flush_unsent(&mut self) -> Result<bool, SendError> {
        let socket = self.transport != Transport::Pipe;
        while !self.unsent.is_empty() {
            match multiproc_sys::io::write_nonblocking(
                self.fd.as_fd(),
                socket,
                &[&self.unsent],
                &[],
            ) {
                Ok(n) => {
                    self.unsent.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// Start sending `buf` as one message without blocking. `Ok(true)`: it
    /// went out, or its first bytes did and the rest is kept (finish with
    /// [`flush_unsent`](Self::flush_unsent); the next send writes it first
    /// anyway). `Ok(false)`: nothing was written (the descriptor is full, or
    /// an earlier message's rest is still unsent): wait until writable and
    /// call again.
    pub fn try_start_send_bytes(&mut self, buf: &[u8]) -> Result<bool, SendError> {
        self.check_bytes(buf.len())?;
        let mut header = [0u8; MAX_HEADER_LEN];
        let header = super::frame::encode_header(buf.len(), &mut header);
        self.try_start_frame(&[header, buf], &[])
    }

    /// [`try_start_send_bytes`](Self::try_start_send_bytes) for a frame
    /// that is the concatenation of `bufs`, sent with `fds`. Only what did
    /// not fit is copied.
    pub(super) fn try_start_frame(
        &mut self,
        bufs: &[&[u8]],
        fds: &[BorrowedFd<'_>],
    ) -> Result<bool, SendError> {
        if !self.flush_unsent()? {
            return Ok(false);
        }
        let socket = self.transport != Transport::Pipe;
        match multiproc_sys::io::write_nonblocking(self.fd.as_fd(), socket, bufs, fds) {
            Ok(n) => {
                self.keep_unsent(bufs, n);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Keep what a write of the frame `bufs` left unwritten after its
    /// first `written` bytes.
    pub(super) fn keep_unsent(&mut self, bufs: &[&[u8]], written: usize) {
        let mut skip = written;
        for b in bufs {
            let from = skip.min(b.len());
            skip -= from;
            self.unsent.extend_from_slice(&b[from..]);
        }
    }
}
