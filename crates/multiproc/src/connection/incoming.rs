//! Reading frames and the descriptors that came with them from a pipe or
//! socket: the buffered incoming side of a [`Connection`].

use std::collections::VecDeque;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::error::RecvError;
use crate::error::Waited;

use super::codec::DecodeError;
use super::frame::{Fill, FrameReader, Payload, ReadError, Source};

/// The kind of descriptor under a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Transport {
    /// A pipe (or FIFO): bytes only, no handles.
    Pipe,
    /// A stream Unix socket: bytes and handles.
    Socket,
    /// A TCP socket: bytes only, no handles; sends never raise `SIGPIPE`.
    Tcp,
}

/// Descriptors received on a Unix socket, and where in the byte stream
/// each batch arrived, so that every frame takes exactly the descriptors
/// that came with it (a frame whose handles do not match is refused alone,
/// and the next frame still gets its own).
///
/// Where a batch belongs follows from two kernel rules for stream Unix
/// sockets: the descriptors of a `sendmsg` ride on its first byte, which
/// is the first byte of a frame (a frame goes out in one `sendmsg`, and a
/// partial send's remainder carries none); and a `recvmsg` that picks up
/// descriptors stops there, within that message. So the read that brought
/// a batch *ends* inside its frame: past the frame's first byte, at most at
/// its last. The read may begin anywhere earlier, even several whole
/// frames before it, which is why its start offset says nothing.
#[derive(Debug, Default)]
pub(super) struct Incoming {
    fds: VecDeque<OwnedFd>,
    /// `(offset just past the read that brought them, how many)`, oldest
    /// first.
    marks: VecDeque<(u64, usize)>,
    /// Bytes read from the descriptor so far.
    read_pos: u64,
}

impl Incoming {
    /// Take the descriptors that came with the frame that ends at stream
    /// offset `end`: every batch whose read ended by then (batches of
    /// earlier frames that were never taken are closed with them by the
    /// caller's count check).
    fn take_for_frame(&mut self, end: u64) -> Vec<OwnedFd> {
        let mut n = 0;
        while let Some(&(at, k)) = self.marks.front() {
            if at > end {
                break;
            }
            n += k;
            self.marks.pop_front();
        }
        self.fds.drain(..n.min(self.fds.len())).collect()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }
}

/// Reads from a connection's descriptor for the frame decoder.
pub(super) struct FdSource<'a> {
    fd: BorrowedFd<'a>,
    transport: Transport,
    marks: &'a mut VecDeque<(u64, usize)>,
    read_pos: &'a mut u64,
}

impl FdSource<'_> {
    fn ready(&self, deadline: Option<Instant>) -> io::Result<bool> {
        match deadline {
            None => Ok(true),
            Some(_) => Ok(multiproc_sys::poll::wait_readable(self.fd, deadline)?.readable),
        }
    }
}

pub(super) fn fill_result(n: io::Result<usize>) -> io::Result<Fill> {
    match n {
        Ok(0) => Ok(Fill::Eof),
        Ok(n) => Ok(Fill::Data(n)),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(Fill::Eof),
        Err(e) => Err(e),
    }
}

// SAFETY: `fill_uninit` reports only the bytes `read(2)` wrote (pipes), or
// falls back to the zeroing default (sockets).
unsafe impl Source for FdSource<'_> {
    fn fill(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
        fds: &mut VecDeque<OwnedFd>,
    ) -> io::Result<Fill> {
        if !self.ready(deadline)? {
            return Ok(Fill::TimedOut);
        }
        let before = fds.len();
        let n = match self.transport {
            Transport::Pipe | Transport::Tcp => multiproc_sys::io::read(self.fd, buf),
            Transport::Socket => multiproc_sys::io::recv_with_fds(self.fd, buf, fds),
        };
        if let Ok(n) = &n {
            *self.read_pos += *n as u64;
        }
        if fds.len() > before {
            self.marks.push_back((*self.read_pos, fds.len() - before));
        }
        fill_result(n)
    }

    fn fill_uninit(
        &mut self,
        buf: &mut [std::mem::MaybeUninit<u8>],
        deadline: Option<Instant>,
        fds: &mut VecDeque<OwnedFd>,
    ) -> io::Result<Fill> {
        match self.transport {
            Transport::Pipe | Transport::Tcp => {
                if !self.ready(deadline)? {
                    return Ok(Fill::TimedOut);
                }
                fill_result(multiproc_sys::io::read_uninit(self.fd, buf))
            }
            Transport::Socket => self.fill(super::frame::zero_fill(buf), deadline, fds),
        }
    }
}

/// Read one frame from `fd` through `reader` (created on first use). The
/// payload borrows only the reader, so the caller can still use `fds`.
#[expect(
    clippy::too_many_arguments,
    reason = "disjoint borrows of one Connection"
)]
pub(super) fn read_frame<'r>(
    readable: bool,
    fd: BorrowedFd<'_>,
    transport: Transport,
    reader: &'r mut Option<Box<FrameReader>>,
    incoming: &mut Incoming,
    broken: &mut bool,
    deadline: Option<Instant>,
    max: usize,
) -> Result<(Payload<'r>, Vec<OwnedFd>), Waited<RecvError>> {
    if !readable {
        return Err(RecvError::NotReadable.into());
    }
    if *broken {
        return Err(RecvError::Broken.into());
    }
    let reader = reader.get_or_insert_with(|| Box::new(FrameReader::new(max)));
    reader.set_max_message_size(max);
    let mut src = FdSource {
        fd,
        transport,
        marks: &mut incoming.marks,
        read_pos: &mut incoming.read_pos,
    };
    match reader.read_frame_spanned(&mut src, deadline, &mut incoming.fds) {
        Ok((p, end)) => Ok((p, incoming.take_for_frame(end))),
        Err(ReadError::Eof) => Err(RecvError::Eof.into()),
        Err(ReadError::TimedOut) => Err(Waited::GaveUp),
        Err(ReadError::Frame(e)) => {
            *broken = true;
            Err(RecvError::Frame(e).into())
        }
        Err(ReadError::Io(e)) => Err(RecvError::Io(e).into()),
    }
}

/// Split a serde payload into its handle count and body, and decode it
/// with `fds`, the descriptors that came with this frame. A count that does
/// not match them refuses this frame only (its descriptors are closed): the
/// next frame still gets its own.
pub(super) fn decode_payload<U>(
    bytes: &[u8],
    mut fds: Vec<OwnedFd>,
    decode: impl FnOnce(&[u8], Vec<OwnedFd>) -> Result<U, DecodeError>,
) -> Result<U, RecvError> {
    let Some((&count, body)) = bytes.split_first() else {
        return Err(DecodeError::Empty.into());
    };
    let count = usize::from(count);
    if count > fds.len() {
        return Err(DecodeError::MissingHandles {
            expected: count,
            available: fds.len(),
        }
        .into());
    }
    // More than it names: the extra ones are closed.
    fds.truncate(count);
    Ok(decode(body, fds)?)
}
