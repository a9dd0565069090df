//! `Event`: a flag that waiters wait to see set.

use std::time::Duration;

use super::args::deadline;
use super::{Args, Cell, Ctx, Encode, ServerObject, WireCall};
use crate::manager::error::RemoteError;
use crate::manager::value::DataValue;

/// An `Event`.
#[derive(Debug, Default)]
pub(crate) struct Event {
    set: bool,
}

/// An operation on an `Event`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EventOp {
    /// `set`: set the flag and wake every waiter.
    Set,
    /// `clear`.
    Clear,
    /// `is_set`.
    IsSet,
    /// `wait`: wait at most `timeout` for the flag; `true`, or
    /// [`RemoteError::Timeout`].
    Wait {
        /// How long to wait (`None`: as long as it takes).
        timeout: Option<Duration>,
    },
}

impl Event {
    /// A clear event.
    pub(crate) fn new() -> Event {
        Event::default()
    }
}

impl ServerObject for Event {
    type Op = EventOp;

    fn parse(
        &self,
        method: &str,
        _args: Args,
        timeout: Option<Duration>,
    ) -> Result<Option<EventOp>, RemoteError> {
        Ok(Some(match method {
            "set" => EventOp::Set,
            "clear" => EventOp::Clear,
            "is_set" => EventOp::IsSet,
            "wait" => EventOp::Wait { timeout },
            _ => return Ok(None),
        }))
    }

    fn apply(cell: &Cell<Self>, op: EventOp, cx: &mut Ctx<'_>) -> Result<DataValue, RemoteError> {
        match op {
            EventOp::Set | EventOp::Clear => {
                cell.lock().set = op == EventOp::Set;
                cell.notify();
                Ok(DataValue::Null)
            }
            EventOp::IsSet => Ok(DataValue::Bool(cell.lock().set)),
            EventOp::Wait { timeout } => cell.wait_for(cx, deadline(timeout), |e| {
                Ok(e.set.then_some(DataValue::Bool(true)))
            }),
        }
    }
}

impl Encode for EventOp {
    fn encode(self) -> WireCall {
        match self {
            EventOp::Set => WireCall::new("set", vec![]),
            EventOp::Clear => WireCall::new("clear", vec![]),
            EventOp::IsSet => WireCall::new("is_set", vec![]),
            EventOp::Wait { timeout } => WireCall::timed("wait", vec![], timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::manager::objects::testing::{parse, round_trips, run, until};

    #[test]
    fn every_op_round_trips_through_its_name() {
        let e = Event::new();
        round_trips(
            &e,
            vec![
                EventOp::Set,
                EventOp::Clear,
                EventOp::IsSet,
                EventOp::Wait { timeout: None },
                EventOp::Wait {
                    timeout: Some(Duration::from_secs(3)),
                },
            ],
        );
        assert_eq!(parse(&e, "notify", vec![]), Ok(None));
    }

    #[test]
    fn set_clear_and_wait() {
        let cell = Arc::new(Cell::new(Event::new()));
        assert_eq!(run(&cell, EventOp::IsSet), Ok(DataValue::Bool(false)));
        assert_eq!(
            run(
                &cell,
                EventOp::Wait {
                    timeout: Some(Duration::from_millis(20))
                }
            ),
            Err(RemoteError::Timeout)
        );
        let c2 = cell.clone();
        let t = std::thread::spawn(move || {
            run(
                &c2,
                EventOp::Wait {
                    timeout: Some(Duration::from_secs(30)),
                },
            )
        });
        until("the wait waits", || cell.sleeping() == 1);
        run(&cell, EventOp::Set).unwrap();
        assert_eq!(t.join().unwrap(), Ok(DataValue::Bool(true)));
        assert_eq!(
            run(&cell, EventOp::Wait { timeout: None }),
            Ok(DataValue::Bool(true))
        );
        run(&cell, EventOp::Clear).unwrap();
        assert_eq!(run(&cell, EventOp::IsSet), Ok(DataValue::Bool(false)));
    }
}
