//! Queue rows: bytes and serde queues against pipes, batched puts and gets,
//! several producers and consumers, and the memcpy bound.

use std::time::Instant;

use multiproc::{ByteBatch, Process, Queue, TryError};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::harness::{
    BenchResult, Case, Endpoint, Job, SIZES, Sample, all_cpus, bench_queue, cpu_pair, pin_child,
    pingpong, stream, uncontended,
};

// ----- queues --------------------------------------------------------------------

/// Two queues (one each way) used with `put_bytes`/`get_bytes_into`; a
/// `busy` receiver spins on `try_get_bytes_into` instead of blocking.
#[derive(Serialize, Deserialize)]
pub(super) struct QueueBytesEnd {
    rx: Queue<ByteBuf>,
    tx: Queue<ByteBuf>,
    busy: bool,
}

impl Endpoint for QueueBytesEnd {
    fn send(&mut self, msg: &[u8]) {
        self.tx.put_bytes(msg).expect("put");
    }
    fn recv(&mut self, buf: &mut Vec<u8>) {
        if !self.busy {
            return self.rx.get_bytes_into(buf).expect("get");
        }
        loop {
            match self.rx.try_get_bytes_into(buf) {
                Ok(()) => return,
                Err(TryError::WouldBlock) => std::hint::spin_loop(),
                Err(e) => panic!("get: {e}"),
            }
        }
    }
}

/// Two queues used with serde `put`/`get` of a byte buffer (an owned value
/// each way, as a serde user would).
#[derive(Serialize, Deserialize)]
pub(super) struct QueueSerdeEnd {
    rx: Queue<ByteBuf>,
    tx: Queue<ByteBuf>,
}

impl Endpoint for QueueSerdeEnd {
    fn send(&mut self, msg: &[u8]) {
        self.tx.put(ByteBuf::from(msg.to_vec())).expect("put");
    }
    fn recv(&mut self, buf: &mut Vec<u8>) {
        *buf = self.rx.get().expect("get").into_vec();
    }
}

pub(super) fn queue_pair() -> BenchResult<(Queue<ByteBuf>, Queue<ByteBuf>)> {
    Ok((bench_queue()?, bench_queue()?))
}

pub(super) fn queue_bytes_ends(busy: bool) -> BenchResult<(QueueBytesEnd, QueueBytesEnd)> {
    let (a, b) = queue_pair()?;
    Ok((
        QueueBytesEnd {
            rx: a.clone(),
            tx: b.clone(),
            busy,
        },
        QueueBytesEnd { rx: b, tx: a, busy },
    ))
}

pub(super) fn queue_serde_ends() -> BenchResult<(QueueSerdeEnd, QueueSerdeEnd)> {
    let (a, b) = queue_pair()?;
    Ok((
        QueueSerdeEnd {
            rx: a.clone(),
            tx: b.clone(),
        },
        QueueSerdeEnd { rx: b, tx: a },
    ))
}

/// Messages per `put_many_bytes` call in `queue-batch`.
pub(super) const PUT_BATCH: usize = 64;
/// Most messages per `get_many_bytes` call in `queue-batch`.
pub(super) const GET_BATCH: usize = 1024;

/// Child side of `queue-batch`: put `count` messages, `PUT_BATCH` a call.
pub(super) fn batch_child(arg: (Queue<ByteBuf>, Job)) {
    let (q, job) = arg;
    pin_child(&job);
    let msg = vec![0x5Au8; job.size];
    let mut left = job.count;
    while left > 0 {
        let k = left.min(PUT_BATCH);
        let sent = q
            .put_many_bytes(std::iter::repeat_n(msg.as_slice(), k))
            .expect("put_many");
        left -= sent;
    }
}

pub(super) fn stream_batch(size: usize, count: usize) -> BenchResult<Sample> {
    let q = bench_queue()?;
    let job = Job {
        size,
        count,
        cpu: cpu_pair().map(|p| p.1),
    };
    let mut child = Process::spawn(batch_child, (q.clone(), job))?;
    let mut batch = ByteBatch::new();
    // The clock starts at the first message (the child is running by then);
    // take just that one so the timed part always has the rest.
    let first = q.get_many_bytes(&mut batch, 1, None)?;
    let start = Instant::now();
    let mut got = first;
    while got < count {
        got += q.get_many_bytes(&mut batch, GET_BATCH, None)?;
    }
    let elapsed = start.elapsed();
    child.join()?;
    Ok(Sample::Stream(got - first, elapsed))
}

/// Producers and consumers of `queue-4x4`.
pub(super) const PARTIES: usize = 4;

/// A `queue-4x4` producer: wait for the start, put `count` messages, then
/// an empty one (a consumer's signal to stop).
pub(super) fn many_producer(arg: (Queue<ByteBuf>, multiproc::Event, Job, Vec<usize>)) {
    let (q, start, job, cpus) = arg;
    let _ = multiproc::process::set_cpus(&cpus);
    let msg = vec![0x5Au8; job.size];
    start.wait();
    for _ in 0..job.count {
        q.put_bytes(&msg).expect("put");
    }
    q.put_bytes(&[]).expect("put");
}

/// A `queue-4x4` consumer: count messages until an empty one.
pub(super) fn many_consumer(arg: (Queue<ByteBuf>, Vec<usize>)) -> usize {
    let (q, cpus) = arg;
    let _ = multiproc::process::set_cpus(&cpus);
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        q.get_bytes_into(&mut buf).expect("get");
        if buf.is_empty() {
            return n;
        }
        n += 1;
    }
}

/// `count` messages from `parties` producer processes to as many consumer
/// processes through one queue.
pub(super) fn stream_many(size: usize, count: usize, parties: usize) -> BenchResult<Sample> {
    let q = bench_queue()?;
    let start = multiproc::Event::new()?;
    let per = count / parties;
    let mut consumers = Vec::new();
    for _ in 0..parties {
        consumers.push(Process::spawn(
            many_consumer,
            (q.clone(), all_cpus().to_vec()),
        )?);
    }
    let job = Job {
        size,
        count: per,
        cpu: None,
    };
    let mut producers = Vec::new();
    for _ in 0..parties {
        producers.push(Process::spawn(
            many_producer,
            (q.clone(), start.clone(), job, all_cpus().to_vec()),
        )?);
    }
    let t = Instant::now();
    start.set();
    let mut got = 0;
    for c in &mut consumers {
        got += c.join()?;
    }
    let elapsed = t.elapsed();
    for p in &mut producers {
        p.join()?;
    }
    Ok(Sample::Stream(got, elapsed))
}

/// One process puts a 64-byte message and gets it back: the cost of the
/// two operations without any cross-core traffic.
pub(super) fn bench_queue_uncontended(batches: usize) -> BenchResult<Sample> {
    let q: Queue<ByteBuf> = bench_queue()?;
    let msg = [0x5Au8; 64];
    let mut buf = Vec::with_capacity(64);
    uncontended(batches, || {
        q.put_bytes(&msg).expect("put");
        q.get_bytes_into(&mut buf).expect("get");
    })
}

/// The bandwidth limit: `memcpy` of `size` bytes between two buffers.
pub(super) fn bench_memcpy(size: usize, count: usize) -> BenchResult<Sample> {
    let src = vec![0x5Au8; size];
    let mut dst = vec![0u8; size];
    dst.copy_from_slice(&src);
    let t = Instant::now();
    for _ in 0..count {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
    }
    Ok(Sample::Stream(count, t.elapsed()))
}

/// Queue streams move ten times the messages of a pipe stream per round:
/// at tens of millions of messages a second, fewer would be over in a few
/// milliseconds.
pub(super) const QUEUE_SCALE: usize = 10;

pub(super) fn queue_cases(cases: &mut Vec<Case>) {
    let mut add = |mechanism, pattern, size, run: Box<dyn Fn(usize) -> BenchResult<Sample>>| {
        cases.push(Case {
            mechanism,
            pattern,
            size,
            run,
        });
    };
    for size in SIZES {
        add(
            "queue-bytes",
            "pingpong",
            size,
            Box::new(move |n| pingpong(queue_bytes_ends(false)?, size, n)),
        );
        add(
            "queue-serde",
            "pingpong",
            size,
            Box::new(move |n| pingpong(queue_serde_ends()?, size, n)),
        );
    }
    add(
        "queue-bytes",
        "pingpong-busy",
        64,
        Box::new(|n| pingpong(queue_bytes_ends(true)?, 64, n)),
    );
    add(
        "queue-bytes",
        "uncontended",
        64,
        Box::new(bench_queue_uncontended),
    );
    for size in SIZES {
        add(
            "queue-bytes",
            "stream",
            size,
            Box::new(move |n| stream(queue_bytes_ends(false)?, size, n * QUEUE_SCALE)),
        );
        add(
            "queue-serde",
            "stream",
            size,
            // Serde of a MiB costs a millisecond: fewer rounds keep the run short.
            Box::new(move |n| {
                let scale = if size >= 1 << 20 { 3 } else { QUEUE_SCALE };
                stream(queue_serde_ends()?, size, n * scale)
            }),
        );
        add(
            "queue-batch",
            "stream",
            size,
            Box::new(move |n| stream_batch(size, n * QUEUE_SCALE)),
        );
        add(
            "queue-4x4",
            "stream",
            size,
            Box::new(move |n| stream_many(size, n * QUEUE_SCALE, PARTIES)),
        );
        add(
            "memcpy",
            "stream",
            size,
            Box::new(move |n| bench_memcpy(size, n * QUEUE_SCALE)),
        );
    }
}
