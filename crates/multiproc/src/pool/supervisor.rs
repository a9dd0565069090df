//! The supervisor thread: watches the workers' pidfds for their exits and
//! their slots for tasks over their timeout (and kills those workers). It
//! reports each exit on the report queue, behind everything the worker put
//! there, so the collector judges a death only after the worker's results.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::state::Shared;
use super::task::Report;

/// How often the supervisor looks at the pool when nothing wakes it (new
/// workers and shutdown wake it; a seat whose worker could not be started
/// is tried again this often).
const REFRESH: Duration = Duration::from_millis(100);
/// How often it looks at the slots while a task runs in a pool with a
/// timeout (a task that starts while every worker idles is seen within
/// [`REFRESH`], so its timeout fires at most that late).
const TIMEOUT_TICK: Duration = Duration::from_millis(10);

/// Run until the pool shuts down.
pub(super) fn supervise(shared: &Shared) {
    let mut watched = Vec::new();
    loop {
        let Some(deadline) = look(shared, &mut watched) else {
            return;
        };
        let mut fds: Vec<_> = vec![shared.wake_fd()];
        fds.extend(watched.iter().map(|(_, _, fd)| fd.as_fd()));
        let ready = multiproc_sys::poll::wait_any_readable(&fds, Some(deadline))
            .unwrap_or_else(|_| vec![false; fds.len()]);
        if ready.first() == Some(&true) {
            shared.drain_wake();
        }
        for ((seat, generation, _), _) in watched
            .iter()
            .zip(ready.into_iter().skip(1))
            .filter(|(_, r)| *r)
        {
            reap(shared, *seat, *generation);
        }
    }
}

/// A worker's seat, generation and pidfd (a copy, to wait on it unlocked).
type Watched = (usize, u64, OwnedFd);

/// Under the lock: kill workers whose task is over its time, bring the
/// workers to wait on up to date (a pidfd is copied once per worker, not
/// per look), and say when to look again. `None` at shutdown.
fn look(shared: &Shared, watched: &mut Vec<Watched>) -> Option<Instant> {
    let mut st = shared.lock();
    if st.shutdown {
        return None;
    }
    shared.refill_seats(&mut st);
    let now = Instant::now();
    let timeout = shared.config.task_timeout;
    // Keep the copies of workers still in their seats.
    watched.retain(|(i, generation, _)| {
        st.seats
            .get(*i)
            .is_some_and(|s| s.generation == *generation && s.process.is_some())
    });
    let mut busy = false;
    for (i, seat) in st.seats.iter_mut().enumerate() {
        let Some(p) = &mut seat.process else {
            continue;
        };
        let known = watched
            .iter()
            .any(|(w, generation, _)| *w == i && *generation == seat.generation);
        if !known && let Some(fd) = p.sentinel().and_then(|fd| fd.try_clone_to_owned().ok()) {
            watched.push((i, seat.generation, fd));
        }
        let Some(timeout) = timeout else {
            continue;
        };
        if seat.killed_for.is_some() {
            continue;
        }
        let running = shared.slots.get(i).unwrap_or(0);
        busy |= running != 0;
        match seat.watch {
            _ if running == 0 => seat.watch = None,
            Some((id, since)) if id == running => {
                if now.duration_since(since) >= timeout {
                    let _ = p.kill();
                    seat.killed_for = Some(id);
                }
            }
            _ => seat.watch = Some((running, now)),
        }
    }
    // While a task runs under a timeout, tasks that start or overrun are
    // seen within a tick.
    Some(now + if busy { TIMEOUT_TICK } else { REFRESH })
}

/// The worker of `generation` at `seat` may have exited: reap it and
/// report its exit with the task its slot names.
fn reap(shared: &Shared, seat: usize, generation: u64) {
    let mut st = shared.lock();
    let Some(s) = st.seats.get_mut(seat) else {
        return;
    };
    if s.generation != generation {
        return;
    }
    let Some(p) = &mut s.process else {
        return;
    };
    let Ok(Some(exitcode)) = p.try_wait() else {
        return;
    };
    s.process = None;
    let report = Report::Exited {
        seat,
        generation,
        pid: s.pid,
        exitcode,
        slot: shared.slots.get(seat).unwrap_or(0),
    };
    drop(st);
    let _ = shared.reports.put(report);
}
