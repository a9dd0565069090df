//! `--peers` (issue 20): the other libraries users choose between, measured
//! with the same harness (the same processes, pinning, and rounds taken in
//! turns), each in its most natural fast form:
//!
//! - `peer-ipc-channel-bytes`: Servo's ipc-channel, `IpcBytesSender` /
//!   `IpcBytesReceiver` (a Unix socket per channel, descriptors passed);
//! - `peer-ipc-channel-typed`: `IpcSender<ByteBuf>` (bincode on top);
//! - `peer-interprocess`: interprocess's local socket stream, `write_all`
//!   / `read_exact` of each message;
//! - `peer-iceoryx2-loan` and `peer-iceoryx2-copy`: iceoryx2's shared-memory
//!   publish-subscribe (see [`super::peers_iceoryx`]);
//! - `peer-crossbeam`: crossbeam-channel between two threads of one
//!   process: the in-process limit, no process boundary crossed.
//!
//! The children are our spawned processes as for every row; each end
//! connects where it is first used (a peer's objects do not travel as our
//! handles), by a name the parent chose.

use std::io::{Read as _, Write as _};
use std::time::Instant;

use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{GenericNamespaced, ListenerOptions, Stream};
use ipc_channel::ipc::{
    self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcReceiver, IpcSender,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::Row;
use super::harness::{
    BenchResult, Case, Endpoint, SIZES, Sample, fresh, pingpong, round_trips, stream,
};

// ----- ipc-channel ---------------------------------------------------------

/// What the child sends the parent's one-shot server: the parent's sender
/// to the child and its receiver from the child.
type Handshake<S, R> = (S, R);

/// One side of an ipc-channel measurement. The parent's side waits on a
/// one-shot server; the child's connects to it by name, makes both
/// channels and sends the parent its halves.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct IpcEnd<S, R> {
    name: String,
    #[serde(skip)]
    server: Option<IpcOneShotServer<Handshake<S, R>>>,
    #[serde(skip)]
    open: Option<(S, R)>,
}

trait IpcPair: Sized + Serialize + for<'de> Deserialize<'de> {
    type Receiver: Serialize + for<'de> Deserialize<'de>;
    fn channel() -> std::io::Result<(Self, Self::Receiver)>;
    fn send(&self, msg: &[u8]);
    fn recv(rx: &Self::Receiver, buf: &mut Vec<u8>);
}

impl IpcPair for IpcBytesSender {
    type Receiver = IpcBytesReceiver;
    fn channel() -> std::io::Result<(Self, IpcBytesReceiver)> {
        ipc::bytes_channel()
    }
    fn send(&self, msg: &[u8]) {
        IpcBytesSender::send(self, msg).expect("ipc-channel send");
    }
    fn recv(rx: &IpcBytesReceiver, buf: &mut Vec<u8>) {
        *buf = rx.recv().expect("ipc-channel recv");
    }
}

impl IpcPair for IpcSender<ByteBuf> {
    type Receiver = IpcReceiver<ByteBuf>;
    fn channel() -> std::io::Result<(Self, IpcReceiver<ByteBuf>)> {
        ipc::channel()
    }
    fn send(&self, msg: &[u8]) {
        IpcSender::send(self, ByteBuf::from(msg.to_vec())).expect("ipc-channel send");
    }
    fn recv(rx: &IpcReceiver<ByteBuf>, buf: &mut Vec<u8>) {
        *buf = rx.recv().expect("ipc-channel recv").into_vec();
    }
}

impl<S: IpcPair> IpcEnd<S, S::Receiver> {
    fn pair() -> BenchResult<(Self, Self)> {
        let (server, name) = IpcOneShotServer::new()?;
        Ok((
            IpcEnd {
                name: name.clone(),
                server: Some(server),
                open: None,
            },
            IpcEnd {
                name,
                server: None,
                open: None,
            },
        ))
    }

    fn open(&mut self) -> &(S, S::Receiver) {
        if self.open.is_none() {
            let ends = match self.server.take() {
                // The parent: the child's halves arrive.
                Some(server) => server.accept().expect("ipc-channel accept").1,
                None => {
                    let (to_child, child_rx) = S::channel().expect("channel");
                    let (to_parent, parent_rx) = S::channel().expect("channel");
                    let tx0: IpcSender<Handshake<S, S::Receiver>> =
                        IpcSender::connect(self.name.clone()).expect("connect");
                    tx0.send((to_child, parent_rx)).expect("handshake");
                    (to_parent, child_rx)
                }
            };
            self.open = Some(ends);
        }
        self.open.as_ref().expect("just opened")
    }
}

impl<S: IpcPair + Send + 'static> Endpoint for IpcEnd<S, S::Receiver>
where
    S::Receiver: Send + 'static,
{
    fn send(&mut self, msg: &[u8]) {
        self.open().0.send(msg);
    }
    fn recv(&mut self, buf: &mut Vec<u8>) {
        S::recv(&self.open().1, buf);
    }
}

// ----- interprocess ----------------------------------------------------------

/// One side of an interprocess local-socket measurement: the parent
/// listens on a namespaced name and accepts; the child connects.
#[derive(Serialize, Deserialize)]
struct LocalSocketEnd {
    name: String,
    #[serde(skip)]
    listener: Option<interprocess::local_socket::Listener>,
    #[serde(skip)]
    stream: Option<Stream>,
}

impl LocalSocketEnd {
    fn pair() -> BenchResult<(Self, Self)> {
        let name = format!("{}.sock", fresh("interprocess"));
        let listener = ListenerOptions::new()
            .name(name.clone().to_ns_name::<GenericNamespaced>()?)
            .create_sync()?;
        Ok((
            LocalSocketEnd {
                name: name.clone(),
                listener: Some(listener),
                stream: None,
            },
            LocalSocketEnd {
                name,
                listener: None,
                stream: None,
            },
        ))
    }

    fn stream(&mut self) -> &mut Stream {
        if self.stream.is_none() {
            let s = match self.listener.take() {
                Some(l) => l.accept().expect("accept"),
                None => Stream::connect(
                    self.name
                        .clone()
                        .to_ns_name::<GenericNamespaced>()
                        .expect("name"),
                )
                .expect("connect"),
            };
            self.stream = Some(s);
        }
        self.stream.as_mut().expect("just opened")
    }
}

impl Endpoint for LocalSocketEnd {
    fn send(&mut self, msg: &[u8]) {
        self.stream().write_all(msg).expect("write");
    }
    fn recv(&mut self, buf: &mut Vec<u8>) {
        self.stream().read_exact(buf).expect("read");
    }
}

// ----- crossbeam -------------------------------------------------------------

/// Round trips between two threads over two crossbeam channels.
fn crossbeam_pingpong(size: usize, iters: usize) -> BenchResult<Sample> {
    let (to_echo, echo_rx) = crossbeam_channel::bounded::<Vec<u8>>(1);
    let (to_main, main_rx) = crossbeam_channel::bounded::<Vec<u8>>(1);
    let warmup = (iters / 10).max(5);
    let echo = std::thread::spawn(move || {
        while let Ok(m) = echo_rx.recv() {
            if to_main.send(m).is_err() {
                break;
            }
        }
    });
    let msg = vec![0xA5u8; size];
    let sample = round_trips(warmup, iters, || {
        to_echo.send(msg.clone()).expect("send");
        std::hint::black_box(main_rx.recv().expect("recv"));
    });
    drop(to_echo);
    echo.join().map_err(|_| "echo thread panicked")?;
    Ok(sample)
}

/// `count` messages from a producer thread to this one.
fn crossbeam_stream(size: usize, count: usize) -> BenchResult<Sample> {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(1024);
    let producer = std::thread::spawn(move || {
        let msg = vec![0x5Au8; size];
        for _ in 0..count {
            // A copy per message, as every row makes one.
            tx.send(msg.clone()).expect("send");
        }
    });
    std::hint::black_box(rx.recv()?);
    let start = Instant::now();
    for _ in 1..count {
        std::hint::black_box(rx.recv()?);
    }
    let elapsed = start.elapsed();
    producer.join().map_err(|_| "producer panicked")?;
    Ok(Sample::Stream(count - 1, elapsed))
}

/// `count` messages from `n` producer threads to `n` consumer threads
/// through one crossbeam channel (the in-process N×N).
pub(super) fn crossbeam_many(size: usize, count: usize, n: usize) -> BenchResult<Sample> {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(1024);
    let per = count / n;
    let go = std::sync::Arc::new(std::sync::Barrier::new(n + 1));
    let producers: Vec<_> = (0..n)
        .map(|_| {
            let (tx, go) = (tx.clone(), go.clone());
            std::thread::spawn(move || {
                let msg = vec![0x5Au8; size];
                go.wait();
                for _ in 0..per {
                    tx.send(msg.clone()).expect("send");
                }
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..n)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                let mut got = 0usize;
                while let Ok(m) = rx.recv() {
                    std::hint::black_box(m);
                    got += 1;
                }
                got
            })
        })
        .collect();
    let t = Instant::now();
    go.wait();
    let mut got = 0;
    for c in consumers {
        got += c.join().map_err(|_| "consumer panicked")?;
    }
    let elapsed = t.elapsed();
    for p in producers {
        p.join().map_err(|_| "producer panicked")?;
    }
    Ok(Sample::Stream(got, elapsed))
}

// ----- the rows and the verdicts ----------------------------------------------

type BytesIpc = IpcEnd<IpcBytesSender, IpcBytesReceiver>;
type TypedIpc = IpcEnd<IpcSender<ByteBuf>, IpcReceiver<ByteBuf>>;

/// Add a ping-pong and a stream case for `mechanism` at every size, from
/// a pair-making function.
macro_rules! peer_case {
    ($cases:ident, $name:literal, $make:expr) => {
        for size in SIZES {
            for pattern in ["pingpong", "stream"] {
                $cases.push(Case {
                    mechanism: $name,
                    pattern,
                    size,
                    run: Box::new(move |n| match pattern {
                        "pingpong" => pingpong($make?, size, n),
                        _ => stream($make?, size, n),
                    }),
                });
            }
        }
    };
}

/// Add the peer rows.
pub(super) fn cases(cases: &mut Vec<Case>) {
    peer_case!(cases, "peer-ipc-channel-bytes", BytesIpc::pair());
    peer_case!(cases, "peer-ipc-channel-typed", TypedIpc::pair());
    peer_case!(cases, "peer-interprocess", LocalSocketEnd::pair());
    for size in SIZES {
        cases.push(Case {
            mechanism: "peer-crossbeam",
            pattern: "pingpong",
            size,
            run: Box::new(move |n| crossbeam_pingpong(size, n)),
        });
        cases.push(Case {
            mechanism: "peer-crossbeam",
            pattern: "stream",
            size,
            run: Box::new(move |n| crossbeam_stream(size, n)),
        });
        // Beside `queue-4x4`: four producer threads, four consumers.
        cases.push(Case {
            mechanism: "peer-crossbeam-4x4",
            pattern: "stream",
            size,
            run: Box::new(move |n| crossbeam_many(size, n * 10, 4)),
        });
    }
}

/// What each peer row is, for the notes under the table.
pub(super) const NOTES: &[&str] = &[
    "peer-ipc-channel-bytes: ipc-channel IpcBytesSender/Receiver (Unix socket per channel)",
    "peer-ipc-channel-typed: ipc-channel IpcSender<ByteBuf> (bincode on top)",
    "peer-interprocess: interprocess local socket, write_all/read_exact",
    "peer-iceoryx2-loan: iceoryx2 pub/sub in shared memory, payload written into the loaned sample and read in place; waits by busy-polling",
    "peer-iceoryx2-copy: iceoryx2 pub/sub, payload copied in from and out to a buffer; busy-polling",
    "peer-crossbeam: crossbeam-channel between two threads of one process (in-process, no boundary crossed)",
    "peer-crossbeam-4x4: crossbeam-channel, 4 producer threads and 4 consumer threads (in-process; beside queue-4x4)",
];

/// For each pattern and size: multiproc's queue against the best
/// cross-process peer measured with it (`queue-bytes 64 B stream 1.4x
/// peer-iceoryx2-loan`): > 1 means multiproc is faster (messages/s for
/// streams, p50 for ping-pong, inverted so that > 1 is still better).
pub(super) fn verdicts(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    for q in rows.iter().filter(|r| r.mechanism == "queue-bytes") {
        let peers = rows.iter().filter(|r| {
            r.mechanism.starts_with("peer-")
                && !r.mechanism.starts_with("peer-crossbeam")
                && r.pattern == q.pattern
                && r.size == q.size
        });
        let score = |r: &Row| match q.pattern {
            "stream" => r.msgs_per_s,
            _ => r.p50_ns.map(|p| 1e9 / p.max(1) as f64),
        };
        let Some(mine) = score(q) else { continue };
        let best = peers
            .filter_map(|r| score(r).map(|s| (r, s)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((peer, theirs)) = best {
            out.push(format!(
                "queue-bytes {} {} {:.2}x {} (best cross-process peer{})",
                super::human_size(q.size),
                q.pattern,
                mine / theirs,
                peer.mechanism,
                if mine >= theirs {
                    "; multiproc faster"
                } else {
                    "; the peer faster"
                }
            ));
        }
    }
    out
}
