//! Closing, counters, and a JoinableQueue's tasks: `task_done` and `join`,
//! with the tasks of dead takers forgiven.

use std::time::Instant;

use crate::env::{self, Env};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::watch::Watch;

use super::{ABANDON_AFTER, JoinProgress, Pos, QueueError, QueueWait, RawQueue, Taker};

impl RawQueue {
    /// Close: later puts fail; gets drain what is left, then fail. Wakes
    /// every waiter.
    pub fn close<E: Env + ?Sized>(&self, env: &E) {
        // SYNC POINT: write. Release pairs with the Acquire load in `take`:
        // puts committed before the close are seen by a consumer that sees
        // the close.
        self.config.closed.store(1, Ordering::Release);
        self.not_empty.0.notify(env, u32::MAX);
        self.not_full.0.notify(env, u32::MAX);
    }

    /// Whether the queue is closed.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.config.closed.load(Ordering::Acquire) != 0
    }

    /// Items in the queue (a snapshot; Python's `qsize()`).
    #[inline]
    pub fn len(&self) -> u32 {
        // `head` first: both only grow. Consumers can take a committed
        // record before its producer moves `tail` over it, so the difference
        // can be briefly negative: that counts as empty.
        let h = Pos::unpack(self.head.0.load(Ordering::Acquire));
        let t = Pos::unpack(self.tail.0.load(Ordering::Acquire));
        (t.items.wrapping_sub(h.items) as i32).max(0) as u32
    }

    /// Whether the queue holds no item (a snapshot).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `maxsize` items are queued (a snapshot).
    pub fn is_full(&self) -> bool {
        let m = self.maxsize();
        m != 0 && self.len() >= m
    }

    /// The item limit (0: unbounded).
    pub fn item_limit(&self) -> u32 {
        self.maxsize()
    }

    /// Whether this is a JoinableQueue's state.
    pub fn is_joinable(&self) -> bool {
        self.joinable()
    }

    /// Bytes of the ring in use (a snapshot).
    pub fn used_bytes(&self) -> u32 {
        let h = Pos::unpack(self.head.0.load(Ordering::Acquire));
        let t = Pos::unpack(self.tail.0.load(Ordering::Acquire));
        (t.at.wrapping_sub(h.at) as i32).max(0) as u32
    }

    /// Processes registered as sleeping: (in `get`, in `put`). A waiter
    /// registers only after its brief spin, so a count above zero means
    /// someone is blocked (tests wait for it instead of sleeping).
    pub fn sleepers(&self) -> (u32, u32) {
        // Ordering::Relaxed: a snapshot for diagnostics and tests.
        (self.not_empty.0.sleepers(), self.not_full.0.sleepers())
    }

    /// The commit words and wait state, for diagnostics.
    pub fn debug_state(&self) -> String {
        let r = |a: &AtomicU64| Pos::unpack(a.load(Ordering::Acquire));
        let w = |a: &AtomicU32| a.load(Ordering::Acquire);
        format!(
            "head {:?} tail {:?} head_seen {:?} P {:?} C {:?} P-bias {} C-bias {} not_empty {}/{} not_full {}/{} closed {}",
            r(&self.head.0),
            r(&self.tail.0),
            r(&self.prod.head_seen),
            self.prod.lock.owner(),
            self.cons.lock.owner(),
            self.prod.lock.bias().is_some(),
            self.cons.lock.bias().is_some(),
            self.not_empty.0.seq(),
            self.not_empty.0.sleepers(),
            self.not_full.0.seq(),
            self.not_full.0.sleepers(),
            w(&self.config.closed),
        )
    }

    // ----- JoinableQueue ------------------------------------------------------------

    fn my_id<E: Env + ?Sized>(env: &E) -> u64 {
        let me = env.me();
        u64::from(me.pid) | (u64::from(me.start) << 32)
    }

    fn id_is_dead<E: Env + ?Sized>(env: &E, id: u64) -> bool {
        id != 0 && env.is_dead(id as u32, Some((id >> 32) as u32))
    }

    /// With the C lock held, in a `get` of a joinable queue: the item taken
    /// is a task this process holds. Out of line: plain queues never pay
    /// for it.
    #[inline(never)]
    pub(crate) fn count_task_taken<E: Env + ?Sized>(
        &self,
        env: &E,
        slot: &mut Option<Option<usize>>,
    ) {
        // Ordering::Relaxed: C lock held.
        match *slot.get_or_insert_with(|| self.taker_slot(env)) {
            Some(s) => self.takers[s].held.fetch_add(1, Ordering::Relaxed),
            None => self.cons.untracked.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// With the C lock held: this process's row in the takers table,
    /// claiming a free one (or one of a dead process) if needed. `None` when
    /// the table is full of live processes: this process's tasks are then
    /// not tracked for death.
    fn taker_slot<E: Env + ?Sized>(&self, env: &E) -> Option<usize> {
        let id = Self::my_id(env);
        // Ordering::Relaxed throughout: the table is only written with the
        // C lock held.
        if let Some(i) = self
            .takers
            .iter()
            .position(|t| t.id.load(Ordering::Relaxed) == id)
        {
            return Some(i);
        }
        let free = self
            .takers
            .iter()
            .position(|t| t.id.load(Ordering::Relaxed) == 0)
            .or_else(|| {
                self.takers.iter().position(|t| {
                    Self::id_is_dead(env, t.id.load(Ordering::Relaxed))
                        && t.held.load(Ordering::Relaxed) == 0
                })
            })?;
        self.takers[free].id.store(id, Ordering::Relaxed);
        Some(free)
    }

    /// With the C lock held: tasks put and not yet marked done.
    fn unfinished_locked(&self) -> i64 {
        let h = Pos::unpack(self.head.0.load(Ordering::Relaxed));
        let t = Pos::unpack(self.tail.0.load(Ordering::Acquire));
        // Never negative: a record taken before its producer moved `tail`
        // over it is counted in `held` already (see `len`).
        let queued = i64::from((t.items.wrapping_sub(h.items) as i32).max(0));
        let held: i64 = self
            .takers
            .iter()
            .map(|t| i64::from(t.held.load(Ordering::Relaxed)))
            .sum::<i64>()
            + i64::from(self.cons.untracked.load(Ordering::Relaxed));
        queued + held - i64::from(self.cons.credit.load(Ordering::Relaxed))
    }

    /// Mark one task done (Python's `task_done`).
    pub fn task_done<E: Env + ?Sized>(&self, env: &E) -> Result<(), QueueError> {
        self.lock(&self.cons.lock, env, None, false)?;
        let unfinished = self.unfinished_locked();
        if unfinished <= 0 {
            Self::unlock(&self.cons.lock, env);
            return Err(QueueError::TooManyTaskDone);
        }
        let id = Self::my_id(env);
        // Ordering::Relaxed: C lock held. Python counts tasks, not who took
        // them: prefer this process's own tasks, then those of processes
        // that died (only others can finish them, and `join` tells them
        // apart), then any process's, then untracked ones, then an item not
        // yet taken (credit, used up by the get that takes it).
        let held = |t: &&Taker| t.held.load(Ordering::Relaxed) > 0;
        let mine = || {
            self.takers
                .iter()
                .filter(held)
                .find(|t| t.id.load(Ordering::Relaxed) == id)
        };
        let dead = || {
            self.takers
                .iter()
                .filter(held)
                .find(|t| Self::id_is_dead(env, t.id.load(Ordering::Relaxed)))
        };
        let any = || self.takers.iter().find(held);
        if let Some(t) = mine().or_else(dead).or_else(any) {
            t.held.fetch_sub(1, Ordering::Relaxed);
        } else if self.cons.untracked.load(Ordering::Relaxed) > 0 {
            self.cons.untracked.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.cons.credit.fetch_add(1, Ordering::Relaxed);
        }
        if unfinished == 1 {
            self.all_done.0.notify(env, u32::MAX);
        }
        Self::unlock(&self.cons.lock, env);
        Ok(())
    }

    /// With the C lock held: tasks held by processes that died.
    fn dead_held<E: Env + ?Sized>(&self, env: &E) -> i64 {
        self.takers
            .iter()
            .filter(|t| t.held.load(Ordering::Relaxed) > 0)
            .filter(|t| Self::id_is_dead(env, t.id.load(Ordering::Relaxed)))
            .map(|t| i64::from(t.held.load(Ordering::Relaxed)))
            .sum()
    }

    /// Wait until every item put has been marked done, or `deadline`.
    ///
    /// Tasks held by a process that died are not forgiven: another process
    /// may still mark them done (the taker may have handed them on before
    /// it exited). When every unfinished task is held by dead processes
    /// and `progress` has seen no change for [`ABANDON_AFTER`], `join`
    /// returns [`QueueError::Abandoned`] with their number instead of
    /// waiting for good. Keep `progress` between calls that join in slices.
    pub fn join<E: Env + ?Sized>(
        &self,
        env: &E,
        deadline: Option<Instant>,
        progress: &mut JoinProgress,
    ) -> Result<(), QueueError> {
        let mut check_dead = false;
        loop {
            self.lock(&self.cons.lock, env, deadline, true)?;
            match self.join_locked(env, progress, check_dead) {
                Ok(false) => {}
                r => {
                    Self::unlock(&self.cons.lock, env);
                    return r.map(drop);
                }
            }
            if env::expired(env, deadline) {
                Self::unlock(&self.cons.lock, env);
                return Err(QueueError::Timeout);
            }
            // Notifiers (task_done) hold the C lock: preparing under it is
            // enough.
            let ticket = self.all_done.0.prepare(env);
            Self::unlock(&self.cons.lock, env);
            check_dead = !self.all_done.0.park(env, ticket, env::slice(env, deadline));
        }
    }

    /// [`join`](Self::join) without waiting, for a joiner that sleeps
    /// elsewhere ([`watch`](Self::watch) `AllDone` first): `Ok(true)` when
    /// every task is done, `Ok(false)` to sleep. `check_dead`: the last
    /// sleep ended without a notification, so tasks held by dead takers
    /// may be given up on (`Abandoned`), as in `join`.
    pub fn try_join<E: Env + ?Sized>(
        &self,
        env: &E,
        progress: &mut JoinProgress,
        check_dead: bool,
    ) -> Result<bool, QueueError> {
        self.lock(&self.cons.lock, env, Some(env.now()), true)?;
        let r = self.join_locked(env, progress, check_dead);
        Self::unlock(&self.cons.lock, env);
        r
    }

    /// With the C lock held: whether every task is done (`Ok(true)`), or
    /// those left are all held by dead takers and have been for
    /// [`ABANDON_AFTER`] (`Abandoned`, when `check_dead`).
    fn join_locked<E: Env + ?Sized>(
        &self,
        env: &E,
        progress: &mut JoinProgress,
        check_dead: bool,
    ) -> Result<bool, QueueError> {
        let unfinished = self.unfinished_locked();
        if unfinished <= 0 {
            progress.last = None;
            return Ok(true);
        }
        let now = env.now();
        let since = match progress.last {
            Some((n, t)) if n == unfinished => t,
            _ => {
                progress.last = Some((unfinished, now));
                now
            }
        };
        if check_dead && now.duration_since(since) >= ABANDON_AFTER {
            let dead = self.dead_held(env);
            if dead > 0 && unfinished <= dead {
                progress.abandoned = dead.clamp(0, i64::from(u32::MAX)) as u32;
                return Err(QueueError::Abandoned);
            }
        }
        Ok(false)
    }

    /// Register a waiter that sleeps elsewhere ([`Watch`](crate::Watch)) for
    /// `what`; then try the operation once more before sleeping (the
    /// re-check of the blocking waits). A getter woken that does not try
    /// again passes the wake-up on (a put wakes one getter).
    pub fn watch<E: Env + ?Sized>(&self, env: &E, what: QueueWait) -> Watch<'_> {
        match what {
            QueueWait::Items => self.not_empty.0.watch(env),
            QueueWait::Room => self.not_full.0.watch(env),
            QueueWait::AllDone => self.all_done.0.watch(env),
        }
    }

    /// Tasks put and not marked done (a snapshot; takes the C lock).
    pub fn unfinished<E: Env + ?Sized>(&self, env: &E) -> Result<u32, QueueError> {
        self.lock(&self.cons.lock, env, None, true)?;
        let n = self.unfinished_locked();
        Self::unlock(&self.cons.lock, env);
        Ok(n.clamp(0, i64::from(u32::MAX)) as u32)
    }
}
