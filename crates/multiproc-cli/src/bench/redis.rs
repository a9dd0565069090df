//! Rows `redis-queue`, `redis-queue-batch` and `redis-pipe-raw` (issue
//! 19), with `--redis URL`: a [`multiproc::redis::Queue`] between two
//! processes, against the `redis` crate's own `XADD`/`XREADGROUP` with the
//! same work per message (add; read in a consumer group; acknowledge and
//! delete), on the same server in the same run.
//!
//! - `redis-queue`: `put` (one script: bound check and `XADD`), `get`
//!   (`XREADGROUP`, then one script: ownership check, `XACK`, `XDEL`).
//! - `redis-pipe-raw`: `XADD`; `XREADGROUP COUNT 1`, then `XACK` and
//!   `XDEL` pipelined: what a careful hand-written client sends.
//! - `redis-queue-batch` (stream only): `put_many`/`get_many` of 64.

use std::sync::OnceLock;
use std::time::Instant;

use multiproc::Process;
use multiproc::redis::Queue;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::harness::{
    BenchResult, Case, Endpoint, Job, Sample, cpu_pair, fresh, pin_child, pingpong, stream,
};

/// `--redis URL`: the server the Redis rows use (no rows without it).
pub(super) static URL: OnceLock<String> = OnceLock::new();

/// Items per `put_many`/`get_many` of the batch row.
const BATCH: usize = 64;

/// A server round trip is tens of microseconds: a round moves this many
/// times fewer messages than a local row's.
const FEWER: usize = 20;

const GROUP: &str = "bench";

fn url() -> &'static str {
    URL.get().expect("--redis URL")
}

/// One side of a `redis-queue` measurement: it gets from `rx` and puts to
/// `tx`, each opened where it is first used.
#[derive(Serialize, Deserialize)]
struct QueueEnd {
    /// The server (a spawned child has no `URL` set).
    url: String,
    rx: String,
    tx: String,
    #[serde(skip)]
    open: Option<(Queue<ByteBuf>, Queue<ByteBuf>)>,
}

impl QueueEnd {
    fn pair() -> (QueueEnd, QueueEnd) {
        let (a, b) = (fresh("a"), fresh("b"));
        let end = |rx: &str, tx: &str| QueueEnd {
            url: url().to_owned(),
            rx: rx.to_owned(),
            tx: tx.to_owned(),
            open: None,
        };
        (end(&a, &b), end(&b, &a))
    }

    fn queues(&mut self) -> &(Queue<ByteBuf>, Queue<ByteBuf>) {
        let url = &self.url;
        self.open.get_or_insert_with(|| {
            let open = |n: &str| Queue::open(url, n).expect("open a Redis queue");
            (open(&self.rx), open(&self.tx))
        })
    }
}

impl Drop for QueueEnd {
    fn drop(&mut self) {
        // The receiving side cleans up what it read from.
        if self.open.take().is_some() {
            let _ = multiproc::redis::remove(&self.url, &self.rx);
        }
    }
}

impl Endpoint for QueueEnd {
    fn send(&mut self, msg: &[u8]) {
        self.queues()
            .1
            .put(ByteBuf::from(msg.to_vec()))
            .expect("put");
    }
    fn recv(&mut self, buf: &mut Vec<u8>) {
        *buf = self.queues().0.get().expect("get").into_vec();
    }
}

/// One side of a `redis-pipe-raw` measurement: streams `rx` and `tx`, read
/// in a consumer group.
#[derive(Serialize, Deserialize)]
struct RawEnd {
    /// The server (a spawned child has no `URL` set).
    url: String,
    rx: String,
    tx: String,
    #[serde(skip)]
    conn: Option<redis::Connection>,
}

impl RawEnd {
    fn pair() -> BenchResult<(RawEnd, RawEnd)> {
        let (a, b) = (fresh("raw-a"), fresh("raw-b"));
        let mut c = redis::Client::open(url())?.get_connection()?;
        for s in [&a, &b] {
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(s)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query::<()>(&mut c)?;
        }
        let end = |rx: &str, tx: &str| RawEnd {
            url: url().to_owned(),
            rx: rx.to_owned(),
            tx: tx.to_owned(),
            conn: None,
        };
        Ok((end(&a, &b), end(&b, &a)))
    }

    fn conn(&mut self) -> &mut redis::Connection {
        let url = &self.url;
        self.conn.get_or_insert_with(|| {
            redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection())
                .expect("connect")
        })
    }
}

impl Drop for RawEnd {
    fn drop(&mut self) {
        let rx = self.rx.clone();
        if let Some(c) = self.conn.as_mut() {
            let _ = redis::cmd("DEL").arg(&rx).query::<()>(c);
        }
    }
}

impl Endpoint for RawEnd {
    fn send(&mut self, msg: &[u8]) {
        let tx = self.tx.clone();
        redis::cmd("XADD")
            .arg(&tx)
            .arg("*")
            .arg("d")
            .arg(msg)
            .query::<String>(self.conn())
            .expect("XADD");
    }
    fn recv(&mut self, buf: &mut Vec<u8>) {
        let rx = self.rx.clone();
        let c = self.conn();
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg("c")
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(0)
            .arg("STREAMS")
            .arg(&rx)
            .arg(">")
            .query(c)
            .expect("XREADGROUP");
        let entry = &reply.keys[0].ids[0];
        *buf = entry.get::<Vec<u8>>("d").expect("a payload");
        redis::pipe()
            .cmd("XACK")
            .arg(&rx)
            .arg(GROUP)
            .arg(&entry.id)
            .ignore()
            .cmd("XDEL")
            .arg(&rx)
            .arg(&entry.id)
            .ignore()
            .query::<()>(c)
            .expect("XACK, XDEL");
    }
}

/// Child side of the batch row: `count` messages in `put_many`s.
fn batch_child((url, name, job): (String, String, Job)) {
    pin_child(&job);
    let q = Queue::<ByteBuf>::open(&url, &name).expect("open");
    let msg = ByteBuf::from(vec![0x5Au8; job.size]);
    let mut left = job.count;
    while left > 0 {
        let n = left.min(BATCH);
        q.put_many(std::iter::repeat_n(msg.clone(), n))
            .expect("put_many");
        left -= n;
    }
}

fn batch_stream(size: usize, count: usize) -> BenchResult<Sample> {
    let name = fresh("batch");
    let q = Queue::<ByteBuf>::open(url(), &name)?;
    let job = Job {
        size,
        count,
        cpu: cpu_pair().map(|p| p.1),
    };
    let mut child = Process::spawn(batch_child, (url().to_owned(), name.clone(), job))?;
    let mut got = q.get_many(BATCH, None)?.len();
    let first = got;
    let start = Instant::now();
    while got < count {
        got += q.get_many(BATCH, None)?.len();
    }
    let elapsed = start.elapsed();
    child.join()?;
    multiproc::redis::remove(url(), &name)?;
    Ok(Sample::Stream(count - first, elapsed))
}

/// Add the Redis rows when `--redis URL` was given.
pub(super) fn cases(cases: &mut Vec<Case>) {
    if URL.get().is_none() {
        return;
    }
    for size in [64, 4096] {
        for pattern in ["pingpong", "stream"] {
            cases.push(Case {
                mechanism: "redis-pipe-raw",
                pattern,
                size,
                run: Box::new(move |n| {
                    let n = (n / FEWER).max(50);
                    match pattern {
                        "pingpong" => pingpong(RawEnd::pair()?, size, n),
                        _ => stream(RawEnd::pair()?, size, n),
                    }
                }),
            });
            cases.push(Case {
                mechanism: "redis-queue",
                pattern,
                size,
                run: Box::new(move |n| {
                    let n = (n / FEWER).max(50);
                    match pattern {
                        "pingpong" => pingpong(QueueEnd::pair(), size, n),
                        _ => stream(QueueEnd::pair(), size, n),
                    }
                }),
            });
        }
        cases.push(Case {
            mechanism: "redis-queue-batch",
            pattern: "stream",
            size,
            run: Box::new(move |n| batch_stream(size, (n / 4).max(BATCH * 4))),
        });
    }
}
