//! Reads and writes, with and without file descriptors attached.
//!
//! Every call retries on `EINTR`, so no caller loses a message or a byte to a
//! signal. Sends on sockets use `MSG_NOSIGNAL`: a closed peer is an `EPIPE`
//! error, never a `SIGPIPE`.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// The most descriptors the kernel accepts in one `SCM_RIGHTS` message
/// (`SCM_MAX_FD`).
pub const MAX_FDS_PER_MESSAGE: usize = 253;

fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// `read(fd, buf)`, retried on `EINTR`. `Ok(0)` is end of file.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| rustix::io::read(fd, &mut *buf))
}

/// `recv(fd, buf, MSG_DONTWAIT)` on a socket, retried on `EINTR`: reads what is
/// there without blocking (`WouldBlock` when nothing is).
pub fn recv_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| rustix::net::recv(fd, &mut *buf, RecvFlags::DONTWAIT)).map(|(n, _)| n)
}

/// `write(fd, buf)`, retried on `EINTR`; may write less than `buf`.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    retry(|| rustix::io::write(fd, buf))
}

/// `writev(fd, bufs)`, retried on `EINTR`; may write less than all of `bufs`.
pub fn writev(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    retry(|| rustix::io::writev(fd, bufs))
}

/// Write every byte of `bufs` to `fd` (a pipe, a socket or a file).
///
/// On a socket the first `sendmsg` carries `fds` as `SCM_RIGHTS`; the kernel
/// attaches them to the first byte, so the receiver gets them no later than
/// that byte. `fds` must be empty for anything but a Unix socket.
pub fn write_all_vectored(
    fd: BorrowedFd<'_>,
    is_socket: bool,
    bufs: &[&[u8]],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    write_all_vectored_until(fd, is_socket, bufs, fds, &mut || false).map(|_| ())
}

/// [`write_all_vectored`] that a signal can stop: when a blocking write
/// returns early because a signal arrived (`EINTR`, or a short count),
/// `interrupted` is asked whether to give up. Returns how many bytes were
/// written: all of them, or fewer if it gave up (then `fds` went out with
/// the first byte if any byte did, and not at all otherwise).
///
/// This relies on the signal's handler being installed without
/// `SA_RESTART` (as Python's are) and on the signal reaching this thread;
/// a write that blocks with no signal keeps blocking, as any blocking
/// write does.
pub fn write_all_vectored_until(
    fd: BorrowedFd<'_>,
    is_socket: bool,
    bufs: &[&[u8]],
    fds: &[BorrowedFd<'_>],
    interrupted: &mut dyn FnMut() -> bool,
) -> io::Result<usize> {
    if fds.len() > MAX_FDS_PER_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a message can carry at most {MAX_FDS_PER_MESSAGE} handles, not {}",
                fds.len()
            ),
        ));
    }
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let mut done = 0usize;
    let mut fds_pending = !fds.is_empty();
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    let mut iov: Vec<IoSlice<'_>> = Vec::new();
    while done < total || fds_pending {
        let r = match (bufs, fds_pending) {
            // The common case: one buffer, no handles, no iovec list.
            ([buf], false) if is_socket => rustix::net::send(fd, &buf[done..], SendFlags::NOSIGNAL),
            ([buf], false) => rustix::io::write(fd, &buf[done..]),
            _ => {
                // Build the iovec list for what is left.
                let mut skip = done;
                iov.clear();
                for b in bufs {
                    if skip >= b.len() {
                        skip -= b.len();
                        continue;
                    }
                    iov.push(IoSlice::new(&b[skip..]));
                    skip = 0;
                }
                if is_socket {
                    let mut control = SendAncillaryBuffer::new(&mut space);
                    if fds_pending {
                        let fit = control.push(SendAncillaryMessage::ScmRights(fds));
                        debug_assert!(fit, "cmsg space is sized for MAX_FDS_PER_MESSAGE");
                    }
                    rustix::net::sendmsg(fd, &iov, &mut control, SendFlags::NOSIGNAL)
                } else {
                    rustix::io::writev(fd, &iov)
                }
            }
        };
        let n = match r {
            Ok(n) => n,
            Err(Errno::INTR) if interrupted() => return Ok(done),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        fds_pending = false;
        if n == 0 && done < total {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        done += n;
        // A blocking write stops short only for a signal (or a socket's
        // send timeout): the caller decides whether that ends it.
        if done < total && interrupted() {
            return Ok(done);
        }
    }
    Ok(done)
}

/// Write as much of `bufs` as fits now, without ever blocking: a socket
/// with `MSG_DONTWAIT`; a pipe only after `poll` says it is writable, and
/// then at most `PIPE_BUF` (4096) bytes, which a writable pipe takes
/// without blocking. `fds` go with the first byte (sockets only). Returns
/// the bytes written; an `ErrorKind::WouldBlock` error when none fit.
pub fn write_nonblocking(
    fd: BorrowedFd<'_>,
    is_socket: bool,
    bufs: &[&[u8]],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    const PIPE_BUF: usize = 4096;
    if fds.len() > MAX_FDS_PER_MESSAGE || (!is_socket && !fds.is_empty()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "handles travel only over a Unix socket, at most MAX_FDS_PER_MESSAGE",
        ));
    }
    let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(bufs.len());
    let mut room = if is_socket { usize::MAX } else { PIPE_BUF };
    for b in bufs {
        if room == 0 {
            break;
        }
        let take = b.len().min(room);
        iov.push(IoSlice::new(&b[..take]));
        room -= take;
    }
    loop {
        let r = if is_socket {
            let mut space =
                [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !fds.is_empty() {
                let fit = control.push(SendAncillaryMessage::ScmRights(fds));
                debug_assert!(fit, "cmsg space is sized for MAX_FDS_PER_MESSAGE");
            }
            rustix::net::sendmsg(
                fd,
                &iov,
                &mut control,
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            )
        } else {
            if !crate::poll::wait_writable(fd, Some(std::time::Instant::now()))? {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            rustix::io::writev(fd, &iov)
        };
        match r {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Err(io::ErrorKind::WouldBlock.into()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Move the descriptors a `recvmsg` received into `fds` (so they are owned
/// and closed on every path), then refuse the message if some were dropped
/// in transit (`MSG_CTRUNC`).
fn take_fds(
    control: &mut RecvAncillaryBuffer<'_>,
    flags: ReturnFlags,
    fds: &mut impl Extend<OwnedFd>,
) -> io::Result<()> {
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = m {
            fds.extend(received);
        }
    }
    if flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "file descriptors were dropped in transit (MSG_CTRUNC)",
        ));
    }
    Ok(())
}

/// Read into `buf` from a socket; file descriptors that arrive are appended to
/// `fds` (close-on-exec). `Ok(0)` is end of file.
///
/// If the kernel had to drop descriptors because the control buffer was too
/// small (`MSG_CTRUNC`), the received ones are closed and an `InvalidData`
/// error is returned: the stream can no longer be trusted to line up handles
/// with messages.
pub fn recv_with_fds(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut VecDeque<OwnedFd>,
) -> io::Result<usize> {
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = retry(|| rustix::net::recvmsg(fd, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC))?;
    take_fds(&mut control, msg.flags, fds)?;
    Ok(msg.bytes)
}

/// `send(MSG_NOSIGNAL)` every byte of `buf` on a socket.
pub fn send_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = retry(|| rustix::net::send(fd, buf, SendFlags::NOSIGNAL))?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "send returned 0"));
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// `read(fd)` into uninitialized memory; returns the number of bytes now
/// initialized at the start of `buf`. `Ok(0)` is end of file.
pub fn read_uninit(fd: BorrowedFd<'_>, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    retry(|| rustix::io::read(fd, &mut *buf).map(|(init, _)| init.len()))
}

/// Write all of `buf` to `fd`, retrying short writes and `EINTR`.
pub fn write_all(fd: impl AsFd, mut buf: &[u8]) -> io::Result<()> {
    let fd = fd.as_fd();
    while !buf.is_empty() {
        let n = write(fd, buf)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// Send one datagram (`tag` and `fds`) on a `SOCK_SEQPACKET` socket without
/// blocking (`MSG_DONTWAIT | MSG_NOSIGNAL`).
///
/// `Ok(false)` when it cannot be queued now: the socket's buffer is full
/// (`EAGAIN`) or the sender has too many descriptors in flight
/// (`ETOOMANYREFS`); both clear as the receiver takes messages.
pub fn send_datagram_nonblocking(
    fd: BorrowedFd<'_>,
    tag: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<bool> {
    if fds.len() > MAX_FDS_PER_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors for one message",
        ));
    }
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        let fit = control.push(SendAncillaryMessage::ScmRights(fds));
        debug_assert!(fit, "cmsg space is sized for MAX_FDS_PER_MESSAGE");
    }
    let iov = [IoSlice::new(tag)];
    let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
    loop {
        match rustix::net::sendmsg(fd, &iov, &mut control, flags) {
            Ok(_) => return Ok(true),
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN | Errno::TOOMANYREFS) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Look at the next datagram's first bytes without taking it
/// (`MSG_PEEK | MSG_DONTWAIT`, no control buffer, so no descriptor is
/// installed). `Ok(None)` when there is none.
pub fn peek_datagram(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    match retry(|| rustix::net::recv(fd, &mut *buf, RecvFlags::PEEK | RecvFlags::DONTWAIT)) {
        Ok((n, _)) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Take the next datagram and drop it: its descriptors are closed by the
/// kernel (no control buffer is given). Returns whether there was one.
pub fn discard_datagram(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut none = [0u8; 0];
    match retry(|| rustix::net::recv(fd, &mut none, RecvFlags::DONTWAIT)) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

/// Take the next datagram without blocking: up to `buf.len()` bytes (the
/// rest of a longer one is dropped) and its descriptors, appended to `fds`
/// (close-on-exec). `Ok(None)` when there is none; an `InvalidData` error
/// when descriptors were dropped in transit (`MSG_CTRUNC`, for example at
/// the receiver's descriptor limit).
pub fn recv_datagram_nonblocking(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<Option<usize>> {
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(buf)];
    let flags = RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT;
    let msg = match retry(|| rustix::net::recvmsg(fd, &mut iov, &mut control, flags)) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(e),
    };
    take_fds(&mut control, msg.flags, fds)?;
    Ok(Some(msg.bytes))
}

/// `pread` until `buf` is full: `UnexpectedEof` if the file is shorter.
pub fn pread_exact(fd: BorrowedFd<'_>, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = retry(|| rustix::io::pread(fd, &mut *buf, offset))?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}
