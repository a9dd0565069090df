//! `posix-mq` rows: POSIX message queues (`mq_send`/`mq_receive`), one queue
//! each way, `msgsize` equal to the message size.

use std::sync::atomic::{AtomicUsize, Ordering};

use multiproc::os::posix::MessageQueue;
use serde::{Deserialize, Serialize};

use super::harness::{BenchResult, Case, Endpoint, pingpong, stream};

/// One side: receives on `rx`, sends on `tx` (priority 0: FIFO).
#[derive(Serialize, Deserialize)]
struct MqEnd {
    rx: MessageQueue,
    tx: MessageQueue,
}

impl Endpoint for MqEnd {
    fn send(&mut self, msg: &[u8]) {
        self.tx.send_bytes(msg, 0).expect("mq send");
    }
    fn recv(&mut self, buf: &mut Vec<u8>) {
        // `buf` is the message size, which is the queue's msgsize.
        let (n, _) = self.rx.recv_bytes_into(buf).expect("mq receive");
        buf.truncate(n);
    }
}

/// A fresh queue of `size`-byte messages under a unique name, unlinked at
/// once: the handles (descriptors) keep it alive for both processes, and
/// nothing is left behind however the run ends.
fn queue(size: usize) -> BenchResult<MessageQueue> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "/multiproc-bench-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let q = MessageQueue::builder(&name).msgsize(size).create()?;
    q.unlink()?;
    Ok(q)
}

fn ends(size: usize) -> BenchResult<(MqEnd, MqEnd)> {
    let (a, b) = (queue(size)?, queue(size)?);
    Ok((
        MqEnd {
            rx: a.try_clone()?,
            tx: b.try_clone()?,
        },
        MqEnd { rx: b, tx: a },
    ))
}

/// Add the `posix-mq` rows: ping-pong and stream at 64 B and 4 KiB.
pub(super) fn cases(cases: &mut Vec<Case>) {
    for size in [64, 4096] {
        cases.push(Case {
            mechanism: "posix-mq",
            pattern: "pingpong",
            size,
            run: Box::new(move |n| pingpong(ends(size)?, size, n)),
        });
    }
    for size in [64, 4096] {
        cases.push(Case {
            mechanism: "posix-mq",
            pattern: "stream",
            size,
            run: Box::new(move |n| stream(ends(size)?, size, n)),
        });
    }
}
