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

use crate::condition::{CondWaiter, Parked, RawCondition};
use crate::env::{self, Env};
use crate::lock::{Acquired, LockError, RawLock};
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

/// A party's place in its wait, for [`RawBarrier::step`].
#[derive(Debug)]
pub struct Party {
    pid: u32,
    /// Arrived: the arrival index and the slot holding `pid` (`None` if no
    /// slot was free, which only a foreign write can cause).
    arrived: Option<(u32, Option<usize>)>,
}

impl Party {
    /// A party of the calling process, not arrived yet.
    pub fn new<E: Env + ?Sized>(env: &E) -> Self {
        Party {
            pid: env.me().pid,
            arrived: None,
        }
    }

    /// Whether the party arrived and has not left yet.
    pub fn arrived(&self) -> bool {
        self.arrived.is_some()
    }
}

/// What [`RawBarrier::step`] says.
#[derive(Debug)]
pub enum BarrierStep<'a> {
    /// The wait is over (the party left the barrier).
    Done(Result<u32, Broken>),
    /// Sleep on `waiter` until `until`, then step again.
    Sleep {
        /// The condition registration to sleep on.
        waiter: CondWaiter<'a>,
        /// When to look again (the liveness slice or the deadline).
        until: Option<Instant>,
    },
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

    fn enter_lock<E: Env + ?Sized>(&self, env: &E) -> Result<(), Broken> {
        self.entered(self.lock.lock(env, None))
    }

    /// What taking the internal lock (`r`) means for the barrier: the
    /// internal lock is only held for a few instructions; a holder that
    /// died there leaves counts we cannot trust, so the barrier breaks.
    /// `Err` when the lock was not taken (it is not recoverable, which
    /// only a foreign write to the segment can cause).
    pub fn entered(&self, r: Result<Acquired, LockError>) -> Result<(), Broken> {
        match r {
            Ok(Acquired::OwnerDied) => {
                self.lock.mark_consistent();
                self.state.store(BROKEN, Ordering::Relaxed);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(_) => Err(Broken),
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
        let mut party = Party::new(env);
        let mut entered = self.enter_lock(env);
        let mut slept_out = false;
        loop {
            let (waiter, until) =
                match self.step(env, slots, &mut party, deadline, entered, slept_out) {
                    BarrierStep::Done(r) => return r.map_err(|Broken| BarrierError::Broken),
                    BarrierStep::Sleep { waiter, until } => (waiter, until),
                };
            let parked = waiter.park_interruptible(env, until, every, &mut interrupted);
            entered = self.enter_lock(env);
            slept_out = parked == Parked::TimedOut;
            if parked == Parked::Interrupted {
                return self.give_up(env, slots, &mut party, entered);
            }
        }
    }

    /// After an interrupt, with the internal lock held (`entered`): a party
    /// whose wait is over (the barrier passed or broke while the interrupt
    /// came) takes that outcome; any other leaves as if it had never
    /// arrived. Decided and done in this one hold of the lock, so no
    /// party can pass the barrier counting this one meanwhile.
    fn give_up<E: Env + ?Sized>(
        &self,
        env: &E,
        slots: &[AtomicU32],
        party: &mut Party,
        entered: Result<(), Broken>,
    ) -> Result<u32, BarrierError> {
        if entered.is_err() {
            return Err(BarrierError::Broken);
        }
        let r = match (party.arrived, self.state()) {
            (Some(_), FILLING) | (None, _) => Err(BarrierError::Interrupted),
            (Some(_), BROKEN | RESETTING) => Err(BarrierError::Broken),
            (Some((index, _)), _) => Ok(index),
        };
        self.leave(slots, party);
        self.exit(env);
        self.leave_lock(env);
        r
    }

    /// The internal lock, for a waiter that takes it without blocking (an
    /// async task): take it (its outcome goes to [`step`](Self::step)),
    /// then step. It is held only for a few instructions at a time.
    pub fn internal_lock(&self) -> &RawLock {
        &self.lock
    }

    /// One step of a party's wait, called with the internal lock held (and
    /// `entered`, the outcome of taking it): arrive, or see whether the
    /// wait is over, or register to sleep. `slept_out`: the last sleep
    /// ended without a notification (the liveness slice or the deadline),
    /// so parties whose process died are looked for first. The lock is
    /// released when this returns. After a [`BarrierStep::Sleep`], sleep
    /// on the waiter until `until` (claiming a notification, see
    /// [`CondWaiter`]), then take the lock and step again; a party that
    /// gives up instead calls [`withdraw`](Self::withdraw).
    pub fn step<E: Env + ?Sized>(
        &self,
        env: &E,
        slots: &[AtomicU32],
        party: &mut Party,
        deadline: Option<Instant>,
        entered: Result<(), Broken>,
        slept_out: bool,
    ) -> BarrierStep<'_> {
        if entered.is_err() {
            // The internal lock is unusable (only a foreign write to the
            // segment makes it so): the barrier cannot work.
            return BarrierStep::Done(Err(Broken));
        }
        if slept_out {
            self.reap_dead(env, slots);
        }
        if party.arrived.is_none() {
            let s = self.state();
            // Wait while a previous cycle drains or resets (at no deadline:
            // as in Python, the timeout is for the barrier itself).
            if s == RESETTING || s == DRAINING {
                return self.sleep(env, env::slice(env, None));
            }
            if s == BROKEN {
                self.leave_lock(env);
                return BarrierStep::Done(Err(Broken));
            }
            let index = self.count.fetch_add(1, Ordering::Relaxed);
            let slot = slots.iter().position(|s| s.load(Ordering::Relaxed) == 0);
            if let Some(i) = slot {
                slots[i].store(party.pid, Ordering::Relaxed);
            }
            party.arrived = Some((index, slot));
            if index + 1 == self.parties() {
                self.set_state(env, DRAINING);
                return self.depart(env, slots, party, Ok(index));
            }
        }
        let index = party.arrived.map_or(0, |(i, _)| i);
        match self.state() {
            FILLING if env::expired(env, deadline) => {
                // Timing out breaks the barrier, as in Python.
                self.set_state(env, BROKEN);
                self.depart(env, slots, party, Err(Broken))
            }
            FILLING => self.sleep(env, env::slice(env, deadline)),
            BROKEN | RESETTING => self.depart(env, slots, party, Err(Broken)),
            _ => self.depart(env, slots, party, Ok(index)),
        }
    }

    /// Register on the condition and release the lock.
    fn sleep<E: Env + ?Sized>(&self, env: &E, until: Option<Instant>) -> BarrierStep<'_> {
        let waiter = self.cond.register();
        self.leave_lock(env);
        BarrierStep::Sleep { waiter, until }
    }

    /// Leave with `r`, releasing the lock.
    fn depart<E: Env + ?Sized>(
        &self,
        env: &E,
        slots: &[AtomicU32],
        party: &mut Party,
        r: Result<u32, Broken>,
    ) -> BarrierStep<'_> {
        self.leave(slots, party);
        self.exit(env);
        self.leave_lock(env);
        BarrierStep::Done(r)
    }

    /// Take `party` out of the count (unless the death scan already did).
    fn leave(&self, slots: &[AtomicU32], party: &mut Party) {
        match party.arrived.take() {
            Some((_, Some(i))) if slots[i].load(Ordering::Relaxed) == party.pid => {
                slots[i].store(0, Ordering::Relaxed);
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
            Some((_, None)) => {
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
            // Not arrived, or the death scan took this party out already.
            None | Some((_, Some(_))) => {}
        }
    }

    /// A party that gives up between steps (interrupted, or an async wait
    /// dropped) leaves as if it had never arrived; the barrier is not
    /// broken. Takes the internal lock (briefly held by anyone) if the
    /// party had arrived; nothing to do otherwise.
    pub fn withdraw<E: Env + ?Sized>(&self, env: &E, slots: &[AtomicU32], party: &mut Party) {
        if party.arrived.is_none() {
            return;
        }
        // A broken internal lock: leave the counts alone (they are
        // untrusted anyway, and the barrier is broken).
        if self.enter_lock(env).is_ok() {
            self.leave(slots, party);
            self.exit(env);
            self.leave_lock(env);
        }
    }

    /// Break the barrier: current and future waiters get [`Broken`] until
    /// [`reset`](Self::reset).
    pub fn abort<E: Env + ?Sized>(&self, env: &E) {
        if self.enter_lock(env).is_err() {
            // Unusable internal lock: waiters already get `Broken`.
            return;
        }
        self.set_state(env, BROKEN);
        self.leave_lock(env);
    }

    /// Return to the initial state; parties waiting now get [`Broken`].
    pub fn reset<E: Env + ?Sized>(&self, env: &E) {
        if self.enter_lock(env).is_err() {
            // Unusable internal lock: the barrier stays broken.
            return;
        }
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
