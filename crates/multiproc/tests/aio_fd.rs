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

    fn check_stream(arg: (Connection<()>, Queue<u64>, u32)) {
        let (mut r, done, n) = arg;
        let mut sum = 0u64;
        for i in 0..n {
            let m = r.recv_bytes().unwrap();
            assert_eq!(m.len(), message_len(i));
            assert!(m.iter().all(|&b| b == i as u8), "message {i} corrupted");
            sum += m.len() as u64;
            if i % 7 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        done.put(sum).unwrap();
    }

    fn message_len(i: u32) -> usize {
        60_000 + (i as usize * 7919) % 150_000
    }

    #[test]
    fn send_bytes_async_streams_large_messages_through_a_full_pipe_with_cancels() {
        let _w = watchdog("send_async", LIMIT);
        let (r, mut w) = pipe::<()>().unwrap();
        let done = Queue::<u64>::new().unwrap();
        let n = 200u32;
        let mut p = Process::spawn(check_stream, (r, done.clone(), n)).unwrap();
        let sent = runtime().block_on(async {
            let mut sent = 0u64;
            let mut cancels = 0;
            let mut i = 0;
            while i < n {
                let msg = vec![i as u8; message_len(i)];
                // Every third send is cancelled after 100 µs: a partly
                // written message must still arrive whole, once.
                if i % 3 == 0 {
                    let r =
                        tokio::time::timeout(Duration::from_micros(100), w.send_bytes_async(&msg))
                            .await;
                    if r.is_err() {
                        cancels += 1;
                    }
                } else {
                    w.send_bytes_async(&msg).await.unwrap();
                }
                sent += msg.len() as u64;
                i += 1;
            }
            // What a cancelled send left goes out before anything else.
            w.send_bytes_async(&[]).await.ok();
            assert!(cancels > 0, "no send was cancelled: the test did not test");
            sent
        });
        assert_eq!(done.get().unwrap(), sent);
        p.join().unwrap();
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
}
