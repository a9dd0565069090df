//! System V semaphore sets: `semget`, `semop` (atomic multi-operations), `semctl`.

use std::io;
use std::time::{Duration, Instant};

use multiproc_sys::sysv::{self as sys, errno};
use serde::{Deserialize, Serialize};

use crate::error::{TimeoutError, TryError, Waited};
use crate::names::kind::Kind;
use crate::names::registry::Registry;

use super::{Builder, Key, OpenError, SysvObject, forget, sealed};

// ----- semaphore sets --------------------------------------------------------

/// Flags of one [`SemOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SemFlags(i16);

impl SemFlags {
    /// No flags: the operation waits, and is not undone at exit.
    pub const NONE: SemFlags = SemFlags(0);
    /// `IPC_NOWAIT`: fail with [`SemError::WouldBlock`] instead of waiting.
    pub const NO_WAIT: SemFlags = SemFlags(sys::IPC_NOWAIT as i16);
    /// `SEM_UNDO`: the kernel reverses the operation when this process
    /// exits, however it ends (even `kill -9`).
    pub const UNDO: SemFlags = SemFlags(sys::SEM_UNDO);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: SemFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for SemFlags {
    type Output = SemFlags;
    fn bitor(self, rhs: SemFlags) -> SemFlags {
        SemFlags(self.0 | rhs.0)
    }
}

/// One operation of [`SemaphoreSet::op`] (`struct sembuf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemOp {
    /// Which semaphore of the set.
    pub index: u16,
    /// Positive: add (V); negative: take, waiting until the value is
    /// large enough (P); zero: wait until the value is zero.
    pub delta: i16,
    /// [`SemFlags::NO_WAIT`], [`SemFlags::UNDO`].
    pub flags: SemFlags,
}

impl SemOp {
    /// `delta` on semaphore `index`, no flags.
    pub const fn new(index: u16, delta: i16) -> SemOp {
        SemOp {
            index,
            delta,
            flags: SemFlags::NONE,
        }
    }

    /// The same operation with `SEM_UNDO`.
    pub const fn undo(mut self) -> SemOp {
        self.flags = SemFlags(self.flags.0 | SemFlags::UNDO.0);
        self
    }

    /// The same operation with `IPC_NOWAIT`.
    pub const fn no_wait(mut self) -> SemOp {
        self.flags = SemFlags(self.flags.0 | SemFlags::NO_WAIT.0);
        self
    }
}

/// A semaphore operation failed. `try_op` adds "would wait"
/// ([`TryError::WouldBlock`]), `op_timeout`/`op_deadline` "could not be
/// applied in time" ([`TimeoutError::Timeout`]); none of the operations
/// was applied then.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SemError {
    /// An operation the caller flagged [`SemFlags::NO_WAIT`] would have
    /// waited. None of the operations was applied.
    #[error("a NO_WAIT semaphore operation would block")]
    WouldBlock,
    /// The set was removed (before or during the call: `EIDRM`).
    #[error("the semaphore set was removed")]
    Removed,
    /// A semaphore index outside the set.
    #[error("semaphore index {index} is outside a set of {len}")]
    InvalidIndex {
        /// The index.
        index: u32,
        /// The set's size.
        len: u32,
    },
    /// A value or amount out of range (for example a P/V amount over
    /// 32767, a value over `SEMVMX`, or an empty list of operations).
    #[error("value out of range: {0}")]
    OutOfRange(String),
    /// Any other OS error.
    #[error(transparent)]
    Io(io::Error),
}

impl From<io::Error> for SemError {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(errno::EIDRM) | Some(errno::EINVAL) => SemError::Removed,
            Some(errno::ERANGE) => SemError::OutOfRange(e.to_string()),
            _ => SemError::Io(e),
        }
    }
}

/// A System V semaphore set: `len` counting semaphores, operated on
/// atomically ([`op`](Self::op) applies all of its operations or none).
///
/// The handle is the set's id and its size: it serializes as those, and
/// dropping it leaves the set in place until [`remove`](Self::remove).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SemaphoreSet {
    id: i32,
    len: u32,
    #[serde(skip)]
    registry: Option<Registry>,
}

impl sealed::Sealed for SemaphoreSet {}

impl SysvObject for SemaphoreSet {
    type Size = u16;
    const KIND: Kind = Kind::SysvSem;
    fn get(key: i32, size: u16, flags: i32) -> io::Result<i32> {
        sys::semget(key, i32::from(size), flags)
    }
    fn from_parts(id: i32, registry: Option<Registry>) -> io::Result<Self> {
        let len = sys::sem_stat(id)?.nsems;
        Ok(SemaphoreSet {
            id,
            len: u32::try_from(len).unwrap_or(u32::MAX),
            registry,
        })
    }
}

impl Builder<SemaphoreSet> {
    /// How many semaphores a created set has (all 0). Needed to create;
    /// [`create_or_open`](Builder::create_or_open) also checks an existing
    /// set has at least this many.
    pub fn len(self, len: u16) -> Self {
        self.with_size(len)
    }
}

impl SemaphoreSet {
    /// Options for the set named by `key`.
    pub fn builder(key: Key) -> Builder<SemaphoreSet> {
        Builder::new(key)
    }

    /// Create a new set of `len` semaphores (all 0), mode 0600.
    pub fn create(key: Key, len: u16) -> Result<Self, OpenError> {
        Self::builder(key).len(len).create()
    }

    /// A new private set of `len` semaphores (`IPC_PRIVATE`).
    pub fn private(len: u16) -> Result<Self, OpenError> {
        Self::create(Key::PRIVATE, len)
    }

    /// Open the existing set named by `key`.
    pub fn open(key: Key) -> Result<Self, OpenError> {
        Self::builder(key).open()
    }

    /// Open the set named by `key`, creating one of `len` if missing.
    pub fn create_or_open(key: Key, len: u16) -> Result<Self, OpenError> {
        Self::builder(key).len(len).create_or_open()
    }

    /// The kernel's id of the set.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The number of semaphores.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the set has no semaphores (never, for a set made here).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, index: u16) -> Result<(), SemError> {
        if u32::from(index) < self.len {
            Ok(())
        } else {
            Err(SemError::InvalidIndex {
                index: u32::from(index),
                len: self.len,
            })
        }
    }

    fn op_raw(
        &self,
        ops: &[SemOp],
        extra: i16,
        wait: Option<Instant>,
    ) -> Result<(), Waited<SemError>> {
        if ops.is_empty() {
            return Err(SemError::OutOfRange("no operations".into()).into());
        }
        for o in ops {
            self.check(o.index)?;
        }
        let raw: Vec<sys::SemBuf> = ops
            .iter()
            .map(|o| sys::SemBuf {
                num: o.index,
                op: o.delta,
                flags: o.flags.0 | extra,
            })
            .collect();
        loop {
            let timeout = wait.map(|d| d.saturating_duration_since(Instant::now()));
            let e = match sys::semtimedop(self.id, &raw, timeout) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            match e.raw_os_error() {
                // A signal: try again with what is left of the deadline.
                Some(errno::EINTR) => continue,
                Some(errno::EAGAIN) => {
                    return Err(match wait {
                        Some(deadline) if Instant::now() >= deadline => Waited::GaveUp,
                        _ if extra & SemFlags::NO_WAIT.0 != 0 => Waited::GaveUp,
                        // An operation's own NO_WAIT flag.
                        _ => SemError::WouldBlock.into(),
                    });
                }
                _ => return Err(SemError::from(e).into()),
            }
        }
    }

    /// Apply every operation in `ops` atomically, waiting until all can be
    /// applied together (`semop`). An operation flagged
    /// [`SemFlags::NO_WAIT`] that would wait makes the call fail with
    /// [`SemError::WouldBlock`], applying none.
    pub fn op(&self, ops: &[SemOp]) -> Result<(), SemError> {
        self.op_raw(ops, 0, None).map_err(Waited::into_blocking)
    }

    /// [`op`](Self::op) with `IPC_NOWAIT` on every operation:
    /// [`TryError::WouldBlock`] (nothing applied) if any would wait.
    pub fn try_op(&self, ops: &[SemOp]) -> Result<(), TryError<SemError>> {
        self.op_raw(ops, SemFlags::NO_WAIT.0, None)
            .map_err(Waited::into_try)
    }

    /// [`op`](Self::op), waiting at most `timeout` (`semtimedop`; the
    /// remaining time is recomputed from a monotonic deadline after a
    /// signal): [`TimeoutError::Timeout`], nothing applied.
    pub fn op_timeout(
        &self,
        ops: &[SemOp],
        timeout: Duration,
    ) -> Result<(), TimeoutError<SemError>> {
        self.op_raw(ops, 0, crate::deadline::after(timeout))
            .map_err(Waited::into_timeout)
    }

    /// [`op`](Self::op), waiting until `deadline`.
    pub fn op_deadline(
        &self,
        ops: &[SemOp],
        deadline: Instant,
    ) -> Result<(), TimeoutError<SemError>> {
        self.op_raw(ops, 0, Some(deadline))
            .map_err(Waited::into_timeout)
    }

    fn amount(n: u16) -> Result<i16, SemError> {
        i16::try_from(n).map_err(|_| SemError::OutOfRange(format!("amount {n} is over 32767")))
    }

    /// P: take `n` from semaphore `index`, waiting until its value is ≥ `n`.
    pub fn p(&self, index: u16, n: u16) -> Result<(), SemError> {
        self.op(&[SemOp::new(index, -Self::amount(n)?)])
    }

    /// P without waiting.
    pub fn try_p(&self, index: u16, n: u16) -> Result<(), TryError<SemError>> {
        self.try_op(&[SemOp::new(index, -Self::amount(n)?)])
    }

    /// P, waiting at most `timeout`.
    pub fn p_timeout(
        &self,
        index: u16,
        n: u16,
        timeout: Duration,
    ) -> Result<(), TimeoutError<SemError>> {
        self.op_timeout(&[SemOp::new(index, -Self::amount(n)?)], timeout)
    }

    /// [`p`](Self::p), waiting until `deadline`.
    pub fn p_deadline(
        &self,
        index: u16,
        n: u16,
        deadline: Instant,
    ) -> Result<(), TimeoutError<SemError>> {
        self.op_deadline(&[SemOp::new(index, -Self::amount(n)?)], deadline)
    }

    /// V: add `n` to semaphore `index` (never waits).
    pub fn v(&self, index: u16, n: u16) -> Result<(), SemError> {
        self.op(&[SemOp::new(index, Self::amount(n)?)])
    }

    /// Wait until semaphore `index` is zero.
    pub fn wait_zero(&self, index: u16) -> Result<(), SemError> {
        self.op(&[SemOp::new(index, 0)])
    }

    /// The value of semaphore `index` (`GETVAL`).
    pub fn get(&self, index: u16) -> Result<i32, SemError> {
        self.check(index)?;
        Ok(sys::sem_getval(self.id, index)?)
    }

    /// Set semaphore `index` to `value` (`SETVAL`; clears every process's
    /// undo entry for it), waking waiters it satisfies.
    pub fn set(&self, index: u16, value: i32) -> Result<(), SemError> {
        self.check(index)?;
        Ok(sys::sem_setval(self.id, index, value)?)
    }

    /// Every value (`GETALL`).
    pub fn get_all(&self) -> Result<Vec<u16>, SemError> {
        let n = usize::try_from(self.len).unwrap_or(usize::MAX);
        Ok(sys::sem_getall(self.id, n)?)
    }

    /// Set every value (`SETALL`); `values.len()` must be the set's size.
    pub fn set_all(&self, values: &[u16]) -> Result<(), SemError> {
        if values.len() as u64 != u64::from(self.len) {
            return Err(SemError::OutOfRange(format!(
                "{} values for a set of {}",
                values.len(),
                self.len
            )));
        }
        Ok(sys::sem_setall(self.id, values)?)
    }

    /// Processes waiting for semaphore `index` to grow (`GETNCNT`).
    pub fn getncnt(&self, index: u16) -> Result<u32, SemError> {
        self.check(index)?;
        Ok(sys::sem_getncnt(self.id, index)?.unsigned_abs())
    }

    /// Processes waiting for semaphore `index` to be zero (`GETZCNT`).
    pub fn getzcnt(&self, index: u16) -> Result<u32, SemError> {
        self.check(index)?;
        Ok(sys::sem_getzcnt(self.id, index)?.unsigned_abs())
    }

    /// The pid of the last process that operated on semaphore `index`
    /// (`GETPID`; 0 if none).
    pub fn getpid(&self, index: u16) -> Result<u32, SemError> {
        self.check(index)?;
        Ok(sys::sem_getpid(self.id, index)?.unsigned_abs())
    }

    /// Remove the set (`IPC_RMID`): waiters get [`SemError::Removed`]. Its
    /// registry record is forgotten.
    pub fn remove(&self) -> Result<(), SemError> {
        sys::sem_remove(self.id)?;
        forget(&self.registry, Kind::SysvSem, self.id);
        Ok(())
    }
}
