//! The objects a manager server holds: one file per built-in kind, and
//! [`user`], which serves the registered user types ([`ManagedObject`]s)
//! through the same trait.
//!
//! Each kind's file has its state, its typed operations (an `…Op` enum:
//! what a call means once its method name and arguments are read, with
//! their typed arguments and, for blocking ones, their timeout), the
//! [`ServerObject`] implementation that runs them, the [`Encode`] that turns
//! them back into a method name and arguments for the Rust proxies, and
//! unit tests that run them on the object itself, without a server.
//!
//! Method names are read in one place: each kind's
//! [`ServerObject::parse`], which [`AnyObject::call`] runs when a call
//! arrives; a name the kind does not have is
//! [`RemoteError::UnknownMethod`], arguments that do not fit are
//! [`RemoteError::Type`]. Past the parse only typed operations are
//! dispatched, on the one kind they were parsed for (there is no pairing of
//! an object with another kind's operation to get wrong).
//!
//! What may not live here: sockets, sessions, references, names and the
//! object table (`server/`), and the clients' Rust types (`proxies/`). An
//! object sees its own state, the caller's [`Owner`] and a [`Ctx`] to wait
//! with.

#[cfg(test)]
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::error::RemoteError;
use super::kind::ObjectKind;
use super::protocol::Owner;
use super::value::DataValue;

pub(crate) mod args;
mod array;
mod barrier;
mod condition;
mod dict;
mod event;
mod list;
mod lock;
mod namespace;
mod queue;
mod semaphore;
mod user;
mod value;

pub(crate) use args::{Args, Delta};
pub(crate) use array::ArrayOp;
pub(crate) use barrier::BarrierOp;
pub(crate) use condition::ConditionOp;
pub(crate) use dict::DictOp;
pub(crate) use event::EventOp;
pub(crate) use list::ListOp;
pub(crate) use lock::LockOp;
pub(crate) use namespace::NamespaceOp;
pub(crate) use queue::QueueOp;
pub(crate) use semaphore::SemaphoreOp;
pub use user::{CallError, Factory, ManagedObject, TypeRegistry};
pub(crate) use value::ValueOp;

/// What the server holds for an object of one kind: the typed operations
/// it takes, and how it runs them. The built-in kinds implement it, and so
/// does [`user::User`], the adapter of every [`ManagedObject`].
pub(crate) trait ServerObject: Send + Sized + 'static {
    /// A call, parsed.
    type Op;

    /// Read the call of `method` with `args` (and, for a blocking method,
    /// `timeout`: `None` waits as long as it takes) as one of this object's
    /// operations: `Ok(None)` when it has no method `method`, a
    /// [`RemoteError::Type`] when the arguments do not fit.
    fn parse(
        &self,
        method: &str,
        args: Args,
        timeout: Option<Duration>,
    ) -> Result<Option<Self::Op>, RemoteError>;

    /// Run `op` on the object in `cell`; a blocking operation waits through
    /// `cx`, with the lock released in between.
    fn apply(cell: &Cell<Self>, op: Self::Op, cx: &mut Ctx<'_>) -> Result<DataValue, RemoteError>;

    /// The session `session` ended: let go of what it holds (a lock);
    /// whether anything was released.
    fn release_session(&mut self, session: u64) -> bool {
        let _ = session;
        false
    }
}

/// An object's state behind its lock, and the condition variable its
/// blocking operations wait on.
#[derive(Debug)]
pub(crate) struct Cell<T> {
    state: Mutex<T>,
    cv: Condvar,
    /// Calls asleep in [`wait_for`](Cell::wait_for) now: unit tests wait
    /// on it instead of sleeping.
    #[cfg(test)]
    sleeping: AtomicUsize,
}

/// How often a waiting call looks at its client (a cancel takes effect
/// within this).
const SLICE: Duration = Duration::from_millis(20);

impl<T> Cell<T> {
    /// A cell holding `state`.
    pub(crate) fn new(state: T) -> Cell<T> {
        Cell {
            state: Mutex::new(state),
            cv: Condvar::new(),
            #[cfg(test)]
            sleeping: AtomicUsize::new(0),
        }
    }

    /// The state (a panic in another call does not poison it).
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls asleep in [`wait_for`](Cell::wait_for) now.
    #[cfg(test)]
    pub(crate) fn sleeping(&self) -> usize {
        // Ordering::Relaxed: a snapshot for tests; the state itself is
        // under the mutex.
        self.sleeping.load(Ordering::Relaxed)
    }

    /// Wake every waiter to look again.
    pub(crate) fn notify(&self) {
        self.cv.notify_all();
    }

    /// Run `attempt` under the lock until it gives a result, waiting on the
    /// condition variable in between, up to `deadline` (then
    /// [`RemoteError::Timeout`]); every slice of waiting asks `cx` whether
    /// to go on. Waiters are woken after a successful attempt.
    pub(crate) fn wait_for<R>(
        &self,
        cx: &mut Ctx<'_>,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&mut T) -> Result<Option<R>, RemoteError>,
    ) -> Result<R, RemoteError> {
        loop {
            let mut st = self.lock();
            if let Some(r) = attempt(&mut st)? {
                drop(st);
                self.notify();
                return Ok(r);
            }
            let now = Instant::now();
            let slice = match deadline {
                Some(d) if now >= d => return Err(RemoteError::Timeout),
                Some(d) => (d - now).min(SLICE),
                None => SLICE,
            };
            // Ordering::Relaxed: a count read only by `sleeping`.
            #[cfg(test)]
            self.sleeping.fetch_add(1, Ordering::Relaxed);
            let (st, _) = self
                .cv
                .wait_timeout(st, slice)
                .unwrap_or_else(|e| e.into_inner());
            #[cfg(test)]
            self.sleeping.fetch_sub(1, Ordering::Relaxed);
            drop(st);
            cx.tick.tick()?;
        }
    }
}

/// Checks, between waits, that the client is still there (and tells it the
/// server is).
pub(crate) trait Tick {
    /// `Err` ends the wait: [`RemoteError::Cancelled`] when the client
    /// asked to stop, [`RemoteError::ShuttingDown`] when the server stops
    /// or the client is gone.
    fn tick(&mut self) -> Result<(), RemoteError>;
}

/// What a running operation knows of its call: who calls (for lock
/// ownership), and how to check on the client while it waits.
pub(crate) struct Ctx<'a> {
    /// The calling thread.
    pub(crate) owner: Owner,
    tick: &'a mut dyn Tick,
}

impl<'a> Ctx<'a> {
    /// The context of a call by `owner`.
    pub(crate) fn new(owner: Owner, tick: &'a mut dyn Tick) -> Ctx<'a> {
        Ctx { owner, tick }
    }
}

/// An object's type: a built-in kind, or a registered user type's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A built-in kind.
    Builtin(ObjectKind),
    /// A user type.
    User(String),
}

impl Kind {
    /// The name errors use.
    pub(crate) fn name(&self) -> &str {
        match self {
            Kind::Builtin(k) => k.name(),
            Kind::User(name) => name,
        }
    }
}

/// An object of any kind, as the object table holds it.
pub(crate) trait AnyObject: Send + Sync {
    /// Its type.
    fn kind(&self) -> &Kind;

    /// Parse the call of `method` with `args` into one of the object's
    /// operations, and run it.
    fn call(
        &self,
        method: String,
        args: Vec<DataValue>,
        timeout: Option<Duration>,
        cx: &mut Ctx<'_>,
    ) -> Result<DataValue, RemoteError>;

    /// Release what the ended session `session` holds.
    fn end_session(&self, session: u64);

    /// Wake every waiter (the object is being freed).
    fn wake(&self);
}

/// A [`ServerObject`] with its type, behind its lock.
struct Held<T> {
    kind: Kind,
    cell: Cell<T>,
}

impl<T: ServerObject> AnyObject for Held<T> {
    fn kind(&self) -> &Kind {
        &self.kind
    }

    fn call(
        &self,
        method: String,
        args: Vec<DataValue>,
        timeout: Option<Duration>,
        cx: &mut Ctx<'_>,
    ) -> Result<DataValue, RemoteError> {
        let parsed = self.cell.lock().parse(&method, Args::new(args), timeout)?;
        let Some(op) = parsed else {
            return Err(RemoteError::UnknownMethod {
                kind: self.kind.name().to_owned(),
                method,
            });
        };
        T::apply(&self.cell, op, cx)
    }

    fn end_session(&self, session: u64) {
        let released = self.cell.lock().release_session(session);
        if released {
            self.cell.notify();
        }
    }

    fn wake(&self) {
        self.cell.notify();
    }
}

fn held<T: ServerObject>(kind: Kind, state: T) -> Arc<dyn AnyObject> {
    Arc::new(Held {
        kind,
        cell: Cell::new(state),
    })
}

/// A new built-in object of `kind` from `init` (see [`ObjectKind`]).
pub(crate) fn new_builtin(
    kind: ObjectKind,
    init: DataValue,
) -> Result<Arc<dyn AnyObject>, RemoteError> {
    let k = Kind::Builtin(kind);
    Ok(match kind {
        ObjectKind::Dict => held(k, dict::Dict::new(init)?),
        ObjectKind::List => held(k, list::List::new(init)?),
        ObjectKind::Namespace => held(k, namespace::Namespace::new(init)?),
        ObjectKind::Value => held(k, value::Value::new(init)),
        ObjectKind::Array => held(k, array::Array::new(init)?),
        ObjectKind::Queue => held(k, queue::Queue::new(init, false)?),
        ObjectKind::JoinableQueue => held(k, queue::Queue::new(init, true)?),
        ObjectKind::Lock => held(k, lock::Lock::new(false)),
        ObjectKind::RLock => held(k, lock::Lock::new(true)),
        ObjectKind::Semaphore => held(k, semaphore::Semaphore::new(init, false)?),
        ObjectKind::BoundedSemaphore => held(k, semaphore::Semaphore::new(init, true)?),
        ObjectKind::Condition => held(k, condition::Condition::new()),
        ObjectKind::Event => held(k, event::Event::new()),
        ObjectKind::Barrier => held(k, barrier::Barrier::new(init)?),
    })
}

/// An instance of the user type `type_name`.
pub(crate) fn new_user(type_name: String, object: Box<dyn ManagedObject>) -> Arc<dyn AnyObject> {
    held(Kind::User(type_name), user::User::new(object))
}

/// An operation as it travels: a method name, its positional arguments and,
/// for a blocking one, its timeout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WireCall {
    /// The method name.
    pub(crate) method: &'static str,
    /// The positional arguments.
    pub(crate) args: Vec<DataValue>,
    /// How long a blocking method may wait (`None`: as long as it takes).
    pub(crate) timeout: Option<Duration>,
}

impl WireCall {
    /// A call that does not block.
    pub(crate) fn new(method: &'static str, args: Vec<DataValue>) -> WireCall {
        WireCall {
            method,
            args,
            timeout: None,
        }
    }

    /// A blocking call.
    pub(crate) fn timed(
        method: &'static str,
        args: Vec<DataValue>,
        timeout: Option<Duration>,
    ) -> WireCall {
        WireCall {
            method,
            args,
            timeout,
        }
    }
}

/// A typed operation the Rust proxies send: its [`WireCall`], which the
/// kind's [`ServerObject::parse`] reads back as the same operation.
pub(crate) trait Encode {
    /// The method name, arguments and timeout.
    fn encode(self) -> WireCall;
}

/// Parse the call of `method` with `args` on a fresh object of every
/// built-in kind, and run what parses without waiting (for the fuzzer:
/// whatever the input, the answer is a value or a typed error).
pub(crate) fn fuzz_call(method: &str, args: &[DataValue]) {
    struct Stays;
    impl Tick for Stays {
        fn tick(&mut self) -> Result<(), RemoteError> {
            Ok(())
        }
    }
    let pair = || DataValue::List(vec![DataValue::Int(1), DataValue::Str("x".into())]);
    for kind in ObjectKind::ALL {
        let init = match kind {
            ObjectKind::Dict | ObjectKind::Namespace => {
                DataValue::Map(vec![(DataValue::Str("k".into()), DataValue::Int(1))])
            }
            ObjectKind::List | ObjectKind::Array | ObjectKind::Value => pair(),
            _ => DataValue::Int(2),
        };
        let Ok(obj) = new_builtin(kind, init) else {
            continue;
        };
        let owner = Owner {
            session: 1,
            thread: 1,
        };
        let mut tick = Stays;
        let _ = obj.call(
            method.to_owned(),
            args.to_vec(),
            Some(Duration::ZERO),
            &mut Ctx::new(owner, &mut tick),
        );
    }
}

/// Helpers of the kinds' unit tests: a context with a client that never
/// goes away, and the round trip of an operation through the wire form.
#[cfg(test)]
pub(crate) mod testing {
    use crate::manager::objects::*;

    /// A client that is always there and never cancels.
    pub(crate) struct Patient;

    impl Tick for Patient {
        fn tick(&mut self) -> Result<(), RemoteError> {
            Ok(())
        }
    }

    /// A client that cancels at its first check.
    pub(crate) struct Cancels;

    impl Tick for Cancels {
        fn tick(&mut self) -> Result<(), RemoteError> {
            Err(RemoteError::Cancelled)
        }
    }

    /// Wait until `cond` holds (at most ten seconds: a test that waits
    /// longer has failed).
    pub(crate) fn until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "never happened: {what}");
            std::thread::yield_now();
        }
    }

    /// The owner of thread `thread` of session 1.
    pub(crate) fn owner(thread: u64) -> Owner {
        Owner { session: 1, thread }
    }

    /// Parse the call of `method` with `args` on `obj`.
    pub(crate) fn parse<T: ServerObject>(
        obj: &T,
        method: &str,
        args: Vec<DataValue>,
    ) -> Result<Option<T::Op>, RemoteError> {
        obj.parse(method, Args::new(args), None)
    }

    /// Run `op` on `cell` as thread 1 of a patient client.
    pub(crate) fn run<T: ServerObject>(
        cell: &Cell<T>,
        op: T::Op,
    ) -> Result<DataValue, RemoteError> {
        run_as(cell, op, owner(1))
    }

    /// Run `op` on `cell` as `who`, for a patient client.
    pub(crate) fn run_as<T: ServerObject>(
        cell: &Cell<T>,
        op: T::Op,
        who: Owner,
    ) -> Result<DataValue, RemoteError> {
        let mut tick = Patient;
        T::apply(cell, op, &mut Ctx::new(who, &mut tick))
    }

    /// Every op in `ops` encodes to a call that `obj` parses back as the
    /// same op.
    pub(crate) fn round_trips<T>(obj: &T, ops: Vec<T::Op>)
    where
        T: ServerObject,
        T::Op: Encode + Clone + PartialEq + std::fmt::Debug,
    {
        for op in ops {
            let w = op.clone().encode();
            let back = obj
                .parse(w.method, Args::new(w.args.clone()), w.timeout)
                .unwrap_or_else(|e| panic!("{op:?} as {w:?}: {e}"))
                .unwrap_or_else(|| panic!("{op:?} as {w:?}: unknown method"));
            assert_eq!(back, op, "{w:?}");
        }
    }
}
