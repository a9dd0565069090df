//! The pool's shared state in the parent: its seats (one worker each), the
//! tasks not answered yet, and the collector that applies the workers'
//! reports and the supervisor's death notices, in the order they arrive.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Write};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::builder::{Config, OnWorkerDeath};
use super::error::{Exit, TaskError};
use super::task::{Cancel, Cell, Item, Order, Outcome, Raw, Report};
use super::worker::{WorkerArg, worker_main};
use crate::process::{Builder, Process, ProcessError};
use crate::queue::{PutError, Queue};
use crate::shared::RawArray;

/// Where the pool is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Taking tasks.
    Running,
    /// Taking no more tasks; finishing the rest.
    Closed,
    /// Broken: every task failed; workers are not replaced.
    Broken,
    /// Terminated: workers killed, tasks failed.
    Terminated,
}

/// One worker's place.
#[derive(Debug, Default)]
pub(super) struct Seat {
    /// The worker, until the supervisor (or `join`, `terminate`) reaps it.
    pub(super) process: Option<Process<()>>,
    pub(super) pid: u32,
    /// Its order queue.
    orders: Option<Queue<Order>>,
    /// Bumped for each worker the seat gets.
    pub(super) generation: u64,
    /// Ids sent to it and not answered yet (one chunk).
    running: VecDeque<u64>,
    /// It exits after its current chunk (`max_tasks_per_child`).
    retiring: bool,
    /// The task it was killed for (its timeout).
    pub(super) killed_for: Option<u64>,
    /// The slot value the supervisor last saw and since when.
    pub(super) watch: Option<(u64, Instant)>,
}

/// A task not answered yet.
#[derive(Debug)]
struct Entry {
    item: Item,
    cell: Arc<Cell>,
    retries: u32,
}

/// The state behind the pool's lock.
#[derive(Debug)]
pub(super) struct State {
    pub(super) seats: Vec<Seat>,
    /// Chunks of task ids waiting for an idle worker.
    backlog: VecDeque<Vec<u64>>,
    tasks: HashMap<u64, Entry>,
    next_id: u64,
    pub(super) phase: Phase,
    /// When workers died abnormally lately (for `restart_limit`).
    deaths: VecDeque<Instant>,
    /// `join` is stopping the workers: none is replaced.
    pub(super) stopping: bool,
    /// The supervisor stops.
    pub(super) shutdown: bool,
}

/// What the pool handle, the collector and the supervisor share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) config: Config,
    state: Mutex<State>,
    /// Notified when the last pending task is answered.
    idle: Condvar,
    pub(super) reports: Queue<Report>,
    pub(super) slots: RawArray<u64>,
    /// A pipe the supervisor waits on beside the workers' pidfds: a byte
    /// in it says "look again now" (shutdown, a new worker to watch).
    wake_rx: File,
    wake_tx: File,
}

impl Shared {
    /// The shared state of a pool of `config.processes` workers, none
    /// started yet.
    pub(super) fn new(config: Config) -> std::io::Result<Shared> {
        let n = config.processes;
        let (wake_rx, wake_tx) = multiproc_sys::fd::pipe()?;
        // Non-blocking: a full pipe already holds a wake-up, and the
        // supervisor drains it without waiting.
        multiproc_sys::fd::set_nonblocking(&wake_rx, true)?;
        multiproc_sys::fd::set_nonblocking(&wake_tx, true)?;
        Ok(Shared {
            state: Mutex::new(State {
                seats: (0..n).map(|_| Seat::default()).collect(),
                backlog: VecDeque::new(),
                tasks: HashMap::new(),
                next_id: 1,
                phase: Phase::Running,
                deaths: VecDeque::new(),
                stopping: false,
                shutdown: false,
            }),
            idle: Condvar::new(),
            reports: Queue::new()?,
            slots: RawArray::zeroed(n)?,
            wake_rx: File::from(wake_rx),
            wake_tx: File::from(wake_tx),
            config,
        })
    }

    /// Make the supervisor look at the pool now, not at its next tick.
    pub(super) fn wake(&self) {
        // A full pipe (EAGAIN) holds a wake-up already.
        let _ = (&self.wake_tx).write(&[1]);
    }

    /// The supervisor's end of the wake-up pipe.
    pub(super) fn wake_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.wake_rx.as_fd()
    }

    /// Empty the wake-up pipe (the supervisor, before it looks).
    pub(super) fn drain_wake(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.wake_rx).read(&mut buf), Ok(n) if n == buf.len()) {}
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start a worker at `seat` (its slot cleared, a fresh order queue).
    pub(super) fn spawn_worker(&self, st: &mut State, seat: usize) -> Result<(), ProcessError> {
        let _ = self.slots.set(seat, 0);
        let orders = Queue::new()?;
        let arg = WorkerArg {
            seat,
            orders: orders.clone(),
            reports: self.reports.clone(),
            slots: self.slots.clone(),
            max_tasks: self.config.max_tasks_per_child,
            initializer: match &self.config.initializer {
                Some(init) => Some(init.try_clone()?),
                None => None,
            },
        };
        let process = Builder::new()
            .name(format!("PoolWorker-{seat}"))
            .daemon(true)
            .spawn(worker_main, arg)?;
        let s = &mut st.seats[seat];
        s.pid = process.pid().unwrap_or(0);
        s.process = Some(process);
        s.orders = Some(orders);
        s.generation += 1;
        s.running.clear();
        s.retiring = false;
        s.killed_for = None;
        s.watch = None;
        // The supervisor watches the new worker at once.
        self.wake();
        Ok(())
    }

    /// Give every empty seat a worker again (a replacement whose start
    /// failed is tried again at each of the supervisor's looks), while the
    /// pool runs. A pool left with no worker at all, which cannot start
    /// one, is broken.
    pub(super) fn refill_seats(&self, st: &mut State) {
        if !matches!(st.phase, Phase::Running | Phase::Closed) || st.stopping || st.shutdown {
            return;
        }
        let mut started = false;
        for seat in 0..st.seats.len() {
            // A seat whose worker was reaped keeps its orders until the
            // collector has judged that exit (by its generation): only a
            // seat judged and left empty is started again here.
            let s = &st.seats[seat];
            if s.process.is_none() && s.orders.is_none() {
                started |= self.spawn_worker(st, seat).is_ok();
            }
        }
        if st
            .seats
            .iter()
            .all(|s| s.process.is_none() && s.orders.is_none())
        {
            self.break_pool(st);
        } else if started {
            self.dispatch(st);
        }
    }

    /// Take `items` as tasks in chunks of `chunksize`; their cells, in
    /// order. With `notify` (a channel and a first index), each cell sends
    /// its index (counted from the first) there when set.
    pub(super) fn submit(
        &self,
        st: &mut State,
        items: Vec<Item>,
        chunksize: usize,
        notify: Option<(&Sender<usize>, usize)>,
    ) -> Vec<(u64, Arc<Cell>)> {
        let mut cells = Vec::with_capacity(items.len());
        let mut chunk = Vec::new();
        for mut item in items {
            item.id = st.next_id;
            st.next_id += 1;
            let cell = Arc::new(match notify {
                Some((tx, first)) => Cell::notifying(tx.clone(), first + cells.len()),
                None => Cell::default(),
            });
            cells.push((item.id, cell.clone()));
            chunk.push(item.id);
            st.tasks.insert(
                item.id,
                Entry {
                    item,
                    cell,
                    retries: 0,
                },
            );
            if chunk.len() >= chunksize.max(1) {
                st.backlog.push_back(std::mem::take(&mut chunk));
            }
        }
        if !chunk.is_empty() {
            st.backlog.push_back(chunk);
        }
        self.dispatch(st);
        cells
    }

    /// Send waiting chunks to idle workers, one chunk each.
    fn dispatch(&self, st: &mut State) {
        for seat in 0..st.seats.len() {
            let s = &st.seats[seat];
            if s.process.is_none() || !s.running.is_empty() || s.retiring || s.killed_for.is_some()
            {
                continue;
            }
            let Some(chunk) = next_chunk(st) else {
                return;
            };
            let mut items = Vec::with_capacity(chunk.len());
            let mut sendable = Vec::with_capacity(chunk.len());
            for id in chunk {
                match st.tasks.get(&id).map(|e| e.item.try_clone()) {
                    Some(Ok(item)) => {
                        items.push(item);
                        sendable.push(id);
                    }
                    // No descriptor left to copy the argument's handles:
                    // this task fails rather than wait for ever.
                    Some(Err(e)) => self.finish(st, id, Err(TaskError::Transfer(e.to_string()))),
                    None => {}
                }
            }
            let chunk = sendable;
            let sent = match st.seats[seat].orders.as_ref() {
                Some(q) => q.put(Order::Run(items)).map_err(Some),
                None => Err(None),
            };
            match sent {
                Ok(()) => st.seats[seat].running = chunk.into(),
                // No order queue, or a closed one: the seat's worker is
                // going; the chunk waits for the next worker.
                Err(None | Some(PutError::Closed(_))) => st.backlog.push_front(chunk),
                // The chunk itself cannot travel (its arguments' handles,
                // the OS): its tasks fail rather than wait for ever.
                Err(Some(e)) => {
                    let why = e.to_string();
                    for id in chunk {
                        self.finish(st, id, Err(TaskError::Transfer(why.clone())));
                    }
                }
            }
        }
    }

    /// Answer task `id` (if it is still pending).
    fn finish(&self, st: &mut State, id: u64, raw: Raw) {
        if let Some(entry) = st.tasks.remove(&id) {
            entry.cell.set(raw);
        }
        if st.tasks.is_empty() {
            self.idle.notify_all();
        }
    }

    /// Wait until every task is answered.
    pub(super) fn wait_idle<'a>(&self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        while !st.tasks.is_empty() {
            st = self.idle.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st
    }

    /// Fail every pending task with `error()` and forget the backlog.
    pub(super) fn fail_all(&self, st: &mut State, error: fn() -> TaskError) {
        st.backlog.clear();
        let ids: Vec<u64> = st.tasks.keys().copied().collect();
        for id in ids {
            self.finish(st, id, Err(error()));
        }
    }

    /// Break the pool: fail every task, kill every worker.
    fn break_pool(&self, st: &mut State) {
        if matches!(st.phase, Phase::Broken | Phase::Terminated) {
            return;
        }
        st.phase = Phase::Broken;
        self.fail_all(st, || TaskError::Broken);
        for s in &mut st.seats {
            if let Some(p) = &mut s.process {
                let _ = p.kill();
            }
        }
    }

    /// The collector thread: apply reports in order until `Shutdown`.
    pub(super) fn collect(&self) {
        loop {
            let report = match self.reports.get() {
                Ok(Report::Shutdown) => return,
                Ok(r) => r,
                // A report that cannot be read (a hostile or broken worker,
                // no descriptor left) loses whose task it answered: every
                // pending task fails rather than wait for ever.
                Err(_) => {
                    let mut st = self.lock();
                    self.break_pool(&mut st);
                    return;
                }
            };
            let mut st = self.lock();
            match report {
                Report::Finished {
                    seat,
                    id,
                    outcome,
                    retiring,
                } => {
                    if let Some(s) = st.seats.get_mut(seat) {
                        // A worker answers its chunk in order.
                        if s.running.front() == Some(&id) {
                            s.running.pop_front();
                        } else {
                            s.running.retain(|&r| r != id);
                        }
                        s.retiring |= retiring;
                    }
                    self.finish(&mut st, id, raw_of(outcome));
                    self.dispatch(&mut st);
                }
                Report::Exited {
                    seat,
                    generation,
                    pid,
                    exitcode,
                    slot,
                } => self.worker_exited(&mut st, seat, generation, pid, exitcode, slot),
                Report::Shutdown => return,
            }
        }
    }

    /// The worker of `generation` at `seat` ended: judge its tasks, count
    /// the death, replace it.
    fn worker_exited(
        &self,
        st: &mut State,
        seat: usize,
        generation: u64,
        pid: u32,
        exitcode: i32,
        slot: u64,
    ) {
        let Some(s) = st.seats.get_mut(seat) else {
            return;
        };
        if s.generation != generation {
            return;
        }
        let timed_out = s.killed_for.take();
        let running = std::mem::take(&mut s.running);
        let retired = exitcode == 0 && s.retiring;
        s.orders = None;
        let mut again = Vec::new();
        for id in running {
            let Some(retries) = st.tasks.get(&id).map(|e| e.retries) else {
                continue;
            };
            if timed_out == Some(id) {
                self.finish(st, id, Err(TaskError::TimedOut));
            } else if id != slot || timed_out.is_some() {
                // Sent, but the worker never started it, or the pool
                // killed it for another task's time (one that finished
                // just before the kill): not this task's fault.
                again.push(id);
            } else {
                let died = || TaskError::WorkerDied {
                    pid,
                    exit: Exit::from_exitcode(exitcode),
                };
                match self.config.on_worker_death {
                    OnWorkerDeath::Retry(n) if retries < n => {
                        if let Some(e) = st.tasks.get_mut(&id) {
                            e.retries += 1;
                        }
                        again.push(id);
                    }
                    OnWorkerDeath::Break => {
                        self.finish(st, id, Err(died()));
                        self.break_pool(st);
                    }
                    _ => self.finish(st, id, Err(died())),
                }
            }
        }
        if !again.is_empty() {
            // The rest of the chunk goes first, as one chunk again.
            st.backlog.push_front(again);
        }
        if !retired {
            let now = Instant::now();
            let (limit, per) = self.config.restart_limit;
            st.deaths.push_back(now);
            while st
                .deaths
                .front()
                .is_some_and(|&t| now.duration_since(t) > per)
            {
                st.deaths.pop_front();
            }
            if st.deaths.len() > limit as usize {
                self.break_pool(st);
            }
        }
        if matches!(st.phase, Phase::Running | Phase::Closed) && !st.stopping {
            if self.spawn_worker(st, seat).is_err() && st.seats.iter().all(|s| s.process.is_none())
            {
                self.break_pool(st);
            }
            self.dispatch(st);
        }
    }

    /// Send `Stop` to every worker and take them out of their seats.
    pub(super) fn stop_workers(&self, st: &mut State) -> Vec<Process<()>> {
        st.stopping = true;
        st.seats
            .iter_mut()
            .filter_map(|s| {
                if let Some(q) = s.orders.take() {
                    let _ = q.put(Order::Stop);
                }
                s.process.take()
            })
            .collect()
    }
}

impl Cancel for Shared {
    fn cancel(&self, id: u64) -> bool {
        let mut st = self.lock();
        let sent = st.seats.iter().any(|s| s.running.contains(&id));
        if sent || !st.tasks.contains_key(&id) {
            return false;
        }
        // Its id stays in a backlog chunk, which skips answered tasks.
        self.finish(&mut st, id, Err(TaskError::Cancelled));
        true
    }
}

/// The next chunk that still has a pending task.
fn next_chunk(st: &mut State) -> Option<Vec<u64>> {
    while let Some(mut chunk) = st.backlog.pop_front() {
        chunk.retain(|id| st.tasks.contains_key(id));
        if !chunk.is_empty() {
            return Some(chunk);
        }
    }
    None
}

/// A worker's outcome as the caller's raw result.
fn raw_of(outcome: Outcome) -> Raw {
    match outcome {
        Outcome::Done { bytes, fds } => Ok((bytes, fds.into_iter().map(|f| f.0).collect())),
        Outcome::Panicked { message, location } => Err(TaskError::Panicked { message, location }),
        Outcome::Transfer(msg) => Err(TaskError::Transfer(msg)),
    }
}
