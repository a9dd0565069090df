//! Seed 000 §4.1 and seed 004 §1: the parent produces over a pipe, a child
//! consumes until end of file.
//!
//! In Python the child closes the end it does not use (`left.close()`), and
//! the parent closes its copy of the read end, so that end of file arrives
//! once the producer closes the write end. In Rust the read end *moves* into
//! the child: the parent no longer has it, and dropping the writer is the
//! close.
//!
//! Run: `cargo run --example pipe_producer_consumer`

use multiproc::{Connection, Process, RecvError, pipe};

/// The consumer: print every message until the producer's end is closed.
fn consumer(right: Connection<i32>) {
    let mut right = right;
    loop {
        match right.recv() {
            Ok(msg) => println!("consumer received: {msg}"),
            Err(RecvError::Eof) => break,
            Err(e) => panic!("consumer: {e}"),
        }
    }
    println!("consumer saw end of file");
}

/// The producer: send ten messages, then close the pipe.
fn producer(mut left: Connection<i32>) {
    for i in 0..10 {
        left.send(&i).expect("send");
        // The seed sleeps a second between messages; a short pause keeps the
        // interleaving visible without making the example slow.
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    left.close();
}

fn main() {
    multiproc::init();
    let (right, left) = pipe::<i32>().expect("pipe");
    let mut consumer_1 = Process::spawn(consumer, right).expect("spawn consumer");
    producer(left);
    consumer_1.join().expect("consumer failed");
    println!("master proc end");
}
