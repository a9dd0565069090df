//! A biased robust lock: the thread that takes a lock again and again (one
//! producer, one consumer) enters and leaves it without a single locked
//! instruction, and every other caller falls back to a [`RawLock`].
//!
//! A `RawLock` costs two read-modify-write instructions per critical section
//! (a CAS to take it, a swap to release it). On x86 each one is a full
//! barrier that waits for the store buffer to drain, and a queue's store
//! buffer holds cache misses on ring lines the other side just read. A
//! *biased* lock lets one thread, the bias owner, announce itself with plain
//! stores; the rare thread that wants the lock from someone else pays for
//! both with a revocation (one `membarrier(2)`).
//!
//! All fields are zero in a fresh segment, which is an unlocked, unbiased,
//! consistent lock.
//!
//! # Fields
//!
//! | field | written by | meaning |
//! |-------|------------|---------|
//! | `lock` | [`RawLock`] | the fallback lock (robust, owner pid in its word) |
//! | `bias` | fallback-lock holders | the bias owner's thread id (`tid \| start << 32`) and the [`REVOKED`] bit; 0 = none |
//! | `held` | the bias owner (its one writer, see below) | 1 while it is inside a fast-path critical section; the futex a revoker sleeps on |
//! | `bias_pid` | the granting thread (the owner) | the owner's pid, for liveness, and whether it uses light barriers |
//! | `last`, `streak` | fallback-lock holders | which thread took the fallback lock last, and how many times in a row |
//! | `state` | fallback-lock holders | owner death not yet repaired or not yet reported; not recoverable |
//!
//! # States
//!
//! | `bias` | `held` | state |
//! |--------|--------|-------|
//! | `0` | `0` | unbiased: the fallback lock alone decides |
//! | `id` | `0` | biased to thread `id`, which is outside its critical section |
//! | `id` | `1` | `id` is inside its critical section (or about to check whether it may enter) |
//! | `id \| REVOKED` | `1` | a revoker holds the fallback lock and waits for `id` to leave |
//! | `id \| REVOKED` | `0` | revoked, not yet acknowledged: `id` may still store `held = 1` once (see *One writer*) |
//!
//! # Protocol
//!
//! - **Fast path** (the caller's id is in `bias`): store `held = 1`,
//!   barrier, load `bias`; still ours: inside. Revoked meanwhile: store
//!   `held = 0`, wake the revoker, and take the slow path.
//! - **Fast unlock**: store `held = 0` (Release), barrier, load `bias`;
//!   revoked: wake the revoker, who may sleep on `held`.
//! - **Slow path**: take the fallback lock. A bias of another thread that is
//!   not yet revoked is revoked: store `bias | REVOKED`, heavy barrier.
//!   Then, with a bias of another thread (revoked now or before), wait
//!   while `held == 1`. Our own revoked bias is *acknowledged*: `bias = 0`.
//! - **Grant**: the holder of the fallback lock counts its acquisitions in a
//!   row (`last`, `streak`); after [`BIAS_AFTER`] of them, with `bias == 0`,
//!   it records its pid in `bias_pid` and its id in `bias`. Nobody is in a
//!   fast path then: the grant happens under the fallback lock, and with
//!   `bias == 0` no thread can enter one. An acquisition that reports an
//!   owner's death, or acknowledges a revoked bias, grants nothing.
//! - **Unlock** tells the two paths apart by `held == 1` and `bias` (without
//!   `REVOKED`) naming the caller: only the bias owner stores 1 in `held`,
//!   so the pair means the caller is inside its fast path. A bias owner that
//!   took the fallback lock (the grant happened during this acquisition, or
//!   it backed off) has `held == 0`, and releases the fallback lock.
//!
//! # Dekker pairs
//!
//! | owner (hot side, light barrier) | revoker (rare side, heavy barrier) |
//! |---------------------------------|------------------------------------|
//! | store `held = 1`; barrier; load `bias` | store `bias \| REVOKED`; barrier; load `held` |
//! | store `held = 0`; barrier; load `bias` (wake if revoked) | (the same) …; sleep while `held == 1` |
//!
//! Either the owner sees the revocation (it backs off, or wakes the
//! revoker), or the revoker sees `held == 1` (it waits, or does not sleep
//! on a `held` that is already 0). The owner's barrier is only a compiler
//! barrier when its process is registered for `membarrier(2)`
//! ([`Env::light_barriers`], recorded at the grant in `bias_pid`): the
//! revoker's [`Env::heavy_barrier`] then runs a full barrier on every CPU
//! that runs a registered process. Otherwise both sides use full fences,
//! which the loom models check. A revoker whose heavy barrier is not
//! covered (`membarrier` refused to it but not to the owner) falls back to a
//! full fence and a short settling sleep before it reads `held`, and
//! re-checks every [`UNCOVERED_RECHECK`](crate::env::UNCOVERED_RECHECK): a
//! store buffer drains within microseconds, but no architecture promises a
//! bound, so that case is a risk, not a proof. It needs a process that may
//! register for `membarrier` and another that may not issue it on one
//! kernel.
//!
//! # Data visibility
//!
//! - Slow-path critical sections are ordered by the fallback lock.
//! - A revoker proceeds only on reading `held == 0` with Acquire, and every
//!   0 the owner stores is a Release store after its critical sections
//!   (fast unlock and back-off), so the revoker sees all of them. (A 0 it
//!   could read from before the owner's last fast-path entry would mean
//!   both sides missed each other in the Dekker pair.)
//! - A fast-path owner that re-reads `bias == id` after its barrier needs
//!   nothing more. The value was stored by a grant, under the fallback lock,
//!   and only the owner grants its own id: every critical section before
//!   that grant happened before it (fallback lock, then program order), and
//!   every slow path after it must revoke the bias first, so either the
//!   revoker waits for this critical section, or this owner sees the
//!   revocation. A later re-grant to the owner happens after the owner took
//!   the fallback lock from the revoker.
//!
//! # One writer of `held`
//!
//! The fast path's first load of `bias` is a hint: a thread can read its
//! id, be preempted, and store `held = 1` long after a revocation. If
//! another thread had been granted the bias meanwhile, that late store (and
//! the back-off store of 0 after it) would overwrite the new owner's `held`.
//! So a revoked bias stays in `bias` (with [`REVOKED`]) until its thread
//! *acknowledges* it by passing through the slow path, where it cannot be
//! in a fast path; only then (`bias == 0`) may another thread be granted.
//! A revoked owner whose process is dead needs no acknowledgement: the next
//! grant attempt checks its liveness. `held` thus has one writer at a time
//! (the bias thread, or a revoker cleaning up after a dead one), which is
//! what lets `unlock` trust `held == 1`. The cost: a lock revoked from a
//! thread that never takes it again, in a process that lives on, is never
//! biased again (it keeps working on the fallback path).
//!
//! # Owner death
//!
//! - A fast-path owner killed with `held == 1`: a revoker sleeps on `held`
//!   in slices of [`LIVENESS_CHECK`](crate::env::LIVENESS_CHECK), finds the
//!   owner's pid dead (with the start time from the id), clears `held` and
//!   the bias, and reports [`Acquired::OwnerDied`] (conservatively: the
//!   owner may have died just before its re-check). Repair the data, then
//!   call [`BiasLock::mark_consistent`]; unlocking without it makes the lock
//!   not recoverable, as with [`RawLock`].
//! - Killed with `held == 0`: an ordinary revocation; its bias stays revoked
//!   until a grant attempt finds its process dead.
//! - Killed while holding the fallback lock: the [`RawLock`] reports it. If
//!   the taker's deadline passes while it still waits for a fast-path owner,
//!   it leaves the report for the next taker (`state`).
//!
//! # Identity
//!
//! The bias is per thread (two threads of one process never share it); its
//! id is the thread id and the low 32 bits of the process start time, so a
//! later thread reusing a tid in another process is a different owner
//! unless both processes started in the same clock tick, and even then the
//! original thread is dead, so the impostor is the only writer of `held`
//! (only the pid used for its liveness would be the wrong one). A thread
//! whose tid is 0 or does not fit in 30 bits is never biased.
//!
//! # Rules and costs
//!
//! - The thread that locked must unlock (unlike `RawLock`, which any
//!   process may release), and the lock is not re-entrant.
//! - A revocation costs one heavy barrier (`membarrier`, several µs) and,
//!   if the owner is inside, a wait for it. A grant needs [`BIAS_AFTER`]
//!   fallback acquisitions in a row by one thread, doubled by every
//!   revocation so far (up to 1024 times: `BACKOFF_MAX`), so a lock that
//!   several threads take in turn settles on the CAS path and pays only a
//!   few loads on the same cache line. An occasional taker
//!   ([`BiasLock::lock_aside`]) revokes without that doubling.
//!
//! # What lives in this folder
//!
//! - `mod.rs`: the lock itself, its fields, protocol and every path
//!   (grant, fast path, revocation, unlock, owner death); the protocol's
//!   invariants above hold only if all of its writes stay in this one file.
//! - `tests.rs`: unit tests on real threads (hand-offs, revocation, owner
//!   death, path counters); the loom models are in `tests/protocols.rs`.
//!
//! What may not live here: anything that reads a clock, sleeps or yields
//! other than through [`Env`]; knowledge of who uses the lock (the queue's
//! producers and consumers); and any other lock or wait structure (the
//! fallback lock is [`RawLock`], in `lock.rs`).

use std::time::{Duration, Instant};

use crate::env::{self, Env, Me};
use crate::lock::{Acquired, LockError, PID_MASK, RawLock, UnlockError};
use crate::sync::{AtomicU32, AtomicU64, Ordering, compiler_fence, fence};

/// Fallback-lock acquisitions in a row by one thread after which the lock
/// is biased to it (1 under loom, so that the models reach the fast path).
pub const BIAS_AFTER: u32 = if cfg!(multiproc_loom) { 1 } else { 64 };

/// Bit of `bias`: the bias is revoked, and its thread has not acknowledged
/// it yet (a thread id fits in 30 bits, so bit 31 is free).
pub const REVOKED: u64 = 1 << 31;

/// Bit of `bias_pid`: the owner's process is registered for heavy barriers,
/// and its fast path uses compiler barriers only.
const LIGHT: u32 = 1 << 30;

/// Bits of `state`. The holder was told [`Acquired::OwnerDied`] for a dead
/// bias owner and has not called `mark_consistent`.
const INCONSISTENT: u32 = 1;
/// Released without repair: every acquire fails.
const NOT_RECOVERABLE: u32 = 2;
/// An owner died and no taker has been told yet (one timed out first).
const OWNER_DIED: u32 = 4;
/// The flag bits of `state` (the rest holds the grant backoff).
const FLAGS: u32 = INCONSISTENT | NOT_RECOVERABLE | OWNER_DIED;
/// Where `state` keeps the grant backoff `k`: a grant needs
/// `BIAS_AFTER << k` acquisitions in a row, and every revocation adds one to
/// `k`, up to [`BACKOFF_MAX`]. A lock that several processes take in turn
/// (4 producers sharing 2 CPUs) would otherwise be granted and revoked at
/// every switch between them, one `membarrier` each (measured: 35% off a
/// 4→4 stream); after a few revocations it stays on the fallback path unless
/// one thread takes it 64 Ki times in a row.
const BACKOFF_SHIFT: u32 = 8;
/// The most backoff (`BIAS_AFTER << 10` acquisitions in a row).
const BACKOFF_MAX: u32 = 10;

/// How long a revoker whose heavy barrier does not cover a light owner
/// waits before it reads `held` (a store buffer drains in microseconds).
const UNCOVERED_SETTLE: Duration = Duration::from_millis(1);

/// A biased robust lock (64 bytes, all zero when fresh). See the module
/// docs for the protocol.
#[derive(Debug)]
#[repr(C)]
pub struct BiasLock {
    /// The fallback lock.
    lock: RawLock,
    /// The bias owner's id (`tid | start << 32`) and [`REVOKED`]; 0: none.
    bias: AtomicU64,
    /// 1 while the bias owner is inside its fast path (the futex word).
    held: AtomicU32,
    /// The bias owner's pid, and [`LIGHT`].
    bias_pid: AtomicU32,
    /// The id of the thread that took the fallback lock last.
    last: AtomicU64,
    /// How many times in a row `last` took it since its last grant.
    streak: AtomicU32,
    /// [`INCONSISTENT`], [`NOT_RECOVERABLE`], [`OWNER_DIED`].
    state: AtomicU32,
}

#[cfg(not(multiproc_loom))]
const _: () = assert!(core::mem::size_of::<BiasLock>() == 64);

/// The id a bias records for `me`: `tid | start << 32`, or 0 if `me` cannot
/// hold a bias.
#[inline]
fn thread_id(me: Me) -> u64 {
    if me.tid == 0 || me.tid & !PID_MASK != 0 {
        return 0;
    }
    u64::from(me.tid) | (u64::from(me.start) << 32)
}

/// What [`count`] counts (per thread, in unit tests only).
const GRANT: usize = 0;
const REVOKE: usize = 1;
const FAST: usize = 2;
const BACKOFF: usize = 3;
const WAITED: usize = 4;

#[cfg(all(test, not(multiproc_loom)))]
thread_local! {
    /// Grants, revocations and fast paths of this thread.
    static COUNTS: std::cell::Cell<[u64; 5]> = const { std::cell::Cell::new([0; 5]) };
}

/// Count an event for the unit tests (nothing otherwise).
#[inline(always)]
fn count(_what: usize) {
    #[cfg(all(test, not(multiproc_loom)))]
    COUNTS.with(|c| {
        let mut v = c.get();
        v[_what] += 1;
        c.set(v);
    });
}

impl BiasLock {
    /// A fresh, unlocked, unbiased lock (for heap use under loom and in
    /// tests; in a segment, zeroed memory is the same thing).
    pub fn new() -> Self {
        BiasLock {
            lock: RawLock::new(),
            bias: AtomicU64::new(0),
            held: AtomicU32::new(0),
            bias_pid: AtomicU32::new(0),
            last: AtomicU64::new(0),
            streak: AtomicU32::new(0),
            state: AtomicU32::new(0),
        }
    }

    /// The owner's half of both Dekker pairs.
    #[inline]
    fn owner_barrier(&self) {
        // Ordering::Relaxed: written by the owner itself when it granted
        // itself the bias, and by nobody while the bias is its own (grants
        // need `bias == 0`).
        if self.bias_pid.load(Ordering::Relaxed) & LIGHT != 0 {
            // The revoker's membarrier runs the full barrier for us.
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    /// Acquire, sleeping until `deadline` (`None`: forever): without a
    /// locked instruction for the bias owner, through the fallback lock for
    /// everyone else. [`Acquired::OwnerDied`]: repair the protected data,
    /// then [`mark_consistent`](Self::mark_consistent).
    #[inline]
    pub fn lock<E: Env + ?Sized>(
        &self,
        env: &E,
        deadline: Option<Instant>,
    ) -> Result<Acquired, LockError> {
        self.lock_with(env, || deadline)
    }

    /// [`lock`](Self::lock) with the deadline computed only if the lock
    /// must be waited for (an uncontended taker reads no clock).
    #[inline]
    pub fn lock_with<E: Env + ?Sized>(
        &self,
        env: &E,
        deadline: impl FnOnce() -> Option<Instant>,
    ) -> Result<Acquired, LockError> {
        let me = env.me();
        let id = thread_id(me);
        // Ordering::Relaxed: a hint. Only a grant to this very thread puts
        // `id` there, so a stale value is either our own bias, revoked
        // since (the re-check after the barrier catches it), or another
        // value (slow path).
        if id != 0 && self.bias.load(Ordering::Relaxed) == id {
            // Ordering::Relaxed: the Dekker pair with the revoker (store
            // held, barrier, load bias) is ordered by the barrier.
            self.held.store(1, Ordering::Relaxed);
            self.owner_barrier();
            env.failpoint("bias.entering");
            // Ordering::Relaxed: the load of the Dekker pair. Still ours:
            // any revoker will see `held == 1` and wait (module docs, data
            // visibility: nothing more is needed to see earlier sections).
            if self.bias.load(Ordering::Relaxed) == id {
                count(FAST);
                return Ok(Acquired::Clean);
            }
            // Revoked meanwhile: back off.
            count(BACKOFF);
            // SYNC POINT: write. Release pairs with the revoker's Acquire
            // load in `wait_idle`: it carries our earlier critical sections.
            self.held.store(0, Ordering::Release);
            env.wake(&self.held, u32::MAX);
        }
        self.lock_slow(env, me, id, deadline(), false)
    }

    /// Acquire for an occasional side trip (a producer freeing a lap under
    /// the consumers' lock, a `join`): always through the fallback lock,
    /// never granted the bias, and a revocation it makes does not raise the
    /// grant backoff, so the regular taker it interrupted is biased again
    /// after [`BIAS_AFTER`] acquisitions. Otherwise as [`lock`](Self::lock).
    pub fn lock_aside<E: Env + ?Sized>(
        &self,
        env: &E,
        deadline: Option<Instant>,
    ) -> Result<Acquired, LockError> {
        let me = env.me();
        self.lock_slow(env, me, thread_id(me), deadline, true)
    }

    /// Take the fallback lock, clear a bias out of the way, count the
    /// streak and maybe grant (none of the last two `aside`).
    #[cold]
    fn lock_slow<E: Env + ?Sized>(
        &self,
        env: &E,
        me: Me,
        id: u64,
        deadline: Option<Instant>,
        aside: bool,
    ) -> Result<Acquired, LockError> {
        let mut how = self.lock.lock(env, deadline)?;
        // Ordering::Relaxed for `state`, `bias`, `bias_pid`, `last` and
        // `streak` from here on: they are written only by holders of the
        // fallback lock (but for a grantee reading its own `bias_pid` and
        // `bias`), whose Acquire/Release orders them.
        let state = self.state.load(Ordering::Relaxed);
        if state & NOT_RECOVERABLE != 0 {
            let _ = self.lock.unlock(env);
            return Err(LockError::NotRecoverable);
        }
        if state & OWNER_DIED != 0 {
            // A taker before us could not report an owner's death: we do
            // (unless the fallback lock reports one itself).
            let mut s = state & !OWNER_DIED;
            if how == Acquired::Clean {
                s |= INCONSISTENT;
                how = Acquired::OwnerDied;
            }
            self.state.store(s, Ordering::Relaxed);
        }
        let b = self.bias.load(Ordering::Relaxed);
        // Whether this acquisition may grant: not the one that gives a bias
        // up (it was just contended; with BIAS_AFTER = 1 in the models,
        // this is what lets another thread be granted next).
        let mut may_grant = true;
        if b != 0 && b & !REVOKED == id {
            // Our own bias: we are not in a fast path, so acknowledge it (a
            // revoked one) or drop it (not revoked: cannot happen, since
            // our fast path would have succeeded; harmless anyway).
            self.bias.store(0, Ordering::Relaxed);
            may_grant = false;
        } else if b != 0 {
            let mut uncovered = false;
            if b & REVOKED == 0 {
                count(REVOKE);
                if !aside {
                    self.back_off();
                }
                // Ordering::Relaxed: the Dekker pair with the owner's fast
                // path (store bias, barrier, load held).
                self.bias.store(b | REVOKED, Ordering::Relaxed);
                if !env.heavy_barrier() && self.bias_pid.load(Ordering::Relaxed) & LIGHT != 0 {
                    // Not covered: the owner runs compiler barriers only.
                    // Give its store buffer time to drain (module docs).
                    uncovered = true;
                    env.sleep(UNCOVERED_SETTLE);
                    fence(Ordering::SeqCst);
                }
            }
            // Revoked before (not yet acknowledged): the revoker's barrier
            // happened before our acquire of the fallback lock, and `held`
            // is read after it here; a late `held = 1` from the owner backs
            // off (it sees REVOKED) and clears itself.
            match self.wait_idle(env, b, uncovered, deadline) {
                Ok(false) => {}
                Ok(true) => {
                    // The owner's process died inside (or just before its
                    // re-check). A dead process is never stale: drop its
                    // bias. Report it; `unlock` without repair makes the
                    // lock not recoverable.
                    let s = self.state.load(Ordering::Relaxed);
                    self.state.store(s | INCONSISTENT, Ordering::Relaxed);
                    self.bias.store(0, Ordering::Relaxed);
                    // Ordering::Relaxed: the owner is dead; later readers
                    // hold the fallback lock.
                    self.held.store(0, Ordering::Relaxed);
                    how = Acquired::OwnerDied;
                }
                Err(e) => {
                    // Leave the bias revoked; the next taker waits too.
                    if how == Acquired::OwnerDied {
                        // Nobody was told: hand the report to the next taker
                        // instead of making the fallback lock unrecoverable.
                        let s = self.state.load(Ordering::Relaxed) & !INCONSISTENT;
                        self.state.store(s | OWNER_DIED, Ordering::Relaxed);
                        self.lock.mark_consistent();
                    }
                    let _ = self.lock.unlock(env);
                    return Err(e);
                }
            }
        }
        if !aside {
            self.count_streak(env, me, id, may_grant && how == Acquired::Clean);
        }
        Ok(how)
    }

    /// Wait while the bias owner of `b` is inside its fast path. `Ok(true)`:
    /// its process died there.
    fn wait_idle<E: Env + ?Sized>(
        &self,
        env: &E,
        b: u64,
        uncovered: bool,
        deadline: Option<Instant>,
    ) -> Result<bool, LockError> {
        // Ordering::Relaxed: a hint; the Acquire load below decides.
        if self.held.load(Ordering::Relaxed) != 0 {
            count(WAITED);
        }
        env::spin_until(env, || self.held.load(Ordering::Relaxed) == 0);
        loop {
            // SYNC POINT: read. Acquire pairs with the owner's Release
            // stores of 0 (fast unlock, back-off): we see its sections.
            if self.held.load(Ordering::Acquire) == 0 {
                return Ok(false);
            }
            let mut until = env::slice(env, deadline);
            if uncovered {
                let recheck = env.now() + env::UNCOVERED_RECHECK;
                until = until.map(|u| u.min(recheck));
            }
            let woken = env.wait(&self.held, 1, until);
            // Ordering::Relaxed: only a liveness question; a dead process
            // stores nothing more.
            if !woken && self.held.load(Ordering::Relaxed) != 0 && self.bias_owner_dead(env, b) {
                return Ok(true);
            }
            if env::expired(env, deadline) {
                // SYNC POINT: read, as above.
                if self.held.load(Ordering::Acquire) == 0 {
                    return Ok(false);
                }
                return Err(LockError::WouldBlock);
            }
        }
    }

    /// Whether the process of the bias owner `b` is certainly dead.
    fn bias_owner_dead<E: Env + ?Sized>(&self, env: &E, b: u64) -> bool {
        // Ordering::Relaxed: written at the grant, under the fallback lock
        // that our caller holds now.
        let pid = self.bias_pid.load(Ordering::Relaxed) & PID_MASK;
        pid != 0 && env.is_dead(pid, Some((b >> 32) as u32))
    }

    /// With the fallback lock held, after a revocation: raise the number of
    /// acquisitions in a row the next grant needs ([`BACKOFF_SHIFT`]). Not
    /// under loom, whose models need grants after one acquisition.
    fn back_off(&self) {
        if cfg!(multiproc_loom) {
            return;
        }
        // Ordering::Relaxed: written only under the fallback lock.
        let s = self.state.load(Ordering::Relaxed);
        let k = (s >> BACKOFF_SHIFT).min(BACKOFF_MAX - 1) + 1;
        self.state
            .store((s & FLAGS) | k << BACKOFF_SHIFT, Ordering::Relaxed);
    }

    /// Acquisitions in a row by one thread that the next grant needs:
    /// [`BIAS_AFTER`], doubled by every revocation so far, up to
    /// [`BACKOFF_MAX`] times.
    fn grant_needs(&self) -> u32 {
        // Ordering::Relaxed: written only under the fallback lock, which the
        // caller holds (or, in tests, nobody does).
        let k = self.state.load(Ordering::Relaxed) >> BACKOFF_SHIFT;
        BIAS_AFTER << k.min(BACKOFF_MAX)
    }

    /// Count the caller's acquisitions in a row (fallback lock held) and
    /// grant it the bias after [`BIAS_AFTER`] (times the backoff) if
    /// `may_grant`.
    fn count_streak<E: Env + ?Sized>(&self, env: &E, me: Me, id: u64, may_grant: bool) {
        let streak = if self.last.load(Ordering::Relaxed) == id {
            self.streak.load(Ordering::Relaxed).saturating_add(1)
        } else {
            self.last.store(id, Ordering::Relaxed);
            1
        };
        let state = self.state.load(Ordering::Relaxed);
        if streak < self.grant_needs() || id == 0 || !may_grant || state & FLAGS != 0 {
            self.streak.store(streak, Ordering::Relaxed);
            return;
        }
        // Whether or not the grant happens: a liveness check below runs at
        // most once every BIAS_AFTER acquisitions.
        self.streak.store(0, Ordering::Relaxed);
        let mut b = self.bias.load(Ordering::Relaxed);
        if b & REVOKED != 0 && self.bias_owner_dead(env, b) {
            // Never acknowledged, and its process is gone: it cannot be
            // stale any more. `held` is 0: `lock_slow` waited for that.
            self.bias.store(0, Ordering::Relaxed);
            b = 0;
        }
        if b != 0 {
            return;
        }
        count(GRANT);
        let light = if env.light_barriers() { LIGHT } else { 0 };
        // Ordering::Relaxed: the grantee is this thread (program order);
        // every other reader of `bias_pid` holds the fallback lock, and
        // other threads' fast-path loads of `bias` only compare it with
        // their own ids.
        self.bias_pid
            .store((me.pid & PID_MASK) | light, Ordering::Relaxed);
        self.bias.store(id, Ordering::Relaxed);
    }

    /// Release. Only the thread that locked may.
    #[inline]
    pub fn unlock<E: Env + ?Sized>(&self, env: &E) -> Result<(), UnlockError> {
        // Ordering::Relaxed: `held` has one writer at a time, the thread
        // named by `bias` (module docs); if that is us, 1 is our own store
        // and we are inside our fast path.
        if self.held.load(Ordering::Relaxed) != 0 {
            let id = thread_id(env.me());
            if id != 0 && self.bias.load(Ordering::Relaxed) & !REVOKED == id {
                // SYNC POINT: write. Release pairs with the revoker's
                // Acquire load in `wait_idle`.
                self.held.store(0, Ordering::Release);
                // The Dekker pair with a revoker about to sleep on `held`.
                self.owner_barrier();
                // Ordering::Relaxed: the load of that pair.
                if self.bias.load(Ordering::Relaxed) != id {
                    env.wake(&self.held, u32::MAX);
                }
                return Ok(());
            }
        }
        // Ordering::Relaxed: written only under the fallback lock we hold.
        let s = self.state.load(Ordering::Relaxed);
        if s & INCONSISTENT != 0 {
            self.state
                .store((s & !INCONSISTENT) | NOT_RECOVERABLE, Ordering::Relaxed);
        }
        self.lock.unlock(env)
    }

    /// Declare the protected data repaired after [`Acquired::OwnerDied`].
    pub fn mark_consistent(&self) {
        // Ordering::Relaxed: only the holder of the fallback lock (the
        // caller) writes it.
        let s = self.state.load(Ordering::Relaxed);
        self.state.store(s & !INCONSISTENT, Ordering::Relaxed);
        self.lock.mark_consistent();
    }

    /// Whether the lock was taken over from a dead owner and not repaired.
    pub fn is_inconsistent(&self) -> bool {
        // Ordering::Relaxed: a snapshot.
        self.state.load(Ordering::Relaxed) & INCONSISTENT != 0 || self.lock.is_inconsistent()
    }

    /// Whether the lock is permanently unusable.
    pub fn is_not_recoverable(&self) -> bool {
        // Ordering::Relaxed: a snapshot.
        self.state.load(Ordering::Relaxed) & NOT_RECOVERABLE != 0 || self.lock.is_not_recoverable()
    }

    /// Whether some thread holds the lock (a snapshot; a revoked owner's
    /// brief `held = 1` before it backs off also counts).
    pub fn is_locked(&self) -> bool {
        // Ordering::Relaxed: a snapshot for diagnostics.
        self.held.load(Ordering::Relaxed) != 0 || self.lock.is_locked()
    }

    /// The pid of the process holding the lock, if known (a snapshot): the
    /// bias owner inside its fast path, else the fallback lock's owner.
    pub fn owner(&self) -> Option<u32> {
        // Ordering::Relaxed: a snapshot for diagnostics.
        if self.held.load(Ordering::Relaxed) != 0 {
            match self.bias_pid.load(Ordering::Relaxed) & PID_MASK {
                0 => {}
                pid => return Some(pid),
            }
        }
        self.lock.owner()
    }

    /// Whether the lock is biased to some thread (revoked or not), for
    /// diagnostics.
    pub fn bias(&self) -> Option<u64> {
        // Ordering::Relaxed: a snapshot for diagnostics.
        match self.bias.load(Ordering::Relaxed) {
            0 => None,
            b => Some(b),
        }
    }
}

impl Default for BiasLock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(multiproc_loom)))]
mod tests;
