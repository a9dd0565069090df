//! The server's object table: every object's state (built-in kinds and user
//! objects), reference counts, loans, and the shared part of the server.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::manager::protocol::{ObjectKind, Owner, RemoteError, ServerStats};
use crate::manager::value::DataValue;

use super::user::{ManagedObject, TypeRegistry};

// ----- server-side state -------------------------------------------------------

#[derive(Debug, Default)]
pub(super) struct LockState {
    pub(super) owner: Option<Owner>,
    pub(super) count: u32,
    reentrant: bool,
}

impl LockState {
    fn new(reentrant: bool) -> Self {
        LockState {
            owner: None,
            count: 0,
            reentrant,
        }
    }

    /// Take it if free (or held by `who`, when reentrant).
    pub(super) fn try_take(&mut self, who: Owner) -> bool {
        match self.owner {
            None => {
                self.owner = Some(who);
                self.count = 1;
                true
            }
            Some(o) if self.reentrant && o == who => {
                self.count += 1;
                true
            }
            _ => false,
        }
    }

    pub(super) fn release(&mut self, who: Owner) -> Result<(), RemoteError> {
        match self.owner {
            None => Err(RemoteError::Release("release of an unlocked lock".into())),
            Some(o) if self.reentrant && o != who => Err(RemoteError::Release(
                "cannot release an RLock held by another thread".into(),
            )),
            Some(_) => {
                self.count -= 1;
                if self.count == 0 || !self.reentrant {
                    self.owner = None;
                    self.count = 0;
                }
                Ok(())
            }
        }
    }

    /// Release whatever `session` holds; whether anything was released.
    fn release_session(&mut self, session: u64) -> bool {
        if self.owner.is_some_and(|o| o.session == session) {
            self.owner = None;
            self.count = 0;
            true
        } else {
            false
        }
    }
}

pub(super) struct QueueState {
    pub(super) items: VecDeque<DataValue>,
    pub(super) maxsize: usize,
    pub(super) unfinished: u64,
}

pub(super) struct BarrierState {
    pub(super) parties: u64,
    pub(super) count: u64,
    /// Ends by completion or by `reset`.
    pub(super) generation: u64,
    pub(super) broken: bool,
    /// Recent generations ended by `reset` (their waiters get
    /// `BrokenBarrier`), newest last.
    pub(super) reset_generations: VecDeque<u64>,
}

/// How many reset generations a barrier remembers.
pub(super) const RESETS_KEPT: usize = 64;

pub(super) struct CondState {
    pub(super) lock: LockState,
    pub(super) waiters: VecDeque<u64>,
    pub(super) notified: HashSet<u64>,
    pub(super) next_ticket: u64,
}

pub(super) enum State {
    Dict {
        map: HashMap<DataValue, (u64, DataValue)>,
        seq: u64,
    },
    List(Vec<DataValue>),
    Namespace(BTreeMap<String, DataValue>),
    Value(DataValue, LockState),
    Array(Vec<DataValue>, LockState),
    Queue(QueueState),
    Lock(LockState),
    Semaphore {
        value: u64,
        bound: Option<u64>,
    },
    Condition(CondState),
    Event(bool),
    Barrier(BarrierState),
    User(Box<dyn ManagedObject>),
}

pub(super) struct Object {
    pub(super) kind: String,
    pub(super) builtin: Option<ObjectKind>,
    pub(super) state: Mutex<State>,
    pub(super) cv: Condvar,
}

impl Object {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(super) struct Entry {
    pub(super) obj: Arc<Object>,
    pub(super) refs: u64,
}

/// A reference lent to a proxy in flight to another process.
pub(super) struct Loan {
    pub(super) session: u64,
    pub(super) id: u64,
    /// When the lender's session ended (the loan then lasts [`LOAN_GRACE`]).
    pub(super) orphaned: Option<Instant>,
}

/// How long a loan outlives its lender's session: a child that returns a
/// proxy and exits must not free the object before the parent claims it.
pub(super) const LOAN_GRACE: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(super) struct Table {
    pub(super) objects: HashMap<u64, Entry>,
    next_id: u64,
    /// References each live session holds: object id -> count.
    pub(super) sessions: HashMap<u64, HashMap<u64, u64>>,
    /// Loans: token -> loan.
    pub(super) loans: HashMap<u64, Loan>,
    pub(super) next_token: u64,
    pub(super) names: HashMap<String, u64>,
}

impl Table {
    /// Drop the loans orphaned longer than [`LOAN_GRACE`] ago.
    pub(super) fn sweep_loans(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .loans
            .iter()
            .filter(|(_, l)| {
                l.orphaned
                    .is_some_and(|t| now.duration_since(t) >= LOAN_GRACE)
            })
            .map(|(k, _)| *k)
            .collect();
        for token in expired {
            if let Some(l) = self.loans.remove(&token) {
                self.drop_ref(l.id);
            }
        }
    }

    pub(super) fn add_ref(&mut self, session: u64, id: u64) -> Result<(), RemoteError> {
        let entry = self
            .objects
            .get_mut(&id)
            .ok_or(RemoteError::UnknownObject(id))?;
        let refs = self
            .sessions
            .get_mut(&session)
            .ok_or_else(|| RemoteError::Protocol("session has no primary connection".into()))?;
        entry.refs += 1;
        *refs.entry(id).or_insert(0) += 1;
        Ok(())
    }

    /// Drop one reference (already removed from its holder's books).
    pub(super) fn drop_ref(&mut self, id: u64) {
        if let Some(e) = self.objects.get_mut(&id) {
            e.refs = e.refs.saturating_sub(1);
            if e.refs == 0 {
                if let Some(e) = self.objects.remove(&id) {
                    e.obj.cv.notify_all();
                }
            }
        }
    }

    pub(super) fn insert(&mut self, session: u64, obj: Object) -> Result<u64, RemoteError> {
        if !self.sessions.contains_key(&session) {
            return Err(RemoteError::Protocol(
                "session has no primary connection".into(),
            ));
        }
        self.next_id += 1;
        let id = self.next_id;
        self.objects.insert(
            id,
            Entry {
                obj: Arc::new(obj),
                refs: 0,
            },
        );
        self.add_ref(session, id)?;
        Ok(id)
    }
}

pub(super) struct Shared {
    pub(super) types: TypeRegistry,
    pub(super) table: Mutex<Table>,
    pub(super) shutdown: AtomicBool,
    pub(super) connections: AtomicU64,
}

impl Shared {
    pub(super) fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn object(&self, id: u64) -> Result<Arc<Object>, RemoteError> {
        self.table()
            .objects
            .get(&id)
            .map(|e| e.obj.clone())
            .ok_or(RemoteError::UnknownObject(id))
    }

    /// A session's primary connection closed: release its locks, loans and
    /// references.
    pub(super) fn end_session(&self, session: u64) {
        let objects: Vec<Arc<Object>> = self
            .table()
            .objects
            .values()
            .map(|e| e.obj.clone())
            .collect();
        for obj in objects {
            let mut st = obj.lock();
            let released = match &mut *st {
                State::Lock(l) | State::Value(_, l) | State::Array(_, l) => {
                    l.release_session(session)
                }
                State::Condition(c) => c.lock.release_session(session),
                _ => false,
            };
            drop(st);
            if released {
                obj.cv.notify_all();
            }
        }
        let mut t = self.table();
        let refs = t.sessions.remove(&session).unwrap_or_default();
        for (id, n) in refs {
            for _ in 0..n {
                t.drop_ref(id);
            }
        }
        let now = Instant::now();
        for loan in t.loans.values_mut() {
            if loan.session == session {
                loan.orphaned = Some(now);
            }
        }
        t.sweep_loans(now);
    }

    pub(super) fn stats(&self) -> ServerStats {
        let mut t = self.table();
        t.sweep_loans(Instant::now());
        ServerStats {
            objects: t.objects.len() as u64,
            refs: t.objects.values().map(|e| e.refs).sum(),
            connections: self.connections.load(Ordering::Relaxed),
            sessions: t.sessions.len() as u64,
        }
    }
}

pub(super) fn kind_name(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Dict => "dict",
        ObjectKind::List => "list",
        ObjectKind::Namespace => "Namespace",
        ObjectKind::Value => "Value",
        ObjectKind::Array => "Array",
        ObjectKind::Queue => "Queue",
        ObjectKind::JoinableQueue => "JoinableQueue",
        ObjectKind::Lock => "Lock",
        ObjectKind::RLock => "RLock",
        ObjectKind::Semaphore => "Semaphore",
        ObjectKind::BoundedSemaphore => "BoundedSemaphore",
        ObjectKind::Condition => "Condition",
        ObjectKind::Event => "Event",
        ObjectKind::Barrier => "Barrier",
    }
}

pub(super) fn type_err(msg: impl Into<String>) -> RemoteError {
    RemoteError::Type(msg.into())
}

pub(super) fn as_count(v: &DataValue, what: &str) -> Result<u64, RemoteError> {
    match v {
        DataValue::Null => Ok(0),
        v => v
            .as_i64()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| type_err(format!("{what} must be a non-negative integer"))),
    }
}

pub(super) fn new_state(kind: ObjectKind, init: DataValue) -> Result<State, RemoteError> {
    Ok(match kind {
        ObjectKind::Dict => {
            let mut map = HashMap::new();
            let mut seq = 0;
            match init {
                DataValue::Null => {}
                DataValue::Map(pairs) => {
                    for (k, v) in pairs {
                        seq += 1;
                        map.insert(k, (seq, v));
                    }
                }
                other => return Err(type_err(format!("dict from {}", other.type_name()))),
            }
            State::Dict { map, seq }
        }
        ObjectKind::List => match init {
            DataValue::Null => State::List(Vec::new()),
            DataValue::List(l) => State::List(l),
            other => return Err(type_err(format!("list from {}", other.type_name()))),
        },
        ObjectKind::Namespace => {
            let mut ns = BTreeMap::new();
            match init {
                DataValue::Null => {}
                DataValue::Map(pairs) => {
                    for (k, v) in pairs {
                        let DataValue::Str(k) = k else {
                            return Err(type_err("Namespace field names are strings"));
                        };
                        ns.insert(k, v);
                    }
                }
                other => return Err(type_err(format!("Namespace from {}", other.type_name()))),
            }
            State::Namespace(ns)
        }
        ObjectKind::Value => State::Value(init, LockState::new(true)),
        ObjectKind::Array => match init {
            DataValue::List(l) => State::Array(l, LockState::new(true)),
            other => return Err(type_err(format!("Array from {}", other.type_name()))),
        },
        ObjectKind::Queue | ObjectKind::JoinableQueue => State::Queue(QueueState {
            items: VecDeque::new(),
            maxsize: usize::try_from(as_count(&init, "maxsize")?).unwrap_or(usize::MAX),
            unfinished: 0,
        }),
        ObjectKind::Lock => State::Lock(LockState::new(false)),
        ObjectKind::RLock => State::Lock(LockState::new(true)),
        ObjectKind::Semaphore => State::Semaphore {
            value: if init == DataValue::Null {
                1
            } else {
                as_count(&init, "value")?
            },
            bound: None,
        },
        ObjectKind::BoundedSemaphore => {
            let v = if init == DataValue::Null {
                1
            } else {
                as_count(&init, "value")?
            };
            State::Semaphore {
                value: v,
                bound: Some(v),
            }
        }
        ObjectKind::Condition => State::Condition(CondState {
            lock: LockState::new(true),
            waiters: VecDeque::new(),
            notified: HashSet::new(),
            next_ticket: 0,
        }),
        ObjectKind::Event => State::Event(false),
        ObjectKind::Barrier => {
            let parties = as_count(&init, "parties")?;
            if parties == 0 {
                return Err(RemoteError::Value(
                    "a barrier needs at least one party".into(),
                ));
            }
            State::Barrier(BarrierState {
                parties,
                count: 0,
                generation: 0,
                broken: false,
                reset_generations: VecDeque::new(),
            })
        }
    })
}
