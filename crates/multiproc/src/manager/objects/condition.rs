//! `Condition`: a condition variable with its own `RLock`. A waiter gives
//! the lock up entirely (whatever its recursion count), waits for a
//! notification, and takes the lock back with the same count.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use super::args::deadline;
use super::lock::{HasLock, LockState, WithLock, apply_lock};
use super::{Args, Cell, Ctx, Encode, ServerObject, WireCall};
use crate::manager::error::{Count, ReleaseError, RemoteError};
use crate::manager::value::DataValue;

/// A `Condition`.
#[derive(Debug)]
pub(crate) struct Condition {
    lock: LockState,
    /// Tickets of the waiters not yet notified, oldest first.
    waiters: VecDeque<u64>,
    /// Tickets notified and not yet woken.
    notified: HashSet<u64>,
    next_ticket: u64,
}

/// An operation on a `Condition` (besides those on its lock,
/// [`LockOp`](super::LockOp)). `wait`, `notify` and `notify_all` need the
/// lock held, or they are a [`RemoteError::Release`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ConditionOp {
    /// `wait`: release the lock, wait at most `timeout` for a notification,
    /// take the lock back; whether it was notified.
    Wait {
        /// How long to wait (`None`: as long as it takes).
        timeout: Option<Duration>,
    },
    /// `notify([n])`: wake up to `n` waiters (1 without `n`).
    Notify {
        /// How many.
        n: u64,
    },
    /// `notify_all`.
    NotifyAll,
}

impl Condition {
    /// A condition whose lock is free.
    pub(crate) fn new() -> Condition {
        Condition {
            lock: LockState::new(true),
            waiters: VecDeque::new(),
            notified: HashSet::new(),
            next_ticket: 0,
        }
    }
}

impl HasLock for Condition {
    fn lock_state(&mut self) -> &mut LockState {
        &mut self.lock
    }
}

impl ServerObject for Condition {
    type Op = WithLock<ConditionOp>;

    fn parse(
        &self,
        method: &str,
        mut a: Args,
        timeout: Option<Duration>,
    ) -> Result<Option<Self::Op>, RemoteError> {
        WithLock::parse(method, timeout, || {
            Ok(Some(match method {
                "wait" => ConditionOp::Wait { timeout },
                "notify" => ConditionOp::Notify {
                    n: a.count_or(Count::N, 1)?,
                },
                "notify_all" => ConditionOp::NotifyAll,
                _ => return Ok(None),
            }))
        })
    }

    fn apply(cell: &Cell<Self>, op: Self::Op, cx: &mut Ctx<'_>) -> Result<DataValue, RemoteError> {
        match op {
            WithLock::Lock(op) => apply_lock(cell, op, cx),
            WithLock::Own(ConditionOp::Wait { timeout }) => wait(cell, timeout, cx),
            WithLock::Own(ConditionOp::Notify { n }) => notify(cell, n, cx),
            WithLock::Own(ConditionOp::NotifyAll) => notify(cell, u64::MAX, cx),
        }
    }

    fn release_session(&mut self, session: u64) -> bool {
        self.lock.release_session(session)
    }
}

fn notify(cell: &Cell<Condition>, n: u64, cx: &mut Ctx<'_>) -> Result<DataValue, RemoteError> {
    let mut c = cell.lock();
    if c.lock.owner != Some(cx.owner) {
        return Err(ReleaseError::NotifyUnheld.into());
    }
    let mut k = 0;
    while k < n {
        let Some(t) = c.waiters.pop_front() else {
            break;
        };
        c.notified.insert(t);
        k += 1;
    }
    drop(c);
    cell.notify();
    Ok(DataValue::Null)
}

fn wait(
    cell: &Cell<Condition>,
    timeout: Option<Duration>,
    cx: &mut Ctx<'_>,
) -> Result<DataValue, RemoteError> {
    let owner = cx.owner;
    // Release the lock entirely, remembering the recursion count.
    let (ticket, count) = {
        let mut c = cell.lock();
        if c.lock.owner != Some(owner) {
            return Err(ReleaseError::WaitUnheld.into());
        }
        let count = c.lock.count;
        c.lock.owner = None;
        c.lock.count = 0;
        c.next_ticket += 1;
        let t = c.next_ticket;
        c.waiters.push_back(t);
        (t, count)
    };
    cell.notify();
    let notified = cell.wait_for(cx, deadline(timeout), |c| {
        Ok(c.notified.remove(&ticket).then_some(true))
    });
    // Cancelled: the caller takes the lock back before it hears so (as
    // Python's `wait` does on KeyboardInterrupt), unless a notification
    // reached it first: then the wait completed.
    let mut cancelled = false;
    let notified = match notified {
        Ok(b) => b,
        Err(e) => {
            let mut c = cell.lock();
            // A waiter that is gone must not swallow a notification.
            c.waiters.retain(|t| *t != ticket);
            let notified = c.notified.remove(&ticket);
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
    cell.wait_for(cx, None, |c| {
        if c.lock.owner.is_none() {
            c.lock.owner = Some(owner);
            c.lock.count = count;
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

impl Encode for ConditionOp {
    fn encode(self) -> WireCall {
        match self {
            ConditionOp::Wait { timeout } => WireCall::timed("wait", vec![], timeout),
            ConditionOp::Notify { n } => WireCall::new("notify", vec![super::args::count_value(n)]),
            ConditionOp::NotifyAll => WireCall::new("notify_all", vec![]),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::manager::objects::LockOp;
    use crate::manager::objects::testing::{
        Cancels, owner, parse, round_trips, run, run_as, until,
    };

    const NOW: Option<Duration> = Some(Duration::ZERO);

    fn acquire() -> WithLock<ConditionOp> {
        WithLock::Lock(LockOp::Acquire { timeout: None })
    }

    fn own(op: ConditionOp) -> WithLock<ConditionOp> {
        WithLock::Own(op)
    }

    #[test]
    fn every_op_round_trips_through_its_name() {
        let c = Condition::new();
        round_trips(
            &c,
            vec![
                acquire(),
                WithLock::Lock(LockOp::Release),
                WithLock::Lock(LockOp::Locked),
                own(ConditionOp::Wait { timeout: None }),
                own(ConditionOp::Wait {
                    timeout: Some(Duration::from_millis(30)),
                }),
                own(ConditionOp::Notify { n: 2 }),
                own(ConditionOp::NotifyAll),
            ],
        );
        assert_eq!(
            parse(&c, "notify", vec![]),
            Ok(Some(own(ConditionOp::Notify { n: 1 })))
        );
        assert_eq!(parse(&c, "wait_for", vec![]), Ok(None));
    }

    #[test]
    fn wait_and_notify_need_the_lock() {
        let cell = Cell::new(Condition::new());
        assert_eq!(
            run(&cell, own(ConditionOp::Notify { n: 1 })),
            Err(ReleaseError::NotifyUnheld.into())
        );
        assert_eq!(
            run(&cell, own(ConditionOp::Wait { timeout: NOW })),
            Err(ReleaseError::WaitUnheld.into())
        );
        run_as(&cell, acquire(), owner(2)).unwrap();
        assert_eq!(
            run(&cell, own(ConditionOp::NotifyAll)),
            Err(ReleaseError::NotifyUnheld.into())
        );
    }

    #[test]
    fn a_timed_out_wait_holds_the_lock_again_with_its_count() {
        let cell = Cell::new(Condition::new());
        run(&cell, acquire()).unwrap();
        run(&cell, acquire()).unwrap();
        assert_eq!(
            run(
                &cell,
                own(ConditionOp::Wait {
                    timeout: Some(Duration::from_millis(20))
                })
            ),
            Ok(DataValue::Bool(false))
        );
        let c = cell.lock();
        assert_eq!((c.lock.owner, c.lock.count), (Some(owner(1)), 2));
        assert!(c.waiters.is_empty(), "a gone waiter leaves no ticket");
    }

    #[test]
    fn notify_wakes_a_waiter_which_takes_the_lock_back() {
        let cell = Arc::new(Cell::new(Condition::new()));
        let c2 = cell.clone();
        let waiter = std::thread::spawn(move || {
            run_as(&c2, acquire(), owner(2)).unwrap();
            run_as(
                &c2,
                own(ConditionOp::Wait {
                    timeout: Some(Duration::from_secs(30)),
                }),
                owner(2),
            )
        });
        // The waiter gave the lock up: take it and notify.
        until("the waiter waits", || !cell.lock().waiters.is_empty());
        run(&cell, WithLock::Lock(LockOp::Acquire { timeout: None })).unwrap();
        run(&cell, own(ConditionOp::Notify { n: 5 })).unwrap();
        run(&cell, WithLock::Lock(LockOp::Release)).unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(DataValue::Bool(true)));
        assert_eq!(cell.lock().lock.owner, Some(owner(2)));
    }

    #[test]
    fn a_cancelled_wait_takes_the_lock_back_and_says_cancelled() {
        let cell = Cell::new(Condition::new());
        run(&cell, acquire()).unwrap();
        let mut tick = Cancels;
        let r = Condition::apply(
            &cell,
            own(ConditionOp::Wait { timeout: None }),
            &mut Ctx::new(owner(1), &mut tick),
        );
        assert_eq!(r, Err(RemoteError::Cancelled));
        let c = cell.lock();
        assert_eq!(c.lock.owner, Some(owner(1)));
        assert!(c.waiters.is_empty() && c.notified.is_empty());
    }
}
