//! `queue-async` rows: the queue's `async` get and put on a tokio
//! current-thread runtime in each process, against the blocking
//! `queue-bytes` rows of the same run.

use std::time::Instant;

use multiproc::{Process, Queue};
use serde_bytes::ByteBuf;

use super::harness::{
    BenchResult, Case, Job, SIZES, Sample, bench_queue, cpu_pair, pin_child, round_trips,
};
use super::queue::QUEUE_SCALE;

/// A current-thread runtime, as a single-threaded async server would run.
fn runtime() -> BenchResult<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().build()?)
}

/// Child side of the stream: put `count` messages with `put_bytes_async`.
fn stream_child(arg: (Queue<ByteBuf>, Job)) {
    let (q, job) = arg;
    pin_child(&job);
    let msg = vec![0x5Au8; job.size];
    let rt = runtime().expect("runtime");
    rt.block_on(async {
        for _ in 0..job.count {
            q.put_bytes_async(&msg).await.expect("put");
        }
    });
}

fn stream(size: usize, count: usize) -> BenchResult<Sample> {
    let q: Queue<ByteBuf> = bench_queue()?;
    let job = Job {
        size,
        count,
        cpu: cpu_pair().map(|p| p.1),
    };
    let mut child = Process::spawn(stream_child, (q.clone(), job))?;
    let rt = runtime()?;
    let elapsed = rt.block_on(async {
        let mut buf = Vec::with_capacity(size);
        q.get_bytes_into_async(&mut buf).await?;
        let start = Instant::now();
        for _ in 1..count {
            q.get_bytes_into_async(&mut buf).await?;
        }
        Ok::<_, multiproc::GetError>(start.elapsed())
    })?;
    child.join()?;
    Ok(Sample::Stream(count - 1, elapsed))
}

/// Child side of the ping-pong: echo `count` messages, async both ways.
fn echo_child(arg: (Queue<ByteBuf>, Queue<ByteBuf>, Job)) {
    let (rx, tx, job) = arg;
    pin_child(&job);
    let rt = runtime().expect("runtime");
    rt.block_on(async {
        let mut buf = Vec::with_capacity(job.size);
        for _ in 0..job.count {
            rx.get_bytes_into_async(&mut buf).await.expect("get");
            tx.put_bytes_async(&buf).await.expect("put");
        }
    });
}

fn pingpong(size: usize, iters: usize) -> BenchResult<Sample> {
    let (a, b): (Queue<ByteBuf>, Queue<ByteBuf>) = (bench_queue()?, bench_queue()?);
    let warmup = (iters / 10).max(5);
    let job = Job {
        size,
        count: warmup + iters,
        cpu: cpu_pair().map(|p| p.1),
    };
    let mut child = Process::spawn(echo_child, (a.clone(), b.clone(), job))?;
    let rt = runtime()?;
    let msg = vec![0xA5u8; size];
    let mut buf = Vec::with_capacity(size);
    // One `block_on` per round trip (entering the runtime costs well under
    // a microsecond, against round trips of several).
    let sample = round_trips(warmup, iters, || {
        rt.block_on(async {
            a.put_bytes_async(&msg).await.expect("put");
            b.get_bytes_into_async(&mut buf).await.expect("get");
        })
    });
    child.join()?;
    Ok(sample)
}

pub(super) fn aio_cases(cases: &mut Vec<Case>) {
    for size in SIZES {
        cases.push(Case {
            mechanism: "queue-async",
            pattern: "pingpong",
            size,
            run: Box::new(move |n| pingpong(size, n)),
        });
        cases.push(Case {
            mechanism: "queue-async",
            pattern: "stream",
            size,
            run: Box::new(move |n| stream(size, n * QUEUE_SCALE)),
        });
    }
}
