//! Cross-process tests of pipes and connections: EOF semantics, Python's
//! byte-message API, handle passing, and malformed frames from a hostile
//! writer.

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use common::watchdog;
use multiproc::connection::frame::FrameError;
use multiproc::{Connection, Fd, Process, RecvError, SendError, duplex, pipe};
use multiproc::{TimeoutError, TryError};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(60);

/// Holds a copy of the write end for a while, then drops it.
fn hold_then_close(arg: (Connection<u32>, u64)) {
    let (tx, ms) = arg;
    std::thread::sleep(Duration::from_millis(ms));
    drop(tx);
}

#[test]
fn eof_only_after_every_copy_of_the_writer_is_closed() {
    let _w = watchdog("eof_only_after_every_copy_of_the_writer_is_closed", LIMIT);
    let (mut rx, mut tx) = pipe::<u32>().unwrap();
    let tx2 = tx.try_clone().unwrap();
    let mut holder = Process::spawn(hold_then_close, (tx.try_clone().unwrap(), 300)).unwrap();
    tx.send(&1).unwrap();
    drop(tx);
    assert_eq!(rx.recv().unwrap(), 1);
    // tx2 (here) and the child's copy are still open: no EOF yet.
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(TimeoutError::Timeout)
    ));
    drop(tx2);
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(TimeoutError::Timeout)
    ));
    // The child closes its copy after 300 ms: now EOF, and it stays EOF.
    let start = Instant::now();
    assert!(rx.recv().unwrap_err().is_eof());
    assert!(rx.recv().unwrap_err().is_eof());
    assert!(start.elapsed() < Duration::from_secs(30));
    holder.join().unwrap();
}

#[test]
fn duplex_both_ways_and_eof() {
    let _w = watchdog("duplex_both_ways_and_eof", LIMIT);
    let (mut a, mut b) = duplex::<String>().unwrap();
    a.send(&"ping".into()).unwrap();
    assert_eq!(b.recv().unwrap(), "ping");
    b.send(&"pong".into()).unwrap();
    assert_eq!(a.recv().unwrap(), "pong");
    drop(b);
    assert!(a.recv().unwrap_err().is_eof());
    assert!(matches!(a.send(&"x".into()), Err(SendError::Disconnected)));
}

#[test]
fn pipe_ends_are_one_way() {
    let (mut rx, mut tx) = pipe::<u8>().unwrap();
    assert!(matches!(rx.send(&1), Err(SendError::NotWritable)));
    assert!(matches!(tx.recv(), Err(RecvError::NotReadable)));
    drop(rx);
    assert!(matches!(tx.send(&1), Err(SendError::Disconnected)));
}

#[test]
fn try_recv_poll_and_timeouts() {
    let _w = watchdog("try_recv_poll_and_timeouts", LIMIT);
    let (mut rx, mut tx) = pipe::<u32>().unwrap();
    assert!(matches!(rx.try_recv(), Err(TryError::WouldBlock)));
    assert!(!rx.poll(Some(Duration::ZERO)).unwrap());
    let t = Instant::now();
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(100)),
        Err(TimeoutError::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
    tx.send(&5).unwrap();
    tx.send(&6).unwrap();
    assert!(rx.poll(None).unwrap());
    assert_eq!(rx.try_recv().unwrap(), 5);
    // The second message is buffered: poll sees it without the fd.
    assert!(rx.poll(Some(Duration::ZERO)).unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 6);
    drop(tx);
    // EOF counts as readable, like Python's poll().
    assert!(rx.poll(Some(Duration::ZERO)).unwrap());
}

#[test]
fn a_partial_frame_survives_a_timeout() {
    let _w = watchdog("a_partial_frame_survives_a_timeout", LIMIT);
    let (mut rx, tx) = pipe::<()>().unwrap();
    let frame = [0u8, 0, 0, 5, b'h', b'e', b'l', b'l', b'o'];
    multiproc_sys::io::write_all(tx.as_fd(), &frame[..6]).unwrap();
    assert!(matches!(
        rx.recv_bytes_timeout(Duration::from_millis(50)),
        Err(TimeoutError::Timeout)
    ));
    multiproc_sys::io::write_all(tx.as_fd(), &frame[6..]).unwrap();
    assert_eq!(rx.recv_bytes().unwrap(), b"hello");
}

#[test]
fn bytes_api_follows_python() {
    let (mut rx, mut tx) = pipe::<()>().unwrap();
    tx.send_bytes(b"hello world").unwrap();
    tx.send_bytes_range(b"hello world", 6, None).unwrap();
    tx.send_bytes_range(b"hello world", 0, Some(5)).unwrap();
    tx.send_bytes(b"").unwrap();
    assert!(matches!(
        tx.send_bytes_range(b"abc", 2, Some(2)),
        Err(SendError::OutOfRange { .. })
    ));
    assert!(matches!(
        tx.send_bytes_range(b"abc", 4, None),
        Err(SendError::OutOfRange { .. })
    ));
    assert_eq!(rx.recv_bytes().unwrap(), b"hello world");
    assert_eq!(rx.recv_bytes().unwrap(), b"world");
    let mut buf = [0u8; 8];
    assert_eq!(rx.recv_bytes_into(&mut buf, 2).unwrap(), 5);
    assert_eq!(&buf[2..7], b"hello");
    assert_eq!(rx.recv_bytes().unwrap(), b"");
}

#[test]
fn recv_bytes_into_too_short_hands_back_the_whole_message() {
    let (mut rx, mut tx) = pipe::<()>().unwrap();
    tx.send_bytes(b"0123456789").unwrap();
    tx.send_bytes(b"next").unwrap();
    let mut buf = [0u8; 12];
    match rx.recv_bytes_into(&mut buf, 4) {
        Err(RecvError::BufferTooShort(msg)) => assert_eq!(msg, b"0123456789"),
        r => panic!("unexpected {r:?}"),
    }
    // The message was consumed; the connection goes on.
    assert_eq!(rx.recv_bytes_into(&mut buf, 4).unwrap(), 4);
    assert_eq!(&buf[4..8], b"next");
    // An offset past the end is refused before anything is read.
    tx.send_bytes(b"x").unwrap();
    assert!(matches!(
        rx.recv_bytes_into(&mut buf, 13),
        Err(RecvError::Io(_))
    ));
    assert_eq!(rx.recv_bytes().unwrap(), b"x");
}

#[test]
fn recv_bytes_limited_refuses_longer_messages() {
    let (mut rx, mut tx) = pipe::<()>().unwrap();
    tx.send_bytes(b"short").unwrap();
    tx.send_bytes(b"much too long").unwrap();
    assert_eq!(rx.recv_bytes_limited(5).unwrap(), b"short");
    assert!(matches!(
        rx.recv_bytes_limited(5),
        Err(RecvError::Frame(FrameError::TooLarge { len: 13, max: 5 }))
    ));
    // As in Python, the connection is unusable afterwards.
    assert!(matches!(rx.recv_bytes(), Err(RecvError::Broken)));
}

#[test]
fn large_messages_cross_intact() {
    let _w = watchdog("large_messages_cross_intact", LIMIT);
    let (mut a, mut b) = duplex::<Vec<u64>>().unwrap();
    let big: Vec<u64> = (0..500_000).collect();
    let sent = big.clone();
    let t = std::thread::spawn(move || {
        a.send(&sent).unwrap();
        a.send_bytes(&vec![7u8; 3 << 20]).unwrap();
        a
    });
    assert_eq!(b.recv().unwrap(), big);
    let bytes = b.recv_bytes().unwrap();
    assert_eq!(bytes.len(), 3 << 20);
    assert!(bytes.iter().all(|&x| x == 7));
    drop(t.join().unwrap());
}

#[test]
fn maximum_message_size_is_enforced_on_both_sides() {
    let (mut rx, mut tx) = pipe::<Vec<u8>>().unwrap();
    tx.set_max_message_size(100);
    assert!(matches!(
        tx.send_bytes(&[0; 101]),
        Err(SendError::TooLarge { len: 101, max: 100 })
    ));
    tx.set_max_message_size(1 << 20);
    rx.set_max_message_size(1000);
    tx.send_bytes(&[0; 1001]).unwrap();
    assert!(matches!(
        rx.recv_bytes(),
        Err(RecvError::Frame(FrameError::TooLarge {
            len: 1001,
            max: 1000
        }))
    ));
}

#[test]
fn handles_cannot_travel_over_a_pipe() {
    let (_rx, mut tx) = pipe::<Fd>().unwrap();
    let (r, _w) = multiproc_sys::fd::pipe().unwrap();
    assert!(matches!(tx.send(&Fd(r)), Err(SendError::HandlesNeedSocket)));
}

#[test]
fn fds_sent_in_a_message_refer_to_the_same_file() {
    let (mut a, mut b) = duplex::<(String, Fd)>().unwrap();
    let (r, w) = multiproc_sys::fd::pipe().unwrap();
    a.send(&("write end".into(), Fd(w))).unwrap();
    let (label, Fd(w2)) = b.recv().unwrap();
    assert_eq!(label, "write end");
    multiproc_sys::io::write_all(&w2, b"via passed fd").unwrap();
    let mut buf = [0u8; 32];
    let n = multiproc_sys::io::read(r.as_fd(), &mut buf).unwrap();
    assert_eq!(&buf[..n], b"via passed fd");
}

#[test]
fn decode_errors_consume_the_message_only() {
    let (mut rx, mut tx) = pipe::<u64>().unwrap();
    // A serde payload that is not a valid u64 varint: handle count 0, then
    // eleven continuation bytes.
    tx.send_bytes(&[
        0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ])
    .unwrap();
    tx.send(&7).unwrap();
    assert!(matches!(rx.recv(), Err(RecvError::Decode(_))));
    assert_eq!(rx.recv().unwrap(), 7);
    // An empty payload has no handle count.
    tx.send_bytes(b"").unwrap();
    assert!(matches!(rx.recv(), Err(RecvError::Decode(_))));
}

#[test]
fn a_message_claiming_handles_that_never_came() {
    let (mut rx, mut tx) = duplex::<u8>().unwrap();
    // Claims 3 handles, carries none: refused alone; the next is fine.
    tx.send_bytes(&[3, 1]).unwrap();
    tx.send(&9).unwrap();
    assert!(matches!(
        rx.recv(),
        Err(RecvError::Decode(
            multiproc::connection::codec::DecodeError::MissingHandles {
                expected: 3,
                available: 0
            }
        ))
    ));
    assert_eq!(rx.recv().unwrap(), 9);
}

/// A Python peer: sends a pickle (first byte 0x80, read as "128 handles")
/// and an unrelated byte message, then a real message that carries a
/// handle.
fn python_like_sender(tx: Connection<Fd>) {
    let mut raw = tx.cast::<()>();
    raw.send_bytes(&[
        0x80, 0x04, 0x95, 0x05, 0, 0, 0, 0, 0, 0, 0, 0x4b, 0x2a, 0x2e,
    ])
    .unwrap();
    raw.send_bytes(b"not a message at all").unwrap();
    let mut tx = raw.cast::<Fd>();
    let (r, mut w) = pipe::<u32>().unwrap();
    w.send(&77).unwrap();
    tx.send(&Fd(r.as_fd().try_clone_to_owned().unwrap()))
        .unwrap();
}

/// Regression test (6f): a whole frame that was read but does not decode
/// (here a Python pickle sent to a Rust `Connection<T>`) left the
/// connection `Broken` for good. It is refused alone: the next frame, and
/// the handle that comes with it, arrive intact.
///
/// The sender finishes before the first read, so one `recvmsg` returns the
/// two bad frames and the start of the third with its descriptor (the
/// kernel stops a read right after a message that carries descriptors).
/// CI once saw that interleaving by chance: the descriptor was handed to
/// the first frame of the read instead of the frame it came with.
#[test]
fn a_frame_that_does_not_decode_leaves_the_connection_usable() {
    let _w = watchdog(
        "a_frame_that_does_not_decode_leaves_the_connection_usable",
        LIMIT,
    );
    let (mut rx, tx) = duplex::<Fd>().unwrap();
    let mut p = Process::spawn(python_like_sender, tx).unwrap();
    p.join().unwrap();
    assert!(matches!(
        rx.recv(),
        Err(RecvError::Decode(
            multiproc::connection::codec::DecodeError::MissingHandles { .. }
        ))
    ));
    assert!(matches!(rx.recv(), Err(RecvError::Decode(_))));
    let fd = rx.recv().expect("the next frame after the bad ones");
    let mut r = Connection::<u32>::from_fd(fd.0, true, false).unwrap();
    assert_eq!(r.recv().unwrap(), 77);
}

/// Sends `n` messages: every third carries a pipe whose one message is its
/// index, the others are raw frames that do not decode.
fn mixed_sender(arg: (Connection<Fd>, u32)) {
    let (tx, n) = arg;
    let mut raw = tx.cast::<()>();
    for i in 0..n {
        if i % 3 == 0 {
            let (r, mut w) = pipe::<u32>().unwrap();
            w.send(&i).unwrap();
            let mut tx = raw.cast::<Fd>();
            tx.send(&Fd(r.as_fd().try_clone_to_owned().unwrap()))
                .unwrap();
            raw = tx.cast::<()>();
        } else {
            raw.send_bytes(&[0x80; 7]).unwrap();
        }
    }
}

/// Every descriptor reaches the frame it was sent with, however the frames
/// were batched into reads: all of them are queued before the first read,
/// so reads span many frames.
#[test]
fn descriptors_stay_with_their_frames_when_one_read_spans_many() {
    let _w = watchdog(
        "descriptors_stay_with_their_frames_when_one_read_spans_many",
        LIMIT,
    );
    const N: u32 = 90;
    let (mut rx, tx) = duplex::<Fd>().unwrap();
    let mut p = Process::spawn(mixed_sender, (tx, N)).unwrap();
    p.join().unwrap();
    for i in 0..N {
        match rx.recv() {
            Ok(fd) => {
                assert_eq!(i % 3, 0, "message {i} was not sent with a handle");
                let mut r = Connection::<u32>::from_fd(fd.0, true, false).unwrap();
                assert_eq!(r.recv().unwrap(), i, "handle of message {i}");
            }
            Err(RecvError::Decode(_)) => assert_ne!(i % 3, 0, "message {i} lost its handle"),
            Err(e) => panic!("message {i}: {e:?}"),
        }
    }
}

/// A hostile writer: sends `bytes` raw on the pipe, then exits.
fn raw_writer(arg: (Connection<()>, Vec<u8>, bool)) {
    let (tx, bytes, stall) = arg;
    multiproc_sys::io::write_all(tx.as_fd(), &bytes).unwrap();
    if stall {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn malformed(bytes: Vec<u8>) -> RecvError {
    let (mut rx, tx) = pipe::<()>().unwrap();
    rx.set_max_message_size(1 << 20);
    let mut p = Process::spawn(raw_writer, (tx, bytes, false)).unwrap();
    let e = rx.recv_bytes().unwrap_err();
    // After a frame error the connection is unusable, never resynchronized.
    if matches!(e, RecvError::Frame(_)) {
        assert!(matches!(rx.recv_bytes(), Err(RecvError::Broken)));
    }
    drop(rx);
    let _ = p.wait();
    e
}

#[test]
fn malformed_frames_from_another_process_are_typed_errors() {
    let _w = watchdog(
        "malformed_frames_from_another_process_are_typed_errors",
        LIMIT,
    );
    // Negative length.
    assert!(matches!(
        malformed((-5i32).to_be_bytes().to_vec()),
        RecvError::Frame(FrameError::NegativeLength(-5))
    ));
    assert!(matches!(
        malformed(i32::MIN.to_be_bytes().to_vec()),
        RecvError::Frame(FrameError::NegativeLength(i32::MIN))
    ));
    // Oversize: 2^31-1, 2^63, u64::MAX in the long form.
    assert!(matches!(
        malformed(i32::MAX.to_be_bytes().to_vec()),
        RecvError::Frame(FrameError::TooLarge { .. })
    ));
    for claim in [1u64 << 63, u64::MAX] {
        let mut b = (-1i32).to_be_bytes().to_vec();
        b.extend_from_slice(&claim.to_be_bytes());
        match malformed(b) {
            RecvError::Frame(FrameError::TooLarge { len, .. }) => assert_eq!(len, claim),
            e => panic!("{e:?}"),
        }
    }
    // EOF inside the header (short and long forms) and inside the payload.
    for bytes in [
        vec![0u8, 0],
        vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0],
        vec![0, 0, 0, 10, 1, 2, 3],
    ] {
        let n = bytes.len() as u64;
        match malformed(bytes) {
            RecvError::Frame(FrameError::Truncated { received, .. }) => assert_eq!(received, n),
            e => panic!("{e:?}"),
        }
    }
    // EOF after k of n payload bytes of a large frame.
    let mut b = 500_000i32.to_be_bytes().to_vec();
    b.extend(std::iter::repeat_n(1u8, 200_000));
    assert!(matches!(
        malformed(b),
        RecvError::Frame(FrameError::Truncated {
            expected: 500_004,
            received: 200_004
        })
    ));
}

#[test]
fn a_stalled_writer_times_out_without_spinning_or_allocating() {
    let _w = watchdog(
        "a_stalled_writer_times_out_without_spinning_or_allocating",
        LIMIT,
    );
    // Claims 1 MiB (allowed), sends 10 bytes, then stalls.
    let (mut rx, tx) = pipe::<()>().unwrap();
    let mut b = (1i32 << 20).to_be_bytes().to_vec();
    b.extend_from_slice(&[0; 10]);
    let mut p = Process::spawn(raw_writer, (tx, b, true)).unwrap();
    let cpu_before = process_cpu();
    assert!(matches!(
        rx.recv_bytes_timeout(Duration::from_millis(300)),
        Err(TimeoutError::Timeout)
    ));
    let cpu = process_cpu() - cpu_before;
    assert!(
        cpu < Duration::from_millis(100),
        "waiting burned {cpu:?} of CPU"
    );
    p.kill().unwrap();
    p.wait().unwrap();
    // Now the writer is gone: the frame is truncated.
    assert!(matches!(
        rx.recv_bytes(),
        Err(RecvError::Frame(FrameError::Truncated { .. }))
    ));
}

fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|s| s.parse().unwrap())
        .collect();
    // utime + stime in clock ticks (USER_HZ = 100 on Linux).
    Duration::from_millis((f[0] + f[1]) * 10)
}

#[test]
fn a_connection_with_unread_buffered_data_refuses_to_be_sent() {
    let (mut rx, mut tx) = pipe::<u8>().unwrap();
    tx.send(&1).unwrap();
    tx.send(&2).unwrap();
    assert_eq!(rx.recv().unwrap(), 1); // message 2 is now in rx's buffer
    let (mut a, _b) = duplex::<Connection<u8>>().unwrap();
    match a.send(&rx) {
        Err(SendError::Encode(e)) => assert!(e.to_string().contains("unread buffered data"), "{e}"),
        r => panic!("{r:?}"),
    }
    assert_eq!(rx.recv().unwrap(), 2);
}

#[test]
fn no_descriptor_leaks_into_spawned_children() {
    let _w = watchdog("no_descriptor_leaks_into_spawned_children", LIMIT);
    // Descriptors this process holds must not appear in the child.
    let (a, b) = duplex::<()>().unwrap();
    let (r, w) = pipe::<()>().unwrap();
    let ours: Vec<String> = [a.as_fd(), b.as_fd(), r.as_fd(), w.as_fd()]
        .iter()
        .map(|fd| {
            std::fs::read_link(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(fd)
            ))
            .unwrap()
            .display()
            .to_string()
        })
        .collect();
    let mut p = Process::spawn(count_fds, ()).unwrap();
    let theirs = p.join().unwrap();
    for fd in &theirs {
        let target = fd.split_once("->").unwrap().1;
        assert!(
            !ours.iter().any(|o| o == target),
            "{fd} leaked into the child: {theirs:?}"
        );
    }
    // The bootstrap socket is the child's only socket.
    assert_eq!(
        theirs.iter().filter(|f| f.contains("socket:")).count(),
        1,
        "{theirs:?}"
    );
}

fn count_fds(_: ()) -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let target = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            format!("{}->{target}", e.file_name().to_string_lossy())
        })
        .collect()
}

#[test]
fn every_descriptor_is_close_on_exec() {
    let (a, b) = duplex::<()>().unwrap();
    let (r, w) = pipe::<()>().unwrap();
    for fd in [a.as_fd(), b.as_fd(), r.as_fd(), w.as_fd()] {
        assert!(multiproc_sys::fd::is_cloexec(fd).unwrap());
    }
    let owned: OwnedFd = multiproc_sys::fd::dup(a.as_fd()).unwrap();
    assert!(multiproc_sys::fd::is_cloexec(&owned).unwrap());
}

/// Blocks in an interruptible send of 1 MiB on a pipe nobody reads yet,
/// reports how it ended, then sends one more message.
fn interrupted_sender(arg: (Connection<()>, Connection<String>)) {
    let (mut tx, mut report) = arg;
    let flag = multiproc::os::signal::flag(multiproc::os::signal::SIGUSR1).unwrap();
    report.send(&"ready".to_string()).unwrap();
    let big = vec![7u8; 1 << 20];
    let r = tx.send_bytes_interruptible(&big, || flag.is_set());
    report.send(&format!("{r:?}")).unwrap();
    // The rest of the interrupted message goes out first.
    tx.send_bytes(b"after").unwrap();
}

/// A send blocked on a full pipe or socket stops when a signal arrives and
/// the check says so; the part already written is completed before the
/// next message, so the reader sees both messages whole, in order.
#[test]
fn an_interrupted_send_stops_and_the_next_send_completes_its_message() {
    let _w = watchdog(
        "an_interrupted_send_stops_and_the_next_send_completes_its_message",
        LIMIT,
    );
    for socket in [false, true] {
        let (mut rx, tx) = if socket {
            duplex::<()>().unwrap()
        } else {
            pipe::<()>().unwrap()
        };
        let (mut report_rx, report_tx) = pipe::<String>().unwrap();
        let mut p = Process::spawn(interrupted_sender, (tx, report_tx)).unwrap();
        assert_eq!(report_rx.recv().unwrap(), "ready");
        std::thread::sleep(Duration::from_millis(300));
        multiproc::os::signal::send(p.pid().unwrap(), multiproc::os::signal::SIGUSR1).unwrap();
        assert_eq!(
            report_rx.recv().unwrap(),
            "Err(Interrupted)",
            "socket: {socket}"
        );
        assert_eq!(rx.recv_bytes().unwrap(), vec![7u8; 1 << 20]);
        assert_eq!(rx.recv_bytes().unwrap(), b"after");
        p.join().unwrap();
    }
}
