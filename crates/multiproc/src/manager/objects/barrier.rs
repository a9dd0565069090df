//! `Barrier`: parties wait until all have arrived. A party that times out
//! (or whose client goes away) breaks it, as in Python; one whose client
//! cancels leaves it intact.

use std::collections::VecDeque;
use std::time::Duration;

use super::args::{count, count_value, deadline};
use super::{Args, Cell, Ctx, Encode, ServerObject, WireCall};
use crate::manager::error::{Count, RemoteError, ValueError};
use crate::manager::value::DataValue;

/// How many reset generations a barrier remembers.
const RESETS_KEPT: usize = 64;

/// A `Barrier`.
#[derive(Debug)]
pub(crate) struct Barrier {
    parties: u64,
    /// Parties waiting now.
    count: u64,
    /// Ends by completion or by `reset`.
    generation: u64,
    broken: bool,
    /// Recent generations ended by `reset` (their waiters get
    /// `BrokenBarrier`), newest last.
    reset_generations: VecDeque<u64>,
}

/// An operation on a `Barrier`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BarrierOp {
    /// `wait`: wait at most `timeout` for every party; this party's arrival
    /// index, or [`RemoteError::BrokenBarrier`].
    Wait {
        /// How long to wait (`None`: as long as it takes).
        timeout: Option<Duration>,
    },
    /// `abort`: break it.
    Abort,
    /// `reset`: back to the initial, unbroken state; the waiters get
    /// [`RemoteError::BrokenBarrier`].
    Reset,
    /// `parties`.
    Parties,
    /// `n_waiting`.
    NWaiting,
    /// `broken`.
    Broken,
}

impl Barrier {
    /// A barrier for `init` parties (at least one).
    pub(crate) fn new(init: DataValue) -> Result<Barrier, RemoteError> {
        let parties = count(&init, Count::Parties)?;
        if parties == 0 {
            return Err(ValueError::NoParties.into());
        }
        Ok(Barrier {
            parties,
            count: 0,
            generation: 0,
            broken: false,
            reset_generations: VecDeque::new(),
        })
    }
}

impl ServerObject for Barrier {
    type Op = BarrierOp;

    fn parse(
        &self,
        method: &str,
        _args: Args,
        timeout: Option<Duration>,
    ) -> Result<Option<BarrierOp>, RemoteError> {
        Ok(Some(match method {
            "wait" => BarrierOp::Wait { timeout },
            "abort" => BarrierOp::Abort,
            "reset" => BarrierOp::Reset,
            "parties" => BarrierOp::Parties,
            "n_waiting" => BarrierOp::NWaiting,
            "broken" => BarrierOp::Broken,
            _ => return Ok(None),
        }))
    }

    fn apply(cell: &Cell<Self>, op: BarrierOp, cx: &mut Ctx<'_>) -> Result<DataValue, RemoteError> {
        match op {
            BarrierOp::Wait { timeout } => wait(cell, timeout, cx),
            BarrierOp::Abort => {
                cell.lock().broken = true;
                cell.notify();
                Ok(DataValue::Null)
            }
            BarrierOp::Reset => {
                let mut b = cell.lock();
                // Waiters of this generation get `BrokenBarrier`, as in Python.
                if b.count > 0 {
                    if b.reset_generations.len() == RESETS_KEPT {
                        b.reset_generations.pop_front();
                    }
                    let g = b.generation;
                    b.reset_generations.push_back(g);
                }
                b.generation += 1;
                b.count = 0;
                b.broken = false;
                drop(b);
                cell.notify();
                Ok(DataValue::Null)
            }
            BarrierOp::Parties => Ok(count_value(cell.lock().parties)),
            BarrierOp::NWaiting => Ok(count_value(cell.lock().count)),
            BarrierOp::Broken => Ok(DataValue::Bool(cell.lock().broken)),
        }
    }
}

fn wait(
    cell: &Cell<Barrier>,
    timeout: Option<Duration>,
    cx: &mut Ctx<'_>,
) -> Result<DataValue, RemoteError> {
    let (index, generation) = {
        let mut b = cell.lock();
        if b.broken {
            return Err(RemoteError::BrokenBarrier);
        }
        let index = b.count;
        b.count += 1;
        if b.count == b.parties {
            b.count = 0;
            b.generation += 1;
            drop(b);
            cell.notify();
            return Ok(count_value(index));
        }
        (index, b.generation)
    };
    let passed = |b: &mut Barrier| {
        if b.generation != generation {
            if b.reset_generations.contains(&generation) {
                Err(RemoteError::BrokenBarrier)
            } else {
                Ok(Some(count_value(index)))
            }
        } else if b.broken {
            Err(RemoteError::BrokenBarrier)
        } else {
            Ok(None)
        }
    };
    let r = cell.wait_for(cx, deadline(timeout), &passed);
    if matches!(r, Err(RemoteError::Cancelled)) {
        // The party leaves and the barrier holds (as multiproc's own
        // `Barrier` does on Ctrl-C), unless it passed or broke first.
        let mut b = cell.lock();
        return match passed(&mut b)? {
            Some(v) => Ok(v),
            None => {
                b.count = b.count.saturating_sub(1);
                Err(RemoteError::Cancelled)
            }
        };
    }
    if matches!(r, Err(RemoteError::Timeout | RemoteError::ShuttingDown)) {
        // A party that gives up (or dies) breaks the barrier, as in Python.
        {
            let mut b = cell.lock();
            if b.generation == generation {
                b.broken = true;
                b.count = b.count.saturating_sub(1);
            }
        }
        cell.notify();
        return match r {
            Err(RemoteError::Timeout) => Err(RemoteError::BrokenBarrier),
            r => r,
        };
    }
    r
}

impl Encode for BarrierOp {
    fn encode(self) -> WireCall {
        match self {
            BarrierOp::Wait { timeout } => WireCall::timed("wait", vec![], timeout),
            BarrierOp::Abort => WireCall::new("abort", vec![]),
            BarrierOp::Reset => WireCall::new("reset", vec![]),
            BarrierOp::Parties => WireCall::new("parties", vec![]),
            BarrierOp::NWaiting => WireCall::new("n_waiting", vec![]),
            BarrierOp::Broken => WireCall::new("broken", vec![]),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::manager::error::TypeError;
    use crate::manager::objects::testing::{Cancels, owner, parse, round_trips, run, until};

    fn barrier(parties: i64) -> Arc<Cell<Barrier>> {
        Arc::new(Cell::new(Barrier::new(DataValue::Int(parties)).unwrap()))
    }

    fn wait_in_thread(
        cell: &Arc<Cell<Barrier>>,
    ) -> std::thread::JoinHandle<Result<DataValue, RemoteError>> {
        let c = cell.clone();
        std::thread::spawn(move || {
            run(
                &c,
                BarrierOp::Wait {
                    timeout: Some(Duration::from_secs(30)),
                },
            )
        })
    }

    fn until_waiting(cell: &Cell<Barrier>, n: u64) {
        until("parties wait", || cell.lock().count == n);
    }

    #[test]
    fn every_op_round_trips_through_its_name() {
        let b = Barrier::new(DataValue::Int(2)).unwrap();
        round_trips(
            &b,
            vec![
                BarrierOp::Wait { timeout: None },
                BarrierOp::Wait {
                    timeout: Some(Duration::from_millis(7)),
                },
                BarrierOp::Abort,
                BarrierOp::Reset,
                BarrierOp::Parties,
                BarrierOp::NWaiting,
                BarrierOp::Broken,
            ],
        );
        assert_eq!(parse(&b, "action", vec![]), Ok(None));
        assert_eq!(
            Barrier::new(DataValue::Int(0)).unwrap_err(),
            ValueError::NoParties.into()
        );
        assert_eq!(
            Barrier::new(DataValue::Null).unwrap_err(),
            ValueError::NoParties.into()
        );
        assert_eq!(
            Barrier::new(DataValue::Float(2.5)).unwrap_err(),
            TypeError::NotACount {
                what: Count::Parties
            }
            .into()
        );
    }

    #[test]
    fn parties_pass_together_with_distinct_indexes() {
        let cell = barrier(3);
        assert_eq!(run(&cell, BarrierOp::Parties), Ok(DataValue::Int(3)));
        let a = wait_in_thread(&cell);
        let b = wait_in_thread(&cell);
        until_waiting(&cell, 2);
        assert_eq!(run(&cell, BarrierOp::NWaiting), Ok(DataValue::Int(2)));
        let mine = run(&cell, BarrierOp::Wait { timeout: None }).unwrap();
        let mut idx: Vec<i64> = [a.join().unwrap(), b.join().unwrap(), Ok(mine)]
            .into_iter()
            .map(|r| r.unwrap().as_i64().unwrap())
            .collect();
        idx.sort_unstable();
        assert_eq!(idx, vec![0, 1, 2]);
        assert_eq!(run(&cell, BarrierOp::NWaiting), Ok(DataValue::Int(0)));
        // One party passes alone.
        let one = barrier(1);
        assert_eq!(
            run(&one, BarrierOp::Wait { timeout: None }),
            Ok(DataValue::Int(0))
        );
    }

    #[test]
    fn a_timeout_breaks_it_and_reset_mends_it() {
        let cell = barrier(2);
        assert_eq!(
            run(
                &cell,
                BarrierOp::Wait {
                    timeout: Some(Duration::from_millis(20))
                }
            ),
            Err(RemoteError::BrokenBarrier)
        );
        assert_eq!(run(&cell, BarrierOp::Broken), Ok(DataValue::Bool(true)));
        assert_eq!(
            run(&cell, BarrierOp::Wait { timeout: None }),
            Err(RemoteError::BrokenBarrier)
        );
        run(&cell, BarrierOp::Reset).unwrap();
        assert_eq!(run(&cell, BarrierOp::Broken), Ok(DataValue::Bool(false)));
        // A reset while a party waits: it gets BrokenBarrier; the barrier
        // is usable again.
        let w = wait_in_thread(&cell);
        until_waiting(&cell, 1);
        run(&cell, BarrierOp::Reset).unwrap();
        assert_eq!(w.join().unwrap(), Err(RemoteError::BrokenBarrier));
        assert_eq!(run(&cell, BarrierOp::Broken), Ok(DataValue::Bool(false)));
        let w = wait_in_thread(&cell);
        run(&cell, BarrierOp::Wait { timeout: None }).unwrap();
        assert!(w.join().unwrap().is_ok());
        // Abort breaks it for the waiters.
        let w = wait_in_thread(&cell);
        until_waiting(&cell, 1);
        run(&cell, BarrierOp::Abort).unwrap();
        assert_eq!(w.join().unwrap(), Err(RemoteError::BrokenBarrier));
    }

    #[test]
    fn a_cancelled_party_leaves_without_breaking_it() {
        let cell = barrier(2);
        let mut tick = Cancels;
        let r = Barrier::apply(
            &cell,
            BarrierOp::Wait { timeout: None },
            &mut Ctx::new(owner(1), &mut tick),
        );
        assert_eq!(r, Err(RemoteError::Cancelled));
        let b = cell.lock();
        assert_eq!((b.count, b.broken), (0, false));
    }
}
