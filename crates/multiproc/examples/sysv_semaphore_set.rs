//! Seed 004 §4: a System V semaphore set, with P and V by more than one.
//!
//! A pool of 5 units (semaphore 0). Six workers each take 2 units at once
//! (P by 2), hold them a moment, and give them back (V by 2). Semaphore 1
//! is a mutex (P/V by 1) guarding two counters in System V shared memory:
//! units in use now, and the most ever in use, which can never pass 5.
//! Every operation is `SEM_UNDO`, so a worker that dies gives its units
//! back.
//!
//! Run: `cargo run --example sysv_semaphore_set`

use std::time::Duration;

use multiproc::Process;
use multiproc::os::sysv::{SemOp, SemaphoreSet, SharedMemory};

const UNITS: u16 = 5;
const TAKE: u16 = 2;
const WORKERS: u32 = 6;

fn counters(mem: &multiproc::os::sysv::Attachment) -> (u32, u32) {
    let mut b = [0u8; 8];
    mem.read(0, &mut b).expect("read");
    let now = u32::from_ne_bytes(b[..4].try_into().expect("4 bytes"));
    let max = u32::from_ne_bytes(b[4..].try_into().expect("4 bytes"));
    (now, max)
}

fn set_counters(mem: &multiproc::os::sysv::Attachment, now: u32, max: u32) {
    mem.write(0, &now.to_ne_bytes()).expect("write");
    mem.write(4, &max.to_ne_bytes()).expect("write");
}

fn worker(arg: (SemaphoreSet, SharedMemory, u32)) {
    let (sems, shm, me) = arg;
    let mem = shm.attach().expect("shmat");
    let lock = || sems.op(&[SemOp::new(1, -1).undo()]).expect("P(mutex)");
    let unlock = || sems.op(&[SemOp::new(1, 1).undo()]).expect("V(mutex)");

    // P by 2: wait until two units are free, take both at once.
    sems.op(&[SemOp::new(0, -(TAKE as i16)).undo()])
        .expect("P(pool, 2)");
    lock();
    let (now, max) = counters(&mem);
    let now = now + u32::from(TAKE);
    set_counters(&mem, now, max.max(now));
    unlock();
    println!("worker {me} took {TAKE} units ({now} in use)");

    std::thread::sleep(Duration::from_millis(30 + u64::from(me % 3) * 10));

    lock();
    let (now, max) = counters(&mem);
    set_counters(&mem, now - u32::from(TAKE), max);
    unlock();
    // V by 2: give both back at once.
    sems.op(&[SemOp::new(0, TAKE as i16).undo()])
        .expect("V(pool, 2)");
    println!("worker {me} gave back {TAKE} units");
}

fn main() {
    multiproc::init();
    let sems = SemaphoreSet::private(2).expect("semget");
    let shm = SharedMemory::private(8).expect("shmget");
    sems.set_all(&[UNITS, 1]).expect("SETALL");
    println!("pool of {UNITS} units; each worker takes {TAKE}");

    let mut workers: Vec<Process> = (0..WORKERS)
        .map(|i| Process::spawn(worker, (sems.clone(), shm.clone(), i)).expect("spawn"))
        .collect();
    for w in &mut workers {
        w.join().expect("worker failed");
    }

    let mem = shm.attach().expect("shmat");
    let (now, max) = counters(&mem);
    println!("most units in use at once: {max} (pool of {UNITS})");
    println!("units in use at the end: {now}");
    println!("units free at the end: {}", sems.get(0).expect("GETVAL"));
    drop(mem);
    sems.remove().expect("IPC_RMID");
    shm.remove().expect("IPC_RMID");
}
