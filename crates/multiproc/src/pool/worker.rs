//! The worker process: its task loop, and the shared-memory slot where it
//! records the task it is running.

use std::panic::{self, AssertUnwindSafe};

use serde::{Deserialize, Serialize};

use super::task::{Item, Order, Outcome, Report};
use crate::connection::codec::Fd;
use crate::process::panic_report;
use crate::queue::Queue;
use crate::shared::RawArray;

/// What a worker is spawned with.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WorkerArg {
    /// Its place in the pool: its order queue and its slot.
    pub(super) seat: usize,
    /// Its own orders.
    pub(super) orders: Queue<Order>,
    /// The pool's report queue.
    pub(super) reports: Queue<Report>,
    /// One slot per seat: the id of the task the worker there is running,
    /// 0 when it runs none.
    pub(super) slots: RawArray<u64>,
    /// Exit after this many tasks.
    pub(super) max_tasks: Option<u64>,
    /// What to run before the first task.
    pub(super) initializer: Option<Item>,
}

/// The worker's main loop: run each chunk's tasks, report each, exit on
/// `Stop`, when the orders end, or when `max_tasks` are done.
pub(super) fn worker_main(w: WorkerArg) {
    if let Some(init) = w.initializer {
        let fds = init.fds.into_iter().map(|f| f.0).collect();
        if let Err(msg) = init.target.run(&init.arg, fds, &mut Vec::new()) {
            panic!("pool initializer: {msg}");
        }
    }
    let mut done: u64 = 0;
    while let Ok(Order::Run(items)) = w.orders.get() {
        let last = items.len().saturating_sub(1);
        let mut retiring = false;
        for (i, item) in items.into_iter().enumerate() {
            let id = item.id;
            // Set before the task runs and cleared after its report is in:
            // a worker that dies in between blames exactly this task.
            let _ = w.slots.set(w.seat, id);
            let outcome = run(item);
            done += 1;
            retiring = i == last && w.max_tasks.is_some_and(|m| done >= m);
            let report = Report::Finished {
                seat: w.seat,
                id,
                outcome,
                retiring,
            };
            if w.reports.put(report).is_err() {
                return;
            }
            let _ = w.slots.set(w.seat, 0);
        }
        if retiring {
            return;
        }
    }
}

/// Run one task, catching its panic.
fn run(item: Item) -> Outcome {
    let fds = item.fds.into_iter().map(|f| f.0).collect();
    let mut bytes = Vec::new();
    match panic::catch_unwind(AssertUnwindSafe(|| {
        item.target.run(&item.arg, fds, &mut bytes)
    })) {
        Ok(Ok(fds)) => Outcome::Done {
            bytes,
            fds: fds.into_iter().map(Fd).collect(),
        },
        Ok(Err(msg)) => Outcome::Transfer(msg),
        Err(payload) => {
            let p = panic_report(&*payload);
            Outcome::Panicked {
                message: p.message,
                location: p.location,
            }
        }
    }
}
