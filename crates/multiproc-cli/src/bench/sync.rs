//! Synchronization rows: a lock, a POSIX semaphore and a robust pthread mutex
//! uncontended; event and futex ping-pong across processes.

use multiproc::Process;

use super::harness::{
    BenchResult, Case, Job, Sample, cpu_pair, pin_child, round_trips, uncontended,
};

// ----- synchronization -------------------------------------------------------

pub(super) fn bench_lock(batches: usize) -> BenchResult<Sample> {
    let lock = multiproc::Lock::new()?;
    uncontended(batches, || drop(lock.lock().expect("lock")))
}

pub(super) fn bench_posix_sem(batches: usize) -> BenchResult<Sample> {
    let name = format!("/multiproc-bench-{}", std::process::id());
    let sem = multiproc::baseline::PosixSemaphore::create(&name, 1)?;
    uncontended(batches, || {
        sem.wait().expect("sem_wait");
        sem.post().expect("sem_post");
    })
}

pub(super) fn bench_pthread_robust(batches: usize) -> BenchResult<Sample> {
    let mem = multiproc::SharedMemory::new(multiproc::baseline::RobustMutex::SIZE)?;
    // SAFETY: the block is at least SIZE bytes, page-aligned (the segment
    // payload starts 64 bytes into a page-aligned mapping), private to this
    // benchmark, and outlives `m`.
    let m = unsafe { multiproc::baseline::RobustMutex::init(mem.as_ptr())? };
    uncontended(batches, || {
        m.lock().expect("lock");
        m.unlock().expect("unlock");
    })
}

/// Child side of the event ping-pong.
pub(super) fn event_echo(arg: (multiproc::Event, multiproc::Event, Job)) {
    let (ping, pong, job) = arg;
    pin_child(&job);
    for _ in 0..job.count {
        ping.wait();
        ping.clear();
        pong.set();
    }
}

pub(super) fn bench_event(iters: usize) -> BenchResult<Sample> {
    let ping = multiproc::Event::new()?;
    let pong = multiproc::Event::new()?;
    let warmup = (iters / 10).max(5);
    let job = Job {
        size: 0,
        count: warmup + iters,
        cpu: cpu_pair().map(|p| p.1),
    };
    let mut child = Process::spawn(event_echo, (ping.clone(), pong.clone(), job))?;
    let sample = round_trips(warmup, iters, || {
        ping.set();
        pong.wait();
        pong.clear();
    });
    child.join()?;
    Ok(sample)
}

/// The futex word of the raw futex ping-pong, in shared memory.
pub(super) fn futex_word(mem: &multiproc::SharedMemory) -> &std::sync::atomic::AtomicU32 {
    // SAFETY: the block is at least 4 bytes and 4-aligned (payload offset 64
    // in a page-aligned mapping) and lives as long as the borrow; an
    // AtomicU32 is valid for any bit pattern and made for shared access.
    unsafe { &*mem.as_ptr().cast::<std::sync::atomic::AtomicU32>() }
}

/// Child side of the raw futex ping-pong: wait for 1, answer 0.
pub(super) fn futex_echo(arg: (multiproc::SharedMemory, Job)) {
    use std::sync::atomic::Ordering;
    let (mem, job) = arg;
    pin_child(&job);
    let w = futex_word(&mem);
    for _ in 0..job.count {
        while w.load(Ordering::Acquire) != 1 {
            multiproc::baseline::futex_wait(w, 0, None);
        }
        w.store(0, Ordering::Release);
        multiproc::baseline::futex_wake(w, 1);
    }
}

pub(super) fn bench_futex(iters: usize) -> BenchResult<Sample> {
    use std::sync::atomic::Ordering;
    let mem = multiproc::SharedMemory::new(64)?;
    let warmup = (iters / 10).max(5);
    let job = Job {
        size: 0,
        count: warmup + iters,
        cpu: cpu_pair().map(|p| p.1),
    };
    let mut child = Process::spawn(futex_echo, (mem.clone(), job))?;
    let w = futex_word(&mem);
    let sample = round_trips(warmup, iters, || {
        w.store(1, Ordering::Release);
        multiproc::baseline::futex_wake(w, 1);
        while w.load(Ordering::Acquire) != 0 {
            multiproc::baseline::futex_wait(w, 1, None);
        }
    });
    child.join()?;
    Ok(sample)
}

pub(super) fn sync_cases(cases: &mut Vec<Case>) {
    let mut add = |mechanism, pattern, run: fn(usize) -> BenchResult<Sample>| {
        cases.push(Case {
            mechanism,
            pattern,
            size: 0,
            run: Box::new(run),
        });
    };
    add("lock", "uncontended", bench_lock);
    add("os-posix-sem", "uncontended", bench_posix_sem);
    add("os-pthread-robust", "uncontended", bench_pthread_robust);
    add("event", "pingpong", bench_event);
    add("os-futex", "pingpong", bench_futex);
}
