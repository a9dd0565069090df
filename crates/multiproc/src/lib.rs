//! multiproc: inter-process communication in the shape of Python's
//! `multiprocessing`, without its hangs, leaks and pickle.
//!
//! # Hello, world!
//!
//! The seeds' pipe program: a parent produces, a child consumes until end of
//! file.
//!
//! ```no_run
//! use multiproc::{Connection, Process, RecvError, pipe};
//!
//! fn consumer(rx: Connection<i32>) {
//!     let mut rx = rx;
//!     loop {
//!         match rx.recv() {
//!             Ok(n) => println!("consumer got {n}"),
//!             Err(RecvError::Eof) => break,
//!             Err(e) => panic!("{e}"),
//!         }
//!     }
//! }
//!
//! fn main() {
//!     multiproc::init(); // a spawned child runs its target here and exits
//!     let (rx, mut tx) = pipe::<i32>().unwrap();
//!     let mut child = Process::spawn(consumer, rx).unwrap(); // rx moves to the child
//!     for i in 0..10 {
//!         tx.send(&i).unwrap();
//!     }
//!     drop(tx); // the last write end closes: the child sees EOF
//!     child.join().unwrap();
//! }
//! ```
//!
//! # What is here
//!
//! - [`Process`]: spawn (re-exec, safe with threads) or fork; `join` hands
//!   back the target's return value; exit codes like Python's; daemons that
//!   die with their parent.
//! - [`Pool`]: a process pool where a dead, hung or panicking worker fails
//!   only its own task ([`TaskError`]) and is replaced.
//! - [`pipe`] and [`duplex`]: [`Connection`]s carrying serde values and raw
//!   byte messages in Python's framing. Handles (connections, [`Fd`]s) travel
//!   inside messages over duplex connections and in spawn arguments.
//!
//! - Shared memory and synchronization: [`Lock`], [`RLock`], [`Semaphore`],
//!   [`BoundedSemaphore`], [`Event`], [`Condition`], [`Barrier`],
//!   [`Value`], [`Array`], [`RawValue`], [`RawArray`], [`SharedMemory`].
//!   Each is a sealed memfd: a handle like any other, freed by the kernel
//!   with its last user. Locks detect a dead owner
//!   ([`AcquireError::OwnerDied`]); barriers break when a party dies.
//! - Queues: [`Queue`], [`SimpleQueue`], [`JoinableQueue`], multi-producer
//!   multi-consumer in a shared-memory ring.
//! - The operating system's IPC objects, in [`os`]: [`Fifo`] (named pipes),
//!   [`os::posix::MessageQueue`], [`os::sysv::MessageQueue`],
//!   [`os::sysv::SemaphoreSet`], [`os::sysv::SharedMemory`], and
//!   [`os::signal`]s.
//! - [`connection::Listener`] and [`connection::Client`]: connections over
//!   Unix sockets and TCP, authenticated with Python's challenge (HMAC-SHA256,
//!   or MD5 for Python 3.11 peers when allowed); [`connection::wait`].
//! - [`names`]: owner records of named kernel objects, for `multiproc ls`
//!   and `multiproc clean`.
//!
//! # Naming convention
//!
//! Every blocking operation `x` comes in four forms, all over one private
//! core that takes an `Option<Instant>`. The blocking form's error `E` says
//! only what can go wrong however long it waits; each other form adds its
//! one way of giving up, and nothing else ([`error`]):
//!
//! | form | waits | returns |
//! |---|---|---|
//! | `x()` | as long as it takes | `Result<_, E>` |
//! | `try_x()` | never | `Result<_, TryError<E>>` ([`TryError::WouldBlock`]) |
//! | `x_timeout(Duration)` | at most that long | `Result<_, TimeoutError<E>>` ([`TimeoutError::Timeout`]) |
//! | `x_deadline(Instant)` | until that instant | `Result<_, TimeoutError<E>>` |
//!
//! So a blocking [`Lock::lock`] can only report [`AcquireError::OwnerDied`]
//! or `NotRecoverable`, and [`Queue::get`] only a closed queue or a bad
//! item; `try_get` adds `WouldBlock` (Python's `queue.Empty`). An operation
//! that takes its item by value hands it back in every error
//! ([`TrySendError::Full`], [`SendTimeoutError::Timeout`], and `E`'s own
//! `into_inner`, as [`PutError::into_inner`]). Modules name the pairs they
//! use: [`TryGetError`], [`PutTimeoutError`], [`TryRecvError`],
//! [`LockTimeoutError`], …
//!
//! `Duration::MAX` (or any timeout past what the clock can represent)
//! means "no timeout". Where Python (or std) returns a flag or an option,
//! so does the form: [`Event::wait_timeout`] and
//! [`Semaphore::acquire_timeout`] return `bool`, [`Process::try_wait`] an
//! `Option`. A condition wait and a barrier wait have no `try` form (a
//! wait for a notification still to come, a party that does not wait), and
//! [`SimpleQueue`] keeps Python's two blocking calls. The `forms` test
//! compiles the table of every operation's forms.
//!
//! Values are typed by default and raw with `_bytes`: [`Queue::put`] and
//! [`Queue::put_bytes`], [`Connection::recv`] and
//! [`Connection::recv_bytes`], [`os::posix::MessageQueue::send`] and
//! [`os::posix::MessageQueue::send_bytes`], [`os::sysv::MessageQueue::recv`]
//! and [`os::sysv::MessageQueue::recv_bytes`].
//!
//! # Handles
//!
//! A handle is a file descriptor. Moving a handle into a spawned process's
//! argument gives the child its own descriptor; the parent's copy is closed
//! once the child has started. Sending a handle in a message gives the
//! receiver a copy and leaves the sender's in place. End of file is seen
//! when every copy of the writing end is closed, in every process.
//!
//! # What multiproc does not do
//!
//! - No pickle and no code from the wire: messages are plain serde data.
//! - No silent fork of a multi-threaded process.

#![expect(
    clippy::needless_doctest_main,
    reason = "the examples show `multiproc::init()` as the first line of `main`"
)]

pub mod aio;
#[cfg(feature = "baseline")]
pub mod baseline;
pub mod connection;
mod deadline;
mod env;
pub mod error;
#[doc(hidden)]
pub mod failpoint;
pub mod manager;
pub mod names;
pub mod os;
pub mod pool;
pub mod process;
pub mod queue;
#[cfg(feature = "redis")]
pub mod redis;
pub mod shared;
pub mod sync;

#[cfg(feature = "tokio")]
pub use connection::ConnectionStream;
pub use connection::codec::Fd;
pub use connection::{
    Connection, RecvError, RecvTimeoutError, SendError, TryRecvError, duplex, pipe,
};
pub use error::{HandsBack, SendTimeoutError, TimeoutError, TryError, TrySendError};
pub use manager::{Manager, ManagerError};
pub use os::fifo::{Fifo, FifoError};
pub use pool::{OnWorkerDeath, Pool, PoolBuilder, PoolError, Task, TaskError};
pub use process::{
    Builder, ChildPanic, OnDrop, Process, ProcessError, StartMethod, current_process_name, init,
};
pub use queue::{
    ByteBatch, GetError, GetTimeoutError, JoinError, JoinableQueue, PutError, PutTimeoutError,
    Queue, QueueBuilder, SimpleQueue, TaskDoneError, TryGetError, TryPutError,
};
pub use shared::segment::SegmentError;
pub use shared::shared_memory::SharedMemory;
pub use shared::{Array, ArrayGuard, RawArray, RawValue, SharedError, Value, ValueGuard};
pub use sync::{
    AcquireError, AsyncConditionGuard, Barrier, BarrierWaitError, BoundedSemaphore,
    BrokenBarrierError, Condition, ConditionGuard, Event, Lock, LockGuard, LockTimeoutError, RLock,
    RLockGuard, ReleaseError, Semaphore, TryLockError, WaitError,
};
