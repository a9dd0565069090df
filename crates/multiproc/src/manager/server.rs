//! The manager server: an object table, one thread per connection, and the
//! built-in objects' server-side implementations.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::protocol::{
    HEARTBEAT, ObjectKind, Owner, PROTOCOL_VERSION, RemoteError, Request, Response, ServerStats,
    max_frame,
};
use super::value::DataValue;
use crate::connection::{Address, Listener};
use crate::{Connection, RecvError};

/// Why a user type's method failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The arguments do not fit the method.
    #[error("bad arguments: {0}")]
    BadArguments(String),
    /// The method ran and failed.
    #[error("{0}")]
    Failed(String),
}

/// A user type served by a manager: Python's `BaseManager.register`, with
/// the code compiled into the server and reached only by allow-listed
/// method names.
///
/// ```
/// use multiproc::manager::{CallError, DataValue, ManagedObject, from_value, to_value};
///
/// struct Accumulator(i64);
///
/// impl ManagedObject for Accumulator {
///     fn methods(&self) -> &'static [&'static str] {
///         &["add", "total"]
///     }
///     fn call(&mut self, method: &str, args: DataValue) -> Result<DataValue, CallError> {
///         match method {
///             "add" => {
///                 let n: i64 = from_value(args).map_err(|e| CallError::BadArguments(e.to_string()))?;
///                 self.0 += n;
///                 Ok(DataValue::Int(self.0))
///             }
///             "total" => Ok(DataValue::Int(self.0)),
///             _ => unreachable!("only allow-listed names are dispatched"),
///         }
///     }
/// }
/// ```
pub trait ManagedObject: Send + 'static {
    /// The methods clients may call; any other name is refused with
    /// [`RemoteError::UnknownMethod`] before [`call`](Self::call) runs.
    fn methods(&self) -> &'static [&'static str];

    /// Run `method` (one of [`methods`](Self::methods)) with `args`.
    fn call(&mut self, method: &str, args: DataValue) -> Result<DataValue, CallError>;
}

/// Makes a user object from the client's creation argument.
pub type Factory = fn(DataValue) -> Result<Box<dyn ManagedObject>, CallError>;

/// The user types a server can create, by name.
#[derive(Clone, Default)]
pub struct TypeRegistry {
    types: HashMap<String, Factory>,
}

impl fmt::Debug for TypeRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.types.keys().collect();
        names.sort();
        f.debug_struct("TypeRegistry")
            .field("types", &names)
            .finish()
    }
}

impl TypeRegistry {
    /// An empty registry.
    pub fn new() -> TypeRegistry {
        TypeRegistry::default()
    }

    /// Serve type `name`, made by `factory`.
    pub fn register(&mut self, name: &str, factory: Factory) -> &mut Self {
        self.types.insert(name.to_owned(), factory);
        self
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.types.contains_key(name)
    }
}

// ----- server-side state -------------------------------------------------------

#[derive(Debug, Default)]
struct LockState {
    owner: Option<Owner>,
    count: u32,
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
    fn try_take(&mut self, who: Owner) -> bool {
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

    fn release(&mut self, who: Owner) -> Result<(), RemoteError> {
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

struct QueueState {
    items: VecDeque<DataValue>,
    maxsize: usize,
    unfinished: u64,
}

struct BarrierState {
    parties: u64,
    count: u64,
    /// Ends by completion or by `reset`.
    generation: u64,
    broken: bool,
    /// Recent generations ended by `reset` (their waiters get
    /// `BrokenBarrier`), newest last.
    reset_generations: VecDeque<u64>,
}

/// How many reset generations a barrier remembers.
const RESETS_KEPT: usize = 64;

struct CondState {
    lock: LockState,
    waiters: VecDeque<u64>,
    notified: HashSet<u64>,
    next_ticket: u64,
}

enum State {
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

struct Object {
    kind: String,
    builtin: Option<ObjectKind>,
    state: Mutex<State>,
    cv: Condvar,
}

impl Object {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Entry {
    obj: Arc<Object>,
    refs: u64,
}

/// A reference lent to a proxy in flight to another process.
struct Loan {
    session: u64,
    id: u64,
    /// When the lender's session ended (the loan then lasts [`LOAN_GRACE`]).
    orphaned: Option<Instant>,
}

/// How long a loan outlives its lender's session: a child that returns a
/// proxy and exits must not free the object before the parent claims it.
const LOAN_GRACE: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Table {
    objects: HashMap<u64, Entry>,
    next_id: u64,
    /// References each live session holds: object id -> count.
    sessions: HashMap<u64, HashMap<u64, u64>>,
    /// Loans: token -> loan.
    loans: HashMap<u64, Loan>,
    next_token: u64,
    names: HashMap<String, u64>,
}

impl Table {
    /// Drop the loans orphaned longer than [`LOAN_GRACE`] ago.
    fn sweep_loans(&mut self, now: Instant) {
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

    fn add_ref(&mut self, session: u64, id: u64) -> Result<(), RemoteError> {
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
    fn drop_ref(&mut self, id: u64) {
        if let Some(e) = self.objects.get_mut(&id) {
            e.refs = e.refs.saturating_sub(1);
            if e.refs == 0 {
                if let Some(e) = self.objects.remove(&id) {
                    e.obj.cv.notify_all();
                }
            }
        }
    }

    fn insert(&mut self, session: u64, obj: Object) -> Result<u64, RemoteError> {
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

struct Shared {
    types: TypeRegistry,
    table: Mutex<Table>,
    shutdown: AtomicBool,
    connections: AtomicU64,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn object(&self, id: u64) -> Result<Arc<Object>, RemoteError> {
        self.table()
            .objects
            .get(&id)
            .map(|e| e.obj.clone())
            .ok_or(RemoteError::UnknownObject(id))
    }

    /// A session's primary connection closed: release its locks, loans and
    /// references.
    fn end_session(&self, session: u64) {
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

    fn stats(&self) -> ServerStats {
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

fn kind_name(kind: ObjectKind) -> &'static str {
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

fn type_err(msg: impl Into<String>) -> RemoteError {
    RemoteError::Type(msg.into())
}

fn as_count(v: &DataValue, what: &str) -> Result<u64, RemoteError> {
    match v {
        DataValue::Null => Ok(0),
        v => v
            .as_i64()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| type_err(format!("{what} must be a non-negative integer"))),
    }
}

fn new_state(kind: ObjectKind, init: DataValue) -> Result<State, RemoteError> {
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

// ----- calls -------------------------------------------------------------------

/// Checks, between waits, that the client is still there and tells it the
/// server is.
trait Tick {
    /// `Err` ends the wait: [`RemoteError::Cancelled`] when the client
    /// asked to stop, [`RemoteError::ShuttingDown`] when the server stops or
    /// the client is gone.
    fn tick(&mut self) -> Result<(), RemoteError>;
}

/// A call being served: the object, the caller, its deadline.
struct Call<'a> {
    obj: &'a Object,
    owner: Owner,
    deadline: Option<Instant>,
    tick: &'a mut dyn Tick,
}

/// How often a waiting call looks at its client (a cancel takes effect
/// within this).
const SLICE: Duration = Duration::from_millis(20);

impl Call<'_> {
    /// Run `attempt` under the object's lock until it gives a result,
    /// waiting on the object's condvar in between (up to the deadline).
    fn wait_for<R>(
        &mut self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&mut State) -> Result<Option<R>, RemoteError>,
    ) -> Result<R, RemoteError> {
        loop {
            let mut st = self.obj.lock();
            if let Some(r) = attempt(&mut st)? {
                drop(st);
                self.obj.cv.notify_all();
                return Ok(r);
            }
            let now = Instant::now();
            let slice = match deadline {
                Some(d) if now >= d => return Err(RemoteError::Timeout),
                Some(d) => (d - now).min(SLICE),
                None => SLICE,
            };
            let (st, _) = self
                .obj
                .cv
                .wait_timeout(st, slice)
                .unwrap_or_else(|e| e.into_inner());
            drop(st);
            self.tick.tick()?;
        }
    }
}

fn arg(args: &[DataValue], i: usize) -> Result<&DataValue, RemoteError> {
    args.get(i)
        .ok_or_else(|| type_err(format!("missing argument {}", i + 1)))
}

fn int_arg(args: &[DataValue], i: usize) -> Result<i64, RemoteError> {
    let a = arg(args, i)?;
    a.as_i64().ok_or_else(|| {
        type_err(format!(
            "argument {} must be an integer, not {}",
            i + 1,
            a.type_name()
        ))
    })
}

/// Python-style index: negative counts from the end.
fn index(len: usize, i: i64) -> Result<usize, RemoteError> {
    let len_i = i64::try_from(len).map_err(|_| RemoteError::Index)?;
    let j = if i < 0 { i + len_i } else { i };
    if (0..len_i).contains(&j) {
        Ok(j as usize)
    } else {
        Err(RemoteError::Index)
    }
}

fn incr(slot: &mut DataValue, delta: &DataValue) -> Result<DataValue, RemoteError> {
    let new = match (&*slot, delta) {
        (DataValue::Float(a), d) => DataValue::Float(
            a + match d {
                DataValue::Float(f) => *f,
                d => d
                    .as_i64()
                    .ok_or_else(|| type_err("delta must be a number"))? as f64,
            },
        ),
        (DataValue::Null | DataValue::Int(_) | DataValue::UInt(_), DataValue::Float(f)) => {
            let a = if *slot == DataValue::Null {
                0
            } else {
                slot.as_i64().ok_or(RemoteError::Overflow)?
            };
            DataValue::Float(a as f64 + f)
        }
        (DataValue::Null | DataValue::Int(_) | DataValue::UInt(_), d) => {
            let a = if *slot == DataValue::Null {
                0
            } else {
                slot.as_i64().ok_or(RemoteError::Overflow)?
            };
            let d = d
                .as_i64()
                .ok_or_else(|| type_err("delta must be a number"))?;
            DataValue::Int(a.checked_add(d).ok_or(RemoteError::Overflow)?)
        }
        (other, _) => {
            return Err(type_err(format!("cannot add to a {}", other.type_name())));
        }
    };
    *slot = new.clone();
    Ok(new)
}

/// `Some(v)` / `None` on the wire: a list of zero or one element.
fn opt(v: Option<DataValue>) -> DataValue {
    DataValue::List(v.into_iter().collect())
}

fn len_value(n: usize) -> DataValue {
    DataValue::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn ordered(map: &HashMap<DataValue, (u64, DataValue)>) -> Vec<(&DataValue, &DataValue)> {
    let mut v: Vec<(&DataValue, &(u64, DataValue))> = map.iter().collect();
    v.sort_by_key(|(_, (seq, _))| *seq);
    v.into_iter().map(|(k, (_, v))| (k, v)).collect()
}

fn pairs_of(v: &DataValue) -> Result<Vec<(DataValue, DataValue)>, RemoteError> {
    match v {
        DataValue::Map(m) => Ok(m.clone()),
        DataValue::List(l) => l
            .iter()
            .map(|p| match p.as_list() {
                Some([k, v]) => Ok((k.clone(), v.clone())),
                _ => Err(type_err("expected (key, value) pairs")),
            })
            .collect(),
        other => Err(type_err(format!(
            "cannot update from {}",
            other.type_name()
        ))),
    }
}

fn unknown(kind: &str, method: &str) -> RemoteError {
    RemoteError::UnknownMethod {
        kind: kind.to_owned(),
        method: method.to_owned(),
    }
}

fn call_dict(
    map: &mut HashMap<DataValue, (u64, DataValue)>,
    seq: &mut u64,
    method: &str,
    args: &[DataValue],
) -> Result<DataValue, RemoteError> {
    let mut insert = |map: &mut HashMap<DataValue, (u64, DataValue)>,
                      k: DataValue,
                      v: DataValue| match map.get_mut(&k) {
        Some(slot) => Some(std::mem::replace(&mut slot.1, v)),
        None => {
            *seq += 1;
            map.insert(k, (*seq, v));
            None
        }
    };
    Ok(match method {
        "get" => opt(map.get(arg(args, 0)?).map(|e| e.1.clone())),
        "getitem" => map
            .get(arg(args, 0)?)
            .map(|e| e.1.clone())
            .ok_or(RemoteError::Key)?,
        "setitem" | "insert" => opt(insert(map, arg(args, 0)?.clone(), arg(args, 1)?.clone())),
        "delitem" => map
            .remove(arg(args, 0)?)
            .map(|e| e.1)
            .ok_or(RemoteError::Key)?,
        "pop" => opt(map.remove(arg(args, 0)?).map(|e| e.1)),
        "popitem" => {
            let last = map
                .iter()
                .max_by_key(|(_, (s, _))| *s)
                .map(|(k, _)| k.clone())
                .ok_or(RemoteError::Key)?;
            let (_, v) = map.remove(&last).ok_or(RemoteError::Key)?;
            DataValue::List(vec![last, v])
        }
        "contains" => DataValue::Bool(map.contains_key(arg(args, 0)?)),
        "len" => len_value(map.len()),
        "keys" => DataValue::List(ordered(map).into_iter().map(|(k, _)| k.clone()).collect()),
        "values" => DataValue::List(ordered(map).into_iter().map(|(_, v)| v.clone()).collect()),
        "items" | "copy" => DataValue::Map(
            ordered(map)
                .into_iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        "update" => {
            for (k, v) in pairs_of(arg(args, 0)?)? {
                insert(map, k, v);
            }
            DataValue::Null
        }
        "clear" => {
            map.clear();
            DataValue::Null
        }
        "setdefault" => {
            let k = arg(args, 0)?;
            match map.get(k) {
                Some(e) => e.1.clone(),
                None => {
                    let d = arg(args, 1)?.clone();
                    insert(map, k.clone(), d.clone());
                    d
                }
            }
        }
        "incr" => {
            let k = arg(args, 0)?;
            let delta = arg(args, 1)?;
            if !map.contains_key(k) {
                insert(map, k.clone(), DataValue::Int(0));
            }
            let slot = map.get_mut(k).ok_or(RemoteError::Key)?;
            incr(&mut slot.1, delta)?
        }
        _ => return Err(unknown("dict", method)),
    })
}

fn call_list(
    list: &mut Vec<DataValue>,
    method: &str,
    args: &[DataValue],
) -> Result<DataValue, RemoteError> {
    Ok(match method {
        "append" => {
            list.push(arg(args, 0)?.clone());
            DataValue::Null
        }
        "extend" => {
            let items = arg(args, 0)?
                .as_list()
                .ok_or_else(|| type_err("extend takes a list"))?;
            list.extend_from_slice(items);
            DataValue::Null
        }
        "getitem" => list[index(list.len(), int_arg(args, 0)?)?].clone(),
        "setitem" => {
            let i = index(list.len(), int_arg(args, 0)?)?;
            std::mem::replace(&mut list[i], arg(args, 1)?.clone())
        }
        "delitem" => {
            let i = index(list.len(), int_arg(args, 0)?)?;
            list.remove(i)
        }
        "pop" => {
            let i = match args.first() {
                None | Some(DataValue::Null) => -1,
                Some(_) => int_arg(args, 0)?,
            };
            let i = index(list.len(), i)?;
            list.remove(i)
        }
        "insert" => {
            let len = list.len() as i64;
            let i = int_arg(args, 0)?;
            let i = if i < 0 { (i + len).max(0) } else { i.min(len) };
            list.insert(i as usize, arg(args, 1)?.clone());
            DataValue::Null
        }
        "remove" => {
            let v = arg(args, 0)?;
            let i = list
                .iter()
                .position(|x| x == v)
                .ok_or_else(|| RemoteError::Value("list.remove(x): x not in list".into()))?;
            list.remove(i);
            DataValue::Null
        }
        "index" => {
            let v = arg(args, 0)?;
            len_value(
                list.iter()
                    .position(|x| x == v)
                    .ok_or_else(|| RemoteError::Value("x not in list".into()))?,
            )
        }
        "count" => {
            let v = arg(args, 0)?;
            len_value(list.iter().filter(|x| *x == v).count())
        }
        "contains" => DataValue::Bool(list.contains(arg(args, 0)?)),
        "len" => len_value(list.len()),
        "tolist" => DataValue::List(list.clone()),
        "clear" => {
            list.clear();
            DataValue::Null
        }
        "reverse" => {
            list.reverse();
            DataValue::Null
        }
        "sort" => {
            list.sort();
            DataValue::Null
        }
        "incr" => {
            let i = index(list.len(), int_arg(args, 0)?)?;
            incr(&mut list[i], arg(args, 1)?)?
        }
        _ => return Err(unknown("list", method)),
    })
}

fn call_ns(
    ns: &mut BTreeMap<String, DataValue>,
    method: &str,
    args: &[DataValue],
) -> Result<DataValue, RemoteError> {
    let name = |i| {
        arg(args, i)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| type_err("attribute names are strings"))
    };
    Ok(match method {
        "getattr" => ns.get(&name(0)?).cloned().ok_or(RemoteError::Key)?,
        "get" => opt(ns.get(&name(0)?).cloned()),
        "setattr" => {
            ns.insert(name(0)?, arg(args, 1)?.clone());
            DataValue::Null
        }
        "delattr" => ns.remove(&name(0)?).ok_or(RemoteError::Key)?,
        "contains" => DataValue::Bool(ns.contains_key(&name(0)?)),
        "items" => DataValue::Map(
            ns.iter()
                .map(|(k, v)| (DataValue::Str(k.clone()), v.clone()))
                .collect(),
        ),
        "incr" => {
            let slot = ns.entry(name(0)?).or_insert(DataValue::Int(0));
            incr(slot, arg(args, 1)?)?
        }
        _ => return Err(unknown("Namespace", method)),
    })
}

/// `acquire`/`release`/`locked` of a lock inside a state.
fn lock_of(st: &mut State) -> Option<&mut LockState> {
    match st {
        State::Lock(l) | State::Value(_, l) | State::Array(_, l) => Some(l),
        State::Condition(c) => Some(&mut c.lock),
        _ => None,
    }
}

fn lock_method(
    c: &mut Call<'_>,
    method: &str,
    args: &[DataValue],
) -> Option<Result<DataValue, RemoteError>> {
    let owner = c.owner;
    Some(match method {
        "acquire" => {
            let deadline = c.deadline;
            c.wait_for(deadline, |st| {
                Ok(lock_of(st).and_then(|l| l.try_take(owner).then_some(DataValue::Bool(true))))
            })
        }
        "release" => {
            let mut st = c.obj.lock();
            let r = lock_of(&mut st).map_or(Err(RemoteError::Index), |l| l.release(owner));
            drop(st);
            c.obj.cv.notify_all();
            r.map(|()| DataValue::Null)
        }
        "locked" => {
            let mut st = c.obj.lock();
            Ok(DataValue::Bool(
                lock_of(&mut st).is_some_and(|l| l.owner.is_some()),
            ))
        }
        _ => {
            let _ = args;
            return None;
        }
    })
}

fn dispatch(
    c: &mut Call<'_>,
    method: &str,
    args: Vec<DataValue>,
) -> Result<DataValue, RemoteError> {
    let kind = c.obj.kind.clone();
    let Some(builtin) = c.obj.builtin else {
        let mut st = c.obj.lock();
        let State::User(u) = &mut *st else {
            return Err(RemoteError::Protocol("corrupt object".into()));
        };
        if !u.methods().contains(&method) {
            return Err(unknown(&kind, method));
        }
        let arg = args.into_iter().next().unwrap_or(DataValue::Null);
        return u.call(method, arg).map_err(|e| match e {
            CallError::BadArguments(m) => RemoteError::Type(m),
            CallError::Failed(m) => RemoteError::User(m),
        });
    };
    match builtin {
        ObjectKind::Dict | ObjectKind::List | ObjectKind::Namespace => {
            let mut st = c.obj.lock();
            match &mut *st {
                State::Dict { map, seq } => call_dict(map, seq, method, &args),
                State::List(l) => call_list(l, method, &args),
                State::Namespace(ns) => call_ns(ns, method, &args),
                _ => Err(RemoteError::Protocol("corrupt object".into())),
            }
        }
        ObjectKind::Value | ObjectKind::Array => {
            if let Some(r) = lock_method(c, method, &args) {
                return r;
            }
            let mut st = c.obj.lock();
            match (&mut *st, method) {
                (State::Value(v, _), "get") => Ok(v.clone()),
                (State::Value(v, _), "set") => Ok(std::mem::replace(v, arg(&args, 0)?.clone())),
                (State::Value(v, _), "incr") => incr(v, arg(&args, 0)?),
                (State::Value(v, _), "compare_and_set") => {
                    if v == arg(&args, 0)? {
                        *v = arg(&args, 1)?.clone();
                        Ok(DataValue::Bool(true))
                    } else {
                        Ok(DataValue::Bool(false))
                    }
                }
                (State::Array(a, _), "getitem") => {
                    Ok(a[index(a.len(), int_arg(&args, 0)?)?].clone())
                }
                (State::Array(a, _), "setitem") => {
                    let i = index(a.len(), int_arg(&args, 0)?)?;
                    Ok(std::mem::replace(&mut a[i], arg(&args, 1)?.clone()))
                }
                (State::Array(a, _), "incr") => {
                    let i = index(a.len(), int_arg(&args, 0)?)?;
                    incr(&mut a[i], arg(&args, 1)?)
                }
                (State::Array(a, _), "len") => Ok(len_value(a.len())),
                (State::Array(a, _), "tolist") => Ok(DataValue::List(a.clone())),
                (State::Array(a, _), "setall") => {
                    let new = arg(&args, 0)?
                        .as_list()
                        .ok_or_else(|| type_err("setall takes a list"))?;
                    if new.len() != a.len() {
                        return Err(RemoteError::Value("an Array's length is fixed".into()));
                    }
                    a.clone_from_slice(new);
                    Ok(DataValue::Null)
                }
                _ => Err(unknown(&kind, method)),
            }
        }
        ObjectKind::Lock | ObjectKind::RLock => {
            lock_method(c, method, &args).unwrap_or_else(|| Err(unknown(&kind, method)))
        }
        ObjectKind::Queue | ObjectKind::JoinableQueue => {
            call_queue(c, builtin, &kind, method, args)
        }
        ObjectKind::Semaphore | ObjectKind::BoundedSemaphore => match method {
            "acquire" => {
                let deadline = c.deadline;
                c.wait_for(deadline, |st| match st {
                    State::Semaphore { value, .. } if *value > 0 => {
                        *value -= 1;
                        Ok(Some(DataValue::Bool(true)))
                    }
                    _ => Ok(None),
                })
            }
            "release" => {
                let n = match args.first() {
                    None | Some(DataValue::Null) => 1,
                    Some(v) => as_count(v, "n")?,
                };
                let mut st = c.obj.lock();
                let State::Semaphore { value, bound } = &mut *st else {
                    return Err(RemoteError::Protocol("corrupt object".into()));
                };
                let new = value.checked_add(n).ok_or(RemoteError::Overflow)?;
                if bound.is_some_and(|b| new > b) {
                    return Err(RemoteError::Release(
                        "semaphore released too many times".into(),
                    ));
                }
                *value = new;
                drop(st);
                c.obj.cv.notify_all();
                Ok(DataValue::Null)
            }
            "get_value" => match &*c.obj.lock() {
                State::Semaphore { value, .. } => {
                    Ok(DataValue::Int(i64::try_from(*value).unwrap_or(i64::MAX)))
                }
                _ => Err(RemoteError::Protocol("corrupt object".into())),
            },
            _ => Err(unknown(&kind, method)),
        },
        ObjectKind::Condition => call_condition(c, &kind, method, args),
        ObjectKind::Event => match method {
            "set" | "clear" => {
                if let State::Event(e) = &mut *c.obj.lock() {
                    *e = method == "set";
                }
                c.obj.cv.notify_all();
                Ok(DataValue::Null)
            }
            "is_set" => Ok(DataValue::Bool(matches!(
                &*c.obj.lock(),
                State::Event(true)
            ))),
            "wait" => {
                let deadline = c.deadline;
                c.wait_for(deadline, |st| {
                    Ok(matches!(st, State::Event(true)).then_some(DataValue::Bool(true)))
                })
            }
            _ => Err(unknown(&kind, method)),
        },
        ObjectKind::Barrier => call_barrier(c, &kind, method),
    }
}

fn call_queue(
    c: &mut Call<'_>,
    builtin: ObjectKind,
    kind: &str,
    method: &str,
    args: Vec<DataValue>,
) -> Result<DataValue, RemoteError> {
    let deadline = c.deadline;
    let joinable = builtin == ObjectKind::JoinableQueue;
    match method {
        "put" => {
            let mut item = Some(arg(&args, 0)?.clone());
            let r = c.wait_for(deadline, |st| {
                let State::Queue(q) = st else {
                    return Err(RemoteError::Protocol("corrupt object".into()));
                };
                if q.maxsize != 0 && q.items.len() >= q.maxsize {
                    return Ok(None);
                }
                q.items.extend(item.take());
                q.unfinished += 1;
                Ok(Some(DataValue::Null))
            });
            match r {
                Err(RemoteError::Timeout) => Err(RemoteError::Full),
                r => r,
            }
        }
        "get" => {
            let r = c.wait_for(deadline, |st| {
                let State::Queue(q) = st else {
                    return Err(RemoteError::Protocol("corrupt object".into()));
                };
                Ok(q.items.pop_front())
            });
            match r {
                Err(RemoteError::Timeout) => Err(RemoteError::Empty),
                r => r,
            }
        }
        "qsize" | "empty" | "full" => {
            let st = c.obj.lock();
            let State::Queue(q) = &*st else {
                return Err(RemoteError::Protocol("corrupt object".into()));
            };
            Ok(match method {
                "qsize" => len_value(q.items.len()),
                "empty" => DataValue::Bool(q.items.is_empty()),
                _ => DataValue::Bool(q.maxsize != 0 && q.items.len() >= q.maxsize),
            })
        }
        "task_done" if joinable => {
            let mut st = c.obj.lock();
            let State::Queue(q) = &mut *st else {
                return Err(RemoteError::Protocol("corrupt object".into()));
            };
            if q.unfinished == 0 {
                return Err(RemoteError::TaskDone);
            }
            q.unfinished -= 1;
            drop(st);
            c.obj.cv.notify_all();
            Ok(DataValue::Null)
        }
        "join" if joinable => c.wait_for(deadline, |st| {
            let State::Queue(q) = st else {
                return Err(RemoteError::Protocol("corrupt object".into()));
            };
            Ok((q.unfinished == 0).then_some(DataValue::Null))
        }),
        _ => Err(unknown(kind, method)),
    }
}

fn call_condition(
    c: &mut Call<'_>,
    kind: &str,
    method: &str,
    args: Vec<DataValue>,
) -> Result<DataValue, RemoteError> {
    if let Some(r) = lock_method(c, method, &args) {
        return r;
    }
    let owner = c.owner;
    match method {
        "notify" | "notify_all" => {
            let n = if method == "notify_all" {
                u64::MAX
            } else {
                match args.first() {
                    None | Some(DataValue::Null) => 1,
                    Some(v) => as_count(v, "n")?,
                }
            };
            let mut st = c.obj.lock();
            let State::Condition(cs) = &mut *st else {
                return Err(RemoteError::Protocol("corrupt object".into()));
            };
            if cs.lock.owner != Some(owner) {
                return Err(RemoteError::Release(
                    "cannot notify on un-acquired lock".into(),
                ));
            }
            let mut k = 0;
            while k < n {
                let Some(t) = cs.waiters.pop_front() else {
                    break;
                };
                cs.notified.insert(t);
                k += 1;
            }
            drop(st);
            c.obj.cv.notify_all();
            Ok(DataValue::Null)
        }
        "wait" => {
            // Release the lock entirely, remembering the recursion count.
            let (ticket, count) = {
                let mut st = c.obj.lock();
                let State::Condition(cs) = &mut *st else {
                    return Err(RemoteError::Protocol("corrupt object".into()));
                };
                if cs.lock.owner != Some(owner) {
                    return Err(RemoteError::Release(
                        "cannot wait on un-acquired lock".into(),
                    ));
                }
                let count = cs.lock.count;
                cs.lock.owner = None;
                cs.lock.count = 0;
                cs.next_ticket += 1;
                let t = cs.next_ticket;
                cs.waiters.push_back(t);
                (t, count)
            };
            c.obj.cv.notify_all();
            let deadline = c.deadline;
            let notified = c.wait_for(deadline, |st| {
                let State::Condition(cs) = st else {
                    return Err(RemoteError::Protocol("corrupt object".into()));
                };
                Ok(cs.notified.remove(&ticket).then_some(true))
            });
            // Cancelled: the caller takes the lock back before it hears
            // so (as Python's `wait` does on KeyboardInterrupt), unless a
            // notification reached it first: then the wait completed.
            let mut cancelled = false;
            let notified = match notified {
                Ok(b) => b,
                Err(e) => {
                    let mut st = c.obj.lock();
                    let State::Condition(cs) = &mut *st else {
                        return Err(RemoteError::Protocol("corrupt object".into()));
                    };
                    // A waiter that is gone must not swallow a notification.
                    cs.waiters.retain(|t| *t != ticket);
                    let notified = cs.notified.remove(&ticket);
                    match e {
                        RemoteError::Timeout => notified,
                        RemoteError::Cancelled if !notified => {
                            cancelled = true;
                            false
                        }
                        RemoteError::Cancelled => true,
                        e => return Err(e),
                    }
                }
            };
            // Take the lock back, however long that takes.
            c.wait_for(None, |st| {
                let State::Condition(cs) = st else {
                    return Err(RemoteError::Protocol("corrupt object".into()));
                };
                if cs.lock.owner.is_none() {
                    cs.lock.owner = Some(owner);
                    cs.lock.count = count;
                    Ok(Some(DataValue::Bool(notified)))
                } else {
                    Ok(None)
                }
            })
            .and_then(|v| {
                if cancelled {
                    Err(RemoteError::Cancelled)
                } else {
                    Ok(v)
                }
            })
        }
        _ => Err(unknown(kind, method)),
    }
}

fn call_barrier(c: &mut Call<'_>, kind: &str, method: &str) -> Result<DataValue, RemoteError> {
    let corrupt = || RemoteError::Protocol("corrupt object".into());
    match method {
        "wait" => {
            let (index, generation) = {
                let mut st = c.obj.lock();
                let State::Barrier(b) = &mut *st else {
                    return Err(corrupt());
                };
                if b.broken {
                    return Err(RemoteError::BrokenBarrier);
                }
                let index = b.count;
                b.count += 1;
                if b.count == b.parties {
                    b.count = 0;
                    b.generation += 1;
                    drop(st);
                    c.obj.cv.notify_all();
                    return Ok(DataValue::Int(index as i64));
                }
                (index, b.generation)
            };
            let deadline = c.deadline;
            let mut passed = |st: &mut State| {
                let State::Barrier(b) = st else {
                    return Err(corrupt());
                };
                if b.generation != generation {
                    if b.reset_generations.contains(&generation) {
                        Err(RemoteError::BrokenBarrier)
                    } else {
                        Ok(Some(DataValue::Int(index as i64)))
                    }
                } else if b.broken {
                    Err(RemoteError::BrokenBarrier)
                } else {
                    Ok(None)
                }
            };
            let r = c.wait_for(deadline, &mut passed);
            if matches!(r, Err(RemoteError::Cancelled)) {
                // The party leaves and the barrier holds (as multiproc's own
                // `Barrier` does on Ctrl-C), unless it passed or broke first.
                let mut st = c.obj.lock();
                return match passed(&mut st)? {
                    Some(v) => Ok(v),
                    None => {
                        if let State::Barrier(b) = &mut *st {
                            b.count = b.count.saturating_sub(1);
                        }
                        Err(RemoteError::Cancelled)
                    }
                };
            }
            if matches!(r, Err(RemoteError::Timeout | RemoteError::ShuttingDown)) {
                // A party that gives up (or dies) breaks the barrier, as in Python.
                if let State::Barrier(b) = &mut *c.obj.lock() {
                    if b.generation == generation {
                        b.broken = true;
                        b.count = b.count.saturating_sub(1);
                    }
                }
                c.obj.cv.notify_all();
                return match r {
                    Err(RemoteError::Timeout) => Err(RemoteError::BrokenBarrier),
                    r => r,
                };
            }
            r
        }
        "abort" | "reset" => {
            if let State::Barrier(b) = &mut *c.obj.lock() {
                if method == "abort" {
                    b.broken = true;
                } else {
                    // Waiters of this generation get `BrokenBarrier`, as in Python.
                    if b.count > 0 {
                        if b.reset_generations.len() == RESETS_KEPT {
                            b.reset_generations.pop_front();
                        }
                        b.reset_generations.push_back(b.generation);
                    }
                    b.generation += 1;
                    b.count = 0;
                    b.broken = false;
                }
            }
            c.obj.cv.notify_all();
            Ok(DataValue::Null)
        }
        "parties" | "n_waiting" | "broken" => {
            let st = c.obj.lock();
            let State::Barrier(b) = &*st else {
                return Err(corrupt());
            };
            Ok(match method {
                "parties" => DataValue::Int(b.parties as i64),
                "n_waiting" => DataValue::Int(b.count as i64),
                _ => DataValue::Bool(b.broken),
            })
        }
        _ => Err(unknown(kind, method)),
    }
}

// ----- connections -------------------------------------------------------------

struct ConnTick<'a> {
    rx: &'a mut Connection<Request>,
    tx: &'a mut Connection<Response>,
    last_beat: Instant,
    shared: &'a Shared,
}

impl Tick for ConnTick<'_> {
    fn tick(&mut self) -> Result<(), RemoteError> {
        if self.shared.shutdown.load(Ordering::Relaxed) {
            return Err(RemoteError::ShuttingDown);
        }
        // A client sends nothing while it waits for an answer but a
        // `Cancel`: anything else (end of file, mostly) means it is gone.
        match self.rx.try_recv() {
            Err(RecvError::Empty) => {}
            Ok(Request::Cancel) => return Err(RemoteError::Cancelled),
            _ => return Err(RemoteError::ShuttingDown),
        }
        if self.last_beat.elapsed() >= HEARTBEAT {
            self.last_beat = Instant::now();
            if self.tx.send(&Response::Pending).is_err() {
                return Err(RemoteError::ShuttingDown);
            }
        }
        Ok(())
    }
}

struct ConnCount<'a>(&'a AtomicU64);

impl Drop for ConnCount<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn serve_connection(shared: &Shared, mut rx: Connection<Request>, tcp: bool) {
    shared.connections.fetch_add(1, Ordering::Relaxed);
    let _count = ConnCount(&shared.connections);
    if tcp {
        // A TCP client that vanishes (no FIN, no RST) is noticed by the
        // kernel's probes; its session then ends like any other.
        let _ = multiproc_sys::net::set_keepalive(
            &rx,
            KEEPALIVE_IDLE,
            KEEPALIVE_INTERVAL,
            KEEPALIVE_PROBES,
        );
    }
    rx.set_max_message_size(max_frame());
    let Ok(mut tx) = rx.try_clone().map(|c| c.cast::<Response>()) else {
        return;
    };
    tx.set_max_message_size(max_frame());
    // Hello first.
    let (session, primary) = match rx.recv_timeout(super::protocol::HEARTBEAT_TIMEOUT) {
        Ok(Request::Hello {
            version,
            session,
            primary,
        }) => {
            if version != PROTOCOL_VERSION {
                let _ = tx.send(&Response::Error(RemoteError::Version {
                    server: PROTOCOL_VERSION,
                    client: version,
                }));
                return;
            }
            (session, primary)
        }
        Ok(_) => {
            let _ = tx.send(&Response::Error(RemoteError::Protocol(
                "expected Hello".into(),
            )));
            return;
        }
        Err(_) => return,
    };
    if primary {
        let mut t = shared.table();
        if t.sessions.contains_key(&session) {
            drop(t);
            let _ = tx.send(&Response::Error(RemoteError::Protocol(
                "session already has a primary connection".into(),
            )));
            return;
        }
        t.sessions.insert(session, HashMap::new());
    }
    if tx
        .send(&Response::Value(DataValue::Int(i64::from(
            PROTOCOL_VERSION,
        ))))
        .is_ok()
    {
        connection_loop(shared, session, &mut rx, &mut tx);
    }
    if primary {
        shared.end_session(session);
    }
}

fn connection_loop(
    shared: &Shared,
    session: u64,
    rx: &mut Connection<Request>,
    tx: &mut Connection<Response>,
) {
    loop {
        let req = match recv_request(rx) {
            Ok(r) => r,
            Err(RecvError::Decode(e)) => {
                // The frame was whole but is not a request: refuse it, keep going.
                if tx
                    .send(&Response::Error(RemoteError::Protocol(format!(
                        "bad request: {e}"
                    ))))
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        if matches!(req, Request::Cancel) {
            // The call it was meant for has answered already.
            continue;
        }
        let shutdown = matches!(req, Request::Shutdown);
        let resp = handle(shared, session, req, rx, tx);
        match tx.send(&resp) {
            Ok(()) => {}
            Err(crate::SendError::TooLarge { len, max }) => {
                // Nothing was written: say why instead of the answer.
                let e = RemoteError::TooLarge { len, max };
                if tx.send(&Response::Error(e)).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
        if shutdown {
            return;
        }
    }
}

/// TCP keepalive of server connections: a vanished client is dropped
/// after about idle + interval × probes (25 s).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_PROBES: u32 = 3;

/// How long a connection's thread looks for the next request before
/// sleeping on the socket (clients often call again at once).
const SPIN: Duration = Duration::from_micros(50);

fn recv_request(rx: &mut Connection<Request>) -> Result<Request, RecvError> {
    let spin_until = Instant::now() + SPIN;
    loop {
        match rx.try_recv() {
            Err(RecvError::Empty) if Instant::now() < spin_until => std::thread::yield_now(),
            Err(RecvError::Empty) => return rx.recv(),
            r => return r,
        }
    }
}

fn handle(
    shared: &Shared,
    session: u64,
    req: Request,
    rx: &mut Connection<Request>,
    tx: &mut Connection<Response>,
) -> Response {
    let result = match req {
        Request::Hello { .. } => Err(RemoteError::Protocol("Hello twice".into())),
        Request::Create { kind, init } => new_state(kind, init).and_then(|st| {
            shared
                .table()
                .insert(session, builtin_object(kind, st))
                .map(Response::Created)
        }),
        Request::CreateUser { type_name, args } => match shared.types.types.get(&type_name) {
            None => Err(RemoteError::UnknownType(type_name)),
            Some(factory) => factory(args)
                .map_err(|e| RemoteError::User(e.to_string()))
                .and_then(|u| {
                    shared
                        .table()
                        .insert(
                            session,
                            Object {
                                kind: type_name,
                                builtin: None,
                                state: Mutex::new(State::User(u)),
                                cv: Condvar::new(),
                            },
                        )
                        .map(Response::Created)
                }),
        },
        Request::Named { name, kind, init } => {
            let mut t = shared.table();
            match t.names.get(&name).copied() {
                Some(id) => match t.objects.get(&id) {
                    Some(e) if e.obj.builtin == Some(kind) => {
                        t.add_ref(session, id).map(|()| Response::Created(id))
                    }
                    Some(e) => Err(type_err(format!("{name:?} is a {}", e.obj.kind))),
                    None => Err(RemoteError::UnknownObject(id)),
                },
                None => new_state(kind, init).and_then(|st| {
                    let id = t.insert(session, builtin_object(kind, st))?;
                    t.names.insert(name, id);
                    if let Some(e) = t.objects.get_mut(&id) {
                        e.refs += 1;
                    }
                    Ok(Response::Created(id))
                }),
            }
        }
        Request::IncRef(id) => shared
            .table()
            .add_ref(session, id)
            .map(|()| Response::Value(DataValue::Null)),
        Request::DecRef(id) => {
            let mut t = shared.table();
            let held = t.sessions.get_mut(&session).and_then(|r| {
                let n = r.get_mut(&id)?;
                *n -= 1;
                if *n == 0 {
                    r.remove(&id);
                }
                Some(())
            });
            match held {
                Some(()) => {
                    t.drop_ref(id);
                    Ok(Response::Value(DataValue::Null))
                }
                None => Err(RemoteError::UnknownObject(id)),
            }
        }
        Request::Lend(id) => {
            let mut t = shared.table();
            if !t.sessions.contains_key(&session) {
                Err(RemoteError::Protocol(
                    "session has no primary connection".into(),
                ))
            } else if let Some(e) = t.objects.get_mut(&id) {
                e.refs += 1;
                t.next_token += 1;
                let token = t.next_token;
                t.loans.insert(
                    token,
                    Loan {
                        session,
                        id,
                        orphaned: None,
                    },
                );
                Ok(Response::Value(DataValue::Int(token as i64)))
            } else {
                Err(RemoteError::UnknownObject(id))
            }
        }
        Request::Claim { id, token } => {
            let mut t = shared.table();
            match t.loans.get(&token).map(|l| l.id) {
                Some(lent) if lent == id => match t.sessions.get_mut(&session) {
                    Some(r) => {
                        *r.entry(id).or_insert(0) += 1;
                        t.loans.remove(&token);
                        Ok(Response::Value(DataValue::Null))
                    }
                    None => Err(RemoteError::Protocol(
                        "session has no primary connection".into(),
                    )),
                },
                _ => t
                    .add_ref(session, id)
                    .map(|()| Response::Value(DataValue::Null)),
            }
        }
        Request::Call {
            id,
            method,
            args,
            timeout_ms,
            owner,
        } => shared.object(id).and_then(|obj| {
            // A timeout too long to represent is no timeout (never a panic).
            let deadline =
                timeout_ms.and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)));
            let mut tick = ConnTick {
                rx,
                tx,
                last_beat: Instant::now(),
                shared,
            };
            let mut call = Call {
                obj: &obj,
                owner,
                deadline,
                tick: &mut tick,
            };
            dispatch(&mut call, &method, args).map(Response::Value)
        }),
        Request::Stats => Ok(Response::Stats(shared.stats())),
        // Taken care of by `connection_loop` (and `ConnTick`).
        Request::Cancel => Err(RemoteError::Protocol(
            "Cancel with nothing to cancel".into(),
        )),
        Request::Shutdown => {
            shared.shutdown.store(true, Ordering::Relaxed);
            Ok(Response::Value(DataValue::Null))
        }
    };
    result.unwrap_or_else(Response::Error)
}

fn builtin_object(kind: ObjectKind, st: State) -> Object {
    Object {
        kind: kind_name(kind).to_owned(),
        builtin: Some(kind),
        state: Mutex::new(st),
        cv: Condvar::new(),
    }
}

// ----- the server --------------------------------------------------------------

/// A manager server: serves the built-in objects and registered user types
/// to authenticated clients, one thread per connection.
pub struct Server {
    listener: Arc<Listener>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("address", self.listener.address())
            .finish_non_exhaustive()
    }
}

/// Threads that accept connections. One is enough: the listener runs each
/// handshake on its own thread, so a client that connects and says nothing
/// holds up no one (and one address can keep at most
/// [`MAX_PREAUTH_PER_PEER`](crate::connection::MAX_PREAUTH_PER_PEER)
/// handshakes going).
const ACCEPTORS: usize = 1;

impl Server {
    /// Serve on `listener` (which does the authentication) with the
    /// built-in types and `types`.
    pub fn new(listener: Listener, types: TypeRegistry) -> Server {
        Server {
            listener: Arc::new(listener),
            shared: Arc::new(Shared {
                types,
                table: Mutex::new(Table::default()),
                shutdown: AtomicBool::new(false),
                connections: AtomicU64::new(0),
            }),
        }
    }

    /// The address clients connect to.
    pub fn address(&self) -> &Address {
        self.listener.address()
    }

    /// Serve until a client asks for shutdown. Connections still open then
    /// are served until the process exits or they close.
    pub fn serve(self) -> io::Result<()> {
        let mut acceptors = Vec::new();
        for i in 0..ACCEPTORS {
            let listener = self.listener.clone();
            let shared = self.shared.clone();
            acceptors.push(
                std::thread::Builder::new()
                    .name(format!("manager-accept-{i}"))
                    .spawn(move || accept_loop(&listener, &shared, i == 0))?,
            );
        }
        for a in acceptors {
            let _ = a.join();
        }
        Ok(())
    }
}

fn accept_loop(listener: &Arc<Listener>, shared: &Arc<Shared>, sweeper: bool) {
    while !shared.shutdown.load(Ordering::Relaxed) {
        if sweeper {
            shared.table().sweep_loans(Instant::now());
        }
        match listener.accept_timeout::<Request>(Duration::from_millis(100)) {
            Ok(conn) => {
                let shared = shared.clone();
                let tcp = listener.address().is_tcp();
                let _ = std::thread::Builder::new()
                    .name("manager-conn".into())
                    .spawn(move || serve_connection(&shared, conn, tcp));
            }
            Err(crate::connection::AcceptError::Timeout) => {}
            Err(e) if e.is_authentication() => {}
            Err(crate::connection::AcceptError::Io(_)) => {
                // Out of descriptors or memory: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => {}
        }
    }
}
