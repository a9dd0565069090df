//! Fault injection for tests: stop a process at a named point inside an
//! operation (`put.half`, `get.committed`, …) so that a test can kill it
//! exactly there.
//!
//! A process arms one point with [`arm`]; the first time it reaches that
//! point it writes one byte to the given descriptor and then sleeps until it
//! is killed. Unarmed, a failpoint costs one relaxed load.
//!
//! [`chaos`] turns every failpoint of this process into a place where it may
//! yield its CPU, spin or sleep briefly, at random: the interleavings that a
//! busy machine produces once a day, produced all the time (`multiproc
//! stress --chaos`). It shares the relaxed load of an unarmed failpoint, so
//! a process without chaos pays nothing more.

use std::os::fd::AsFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::connection::codec::Fd;

/// Some point is armed, or chaos is on: `hit` must look.
static ARMED: AtomicBool = AtomicBool::new(false);
/// A point is armed (`POINT` holds it).
static POINT_ARMED: AtomicBool = AtomicBool::new(false);
static POINT: Mutex<Option<(String, Fd)>> = Mutex::new(None);
/// Chaos: how many hits in 1024 are delayed (0: off).
static CHAOS: AtomicU32 = AtomicU32::new(0);
/// The chaos generator's state (xorshift64*, racy updates are fine: any
/// value is as random as another).
static CHAOS_STATE: AtomicU64 = AtomicU64::new(0);

/// Stop this process the first time it reaches failpoint `name`, after
/// writing one byte to `notify`.
pub fn arm(name: &str, notify: Fd) {
    *POINT.lock().unwrap_or_else(|e| e.into_inner()) = Some((name.to_owned(), notify));
    // Ordering::Release: the point is stored before the flag is seen.
    POINT_ARMED.store(true, Ordering::Release);
    ARMED.store(true, Ordering::Release);
}

/// Chaos mode for this process: from now on, `per_1024` of every 1024
/// failpoint hits (1–1024) yield the CPU, spin for a few microseconds or
/// sleep up to half a millisecond, chosen at random from `seed`. `0` turns
/// it off. For stress tests: it makes rare interleavings common.
pub fn chaos(per_1024: u32, seed: u64) {
    // Ordering::Relaxed: the generator's state is a hint of randomness.
    CHAOS_STATE.store(seed | 1, Ordering::Relaxed);
    CHAOS.store(per_1024.min(1024), Ordering::Relaxed);
    if per_1024 > 0 {
        ARMED.store(true, Ordering::Release);
    }
}

/// The next chaos random number.
fn chaos_next() -> u64 {
    // Ordering::Relaxed: see CHAOS_STATE.
    let mut x = CHAOS_STATE.load(Ordering::Relaxed);
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    CHAOS_STATE.store(x, Ordering::Relaxed);
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// One chaos roll at a failpoint.
fn chaos_hit(rate: u32) {
    let r = chaos_next();
    if (r & 1023) as u32 >= rate {
        return;
    }
    match (r >> 10) % 16 {
        // Mostly give the CPU away: another process runs between two
        // steps of this one.
        0..=10 => std::thread::yield_now(),
        // A short spin: the other side gets a few microseconds.
        11..=14 => {
            let until = std::time::Instant::now() + Duration::from_micros((r >> 20) % 20);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        // Now and then a real sleep: a preempted holder.
        _ => std::thread::sleep(Duration::from_micros(50 + (r >> 20) % 450)),
    }
}

/// Whether a point is armed.
#[inline]
pub(crate) fn armed() -> bool {
    // Ordering::Relaxed: a hint for skipping work; `hit` decides.
    ARMED.load(Ordering::Relaxed)
}

/// Called at each failpoint.
#[inline]
pub(crate) fn hit(name: &'static str) {
    // Ordering::Relaxed: the common case is "not armed"; the slow path
    // takes the mutex.
    if ARMED.load(Ordering::Relaxed) {
        hit_slow(name);
    }
}

#[cold]
fn hit_slow(name: &'static str) {
    // Ordering::Relaxed: set before the children that use it start.
    let rate = CHAOS.load(Ordering::Relaxed);
    if rate > 0 {
        chaos_hit(rate);
    }
    // Ordering::Acquire: pairs with the Release in `arm`.
    if !POINT_ARMED.load(Ordering::Acquire) {
        return;
    }
    let mut point = POINT.lock().unwrap_or_else(|e| e.into_inner());
    if !matches!(&*point, Some((n, _)) if n == name) {
        return;
    }
    let (_, notify) = point.take().expect("matched above");
    drop(point);
    let _ = multiproc_sys::io::write_all(notify.as_fd(), b"!");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
