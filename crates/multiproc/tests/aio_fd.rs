//! `async` waits on descriptors (the `tokio` feature, which the workspace
//! build enables through the CLI): connections and processes.

mod common;

multiproc::enable_test_support!();

#[cfg(not(feature = "tokio"))]
#[test]
fn skipped_without_the_tokio_feature() {
    eprintln!("aio_fd: skipped: build with `--features tokio` (the workspace build does)");
}

#[cfg(feature = "tokio")]
mod with_tokio {
    use std::time::Duration;

    use super::common::{sleep_forever, watchdog};
    use multiproc::{Connection, Process, Queue, RecvError, duplex, pipe};

    const LIMIT: Duration = Duration::from_secs(120);

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn say_hello_then_hang(mut c: Connection<String>) {
        c.send(&"hello".to_string()).unwrap();
        sleep_forever();
    }

    #[test]
    fn recv_async_gives_eof_when_the_peer_dies() {
        let _w = watchdog("eof", LIMIT);
        let (mut a, b) = duplex::<String>().unwrap();
        let mut p = Process::spawn(say_hello_then_hang, b).unwrap();
        runtime().block_on(async {
            assert_eq!(a.recv_async().await.unwrap(), "hello");
            let waiting = tokio::time::timeout(Duration::from_millis(50), a.recv_async()).await;
            assert!(waiting.is_err(), "a message from nowhere");
            p.kill().unwrap();
            match a.recv_async().await {
                Err(RecvError::Eof) => {}
                r => panic!("expected EOF after the peer's death, got {r:?}"),
            }
        });
    }

    /// Message `i`: its index in the first 4 bytes, then `i as u8`, in all
    /// `message_len(i)` bytes.
    fn message(i: u32) -> Vec<u8> {
        let mut m = vec![i as u8; message_len(i)];
        m[..4].copy_from_slice(&i.to_le_bytes());
        m
    }

    fn message_len(i: u32) -> usize {
        60_000 + (i as usize * 7919) % 150_000
    }

    /// Receive until an empty message; every message must be whole and
    /// self-consistent. Reports the indices received, in order.
    fn check_stream(arg: (Connection<()>, Queue<Vec<u32>>)) {
        let (mut r, done) = arg;
        let mut got = Vec::new();
        loop {
            let m = r.recv_bytes().unwrap();
            if m.is_empty() {
                break;
            }
            let i = u32::from_le_bytes(m[..4].try_into().unwrap());
            assert!(m == message(i), "message {i} torn or corrupted");
            got.push(i);
            if got.len() % 7 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        done.put(got).unwrap();
    }

    #[test]
    fn send_bytes_async_streams_large_messages_through_a_full_pipe_with_cancels() {
        let _w = watchdog("send_async", LIMIT);
        let (r, mut w) = pipe::<()>().unwrap();
        let done = Queue::<Vec<u32>>::new().unwrap();
        let n = 200u32;
        let mut p = Process::spawn(check_stream, (r, done.clone())).unwrap();
        let (completed, cancelled) = runtime().block_on(async {
            let (mut completed, mut cancelled) = (Vec::new(), Vec::new());
            for i in 0..n {
                let msg = message(i);
                // Every third send is dropped after 1 to 3 polls (the
                // runtime gets a turn between them), not after a time: the
                // pipe is full more often than not, so the drop lands
                // before the first byte (nothing sent) or after it (its
                // rest must go first with the next send), whatever the
                // machine's speed. Either way never torn, never twice.
                if i % 3 == 0 {
                    let polls = 1 + i % 3 + (i / 3) % 3;
                    let mut send = std::pin::pin!(w.send_bytes_async(&msg));
                    let mut r = None;
                    for _ in 0..polls {
                        let polled = std::future::poll_fn(|cx| {
                            std::task::Poll::Ready(send.as_mut().poll(cx))
                        })
                        .await;
                        if let std::task::Poll::Ready(res) = polled {
                            r = Some(res);
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                    match r {
                        Some(r) => {
                            r.unwrap();
                            completed.push(i);
                        }
                        None => cancelled.push(i),
                    }
                } else {
                    w.send_bytes_async(&msg).await.unwrap();
                    completed.push(i);
                }
            }
            w.send_bytes_async(&[]).await.unwrap();
            (completed, cancelled)
        });
        let got = done.get().unwrap();
        p.join().unwrap();
        // A dropped send that had written part of its message: the case
        // that needs the kept rest.
        assert!(
            cancelled.iter().any(|i| got.contains(i)),
            "no send was dropped part-way ({} dropped): the test did not test",
            cancelled.len()
        );
        assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order or twice");
        for i in &completed {
            assert!(got.contains(i), "completed message {i} lost");
        }
        for i in &got {
            assert!(
                completed.contains(i) || cancelled.contains(i),
                "message {i} from nowhere"
            );
        }
    }

    fn exit_after(ms: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    }

    #[test]
    fn join_async_awaits_many_children_on_one_thread() {
        let _w = watchdog("join_async", LIMIT);
        let kids: Vec<Process<u64>> = (0..6)
            .map(|i| Process::spawn(exit_after, 20 + 15 * i).unwrap())
            .collect();
        let got = runtime().block_on(async {
            let tasks: Vec<_> = kids
                .into_iter()
                .map(|mut k| tokio::spawn(async move { k.join_async().await.unwrap() }))
                .collect();
            let mut got = Vec::new();
            for t in tasks {
                got.push(t.await.unwrap());
            }
            got
        });
        assert_eq!(got, (0..6).map(|i| 20 + 15 * i).collect::<Vec<_>>());
    }

    fn send_numbers(arg: (Connection<u32>, u32)) {
        let (mut c, n) = arg;
        for i in 0..n {
            c.send(&i).unwrap();
            if i % 8 == 0 {
                std::thread::sleep(Duration::from_millis(3));
            }
        }
    }

    #[test]
    fn cancelled_recv_async_loses_no_message() {
        let _w = watchdog("recv_cancel", LIMIT);
        let (mut a, b) = duplex::<u32>().unwrap();
        let n = 5000;
        let mut p = Process::spawn(send_numbers, (b, n)).unwrap();
        let (got, cancels) = runtime().block_on(async {
            let mut got = Vec::new();
            let mut cancels = 0;
            while got.len() < n as usize {
                match tokio::time::timeout(Duration::from_micros(300), a.recv_async()).await {
                    Ok(r) => got.push(r.unwrap()),
                    Err(_) => cancels += 1,
                }
            }
            (got, cancels)
        });
        p.join().unwrap();
        assert!(
            cancels > 100,
            "only {cancels} cancels: the test did not test"
        );
        assert_eq!(got, (0..n).collect::<Vec<_>>());
    }

    fn relay(arg: (Queue<u32>, Queue<u32>, u32)) {
        let (from, to, n) = arg;
        for _ in 0..n {
            to.put(from.get().unwrap()).unwrap();
        }
        to.close();
    }

    #[test]
    fn a_queue_is_a_sink_and_a_stream_that_ends_at_the_close() {
        use futures_core::Stream;
        use futures_sink::Sink;
        use std::future::poll_fn;
        use std::pin::Pin;

        let _w = watchdog("stream_sink", LIMIT);
        let (q1, q2) = (
            Queue::<u32>::bounded(4).unwrap(),
            Queue::<u32>::bounded(4).unwrap(),
        );
        let n = 2000;
        let mut p = Process::spawn(relay, (q1.clone(), q2.clone(), n)).unwrap();
        let got = runtime().block_on(async {
            let mut sink = q1.into_sink();
            let mut stream = q2.into_stream();
            let feed = async {
                for i in 0..n {
                    poll_fn(|cx| Pin::new(&mut sink).poll_ready(cx))
                        .await
                        .unwrap();
                    Pin::new(&mut sink).start_send(i).unwrap();
                }
                poll_fn(|cx| Pin::new(&mut sink).poll_flush(cx))
                    .await
                    .unwrap();
            };
            let drain = async {
                let mut got = Vec::new();
                while let Some(r) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
                    got.push(r.unwrap());
                }
                got
            };
            tokio::join!(feed, drain).1
        });
        p.join().unwrap();
        assert_eq!(got, (0..n).collect::<Vec<_>>());
    }

    /// Echo every value back (blocking); a queue that comes along gets the
    /// value's number.
    fn echo(mut c: Connection<(u32, String, Option<Queue<u32>>)>) {
        while let Ok((i, text, q)) = c.recv() {
            if let Some(q) = q {
                q.put(i).unwrap();
            }
            c.send(&(i, text, None)).unwrap();
        }
    }

    fn text(i: u32) -> String {
        // Now and then a large one, so that writes stop part-way.
        let len = if i % 97 == 0 {
            300_000
        } else {
            (i as usize * 31) % 500
        };
        char::from(b'a' + (i % 26) as u8).to_string().repeat(len)
    }

    /// A connection is a `Sink` and a `Stream` at once, driven by two
    /// futures on one thread (as `StreamExt::split` would): every value
    /// comes back once and in order, large ones included, and handles
    /// travel with their frames.
    #[test]
    fn a_connection_is_a_sink_and_a_stream_with_handles_and_large_frames() {
        use futures_core::Stream;
        use futures_sink::Sink;
        use std::cell::RefCell;
        use std::future::poll_fn;
        use std::pin::Pin;

        let _w = watchdog("conn_stream", LIMIT);
        let (a, b) = duplex::<(u32, String, Option<Queue<u32>>)>().unwrap();
        let mut p = Process::spawn(echo, b).unwrap();
        let handed = Queue::<u32>::new().unwrap();
        let n = 3000u32;
        runtime().block_on(async {
            let s = RefCell::new(a.into_stream().unwrap());
            let feed = async {
                for i in 0..n {
                    poll_fn(|cx| Pin::new(&mut *s.borrow_mut()).poll_ready(cx))
                        .await
                        .unwrap();
                    let q = (i % 10 == 0).then(|| handed.clone());
                    Pin::new(&mut *s.borrow_mut())
                        .start_send((i, text(i), q))
                        .unwrap();
                }
                poll_fn(|cx| Pin::new(&mut *s.borrow_mut()).poll_flush(cx))
                    .await
                    .unwrap();
            };
            let drain = async {
                for i in 0..n {
                    let got = poll_fn(|cx| Pin::new(&mut *s.borrow_mut()).poll_next(cx)).await;
                    let (j, t, q) = got.expect("the stream ended early").unwrap();
                    assert_eq!(j, i, "out of order");
                    assert!(t == text(i), "message {i} changed on the way");
                    assert!(q.is_none());
                }
            };
            tokio::join!(feed, drain);
            // The peer's close ends the stream.
            let c = s.into_inner().into_inner().map_err(|_| ()).unwrap();
            drop(c);
        });
        p.join().unwrap();
        let mut got: Vec<u32> = std::iter::from_fn(|| handed.try_get().ok()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..n).step_by(10).collect::<Vec<_>>());
    }

    fn close_at_once(c: Connection<u32>) {
        drop(c);
    }

    #[test]
    fn a_connection_stream_ends_when_the_peer_closes() {
        use futures_core::Stream;
        use std::future::poll_fn;
        use std::pin::Pin;

        let _w = watchdog("conn_stream_eof", LIMIT);
        let (a, b) = duplex::<u32>().unwrap();
        let mut p = Process::spawn(close_at_once, b).unwrap();
        runtime().block_on(async {
            let mut s = a.into_stream().unwrap();
            assert!(poll_fn(|cx| Pin::new(&mut s).poll_next(cx)).await.is_none());
        });
        p.join().unwrap();
    }

    fn signal_parent(arg: (u32, i32, u32)) {
        let (pid, sig, times) = arg;
        for _ in 0..times {
            multiproc::os::signal::send(pid, sig).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Signals sent by another process arrive through `recv_async`, the
    /// stream, and `SignalFlag::wait_async`.
    #[test]
    fn signals_arrive_as_async_values_and_as_a_stream() {
        use futures_core::Stream;
        use multiproc::os::signal::{self, SIGUSR1, SIGUSR2, Signals};
        use std::future::poll_fn;
        use std::pin::Pin;

        let _w = watchdog("signals_async", LIMIT);
        let me = std::process::id();
        runtime().block_on(async {
            let mut sigs = Signals::new(&[SIGUSR1]).unwrap();
            let mut p = Process::spawn(signal_parent, (me, SIGUSR1, 1)).unwrap();
            assert_eq!(sigs.recv_async().await.unwrap(), SIGUSR1);
            p.join().unwrap();

            // The stream: one signal at a time (the kernel merges signals
            // pending at once), each awaited before the next is sent.
            let mut stream = sigs.into_stream().unwrap();
            for _ in 0..3 {
                signal::send(me, SIGUSR1).unwrap();
                let got = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await;
                assert_eq!(got.unwrap().unwrap(), SIGUSR1);
            }

            let flag = signal::flag(SIGUSR2).unwrap();
            assert!(!flag.is_set());
            let mut p = Process::spawn(signal_parent, (me, SIGUSR2, 1)).unwrap();
            flag.wait_async().await.unwrap();
            assert!(flag.is_set());
            p.join().unwrap();
        });
    }

    /// Two tasks await one flag (the shutdown-flag pattern): both wake.
    /// (Each wait registers a duplicate descriptor; `epoll` refuses the
    /// same descriptor twice.)
    #[test]
    fn two_tasks_await_one_signal_flag() {
        use multiproc::os::signal::{self, SIGWINCH};

        let _w = watchdog("two_flag_waiters", LIMIT);
        let me = std::process::id();
        runtime().block_on(async {
            let flag = std::sync::Arc::new(signal::flag(SIGWINCH).unwrap());
            let (f1, f2) = (flag.clone(), flag.clone());
            let a = tokio::spawn(async move { f1.wait_async().await });
            let b = tokio::spawn(async move { f2.wait_async().await });
            // Both reach their wait before the signal is sent.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert!(!a.is_finished() && !b.is_finished());
            let mut p = Process::spawn(signal_parent, (me, SIGWINCH, 1)).unwrap();
            a.await.unwrap().unwrap();
            b.await.unwrap().unwrap();
            tokio::task::spawn_blocking(move || p.join().unwrap())
                .await
                .unwrap();
        });
    }
}
