//! A robust process-shared lock, the base of `Lock`, `RLock`, `Condition`
//! and the locks inside `Value`/`Array`/`Barrier`.
//!
//! All fields are zero in a fresh segment, which is an unlocked, consistent
//! lock: no initialization step can be interrupted.
//!
//! The `word` (the futex):
//!
//! | bits        | meaning |
//! |-------------|---------|
//! | 0..=29      | pid of the owning process; 0 = unlocked |
//! | 30 `WAITERS`| some process may be asleep on the word: unlock must wake |
//! | 31 `NOT_RECOVERABLE` | an owner died and the next one gave up without repair: every acquire fails |
//!
//! | value | state |
//! |-------|-------|
//! | `0` | unlocked |
//! | `pid` | locked, nobody asleep |
//! | `pid \| WAITERS` | locked, sleepers possible |
//! | `NOT_RECOVERABLE` | unusable for good |
//!
//! Owner death: the owner's pid is in the word itself, so there is no window
//! between taking the lock and recording the owner. A sleeper wakes every
//! [`LIVENESS_CHECK`](crate::env::LIVENESS_CHECK) and asks whether that pid
//! is dead (a zombie, gone, or a later process with the same pid and another
//! start time); if so it takes the lock over with a CAS from the exact word
//! it saw, so two waiters can never both take over, and reports
//! [`Acquired::OwnerDied`]. The lock is then *inconsistent* until
//! [`RawLock::mark_consistent`]; unlocking an inconsistent lock makes it
//! `NOT_RECOVERABLE` (POSIX robust mutex semantics).

use std::time::Instant;

use crate::env::{self, Env, Me};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::watch::Watch;

/// Owner pid bits of the word.
pub const PID_MASK: u32 = (1 << 30) - 1;
/// Sleepers may exist.
pub const WAITERS: u32 = 1 << 30;
/// Permanently unusable.
pub const NOT_RECOVERABLE: u32 = 1 << 31;

/// The lock's shared state (32 bytes, all zero when fresh).
#[derive(Debug)]
#[repr(C)]
pub struct RawLock {
    word: AtomicU32,
    /// 1 while the data is inconsistent (taken over from a dead owner).
    inconsistent: AtomicU32,
    /// Owner record, written right after taking the lock and cleared
    /// right before releasing it: `pid | start << 32` in one atomic, so a
    /// reader never pairs one owner's pid with another's start time.
    owner: AtomicU64,
    /// For re-entrant use: the owning thread and the recursion depth.
    owner_tid: AtomicU32,
    count: AtomicU32,
    _reserved: [AtomicU32; 2],
}

#[cfg(not(multiproc_loom))]
const _: () = assert!(core::mem::size_of::<RawLock>() == 32);

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// Normally.
    Clean,
    /// From an owner that died holding it: the protected data may be
    /// half-updated. Repair it, then call [`RawLock::mark_consistent`].
    OwnerDied,
    /// Re-entered by the thread that already owns it (re-entrant use only).
    Reentered,
}

/// Why a lock was not acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockError {
    /// The deadline passed (or, for `try_lock`, the lock is held).
    WouldBlock,
    /// An owner died and its successor released without repairing.
    NotRecoverable,
}

/// Why a release was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlockError {
    /// The lock is not locked.
    NotLocked,
    /// (Re-entrant use) the caller does not own the lock.
    NotOwner,
}

impl RawLock {
    /// A fresh, unlocked lock (for heap use under loom and in tests; in a
    /// segment, zeroed memory is the same thing).
    pub fn new() -> Self {
        RawLock {
            word: AtomicU32::new(0),
            inconsistent: AtomicU32::new(0),
            owner: AtomicU64::new(0),
            owner_tid: AtomicU32::new(0),
            count: AtomicU32::new(0),
            _reserved: [AtomicU32::new(0), AtomicU32::new(0)],
        }
    }

    #[inline]
    fn took<E: Env + ?Sized>(&self, env: &E, me: Me, how: Acquired) -> Acquired {
        // The lock has changed hands and the record still names the last
        // owner (or nobody): the moment a liveness check must survive.
        env.failpoint("lock.owned");
        // Ordering::Relaxed: readers load the word with Acquire first (see
        // `owner_is_dead`), which orders this store's predecessors (the
        // previous owner's clear) before what they read; this store itself
        // may or may not be seen, and both answers are safe.
        self.owner.store(owner_record(me), Ordering::Relaxed);
        if how == Acquired::OwnerDied {
            self.inconsistent.store(1, Ordering::Relaxed);
        }
        how
    }

    /// Whether the owner named by `seen` (a value of the word) is certainly
    /// dead.
    ///
    /// The owner record is only trusted when it names the same pid as the
    /// word; otherwise the check falls back to the pid alone, which can
    /// never call a live process dead. A record that names the word's pid
    /// is that owner's own: every owner clears the record before its
    /// Release of the word, and the Acquire load below reads `seen` from
    /// the word's release sequence (the lock/`WAITERS` CASes are RMWs that
    /// continue it), so the previous owners' records are cleared or
    /// overwritten for us. The one record that is never cleared is a dead
    /// owner's, and it names the dead pid truthfully.
    fn owner_is_dead<E: Env + ?Sized>(&self, env: &E, seen: u32) -> bool {
        let pid = seen & PID_MASK;
        if pid == 0 {
            return false;
        }
        // SYNC POINT: read. Acquire: see above. If the word moved on, the
        // lock changed hands and the caller looks again.
        if self.word.load(Ordering::Acquire) != seen {
            return false;
        }
        // Ordering::Relaxed: ordered after the Acquire load above.
        let rec = self.owner.load(Ordering::Relaxed);
        let start = (rec as u32 == pid).then_some((rec >> 32) as u32);
        env.is_dead(pid, start)
    }

    /// Take the lock from a dead owner if the word still is `seen`.
    fn take_over<E: Env + ?Sized>(&self, env: &E, seen: u32) -> Option<Acquired> {
        let me = env.me();
        // SYNC POINT: read. Acquire pairs with the dead owner's last
        // Release (whatever it published before dying).
        self.word
            .compare_exchange(seen, me.pid | WAITERS, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| self.took(env, me, Acquired::OwnerDied))
    }

    /// Try once, without sleeping. A lock held by a dead process is taken
    /// over ([`Acquired::OwnerDied`]).
    pub fn try_lock<E: Env + ?Sized>(&self, env: &E) -> Result<Acquired, LockError> {
        let me = env.me();
        // SYNC POINT: read. Acquire pairs with the Release in `unlock`.
        match self
            .word
            .compare_exchange(0, me.pid, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Ok(self.took(env, me, Acquired::Clean)),
            Err(v) if v & NOT_RECOVERABLE != 0 => Err(LockError::NotRecoverable),
            Err(v) if self.owner_is_dead(env, v) => {
                self.take_over(env, v).ok_or(LockError::WouldBlock)
            }
            Err(_) => Err(LockError::WouldBlock),
        }
    }

    /// Register a waiter that sleeps elsewhere ([`Watch`]): sets the
    /// waiters bit, so the next unlock wakes. `None` when the lock is free
    /// or not recoverable: [`try_lock_watched`](Self::try_lock_watched) at
    /// once. A waiter woken that does not try again passes the wake-up on
    /// (unlock wakes one sleeper).
    pub fn watch(&self) -> Option<Watch<'_>> {
        loop {
            // Ordering::Relaxed: the CAS decides, as in `lock_slow`.
            let v = self.word.load(Ordering::Relaxed);
            if v & NOT_RECOVERABLE != 0 || v & PID_MASK == 0 {
                return None;
            }
            if v & WAITERS == 0
                && self
                    .word
                    .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            return Some(Watch::new(&self.word, v | WAITERS, true, None));
        }
    }

    /// [`try_lock`](Self::try_lock) for a waiter that has
    /// [`watch`](Self::watch)ed: takes the lock with the waiters bit set,
    /// as the blocking slow path does, since others may be asleep on it
    /// (an extra wake is cheap, a lost one costs them a liveness check).
    pub fn try_lock_watched<E: Env + ?Sized>(&self, env: &E) -> Result<Acquired, LockError> {
        let me = env.me();
        // Ordering::Relaxed: only a guess for the CAS.
        let v = self.word.load(Ordering::Relaxed);
        if v & NOT_RECOVERABLE != 0 {
            return Err(LockError::NotRecoverable);
        }
        if v & PID_MASK == 0 {
            // SYNC POINT: read, pairs with the Release in `unlock`.
            return match self.word.compare_exchange(
                v,
                me.pid | WAITERS,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => Ok(self.took(env, me, Acquired::Clean)),
                Err(_) => Err(LockError::WouldBlock),
            };
        }
        if self.owner_is_dead(env, v) {
            return self.take_over(env, v).ok_or(LockError::WouldBlock);
        }
        Err(LockError::WouldBlock)
    }

    /// Acquire, sleeping until `deadline` (`None`: forever).
    #[inline]
    pub fn lock<E: Env + ?Sized>(
        &self,
        env: &E,
        deadline: Option<Instant>,
    ) -> Result<Acquired, LockError> {
        let me = env.me();
        // Fast path. SYNC POINT: read, pairs with the Release in `unlock`.
        if self
            .word
            .compare_exchange(0, me.pid, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(self.took(env, me, Acquired::Clean));
        }
        self.lock_slow(env, me, deadline)
    }

    /// The contended part of [`lock`](Self::lock): spin, then sleep.
    #[cold]
    fn lock_slow<E: Env + ?Sized>(
        &self,
        env: &E,
        me: Me,
        deadline: Option<Instant>,
    ) -> Result<Acquired, LockError> {
        // Ordering::Relaxed: only a hint; the CAS below decides.
        env::spin_until(env, || self.word.load(Ordering::Relaxed) == 0);
        loop {
            let v = self.word.load(Ordering::Relaxed);
            if v & NOT_RECOVERABLE != 0 {
                return Err(LockError::NotRecoverable);
            }
            if v & PID_MASK == 0 {
                // Taken from the slow path: others may sleep, so keep
                // WAITERS set (an extra wake is cheap, a lost one is not).
                // SYNC POINT: read, pairs with the Release in `unlock`.
                if self
                    .word
                    .compare_exchange(v, me.pid | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(self.took(env, me, Acquired::Clean));
                }
                continue;
            }
            if v & WAITERS == 0
                && self
                    .word
                    .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let seen = v | WAITERS;
            let woken = env.wait(&self.word, seen, env::slice(env, deadline));
            // Check the owner before reporting a timeout: a caller whose
            // deadlines are shorter than the liveness slice must still be
            // able to take a dead owner's lock over.
            if !woken && self.word.load(Ordering::Relaxed) == seen && self.owner_is_dead(env, seen)
            {
                if let Some(a) = self.take_over(env, seen) {
                    return Ok(a);
                }
            }
            if env::expired(env, deadline) {
                return Err(LockError::WouldBlock);
            }
        }
    }

    /// Release. Any process may release (Python's `Lock`); releasing an
    /// unlocked lock is an error. Releasing a lock taken over from a dead
    /// owner without [`mark_consistent`](Self::mark_consistent) makes it
    /// not recoverable.
    #[inline]
    pub fn unlock<E: Env + ?Sized>(&self, env: &E) -> Result<(), UnlockError> {
        // Ordering::Relaxed: written by the owner itself after taking the
        // lock, so the owner reads its own write.
        // Ordering::Relaxed: ordered before the Release swaps below; a
        // reader that sees a later owner's word sees this clear or later.
        self.owner.store(0, Ordering::Relaxed);
        env.failpoint("lock.releasing");
        if self.inconsistent.load(Ordering::Relaxed) != 0 {
            self.inconsistent.store(0, Ordering::Relaxed);
            // SYNC POINT: write. Release: later acquirers see everything.
            let prev = self.word.swap(NOT_RECOVERABLE, Ordering::Release);
            if prev & PID_MASK == 0 {
                return Err(UnlockError::NotLocked);
            }
            env.wake(&self.word, u32::MAX);
            return Ok(());
        }
        let v = self.word.load(Ordering::Relaxed);
        if v & PID_MASK == 0 || v & NOT_RECOVERABLE != 0 {
            return Err(UnlockError::NotLocked);
        }
        // SYNC POINT: write. Pairs with the Acquire CAS in `lock`/`try_lock`.
        let prev = self.word.swap(0, Ordering::Release);
        if prev & WAITERS != 0 {
            env.wake(&self.word, 1);
        }
        Ok(())
    }

    /// Declare the protected data repaired after [`Acquired::OwnerDied`].
    pub fn mark_consistent(&self) {
        // Ordering::Relaxed: only the owner reads it (in `unlock`).
        self.inconsistent.store(0, Ordering::Relaxed);
    }

    /// Whether the lock is taken over from a dead owner and not yet repaired.
    pub fn is_inconsistent(&self) -> bool {
        self.inconsistent.load(Ordering::Relaxed) != 0
    }

    /// Whether some process holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        // Ordering::Relaxed: a snapshot for diagnostics and `locked()`.
        self.word.load(Ordering::Relaxed) & PID_MASK != 0
    }

    /// Whether a process may be asleep waiting for the lock (a snapshot,
    /// for tests that wait until a waiter blocks).
    #[cfg(all(test, not(multiproc_loom)))]
    pub(crate) fn has_waiters(&self) -> bool {
        // Ordering::Relaxed: a snapshot.
        self.word.load(Ordering::Relaxed) & WAITERS != 0
    }

    /// Whether the lock is permanently unusable.
    pub fn is_not_recoverable(&self) -> bool {
        self.word.load(Ordering::Relaxed) & NOT_RECOVERABLE != 0
    }

    /// The pid of the owning process, if locked.
    pub fn owner(&self) -> Option<u32> {
        match self.word.load(Ordering::Relaxed) & PID_MASK {
            0 => None,
            pid => Some(pid),
        }
    }

    /// Whether the calling thread owns the lock (re-entrant use).
    pub fn is_owned_by(&self, me: Me) -> bool {
        // Ordering::Relaxed: only the owning thread can see its own tid
        // here (it clears it before releasing), so stale values never match.
        self.word.load(Ordering::Relaxed) & PID_MASK == me.pid
            && self.owner_tid.load(Ordering::Relaxed) == me.tid
    }

    // ----- re-entrant use (RLock) -----------------------------------------

    /// Acquire re-entrantly: the owning thread only increments a count.
    pub fn rlock<E: Env + ?Sized>(
        &self,
        env: &E,
        deadline: Option<Instant>,
    ) -> Result<Acquired, LockError> {
        let me = env.me();
        if self.is_owned_by(me) {
            self.reenter();
            return Ok(Acquired::Reentered);
        }
        let how = self.lock(env, deadline)?;
        self.own(me);
        Ok(how)
    }

    /// One more level for the owning thread. Only that thread writes the
    /// count while it owns the lock, so a plain load and store do (no
    /// locked read-modify-write on the re-entrant fast path).
    fn reenter(&self) {
        // Ordering::Relaxed: written and read back by the owning thread
        // only (`own` set it after the Acquire that made this thread owner).
        let c = self.count.load(Ordering::Relaxed);
        self.count.store(c.wrapping_add(1), Ordering::Relaxed);
    }

    /// Record the owning thread after a re-entrant acquire.
    fn own(&self, me: Me) {
        // Ordering::Relaxed: read back only by the owning thread itself.
        self.owner_tid.store(me.tid, Ordering::Relaxed);
        self.count.store(1, Ordering::Relaxed);
    }

    /// [`rlock`](Self::rlock) without sleeping.
    pub fn try_rlock<E: Env + ?Sized>(&self, env: &E) -> Result<Acquired, LockError> {
        let me = env.me();
        if self.is_owned_by(me) {
            self.reenter();
            return Ok(Acquired::Reentered);
        }
        let how = self.try_lock(env)?;
        self.own(me);
        Ok(how)
    }

    /// Release one level; the last one unlocks. Only the owning thread may.
    pub fn runlock<E: Env + ?Sized>(&self, env: &E) -> Result<(), UnlockError> {
        if !self.is_owned_by(env.me()) {
            return Err(UnlockError::NotOwner);
        }
        // Ordering::Relaxed: only the owning thread touches the count (a
        // load and a store, as in `reenter`).
        let c = self.count.load(Ordering::Relaxed);
        if c > 1 {
            self.count.store(c - 1, Ordering::Relaxed);
            return Ok(());
        }
        self.owner_tid.store(0, Ordering::Relaxed);
        self.unlock(env)
    }

    /// Forget any re-entrant owner, after taking the lock with
    /// [`lock`](Self::lock) or [`try_lock`](Self::try_lock) as a plain
    /// lock: a take-over from a dead re-entrant owner leaves its thread id,
    /// which a thread of this process with the same id would otherwise
    /// take for its own and re-enter.
    pub fn disown(&self) {
        // Ordering::Relaxed: read only by threads of the holder's process
        // checking for themselves, after they took the lock (ordered by it)
        // or finding a stranger's id.
        self.owner_tid.store(0, Ordering::Relaxed);
    }

    /// The recursion depth held by the owner (re-entrant use).
    pub fn depth(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// Release every level at once (for `Condition::wait` over an RLock);
    /// returns the depth to restore with [`restore`](Self::restore).
    pub fn runlock_all<E: Env + ?Sized>(&self, env: &E) -> Result<u32, UnlockError> {
        if !self.is_owned_by(env.me()) {
            return Err(UnlockError::NotOwner);
        }
        let depth = self.count.swap(1, Ordering::Relaxed);
        self.owner_tid.store(0, Ordering::Relaxed);
        self.unlock(env).map(|()| depth)
    }

    /// After re-acquiring with [`lock`](Self::lock), make the caller the
    /// re-entrant owner at the recursion depth saved by
    /// [`runlock_all`](Self::runlock_all).
    pub fn restore<E: Env + ?Sized>(&self, env: &E, depth: u32) {
        self.own(env.me());
        self.count.store(depth.max(1), Ordering::Relaxed);
    }
}

/// The owner record for `me`: pid in the low half, start time in the high.
#[inline]
fn owner_record(me: Me) -> u64 {
    u64::from(me.pid) | (u64::from(me.start) << 32)
}

impl Default for RawLock {
    fn default() -> Self {
        Self::new()
    }
}
