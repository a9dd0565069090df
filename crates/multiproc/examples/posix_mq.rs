//! Seed 004: a message queue lives in the kernel, independent of the
//! processes that use it, and its messages carry a priority, so they need
//! not be read first-in first-out.
//!
//! A producer process opens the queue by name, sends jobs at several
//! priorities and exits; the queue and its messages outlive it. A consumer,
//! another process, opens the same name and receives the jobs highest
//! priority first (first-in first-out within one priority), until the
//! priority-0 "done". Then the queue is unlinked.
//!
//! Run: `cargo run --example posix_mq`

use multiproc::Process;
use multiproc::os::posix::MessageQueue;

const JOBS: [(u32, &str); 6] = [
    (1, "sweep the floor"),
    (5, "put out the fire"),
    (3, "answer the phone"),
    (1, "water the plants"),
    (5, "call the doctor"),
    (3, "sign the letter"),
];

fn producer(name: String) {
    let q: MessageQueue<String> = MessageQueue::open(&name).expect("open");
    for (priority, job) in JOBS {
        q.send(job.to_string(), priority).expect("send");
        println!("producer sent: {job} (priority {priority})");
    }
    q.send("done".to_string(), 0).expect("send");
    println!(
        "producer exits, {} messages queued",
        q.attributes().expect("attributes").curmsgs
    );
}

fn consumer(name: String) -> usize {
    let q: MessageQueue<String> = MessageQueue::open(&name).expect("open");
    let mut n = 0;
    loop {
        let (job, priority) = q.recv().expect("receive");
        if job == "done" {
            println!("consumer done after {n} jobs");
            return n;
        }
        println!("consumer got: {job} (priority {priority})");
        n += 1;
    }
}

fn main() {
    multiproc::init();
    let name = format!("/multiproc-example-{}", std::process::id());
    let q = MessageQueue::builder(&name)
        .maxmsg(JOBS.len() + 1)
        .msgsize(64)
        .create::<String>()
        .expect("create");
    println!("created {name}: {:?}", q.attributes().expect("attributes"));
    drop(q);
    Process::spawn(producer, name.clone())
        .expect("spawn")
        .join()
        .expect("producer");
    let n = Process::spawn(consumer, name.clone())
        .expect("spawn")
        .join()
        .expect("consumer");
    assert_eq!(n, JOBS.len());
    MessageQueue::unlink_name(&name).expect("unlink");
    println!("unlinked {name}");
}
