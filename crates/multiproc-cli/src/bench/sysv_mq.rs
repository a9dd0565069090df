//! `sysv-mq`: one private System V message queue carries both directions,
//! told apart by message type (1: parent to child, 2: child to parent).
//! Sizes 64 B and 4 KiB only (a message is at most `msgmax`, 8 KiB by
//! default). The queue is removed when the parent's end drops.

use multiproc::os::sysv::MessageQueue;
use serde::{Deserialize, Serialize};

use super::harness::{BenchResult, Case, Endpoint, pingpong, stream};

const TO_CHILD: i64 = 1;
const TO_PARENT: i64 = 2;

/// One side of the queue: sends with one type, receives the other.
#[derive(Serialize, Deserialize)]
struct SysvMqEnd {
    queue: MessageQueue,
    send_type: i64,
    recv_type: i64,
    /// The parent's end removes the queue on drop; the copy that travels to
    /// the child never does.
    #[serde(skip)]
    owner: bool,
}

impl Endpoint for SysvMqEnd {
    fn send(&mut self, msg: &[u8]) {
        self.queue.send_bytes(self.send_type, msg).expect("msgsnd");
    }
    fn recv(&mut self, buf: &mut Vec<u8>) {
        let (_, n) = self
            .queue
            .recv_bytes_into(self.recv_type, buf, false)
            .expect("msgrcv");
        buf.truncate(n);
    }
}

impl Drop for SysvMqEnd {
    fn drop(&mut self) {
        if self.owner {
            let _ = self.queue.remove();
        }
    }
}

fn ends() -> BenchResult<(SysvMqEnd, SysvMqEnd)> {
    let queue = MessageQueue::private()?;
    Ok((
        SysvMqEnd {
            queue: queue.clone(),
            send_type: TO_CHILD,
            recv_type: TO_PARENT,
            owner: true,
        },
        SysvMqEnd {
            queue,
            send_type: TO_PARENT,
            recv_type: TO_CHILD,
            owner: false,
        },
    ))
}

/// The `sysv-mq` rows: `pingpong` and `stream` at 64 B and 4 KiB.
pub(super) fn cases(cases: &mut Vec<Case>) {
    for pattern in ["pingpong", "stream"] {
        for size in [64, 4096] {
            cases.push(Case {
                mechanism: "sysv-mq",
                pattern,
                size,
                run: Box::new(move |n| match pattern {
                    "pingpong" => pingpong(ends()?, size, n),
                    _ => stream(ends()?, size, n),
                }),
            });
        }
    }
}
