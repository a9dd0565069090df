//! A barrier for a fixed number of parties: Python's `threading.Barrier`
//! algorithm over a robust [`RawLock`] and a [`RawCondition`], plus death
//! detection.
//!
//! `state`:
//!
//! | value (as i32) | state | meaning |
//! |----|-----------|---------|
//! | 0  | filling   | parties are arriving |
//! | 1  | draining  | the last party arrived; the others are leaving with success |
//! | -1 | resetting | `reset` while parties waited; they leave with `Broken` |
//! | -2 | broken    | `abort`, a timeout, or a party died while inside |
//!
//! Each party inside `wait` records its pid in a slot. Sleepers wake every
//! [`LIVENESS_CHECK`](crate::env::LIVENESS_CHECK) and look for slots whose
//! process died; such a party is removed (it can no longer arrive, so the
//! others would wait forever) and the barrier breaks.

use std::time::{Duration, Instant};

use crate::condition::{Parked, RawCondition};
use crate::env::{self, Env};
use crate::lock::{Acquired, RawLock};
use crate::sync::{AtomicU32, Ordering};

const FILLING: u32 = 0;
const DRAINING: u32 = 1;
const RESETTING: u32 = -1i32 as u32;
const BROKEN: u32 = -2i32 as u32;

/// A barrier's shared state (64 bytes), followed in memory by one `u32` slot
/// per party.
#[derive(Debug)]
#[repr(C)]
pub struct RawBarrier {
    lock: RawLock,
    cond: RawCondition,
    state: AtomicU32,
    count: AtomicU32,
    parties: AtomicU32,
    _reserved: AtomicU32,
}

/// The barrier is broken (aborted, reset while waiting, timed out, or a
/// party died inside it); Python's `BrokenBarrierError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broken;

/// Why [`RawBarrier::wait_interruptible`] returned without passing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarrierError {
    /// The barrier is broken ([`Broken`]).
    Broken,
    /// The interrupt check said stop; this party left the barrier.
    Interrupted,
}

/// How [`RawBarrier::wait_until`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waited {
    Met,
    TimedOut,
    Interrupted,
}

impl RawBarrier {
    /// A barrier for `parties` (heap use; in a segment, call
    /// [`init`](Self::init) on zeroed memory).
    pub fn new(parties: u32) -> Self {
        let b = RawBarrier {
            lock: RawLock::new(),
            cond: RawCondition::new(),
            state: AtomicU32::new(FILLING),
            count: AtomicU32::new(0),
            parties: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
        };
        b.init(parties);
        b
    }

    /// Set the number of parties on zeroed memory, before publication.
    pub fn init(&self, parties: u32) {
        // Ordering::Relaxed: published by the segment header's Release.
        self.parties.store(parties, Ordering::Relaxed);
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.parties.load(Ordering::Relaxed)
    }

    // Every field below is read and written with the internal lock held, so
    // Ordering::Relaxed suffices: the lock's Acquire/Release order them.
    fn state(&self) -> u32 {
        self.state.load(Ordering::Relaxed)
    }

    fn set_state<E: Env + ?Sized>(&self, env: &E, s: u32) {
        self.state.store(s, Ordering::Relaxed);
        self.cond.notify(env, u32::MAX);
    }

    fn enter_lock<E: Env + ?Sized>(&self, env: &E) {
        // The internal lock is only held for a few instructions; a holder
        // that died there leaves counts we cannot trust: break the barrier.
        match self.lock.lock(env, None) {
            Ok(Acquired::OwnerDied) => {
                self.lock.mark_consistent();
                self.state.store(BROKEN, Ordering::Relaxed);
            }
            Ok(_) => {}
            // Only reachable if someone released an inconsistent internal
            // lock, which this module never does.
            Err(_) => unreachable!("barrier lock is never left inconsistent"),
        }
    }

    fn leave_lock<E: Env + ?Sized>(&self, env: &E) {
        let _ = self.lock.unlock(env);
    }

    /// Remove parties whose process died; break the barrier if any did.
    fn reap_dead<E: Env + ?Sized>(&self, env: &E, slots: &[AtomicU32]) {
        let mut removed = false;
        for slot in slots {
            let pid = slot.load(Ordering::Relaxed);
            if pid != 0 && env.is_dead(pid, None) {
                slot.store(0, Ordering::Relaxed);
                self.count.fetch_sub(1, Ordering::Relaxed);
                removed = true;
            }
        }
        if removed {
            if self.state() == FILLING {
                self.set_state(env, BROKEN);
            }
            self.exit(env);
        }
    }

    /// With the lock held: wait until `pred(state)` or `deadline`, calling
    /// `interrupted` between sleeps of at most `every`.
    fn wait_until<E: Env + ?Sized>(
        &self,
        env: &E,
        slots: &[AtomicU32],
        pred: impl Fn(u32) -> bool,
        deadline: Option<Instant>,
        every: Duration,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Waited {
        loop {
            if pred(self.state()) {
                return Waited::Met;
            }
            if env::expired(env, deadline) {
                return Waited::TimedOut;
            }
            let t = self.cond.prepare();
            self.leave_lock(env);
            let parked = self.cond.park_interruptible(
                env,
                t,
                env::slice(env, deadline),
                every,
                &mut *interrupted,
            );
            self.enter_lock(env);
            match parked {
                Parked::Notified => {}
                Parked::TimedOut => self.reap_dead(env, slots),
                // A change that raced the interrupt still counts.
                Parked::Interrupted if pred(self.state()) => return Waited::Met,
                Parked::Interrupted => return Waited::Interrupted,
            }
        }
    }

    fn exit<E: Env + ?Sized>(&self, env: &E) {
        if self.count.load(Ordering::Relaxed) == 0 {
            let s = self.state();
            if s == RESETTING || s == DRAINING {
                self.set_state(env, FILLING);
            }
        }
    }

    /// Wait for all parties. Returns this party's arrival index
    /// (`0..parties`), or [`Broken`]. Timing out breaks the barrier, as in
    /// Python. `slots` are the `parties` words after this struct.
    pub fn wait<E: Env + ?Sized>(
        &self,
        env: &E,
        slots: &[AtomicU32],
        deadline: Option<Instant>,
    ) -> Result<u32, Broken> {
        self.wait_interruptible(env, slots, deadline, Duration::MAX, || false)
            .map_err(|_| Broken)
    }

    /// [`wait`](Self::wait), calling `interrupted` between sleeps of at most
    /// `every` (a binding checks for signals this way, so that Ctrl-C
    /// works); when it returns `true` the wait stops. An
    /// interrupted party leaves as if it had never arrived (Python's
    /// `threading.Barrier` on `KeyboardInterrupt`): the barrier is not
    /// broken and waits for another party in its place.
    pub fn wait_interruptible<E: Env + ?Sized>(
        &self,
        env: &E,
        slots: &[AtomicU32],
        deadline: Option<Instant>,
        every: Duration,
        mut interrupted: impl FnMut() -> bool,
    ) -> Result<u32, BarrierError> {
        let me = env.me().pid;
        self.enter_lock(env);
        // Wait while a previous cycle drains or resets.
        let draining = |s| s != RESETTING && s != DRAINING;
        if self.wait_until(env, slots, draining, None, every, &mut interrupted)
            == Waited::Interrupted
        {
            self.leave_lock(env);
            return Err(BarrierError::Interrupted);
        }
        if self.state() == BROKEN {
            self.leave_lock(env);
            return Err(BarrierError::Broken);
        }
        let index = self.count.fetch_add(1, Ordering::Relaxed);
        let my_slot = slots.iter().position(|s| s.load(Ordering::Relaxed) == 0);
        if let Some(i) = my_slot {
            slots[i].store(me, Ordering::Relaxed);
        }
        let result = if index + 1 == self.parties() {
            self.set_state(env, DRAINING);
            Ok(index)
        } else {
            match self.wait_until(
                env,
                slots,
                |s| s != FILLING,
                deadline,
                every,
                &mut interrupted,
            ) {
                Waited::TimedOut => {
                    self.set_state(env, BROKEN);
                    Err(BarrierError::Broken)
                }
                Waited::Interrupted => Err(BarrierError::Interrupted),
                Waited::Met if self.state() == BROKEN || self.state() == RESETTING => {
                    Err(BarrierError::Broken)
                }
                Waited::Met => Ok(index),
            }
        };
        // Leave: unless the death scan already removed us.
        if let Some(i) = my_slot {
            if slots[i].load(Ordering::Relaxed) == me {
                slots[i].store(0, Ordering::Relaxed);
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
        } else {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        self.exit(env);
        self.leave_lock(env);
        result
    }

    /// Break the barrier: current and future waiters get [`Broken`] until
    /// [`reset`](Self::reset).
    pub fn abort<E: Env + ?Sized>(&self, env: &E) {
        self.enter_lock(env);
        self.set_state(env, BROKEN);
        self.leave_lock(env);
    }

    /// Return to the initial state; parties waiting now get [`Broken`].
    pub fn reset<E: Env + ?Sized>(&self, env: &E) {
        self.enter_lock(env);
        if self.count.load(Ordering::Relaxed) > 0 {
            let s = self.state();
            if s == FILLING || s == BROKEN {
                self.set_state(env, RESETTING);
            }
        } else {
            self.set_state(env, FILLING);
        }
        self.leave_lock(env);
    }

    /// Parties waiting now (Python's `n_waiting`).
    pub fn n_waiting(&self) -> u32 {
        if self.state.load(Ordering::Relaxed) == FILLING {
            self.count.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.state.load(Ordering::Relaxed) == BROKEN
    }
}
