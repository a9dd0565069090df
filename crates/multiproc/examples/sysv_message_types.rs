//! Seed 004 §3: a System V message queue read out of order by message type.
//!
//! A sender process puts eight messages of types 1–4 into a private queue
//! and exits; the queue outlives it. The receiver then shows `msgrcv`'s
//! three rules:
//! - type > 0: the first message of exactly that type;
//! - type < 0: the first message of the lowest type ≤ |type| (types as
//!   priorities, low first);
//! - type 0: the first message in the queue, whatever its type.
//!
//! Run: `cargo run --example sysv_message_types`

use multiproc::Process;
use multiproc::TryError;
use multiproc::os::sysv::MessageQueue;

/// The sender: `(type, text)` pairs in queue order.
const MESSAGES: [(i64, &str); 8] = [
    (3, "low: rotate logs"),
    (1, "urgent: disk full"),
    (4, "info: 12 users online"),
    (2, "high: backup late"),
    (1, "urgent: fan stopped"),
    (3, "low: clean /tmp"),
    (4, "info: load 0.3"),
    (2, "high: certificate expires"),
];

fn sender(q: MessageQueue) {
    for (t, text) in MESSAGES {
        q.send(t, text).expect("msgsnd");
        println!("sender: type {t}: {text}");
    }
}

fn show(rule: &str, q: &MessageQueue, selector: i64) {
    let (mtype, text): (i64, String) = q.recv(selector).expect("msgrcv");
    println!("{rule} (msgrcv type {selector}): got type {mtype}: {text}");
}

fn main() {
    multiproc::init();
    let q = MessageQueue::private().expect("msgget");
    let mut p = Process::spawn(sender, q.clone()).expect("spawn");
    p.join().expect("sender");
    let n = q.stats().expect("msgctl").messages;
    println!("sender exited; {n} messages wait in queue {}", q.id());

    show("type > 0", &q, 4);
    show("type > 0", &q, 2);
    show("type < 0", &q, -3);
    show("type < 0", &q, -3);
    show("type < 0", &q, -3);
    show("type 0", &q, 0);
    show("type 0", &q, 0);
    show("type 0", &q, 0);
    match q.try_recv::<String>(0) {
        Err(TryError::WouldBlock) => println!("queue empty"),
        other => panic!("expected an empty queue, got {other:?}"),
    }
    q.remove().expect("IPC_RMID");
}
