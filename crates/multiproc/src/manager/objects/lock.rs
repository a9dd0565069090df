//! `Lock` and `RLock`, and the lock operations every kind with a lock shares
//! (`Value`, `Array`, `Condition`): `acquire`, `release`, `locked`.

use std::time::Duration;

use super::args::deadline;
use super::{Args, Cell, Ctx, Encode, ServerObject, WireCall};
use crate::manager::error::{ReleaseError, RemoteError};
use crate::manager::protocol::Owner;
use crate::manager::value::DataValue;

/// A lock's state: who holds it, how many times.
#[derive(Debug)]
pub(crate) struct LockState {
    pub(crate) owner: Option<Owner>,
    pub(crate) count: u64,
    reentrant: bool,
}

impl LockState {
    /// A free lock; `reentrant`: an `RLock` (its owner may take it again,
    /// and only its owner may release it).
    pub(crate) fn new(reentrant: bool) -> LockState {
        LockState {
            owner: None,
            count: 0,
            reentrant,
        }
    }

    /// Take it if free (or held by `who`, when reentrant).
    pub(crate) fn try_take(&mut self, who: Owner) -> bool {
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

    /// Release once (any thread may release a plain lock).
    pub(crate) fn release(&mut self, who: Owner) -> Result<(), ReleaseError> {
        match self.owner {
            None => Err(ReleaseError::Unlocked),
            Some(o) if self.reentrant && o != who => Err(ReleaseError::NotOwner),
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
    pub(crate) fn release_session(&mut self, session: u64) -> bool {
        if self.owner.is_some_and(|o| o.session == session) {
            self.owner = None;
            self.count = 0;
            true
        } else {
            false
        }
    }
}

/// An operation on a lock (of a `Lock`, `RLock`, `Value`, `Array` or
/// `Condition`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LockOp {
    /// `acquire`: take the lock, waiting at most `timeout`; `true`, or
    /// [`RemoteError::Timeout`].
    Acquire {
        /// How long to wait (`None`: as long as it takes).
        timeout: Option<Duration>,
    },
    /// `release`.
    Release,
    /// `locked`: whether anyone holds it.
    Locked,
}

impl LockOp {
    /// The lock operation called `method`, if it is one.
    pub(crate) fn parse(method: &str, timeout: Option<Duration>) -> Option<LockOp> {
        Some(match method {
            "acquire" => LockOp::Acquire { timeout },
            "release" => LockOp::Release,
            "locked" => LockOp::Locked,
            _ => return None,
        })
    }
}

impl Encode for LockOp {
    fn encode(self) -> WireCall {
        match self {
            LockOp::Acquire { timeout } => WireCall::timed("acquire", vec![], timeout),
            LockOp::Release => WireCall::new("release", vec![]),
            LockOp::Locked => WireCall::new("locked", vec![]),
        }
    }
}

/// An operation on a kind with a lock (`Value`, `Array`, `Condition`): a
/// lock operation, or one of the kind's own.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WithLock<O> {
    /// `acquire`, `release`, `locked`.
    Lock(LockOp),
    /// The kind's own.
    Own(O),
}

impl<O> WithLock<O> {
    /// The lock operation called `method`, or else the kind's own (`own`).
    pub(crate) fn parse(
        method: &str,
        timeout: Option<Duration>,
        own: impl FnOnce() -> Result<Option<O>, RemoteError>,
    ) -> Result<Option<WithLock<O>>, RemoteError> {
        match LockOp::parse(method, timeout) {
            Some(op) => Ok(Some(WithLock::Lock(op))),
            None => Ok(own()?.map(WithLock::Own)),
        }
    }
}

impl<O: Encode> Encode for WithLock<O> {
    fn encode(self) -> WireCall {
        match self {
            WithLock::Lock(op) => op.encode(),
            WithLock::Own(op) => op.encode(),
        }
    }
}

/// A state with a lock in it.
pub(crate) trait HasLock {
    /// The lock.
    fn lock_state(&mut self) -> &mut LockState;
}

/// Run a lock operation on the lock of the object in `cell`.
pub(crate) fn apply_lock<T: HasLock>(
    cell: &Cell<T>,
    op: LockOp,
    cx: &mut Ctx<'_>,
) -> Result<DataValue, RemoteError> {
    let owner = cx.owner;
    match op {
        LockOp::Acquire { timeout } => cell.wait_for(cx, deadline(timeout), |st| {
            Ok(st
                .lock_state()
                .try_take(owner)
                .then_some(DataValue::Bool(true)))
        }),
        LockOp::Release => {
            let r = cell.lock().lock_state().release(owner);
            cell.notify();
            r.map(|()| DataValue::Null).map_err(RemoteError::from)
        }
        LockOp::Locked => Ok(DataValue::Bool(cell.lock().lock_state().owner.is_some())),
    }
}

/// A `Lock` or an `RLock`.
#[derive(Debug)]
pub(crate) struct Lock {
    lock: LockState,
}

impl Lock {
    /// A free lock (`reentrant`: an `RLock`).
    pub(crate) fn new(reentrant: bool) -> Lock {
        Lock {
            lock: LockState::new(reentrant),
        }
    }
}

impl HasLock for Lock {
    fn lock_state(&mut self) -> &mut LockState {
        &mut self.lock
    }
}

impl ServerObject for Lock {
    type Op = LockOp;

    fn parse(
        &self,
        method: &str,
        _args: Args,
        timeout: Option<Duration>,
    ) -> Result<Option<LockOp>, RemoteError> {
        Ok(LockOp::parse(method, timeout))
    }

    fn apply(cell: &Cell<Self>, op: LockOp, cx: &mut Ctx<'_>) -> Result<DataValue, RemoteError> {
        apply_lock(cell, op, cx)
    }

    fn release_session(&mut self, session: u64) -> bool {
        self.lock.release_session(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::objects::testing::{
        Cancels, owner, parse, round_trips, run, run_as, until,
    };

    const NOW: Option<Duration> = Some(Duration::ZERO);

    #[test]
    fn names_parse_and_round_trip() {
        let l = Lock::new(false);
        round_trips(
            &l,
            vec![
                LockOp::Acquire { timeout: None },
                LockOp::Acquire {
                    timeout: Some(Duration::from_millis(1500)),
                },
                LockOp::Release,
                LockOp::Locked,
            ],
        );
        assert_eq!(parse(&l, "wait", vec![]), Ok(None));
        assert_eq!(parse(&l, "__enter__", vec![]), Ok(None));
    }

    #[test]
    fn a_plain_lock_is_not_reentrant_and_anyone_may_release_it() {
        let cell = Cell::new(Lock::new(false));
        assert_eq!(run(&cell, LockOp::Locked), Ok(DataValue::Bool(false)));
        assert_eq!(
            run(&cell, LockOp::Acquire { timeout: None }),
            Ok(DataValue::Bool(true))
        );
        assert_eq!(
            run(&cell, LockOp::Acquire { timeout: NOW }),
            Err(RemoteError::Timeout)
        );
        assert_eq!(run(&cell, LockOp::Locked), Ok(DataValue::Bool(true)));
        assert_eq!(
            run_as(&cell, LockOp::Release, owner(2)),
            Ok(DataValue::Null)
        );
        assert_eq!(
            run(&cell, LockOp::Release),
            Err(RemoteError::Release(ReleaseError::Unlocked))
        );
    }

    #[test]
    fn an_rlock_counts_and_belongs_to_its_owner() {
        let cell = Cell::new(Lock::new(true));
        for _ in 0..3 {
            run(&cell, LockOp::Acquire { timeout: NOW }).unwrap();
        }
        assert_eq!(
            run_as(&cell, LockOp::Acquire { timeout: NOW }, owner(2)),
            Err(RemoteError::Timeout)
        );
        assert_eq!(
            run_as(&cell, LockOp::Release, owner(2)),
            Err(RemoteError::Release(ReleaseError::NotOwner))
        );
        for _ in 0..3 {
            run(&cell, LockOp::Release).unwrap();
        }
        assert_eq!(run(&cell, LockOp::Locked), Ok(DataValue::Bool(false)));
        assert_eq!(
            run(&cell, LockOp::Release),
            Err(RemoteError::Release(ReleaseError::Unlocked))
        );
    }

    #[test]
    fn a_waiter_gets_the_lock_when_it_is_released_or_its_session_ends() {
        let cell = std::sync::Arc::new(Cell::new(Lock::new(false)));
        run(&cell, LockOp::Acquire { timeout: None }).unwrap();
        let c2 = cell.clone();
        let t = std::thread::spawn(move || {
            run_as(
                &c2,
                LockOp::Acquire {
                    timeout: Some(Duration::from_secs(30)),
                },
                Owner {
                    session: 2,
                    thread: 1,
                },
            )
        });
        until("session 2 waits", || cell.sleeping() == 1);
        assert!(!cell.lock().release_session(2), "session 2 holds nothing");
        assert!(cell.lock().release_session(1));
        cell.notify();
        assert_eq!(t.join().unwrap(), Ok(DataValue::Bool(true)));
        assert_eq!(cell.lock().lock.owner.map(|o| o.session), Some(2));
    }

    #[test]
    fn a_cancelled_acquire_takes_nothing() {
        let cell = Cell::new(Lock::new(false));
        run_as(&cell, LockOp::Acquire { timeout: None }, owner(2)).unwrap();
        let mut tick = Cancels;
        let r = Lock::apply(
            &cell,
            LockOp::Acquire { timeout: None },
            &mut Ctx::new(owner(1), &mut tick),
        );
        assert_eq!(r, Err(RemoteError::Cancelled));
        assert_eq!(cell.lock().lock.owner, Some(owner(2)));
    }
}
