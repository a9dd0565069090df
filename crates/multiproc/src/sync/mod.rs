//! Locks, semaphores, events, conditions and barriers that work across
//! processes: Python's `multiprocessing.Lock`, `RLock`, `Semaphore`,
//! `BoundedSemaphore`, `Event`, `Condition` and `Barrier`.
//!
//! Each object lives in a shared segment (a sealed memfd) whose descriptor is
//! its handle: clone it within a process, move it into a spawned child's
//! argument, or send it in a message over a duplex connection. Waiting spins
//! briefly, then sleeps on a shared futex; a release wakes only when someone
//! sleeps.
//!
//! # Owner death
//!
//! A [`Lock`] or [`RLock`] records its owner's pid in the lock word. When the
//! owner dies holding it, the next acquirer (a waiter already asleep notices
//! within about [`LIVENESS_CHECK`](multiproc_shm::LIVENESS_CHECK)) gets
//! [`AcquireError::OwnerDied`] carrying the guard: it now holds the lock, may
//! repair the data, and calls `mark_consistent()`. Dropping that guard
//! without doing so makes the lock [`AcquireError::NotRecoverable`] for
//! everyone, as with POSIX robust mutexes. A [`Barrier`] party that dies
//! while waiting breaks the barrier for the others. Semaphore permits are
//! not owned (any process may release what another acquired, as in Python),
//! so a permit held by a dead process is not given back: see
//! [`Semaphore`].

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use multiproc_shm::{
    Acquired, BarrierError, Env, LockError, Parked, RawBarrier, RawCondition, RawEvent, RawLock,
    RawSemaphore,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::codec::Fd;
use crate::env::ProcessEnv;
use crate::shared::segment::{self, Segment, SegmentError};

const ENV: ProcessEnv = ProcessEnv;

/// Why an acquire did not simply succeed. `G` is the guard handed over when
/// the lock was taken from a dead owner.
#[non_exhaustive]
pub enum AcquireError<G> {
    /// `try_` form: the object is held (or has no permit) right now.
    WouldBlock,
    /// `_timeout` form: the time ran out.
    Timeout,
    /// The previous owner died holding the lock. The caller now holds it
    /// (the guard is inside); repair the data and call `mark_consistent()`.
    OwnerDied(G),
    /// An owner died and its successor released the lock without marking it
    /// consistent: the lock is unusable for good.
    NotRecoverable,
}

impl<G> AcquireError<G> {
    /// The guard, if the lock was acquired from a dead owner.
    pub fn into_guard(self) -> Option<G> {
        match self {
            AcquireError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }

    fn map<H>(self, f: impl FnOnce(G) -> H) -> AcquireError<H> {
        match self {
            AcquireError::WouldBlock => AcquireError::WouldBlock,
            AcquireError::Timeout => AcquireError::Timeout,
            AcquireError::OwnerDied(g) => AcquireError::OwnerDied(f(g)),
            AcquireError::NotRecoverable => AcquireError::NotRecoverable,
        }
    }
}

impl<G> fmt::Debug for AcquireError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AcquireError::WouldBlock => "WouldBlock",
            AcquireError::Timeout => "Timeout",
            AcquireError::OwnerDied(_) => "OwnerDied(..)",
            AcquireError::NotRecoverable => "NotRecoverable",
        })
    }
}

impl<G> fmt::Display for AcquireError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AcquireError::WouldBlock => "the lock is held",
            AcquireError::Timeout => "timed out acquiring the lock",
            AcquireError::OwnerDied(_) => "the previous owner died holding the lock",
            AcquireError::NotRecoverable => "the lock is not recoverable after its owner died",
        })
    }
}

impl<G> std::error::Error for AcquireError<G> {}

/// Why a release was refused (Python raises `ValueError` or `RuntimeError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The lock is not locked.
    #[error("release of an unlocked lock")]
    NotLocked,
    /// An `RLock` released by a thread that does not own it.
    #[error("cannot release an RLock owned by another thread or process")]
    NotOwner,
    /// A `BoundedSemaphore` released more times than acquired.
    #[error("semaphore released too many times")]
    OverRelease,
}

/// Why [`Barrier::wait_interruptible`] returned without passing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BarrierWaitError {
    /// The barrier is broken.
    #[error("the barrier is broken")]
    Broken,
    /// The interrupt check stopped the wait; this party left the barrier.
    #[error("the wait was interrupted")]
    Interrupted,
}

/// A barrier is broken (Python's `threading.BrokenBarrierError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("the barrier is broken")]
pub struct BrokenBarrierError;

fn deadline(timeout: Duration) -> Option<Instant> {
    crate::deadline::after(timeout)
}

// ----- the shared handle under every object ----------------------------------

/// A segment and the offset of one object's state in its payload.
struct Handle<T> {
    seg: Arc<Segment>,
    off: usize,
    layout: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        Handle {
            seg: self.seg.clone(),
            off: self.off,
            layout: self.layout,
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("segment", &self.seg)
            .field("offset", &self.off)
            .finish()
    }
}

impl<T> Handle<T> {
    fn create(kind: &str, layout: u64, extra: usize, init: impl FnOnce(&T)) -> io::Result<Self> {
        let seg = Segment::anonymous(kind, layout, std::mem::size_of::<T>() + extra, |_| {})?;
        let h = Handle {
            seg,
            off: 0,
            layout,
            _t: PhantomData,
        };
        init(h.get());
        Ok(h)
    }

    fn get(&self) -> &T {
        // SAFETY: every `T` used with `Handle` is a `multiproc_shm` state
        // struct made only of `AtomicU32`s (valid for any bit pattern and
        // for concurrent access); `off` is checked against the payload and
        // alignment when the handle is made or received.
        unsafe { self.seg.at::<T>(self.off) }
    }

    fn check(seg: &Segment, off: usize) -> Result<(), SegmentError> {
        let fits = off
            .checked_add(std::mem::size_of::<T>())
            .is_some_and(|end| end <= seg.payload_len());
        if fits && off % std::mem::align_of::<T>() == 0 {
            Ok(())
        } else {
            Err(SegmentError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "object offset outside its shared segment",
            )))
        }
    }
}

#[derive(Serialize, Deserialize)]
struct HandleWire<F> {
    fd: F,
    off: u32,
    layout: u64,
}

impl<T> Serialize for Handle<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        HandleWire {
            fd: segment::SegRef(&self.seg),
            off: self.off as u32,
            layout: self.layout,
        }
        .serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Handle<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = HandleWire::<Fd>::deserialize(d)?;
        let seg = Segment::from_fd(w.fd.0, w.layout)
            .map_err(|e| crate::connection::codec::handle_error_de(e.to_string()))?;
        let off = w.off as usize;
        Handle::<T>::check(&seg, off).map_err(serde::de::Error::custom)?;
        Ok(Handle {
            seg: Arc::new(seg),
            off,
            layout: w.layout,
            _t: PhantomData,
        })
    }
}

macro_rules! handle_object {
    ($ty:ident) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.h.serialize(s)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($ty {
                    h: Handle::deserialize(d)?,
                })
            }
        }
    };
}

const LOCK_LAYOUT: u64 = segment::layout_hash("multiproc::Lock/2", 32, 8);
const RLOCK_LAYOUT: u64 = segment::layout_hash("multiproc::RLock/2", 32, 8);

// ----- Lock --------------------------------------------------------------------

/// A lock shared by processes (Python's `multiprocessing.Lock`).
///
/// Not re-entrant: the owner acquiring again waits (or, with `try_lock`,
/// fails). As in Python, any process may [`release`](Lock::release) it.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let lock = multiproc::Lock::new()?;
/// {
///     let _guard = lock.lock().map_err(|e| e.to_string())?; // released at scope end
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Lock {
    h: Handle<RawLock>,
}
handle_object!(Lock);

/// Holds a [`Lock`]; releases it when dropped.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl LockGuard<'_> {
    /// After [`AcquireError::OwnerDied`]: the data is repaired.
    pub fn mark_consistent(&self) {
        self.lock.raw().mark_consistent();
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Python allows another process to release first; nothing to do then.
        let _ = self.lock.raw().unlock(&ENV);
    }
}

fn acquired<G>(
    r: Result<Acquired, LockError>,
    guard: impl FnOnce() -> G,
    timeout: bool,
) -> Result<G, AcquireError<G>> {
    match r {
        Ok(Acquired::OwnerDied) => Err(AcquireError::OwnerDied(guard())),
        Ok(_) => Ok(guard()),
        Err(LockError::NotRecoverable) => Err(AcquireError::NotRecoverable),
        Err(LockError::WouldBlock) if timeout => Err(AcquireError::Timeout),
        Err(LockError::WouldBlock) => Err(AcquireError::WouldBlock),
    }
}

impl Lock {
    /// A new, unlocked lock.
    pub fn new() -> io::Result<Lock> {
        Ok(Lock {
            h: Handle::create("lock", LOCK_LAYOUT, 0, |_: &RawLock| {})?,
        })
    }

    /// A lock at `off` in another object's segment (`Value::get_lock`).
    fn within(seg: Arc<Segment>, off: usize, layout: u64) -> Lock {
        Lock {
            h: Handle {
                seg,
                off,
                layout,
                _t: PhantomData,
            },
        }
    }

    fn raw(&self) -> &RawLock {
        self.h.get()
    }

    /// Acquire, blocking.
    pub fn lock(&self) -> Result<LockGuard<'_>, AcquireError<LockGuard<'_>>> {
        acquired(
            self.raw().lock(&ENV, None),
            || LockGuard { lock: self },
            false,
        )
    }

    /// Acquire if free now (a lock held by a dead process is taken over).
    pub fn try_lock(&self) -> Result<LockGuard<'_>, AcquireError<LockGuard<'_>>> {
        acquired(
            self.raw().try_lock(&ENV),
            || LockGuard { lock: self },
            false,
        )
    }

    /// Acquire, waiting at most `timeout`.
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<LockGuard<'_>, AcquireError<LockGuard<'_>>> {
        acquired(
            self.raw().lock(&ENV, deadline(timeout)),
            || LockGuard { lock: self },
            true,
        )
    }

    /// Python's `acquire()` without a guard: pair it with
    /// [`release`](Lock::release), possibly in another process.
    pub fn acquire(&self) -> Result<(), AcquireError<()>> {
        self.lock()
            .map(std::mem::forget)
            .map_err(|e| e.map(std::mem::forget))
    }

    /// Python's `acquire(timeout=...)` without a guard.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), AcquireError<()>> {
        self.lock_timeout(timeout)
            .map(std::mem::forget)
            .map_err(|e| e.map(std::mem::forget))
    }

    /// Python's `release()`: any process may release; an unlocked lock is
    /// an error.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.raw().unlock(&ENV).map_err(|_| ReleaseError::NotLocked)
    }

    /// After acquiring with [`acquire`](Lock::acquire) from a dead owner:
    /// the data is repaired.
    pub fn mark_consistent(&self) {
        self.raw().mark_consistent();
    }

    /// Whether some process holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }

    /// The pid of the process holding the lock (a snapshot).
    pub fn owner(&self) -> Option<u32> {
        self.raw().owner()
    }
}

// ----- RLock -------------------------------------------------------------------

/// A re-entrant lock shared by processes (Python's `multiprocessing.RLock`):
/// the owning thread may acquire it again, and must release it as many
/// times; only the owner may release.
#[derive(Clone, Debug)]
pub struct RLock {
    h: Handle<RawLock>,
}
handle_object!(RLock);

/// Holds one level of an [`RLock`].
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    // The owner is a thread: the guard must stay on it.
    _not_send: PhantomData<*const ()>,
}

impl RLockGuard<'_> {
    /// After [`AcquireError::OwnerDied`]: the data is repaired.
    pub fn mark_consistent(&self) {
        self.lock.raw().mark_consistent();
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.raw().runlock(&ENV);
    }
}

impl RLock {
    /// A new, unlocked re-entrant lock.
    pub fn new() -> io::Result<RLock> {
        Ok(RLock {
            h: Handle::create("rlock", RLOCK_LAYOUT, 0, |_: &RawLock| {})?,
        })
    }

    fn raw(&self) -> &RawLock {
        self.h.get()
    }

    fn guard(&self) -> RLockGuard<'_> {
        RLockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Acquire (again, if this thread owns it), blocking.
    pub fn lock(&self) -> Result<RLockGuard<'_>, AcquireError<RLockGuard<'_>>> {
        acquired(self.raw().rlock(&ENV, None), || self.guard(), false)
    }

    /// Acquire if free or owned by this thread.
    pub fn try_lock(&self) -> Result<RLockGuard<'_>, AcquireError<RLockGuard<'_>>> {
        acquired(self.raw().try_rlock(&ENV), || self.guard(), false)
    }

    /// Acquire, waiting at most `timeout`.
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<RLockGuard<'_>, AcquireError<RLockGuard<'_>>> {
        acquired(
            self.raw().rlock(&ENV, deadline(timeout)),
            || self.guard(),
            true,
        )
    }

    /// Python's `acquire()` without a guard.
    pub fn acquire(&self) -> Result<(), AcquireError<()>> {
        self.lock()
            .map(std::mem::forget)
            .map_err(|e| e.map(std::mem::forget))
    }

    /// Python's `release()`: only the owning thread may release.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.raw().runlock(&ENV).map_err(|e| match e {
            multiproc_shm::UnlockError::NotOwner => ReleaseError::NotOwner,
            multiproc_shm::UnlockError::NotLocked => ReleaseError::NotLocked,
        })
    }

    /// Whether this thread owns the lock.
    pub fn is_owned(&self) -> bool {
        self.raw().is_owned_by(ENV.me())
    }

    /// Whether some process holds the lock.
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }
}

// ----- Semaphore / BoundedSemaphore --------------------------------------------

const SEM_LAYOUT: u64 = segment::layout_hash("multiproc::Semaphore", 16, 4);

/// A counting semaphore shared by processes (Python's
/// `multiprocessing.Semaphore`).
///
/// Permits are not owned: one process may acquire and another release. So
/// when a process dies holding permits, they are not given back (unlike
/// System V's `SEM_UNDO`, which [`sysv`](crate) semaphore sets offer):
/// there is no record of whose permit is whose, and guessing would let more
/// processes in than the count allows. Use a [`Lock`] where a holder's death
/// must be detected.
#[derive(Clone, Debug)]
pub struct Semaphore {
    h: Handle<RawSemaphore>,
}
handle_object!(Semaphore);

/// A semaphore that refuses to be released above its initial value (Python's
/// `multiprocessing.BoundedSemaphore`).
#[derive(Clone, Debug)]
pub struct BoundedSemaphore {
    h: Handle<RawSemaphore>,
}
handle_object!(BoundedSemaphore);

macro_rules! semaphore_methods {
    ($ty:ident, $bounded:expr) => {
        impl $ty {
            /// A semaphore with `value` permits.
            pub fn new(value: u32) -> io::Result<$ty> {
                Ok($ty {
                    h: Handle::create("semaphore", SEM_LAYOUT, 0, |s: &RawSemaphore| {
                        s.init(value, $bounded)
                    })?,
                })
            }

            fn raw(&self) -> &RawSemaphore {
                self.h.get()
            }

            /// Take a permit, blocking.
            pub fn acquire(&self) {
                self.raw().acquire(&ENV, None);
            }

            /// Take a permit if one is free now.
            pub fn try_acquire(&self) -> bool {
                self.raw().try_acquire()
            }

            /// Take a permit, waiting at most `timeout`; `false` on timeout.
            pub fn acquire_timeout(&self, timeout: Duration) -> bool {
                self.raw().acquire(&ENV, deadline(timeout))
            }

            /// Give back one permit.
            pub fn release(&self) -> Result<(), ReleaseError> {
                self.release_n(1)
            }

            /// Give back `n` permits at once.
            pub fn release_n(&self, n: u32) -> Result<(), ReleaseError> {
                self.raw()
                    .release(&ENV, n)
                    .map_err(|_| ReleaseError::OverRelease)
            }

            /// Permits free now (Python's `get_value()`).
            pub fn get_value(&self) -> u32 {
                self.raw().value()
            }
        }
    };
}

semaphore_methods!(Semaphore, false);
semaphore_methods!(BoundedSemaphore, true);

// ----- Event -------------------------------------------------------------------

const EVENT_LAYOUT: u64 = segment::layout_hash("multiproc::Event", 8, 4);

/// A flag processes wait for (Python's `multiprocessing.Event`).
///
/// A process asleep in `wait` when `set` is called returns `true` even if
/// `clear` follows at once, as in Python.
#[derive(Clone, Debug)]
pub struct Event {
    h: Handle<RawEvent>,
}
handle_object!(Event);

impl Event {
    /// A new, clear event.
    pub fn new() -> io::Result<Event> {
        Ok(Event {
            h: Handle::create("event", EVENT_LAYOUT, 0, |_: &RawEvent| {})?,
        })
    }

    fn raw(&self) -> &RawEvent {
        self.h.get()
    }

    /// Set the flag; wake every waiter.
    pub fn set(&self) {
        self.raw().set(&ENV);
    }

    /// Clear the flag.
    pub fn clear(&self) {
        self.raw().clear();
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.raw().is_set()
    }

    /// Wait until the flag is set.
    pub fn wait(&self) {
        self.raw().wait(&ENV, None);
    }

    /// Wait at most `timeout`; whether the flag was set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.raw().wait(&ENV, deadline(timeout))
    }
}

// ----- Condition ---------------------------------------------------------------

const COND_LAYOUT: u64 = segment::layout_hash(
    "multiproc::Condition/2",
    std::mem::size_of::<RawCondition>(),
    std::mem::align_of::<RawCondition>(),
);

/// The lock under a [`Condition`].
#[derive(Clone, Debug, Serialize, Deserialize)]
enum CondLock {
    Lock(Lock),
    RLock(RLock),
}

/// A condition variable shared by processes (Python's
/// `multiprocessing.Condition`), over a [`Lock`] or an [`RLock`] (the
/// default, as in Python).
///
/// Waiting and notifying happen through the guard, so the lock is always
/// held, as Python requires. A waiter may return spuriously (like any
/// condition variable); [`ConditionGuard::wait_for`] loops on a predicate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Condition {
    cond: Handle<RawCondition>,
    lock: CondLock,
}

/// Holds a [`Condition`]'s lock.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct ConditionGuard<'a> {
    cond: &'a Condition,
    held: bool,
    _not_send: PhantomData<*const ()>,
}

/// Why a condition wait failed; the guard still holds the lock unless it
/// says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WaitError {
    /// While re-acquiring after the wait, the lock was found held by a dead
    /// process. The guard holds it now; repair, then `mark_consistent()`.
    #[error("the lock's previous owner died; the lock is held and inconsistent")]
    OwnerDied,
    /// The lock is not recoverable; the guard no longer holds it.
    #[error("the lock is not recoverable")]
    NotRecoverable,
    /// The interrupt check of an interruptible wait stopped it before a
    /// notification came; the lock is held again and no notification was
    /// consumed.
    #[error("the wait was interrupted")]
    Interrupted,
}

impl Condition {
    /// A condition over a new [`RLock`].
    pub fn new() -> io::Result<Condition> {
        Self::with(CondLock::RLock(RLock::new()?))
    }

    /// A condition over `lock`.
    pub fn with_lock(lock: Lock) -> io::Result<Condition> {
        Self::with(CondLock::Lock(lock))
    }

    /// A condition over `lock`.
    pub fn with_rlock(lock: RLock) -> io::Result<Condition> {
        Self::with(CondLock::RLock(lock))
    }

    fn with(lock: CondLock) -> io::Result<Condition> {
        Ok(Condition {
            cond: Handle::create("condition", COND_LAYOUT, 0, |_: &RawCondition| {})?,
            lock,
        })
    }

    fn raw_lock(&self) -> &RawLock {
        match &self.lock {
            CondLock::Lock(l) => l.raw(),
            CondLock::RLock(l) => l.raw(),
        }
    }

    fn guard(&self) -> ConditionGuard<'_> {
        ConditionGuard {
            cond: self,
            held: true,
            _not_send: PhantomData,
        }
    }

    fn take(&self, d: Option<Instant>) -> Result<Acquired, LockError> {
        match &self.lock {
            CondLock::Lock(l) => l.raw().lock(&ENV, d),
            CondLock::RLock(l) => l.raw().rlock(&ENV, d),
        }
    }

    /// Acquire the lock, blocking.
    pub fn lock(&self) -> Result<ConditionGuard<'_>, AcquireError<ConditionGuard<'_>>> {
        acquired(self.take(None), || self.guard(), false)
    }

    /// Acquire the lock, waiting at most `timeout`.
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ConditionGuard<'_>, AcquireError<ConditionGuard<'_>>> {
        acquired(self.take(deadline(timeout)), || self.guard(), true)
    }
}

impl Condition {
    /// Wait for a notification with the lock already held by the caller (who
    /// took it through its own `Lock`/`RLock` handle and keeps holding it
    /// after): for bindings whose callers pair acquire and release
    /// themselves, as Python's `with cond: cond.wait()` does. `Ok(false)`
    /// when `timeout` passed without a notification.
    pub fn wait_held(&self, timeout: Option<Duration>) -> Result<bool, WaitError> {
        let mut g = self.guard();
        let r = g.wait_deadline(timeout.and_then(deadline));
        // The caller still holds the lock (or lost it for good with
        // `NotRecoverable`): the guard must not release it.
        std::mem::forget(g);
        r
    }

    /// [`wait_held`](Self::wait_held), calling `interrupted` between sleeps
    /// of at most `every` (a binding checks for signals this way, so that
    /// Ctrl-C works); when it returns `true` the wait ends with
    /// [`WaitError::Interrupted`], the lock held again.
    pub fn wait_held_interruptible(
        &self,
        timeout: Option<Duration>,
        every: Duration,
        interrupted: impl FnMut() -> bool,
    ) -> Result<bool, WaitError> {
        let mut g = self.guard();
        let r = g.wait_until(timeout.and_then(deadline), every, interrupted);
        // As in `wait_held`: the caller keeps the lock.
        std::mem::forget(g);
        r
    }

    /// Wake up to `n` waiters; the caller holds the lock.
    pub fn notify_held(&self, n: u32) {
        self.cond.get().notify(&ENV, n);
    }
}

impl ConditionGuard<'_> {
    fn release_for_wait(&self) -> u32 {
        let raw = self.cond.raw_lock();
        match &self.cond.lock {
            CondLock::Lock(_) => {
                let _ = raw.unlock(&ENV);
                1
            }
            CondLock::RLock(_) => raw.runlock_all(&ENV).unwrap_or(1),
        }
    }

    fn wait_deadline(&mut self, d: Option<Instant>) -> Result<bool, WaitError> {
        self.wait_until(d, Duration::MAX, || false)
    }

    fn wait_until(
        &mut self,
        d: Option<Instant>,
        every: Duration,
        interrupted: impl FnMut() -> bool,
    ) -> Result<bool, WaitError> {
        let raw_cond = self.cond.cond.get();
        let ticket = raw_cond.prepare();
        let depth = self.release_for_wait();
        let parked = raw_cond.park_interruptible(&ENV, ticket, d, every, interrupted);
        let notified = parked == Parked::Notified;
        let raw = self.cond.raw_lock();
        match raw.lock(&ENV, None) {
            Ok(how) => {
                if matches!(self.cond.lock, CondLock::RLock(_)) {
                    raw.restore(&ENV, depth);
                }
                if how == Acquired::OwnerDied {
                    return Err(WaitError::OwnerDied);
                }
                if parked == Parked::Interrupted {
                    return Err(WaitError::Interrupted);
                }
                Ok(notified)
            }
            Err(_) => {
                self.held = false;
                Err(WaitError::NotRecoverable)
            }
        }
    }

    /// Release the lock, sleep until notified, re-acquire.
    pub fn wait(&mut self) -> Result<(), WaitError> {
        self.wait_deadline(None).map(|_| ())
    }

    /// [`wait`](Self::wait) at most `timeout`; `false` if it timed out.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<bool, WaitError> {
        self.wait_deadline(deadline(timeout))
    }

    /// Wait until `pred()` holds (checked with the lock held), at most
    /// `timeout` if given; returns the last value of `pred()`.
    pub fn wait_for(
        &mut self,
        mut pred: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool, WaitError> {
        let d = timeout.and_then(crate::deadline::after);
        loop {
            if pred() {
                return Ok(true);
            }
            if d.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            self.wait_deadline(d)?;
        }
    }

    /// Wake up to `n` waiters.
    pub fn notify(&self, n: u32) {
        self.cond.cond.get().notify(&ENV, n);
    }

    /// Wake every waiter.
    pub fn notify_all(&self) {
        self.cond.cond.get().notify(&ENV, u32::MAX);
    }

    /// After an owner died: the data is repaired.
    pub fn mark_consistent(&self) {
        self.cond.raw_lock().mark_consistent();
    }
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let raw = self.cond.raw_lock();
        let _ = match &self.cond.lock {
            CondLock::Lock(_) => raw.unlock(&ENV),
            CondLock::RLock(_) => raw.runlock(&ENV),
        };
    }
}

// ----- Barrier -----------------------------------------------------------------

const BARRIER_LAYOUT: u64 = segment::layout_hash(
    "multiproc::Barrier/3",
    std::mem::size_of::<RawBarrier>(),
    std::mem::align_of::<RawBarrier>(),
);
const BARRIER_SLOTS: usize = 64; // offset of the slots: RawBarrier rounded up
const _: () = assert!(std::mem::size_of::<RawBarrier>() <= BARRIER_SLOTS);

/// A barrier for a fixed number of parties in any processes (Python's
/// `multiprocessing.Barrier`).
///
/// A party that dies while waiting breaks the barrier for the others within
/// about [`LIVENESS_CHECK`](multiproc_shm::LIVENESS_CHECK); a timeout breaks
/// it too, as in Python.
#[derive(Clone, Debug)]
pub struct Barrier {
    h: Handle<RawBarrier>,
}

impl Serialize for Barrier {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.h.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = Barrier {
            h: Handle::deserialize(d)?,
        };
        // The slots must fit in what was mapped.
        let need = BARRIER_SLOTS as u64 + 4 * u64::from(b.h.get().parties());
        if need > b.h.seg.payload_len() as u64 || b.h.get().parties() == 0 {
            return Err(serde::de::Error::custom(
                "barrier segment too small for its parties",
            ));
        }
        Ok(b)
    }
}

impl Barrier {
    /// A barrier for `parties` (at least 1).
    pub fn new(parties: u32) -> io::Result<Barrier> {
        if parties == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a barrier needs at least one party",
            ));
        }
        let extra = BARRIER_SLOTS - std::mem::size_of::<RawBarrier>() + 4 * parties as usize;
        Ok(Barrier {
            h: Handle::create("barrier", BARRIER_LAYOUT, extra, |b: &RawBarrier| {
                b.init(parties)
            })?,
        })
    }

    fn slots(&self) -> &[AtomicU32] {
        let n = self.h.get().parties() as usize;
        // SAFETY: the slots start at BARRIER_SLOTS (4-byte aligned) and
        // `parties` of them fit in the payload (checked at creation and on
        // receipt); AtomicU32 is valid for any bit pattern.
        unsafe {
            std::slice::from_raw_parts(
                self.h.seg.payload().add(BARRIER_SLOTS).cast::<AtomicU32>(),
                n,
            )
        }
    }

    /// Wait for every party; returns this party's arrival index
    /// (`0..parties`).
    pub fn wait(&self) -> Result<u32, BrokenBarrierError> {
        self.h
            .get()
            .wait(&ENV, self.slots(), None)
            .map_err(|_| BrokenBarrierError)
    }

    /// [`wait`](Self::wait) at most `timeout`; timing out breaks the barrier.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32, BrokenBarrierError> {
        self.h
            .get()
            .wait(&ENV, self.slots(), deadline(timeout))
            .map_err(|_| BrokenBarrierError)
    }

    /// [`wait`](Self::wait) (at most `timeout` if given), calling
    /// `interrupted` between sleeps of at most `every` (a binding checks for
    /// signals this way, so that Ctrl-C works). An interrupted party leaves
    /// as if it had never arrived, as with Python's `threading.Barrier`: the
    /// barrier is not broken and waits for another party in its place.
    pub fn wait_interruptible(
        &self,
        timeout: Option<Duration>,
        every: Duration,
        interrupted: impl FnMut() -> bool,
    ) -> Result<u32, BarrierWaitError> {
        self.h
            .get()
            .wait_interruptible(
                &ENV,
                self.slots(),
                timeout.and_then(deadline),
                every,
                interrupted,
            )
            .map_err(|e| match e {
                BarrierError::Broken => BarrierWaitError::Broken,
                BarrierError::Interrupted => BarrierWaitError::Interrupted,
            })
    }

    /// Break the barrier.
    pub fn abort(&self) {
        self.h.get().abort(&ENV);
    }

    /// Return to the initial state; current waiters get
    /// [`BrokenBarrierError`].
    pub fn reset(&self) {
        self.h.get().reset(&ENV);
    }

    /// Parties waiting now.
    pub fn n_waiting(&self) -> u32 {
        self.h.get().n_waiting()
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.h.get().parties()
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.h.get().broken()
    }
}

/// Make a [`Lock`] view of a lock embedded in another object's segment.
pub(crate) fn embedded_lock(seg: Arc<Segment>, off: usize, layout: u64) -> Lock {
    Lock::within(seg, off, layout)
}
