//! Fault injection for tests: stop a process at a named point inside an
//! operation (`put.half`, `get.committed`, …) so that a test can kill it
//! exactly there.
//!
//! A process arms one point with [`arm`]; the first time it reaches that
//! point it writes one byte to the given descriptor and then sleeps until it
//! is killed. Unarmed, a failpoint costs one relaxed load.

use std::os::fd::AsFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::codec::Fd;

static ARMED: AtomicBool = AtomicBool::new(false);
static POINT: Mutex<Option<(String, Fd)>> = Mutex::new(None);

/// Stop this process the first time it reaches failpoint `name`, after
/// writing one byte to `notify`.
pub fn arm(name: &str, notify: Fd) {
    *POINT.lock().unwrap_or_else(|e| e.into_inner()) = Some((name.to_owned(), notify));
    // Ordering::Release: the point is stored before the flag is seen.
    ARMED.store(true, Ordering::Release);
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
