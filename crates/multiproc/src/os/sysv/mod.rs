//! System V IPC: message queues with typed selection, semaphore sets with
//! atomic multi-operations, and shared-memory segments — the seeds'
//! `msgget/msgsnd/msgrcv`, `semget/semop/semctl` and `shmget/shmat/shmdt`.
//!
//! Each object is named by a [`Key`] (from a path and a project id, like
//! `ftok`, or a raw number) or is private ([`Key::PRIVATE`], `IPC_PRIVATE`),
//! and identified by the kernel's id. A handle is only that id: it
//! serializes as the id, so it can be passed to spawned children, and
//! dropping it does nothing. The object lives, like the kernel's, until
//! someone removes it ([`MessageQueue::remove`], …) — it survives its
//! creator. Every object this library creates is recorded in the
//! [owner registry](crate::names::registry), so `multiproc ls` lists it with its
//! creator's liveness and `multiproc clean` removes those whose creator is
//! dead.
//!
//! Objects are created exclusively (`IPC_CREAT | IPC_EXCL`, mode 0600 unless
//! [`Builder::mode`] says otherwise), opened (must exist), or created-or-
//! opened. Processes waiting on an object that is removed get a typed
//! `Removed` error (`EIDRM`), never a hang. Signals (`EINTR`) are retried,
//! with the remaining time recomputed from a monotonic deadline.
//!
//! # Timeouts of message queues
//!
//! System V has no timed `msgsnd`/`msgrcv`. The `_timeout` forms poll with
//! `IPC_NOWAIT`, sleeping between tries with a backoff that starts at
//! 20 µs and doubles up to 5 ms, never past the deadline (measured on the
//! monotonic clock). A message that arrives while the caller sleeps is
//! taken at most 5 ms late. Semaphore timeouts use `semtimedop`, which the
//! kernel times exactly.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::path::Path;
use std::time::{Duration, Instant};

use multiproc_sys::sysv::{self as sys, errno};
use serde::{Deserialize, Serialize};

use crate::deadline::Backoff;
use crate::names::kind::Kind;
use crate::names::object::NamedKind;
use crate::names::registry::{self, Registry};

mod msg;
mod sem;
mod shm;

pub use msg::{Message, MessageQueue, QueueStats, RecvError, Selector, SendError};
pub use sem::{SemError, SemFlags, SemOp, SemaphoreSet};
pub use shm::{Attachment, SegmentStats, SharedMemory, ShmError};

// ----- keys, builders --------------------------------------------------------

/// The key that names a System V object (`key_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Key(i32);

impl Key {
    /// `IPC_PRIVATE`: every creation makes a new object, which only the
    /// processes given its handle (its id) can use.
    pub const PRIVATE: Key = Key(sys::IPC_PRIVATE);

    /// `ftok(path, project)`: a key derived from an existing file's inode and
    /// device and the low 8 bits of `project`. Unrelated processes that
    /// agree on the path and project get the same key.
    pub fn from_path(path: impl AsRef<Path>, project: u8) -> io::Result<Key> {
        sys::ftok(path.as_ref(), project).map(Key)
    }

    /// A raw key. `0` is [`Key::PRIVATE`].
    pub const fn from_raw(key: i32) -> Key {
        Key(key)
    }

    /// The raw key.
    pub const fn as_raw(self) -> i32 {
        self.0
    }
}

/// An object could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Exclusive creation, and an object with this key exists.
    #[error("a System V object with this key already exists")]
    AlreadyExists(#[source] io::Error),
    /// Open, and no object has this key (or it was removed).
    #[error("no System V object has this key")]
    NotFound(#[source] io::Error),
    /// An argument the kernel refused: a size or count out of its limits,
    /// or an existing object too small for the one asked for.
    #[error("invalid argument: {0}")]
    InvalidArgument(#[source] io::Error),
    /// Any other OS error (permissions, limits on the number of objects).
    #[error(transparent)]
    Io(io::Error),
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(errno::EEXIST) => OpenError::AlreadyExists(e),
            Some(errno::ENOENT) | Some(errno::EIDRM) => OpenError::NotFound(e),
            Some(errno::EINVAL) => OpenError::InvalidArgument(e),
            _ => OpenError::Io(e),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum How {
    Create,
    Open,
    CreateOrOpen,
}

/// One kind of System V object, for the one [`Builder`] of all three.
pub trait SysvObject: Sized + sealed::Sealed {
    /// How big a new object is: nothing for a queue, the number of
    /// semaphores of a set, the bytes of a segment.
    type Size: Copy + Default + fmt::Debug;
    /// Its kind in the owner registry.
    #[doc(hidden)]
    const KIND: Kind;
    /// `msgget`/`semget`/`shmget` with these flags.
    #[doc(hidden)]
    fn get(key: i32, size: Self::Size, flags: i32) -> io::Result<i32>;
    /// The handle of object `id`.
    #[doc(hidden)]
    fn from_parts(id: i32, registry: Option<Registry>) -> io::Result<Self>;
}

mod sealed {
    /// Only the three System V kinds are [`SysvObject`](super::SysvObject)s.
    pub trait Sealed {}
}

/// Options for creating or opening a System V object: the key, the
/// permission bits and size of a new object, and the registry it is
/// recorded in. One builder for the three kinds:
/// [`MessageQueue::builder`], [`SemaphoreSet::builder`] (with
/// [`len`](Builder::len)), [`SharedMemory::builder`] (with
/// [`size`](Builder::size)).
pub struct Builder<T: SysvObject> {
    key: Key,
    mode: u32,
    size: T::Size,
    registry: Option<Registry>,
    _kind: PhantomData<fn() -> T>,
}

impl<T: SysvObject> fmt::Debug for Builder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("key", &self.key)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("size", &self.size)
            .field("registry", &self.registry)
            .finish()
    }
}

impl<T: SysvObject> Builder<T> {
    /// Options for the object named by `key`: mode 0600, the default
    /// registry.
    pub fn new(key: Key) -> Self {
        Builder {
            key,
            mode: 0o600,
            size: T::Size::default(),
            registry: None,
            _kind: PhantomData,
        }
    }

    /// Create a new object (`IPC_CREAT | IPC_EXCL`); a taken key is
    /// [`OpenError::AlreadyExists`].
    pub fn create(self) -> Result<T, OpenError> {
        self.get(How::Create)
    }

    /// Open an existing object; none is [`OpenError::NotFound`].
    pub fn open(self) -> Result<T, OpenError> {
        self.get(How::Open)
    }

    /// Open the object with this key, creating it if there is none (an
    /// existing set or segment smaller than the size asked for is
    /// [`OpenError::InvalidArgument`]).
    pub fn create_or_open(self) -> Result<T, OpenError> {
        self.get(How::CreateOrOpen)
    }

    fn get(self, how: How) -> Result<T, OpenError> {
        let (key, size) = (
            self.key.0,
            if how == How::Open {
                T::Size::default()
            } else {
                self.size
            },
        );
        let id = self.obtain(how, T::KIND, |flags| T::get(key, size, flags))?;
        Ok(T::from_parts(id, self.registry)?)
    }

    /// How big a created object is (see [`Builder::len`],
    /// [`Builder::size`]).
    fn with_size(mut self, size: T::Size) -> Self {
        self.size = size;
        self
    }

    /// Permission bits of a created object (`& 0o777`; default 0600).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Record a created object in `registry` instead of the default one.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Get the object's id with `get(flags)`. Create-or-open tries an
    /// exclusive creation first, so that only a process that really created
    /// the object records itself as its owner.
    fn obtain(
        &self,
        how: How,
        kind: Kind,
        get: impl Fn(i32) -> io::Result<i32>,
    ) -> Result<i32, OpenError> {
        let create = sys::IPC_CREAT | sys::IPC_EXCL | self.mode as i32;
        if how == How::Open {
            return Ok(get(0)?);
        }
        loop {
            match get(create) {
                Ok(id) => {
                    self.record(kind, id);
                    return Ok(id);
                }
                Err(e) if how == How::CreateOrOpen && e.raw_os_error() == Some(errno::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
            match get(0) {
                Ok(id) => return Ok(id),
                // Removed between the two calls: try to create it again.
                Err(e) if e.raw_os_error() == Some(errno::ENOENT) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Record a created object (best effort: a registry that cannot be
    /// written never stops a creation).
    fn record(&self, kind: Kind, id: i32) {
        let name = id.to_string();
        let _ = match &self.registry {
            Some(r) => r.record(kind, &name),
            None => registry::record(kind, &name),
        };
    }
}

/// Forget a removed object's record (best effort).
pub(super) fn forget(registry: &Option<Registry>, kind: Kind, id: i32) {
    let name = id.to_string();
    let _ = match registry {
        Some(r) => r.forget(kind, &name),
        None => registry::forget(kind, &name),
    };
}

/// `EINVAL` or `EIDRM` from a call on an id: the object is gone.
pub(super) fn is_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(errno::EINVAL) | Some(errno::EIDRM))
}

/// How a call waits.
#[derive(Debug, Clone, Copy)]
pub(super) enum Wait {
    Block,
    Never,
    Until(Instant),
}

impl Wait {
    fn timeout(t: Duration) -> Wait {
        // A deadline that does not fit is no deadline.
        Instant::now()
            .checked_add(t)
            .map_or(Wait::Block, Wait::Until)
    }
}

/// The backoff of the polling `_timeout` forms of message queues.
pub(super) fn backoff() -> Backoff {
    Backoff::new(Duration::from_micros(20), Duration::from_millis(5))
}

// ----- registry support ------------------------------------------------------

/// One kind of System V object, for [`crate::names`]: named by its id
/// (decimal).
pub(crate) struct SysvObjects(Kind);

/// The table entry of System V message queues.
pub(crate) static SYSV_MESSAGE_QUEUES: SysvObjects = SysvObjects(Kind::SysvMsg);
/// The table entry of System V semaphore sets.
pub(crate) static SYSV_SEMAPHORE_SETS: SysvObjects = SysvObjects(Kind::SysvSem);
/// The table entry of System V shared-memory segments.
pub(crate) static SYSV_SHARED_MEMORY: SysvObjects = SysvObjects(Kind::SysvShm);

impl NamedKind for SysvObjects {
    fn kind(&self) -> Kind {
        self.0
    }
    fn exists(&self, name: &str) -> bool {
        let Ok(id) = name.parse::<i32>() else {
            return false;
        };
        let r = match self.0 {
            Kind::SysvMsg => sys::msg_stat(id).map(drop),
            Kind::SysvSem => sys::sem_stat(id).map(drop),
            _ => sys::shm_stat(id).map(drop),
        };
        match r {
            Ok(()) => true,
            Err(e) => !is_gone(&e),
        }
    }
    /// `IPC_RMID` by id; one that is gone is `NotFound`.
    fn remove(&self, name: &str) -> io::Result<()> {
        let id = name
            .parse::<i32>()
            .map_err(|_| io::Error::new(io::ErrorKind::NotFound, "not a System V id"))?;
        let r = match self.0 {
            Kind::SysvMsg => sys::msg_remove(id),
            Kind::SysvSem => sys::sem_remove(id),
            _ => sys::shm_remove(id),
        };
        match r {
            Err(e) if is_gone(&e) => Err(io::Error::new(io::ErrorKind::NotFound, e)),
            r => r,
        }
    }
}
