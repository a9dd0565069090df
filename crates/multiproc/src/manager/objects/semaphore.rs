//! `Semaphore` and `BoundedSemaphore`: permits that anyone may take and
//! give back (they are not owned, as in Python).

use std::time::Duration;

use super::args::{count, count_value, deadline};
use super::{Args, Cell, Ctx, Encode, ServerObject, WireCall};
use crate::manager::error::{Count, ReleaseError, RemoteError, TypeError};
use crate::manager::value::DataValue;

/// A `Semaphore` or a `BoundedSemaphore`.
#[derive(Debug)]
pub(crate) struct Semaphore {
    value: u64,
    /// A bounded one's maximum (its initial value).
    bound: Option<u64>,
}

/// An operation on a semaphore.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SemaphoreOp {
    /// `acquire`: take a permit, waiting at most `timeout`; `true`, or
    /// [`RemoteError::Timeout`].
    Acquire {
        /// How long to wait (`None`: as long as it takes).
        timeout: Option<Duration>,
    },
    /// `release([n])`: give back `n` permits (1 without `n`).
    Release {
        /// How many.
        n: u64,
    },
    /// `get_value`: the permits free now.
    GetValue,
}

impl Semaphore {
    /// A semaphore with `init` permits (null: 1); `bounded`: never more.
    pub(crate) fn new(init: DataValue, bounded: bool) -> Result<Semaphore, TypeError> {
        let value = match init {
            DataValue::Null => 1,
            v => count(&v, Count::Value)?,
        };
        Ok(Semaphore {
            value,
            bound: bounded.then_some(value),
        })
    }
}

impl ServerObject for Semaphore {
    type Op = SemaphoreOp;

    fn parse(
        &self,
        method: &str,
        mut a: Args,
        timeout: Option<Duration>,
    ) -> Result<Option<SemaphoreOp>, RemoteError> {
        Ok(Some(match method {
            "acquire" => SemaphoreOp::Acquire { timeout },
            "release" => SemaphoreOp::Release {
                n: a.count_or(Count::N, 1)?,
            },
            "get_value" => SemaphoreOp::GetValue,
            _ => return Ok(None),
        }))
    }

    fn apply(
        cell: &Cell<Self>,
        op: SemaphoreOp,
        cx: &mut Ctx<'_>,
    ) -> Result<DataValue, RemoteError> {
        match op {
            SemaphoreOp::Acquire { timeout } => cell.wait_for(cx, deadline(timeout), |s| {
                Ok((s.value > 0).then(|| {
                    s.value -= 1;
                    DataValue::Bool(true)
                }))
            }),
            SemaphoreOp::Release { n } => {
                let mut s = cell.lock();
                let new = s.value.checked_add(n).ok_or(RemoteError::Overflow)?;
                if s.bound.is_some_and(|b| new > b) {
                    return Err(ReleaseError::SemaphoreBound.into());
                }
                s.value = new;
                drop(s);
                cell.notify();
                Ok(DataValue::Null)
            }
            SemaphoreOp::GetValue => Ok(count_value(cell.lock().value)),
        }
    }
}

impl Encode for SemaphoreOp {
    fn encode(self) -> WireCall {
        match self {
            SemaphoreOp::Acquire { timeout } => WireCall::timed("acquire", vec![], timeout),
            SemaphoreOp::Release { n } => WireCall::new("release", vec![count_value(n)]),
            SemaphoreOp::GetValue => WireCall::new("get_value", vec![]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::objects::testing::{owner, parse, round_trips, run, run_as};

    const NOW: Option<Duration> = Some(Duration::ZERO);

    #[test]
    fn every_op_round_trips_through_its_name() {
        let s = Semaphore::new(DataValue::Null, false).unwrap();
        round_trips(
            &s,
            vec![
                SemaphoreOp::Acquire { timeout: None },
                SemaphoreOp::Acquire { timeout: NOW },
                SemaphoreOp::Release { n: 3 },
                SemaphoreOp::GetValue,
            ],
        );
        assert_eq!(
            parse(&s, "release", vec![]),
            Ok(Some(SemaphoreOp::Release { n: 1 }))
        );
        assert_eq!(
            parse(&s, "release", vec![DataValue::Int(-2)]),
            Err(TypeError::NotACount { what: Count::N }.into())
        );
        assert_eq!(parse(&s, "locked", vec![]), Ok(None));
    }

    #[test]
    fn permits_are_counted_and_shared() {
        let cell = Cell::new(Semaphore::new(DataValue::Int(2), false).unwrap());
        assert_eq!(
            run(&cell, SemaphoreOp::Acquire { timeout: None }),
            Ok(DataValue::Bool(true))
        );
        run_as(&cell, SemaphoreOp::Acquire { timeout: NOW }, owner(2)).unwrap();
        assert_eq!(
            run(&cell, SemaphoreOp::Acquire { timeout: NOW }),
            Err(RemoteError::Timeout)
        );
        // Not owned: anyone gives permits back, as many as they like.
        run_as(&cell, SemaphoreOp::Release { n: 5 }, owner(3)).unwrap();
        assert_eq!(run(&cell, SemaphoreOp::GetValue), Ok(DataValue::Int(5)));
        assert_eq!(
            run(&cell, SemaphoreOp::Release { n: u64::MAX }),
            Err(RemoteError::Overflow)
        );
        assert_eq!(run(&cell, SemaphoreOp::GetValue), Ok(DataValue::Int(5)));
        // Null makes one permit.
        let one = Cell::new(Semaphore::new(DataValue::Null, false).unwrap());
        assert_eq!(run(&one, SemaphoreOp::GetValue), Ok(DataValue::Int(1)));
        assert_eq!(
            Semaphore::new(DataValue::Int(-1), false).unwrap_err(),
            TypeError::NotACount { what: Count::Value }
        );
    }

    #[test]
    fn a_bounded_semaphore_stops_at_its_initial_value() {
        let cell = Cell::new(Semaphore::new(DataValue::Int(1), true).unwrap());
        assert_eq!(
            run(&cell, SemaphoreOp::Release { n: 1 }),
            Err(ReleaseError::SemaphoreBound.into())
        );
        run(&cell, SemaphoreOp::Acquire { timeout: NOW }).unwrap();
        run(&cell, SemaphoreOp::Release { n: 1 }).unwrap();
        assert_eq!(run(&cell, SemaphoreOp::GetValue), Ok(DataValue::Int(1)));
    }
}
