//! `Queue` and `JoinableQueue`: FIFO queues, bounded or not; a joinable one
//! counts unfinished items for `task_done` / `join`.

use std::collections::VecDeque;
use std::time::Duration;

use super::args::{count, deadline, len_value};
use super::{Args, Cell, Ctx, Encode, ServerObject, WireCall};
use crate::manager::error::{Count, RemoteError, TypeError};
use crate::manager::value::DataValue;

/// A `Queue` or a `JoinableQueue`.
#[derive(Debug)]
pub(crate) struct Queue {
    items: VecDeque<DataValue>,
    /// 0: unbounded.
    maxsize: usize,
    /// Items put and not yet marked done.
    unfinished: u64,
    joinable: bool,
}

/// An operation on a queue.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum QueueOp {
    /// `put(x)`, waiting at most `timeout` for room, then
    /// [`RemoteError::Full`].
    Put {
        /// The item.
        item: DataValue,
        /// How long to wait (`None`: as long as it takes).
        timeout: Option<Duration>,
    },
    /// `get`: the first item, waiting at most `timeout` for one, then
    /// [`RemoteError::Empty`].
    Get {
        /// How long to wait (`None`: as long as it takes).
        timeout: Option<Duration>,
    },
    /// `qsize`.
    QSize,
    /// `empty`.
    Empty,
    /// `full`.
    Full,
    /// `task_done` (a joinable queue's): one item got is done.
    TaskDone,
    /// `join` (a joinable queue's): wait at most `timeout` until every item
    /// put is done, then [`RemoteError::Timeout`].
    Join {
        /// How long to wait (`None`: as long as it takes).
        timeout: Option<Duration>,
    },
}

impl Queue {
    /// A queue of at most `init` items (0 or null: unbounded).
    pub(crate) fn new(init: DataValue, joinable: bool) -> Result<Queue, TypeError> {
        let maxsize = count(&init, Count::MaxSize)?;
        Ok(Queue {
            items: VecDeque::new(),
            maxsize: usize::try_from(maxsize).unwrap_or(usize::MAX),
            unfinished: 0,
            joinable,
        })
    }

    fn is_full(&self) -> bool {
        self.maxsize != 0 && self.items.len() >= self.maxsize
    }
}

impl ServerObject for Queue {
    type Op = QueueOp;

    fn parse(
        &self,
        method: &str,
        mut a: Args,
        timeout: Option<Duration>,
    ) -> Result<Option<QueueOp>, RemoteError> {
        Ok(Some(match method {
            "put" => QueueOp::Put {
                item: a.value()?,
                timeout,
            },
            "get" => QueueOp::Get { timeout },
            "qsize" => QueueOp::QSize,
            "empty" => QueueOp::Empty,
            "full" => QueueOp::Full,
            "task_done" if self.joinable => QueueOp::TaskDone,
            "join" if self.joinable => QueueOp::Join { timeout },
            _ => return Ok(None),
        }))
    }

    fn apply(cell: &Cell<Self>, op: QueueOp, cx: &mut Ctx<'_>) -> Result<DataValue, RemoteError> {
        match op {
            QueueOp::Put { item, timeout } => {
                let mut item = Some(item);
                let r = cell.wait_for(cx, deadline(timeout), |q| {
                    if q.is_full() {
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
            QueueOp::Get { timeout } => {
                match cell.wait_for(cx, deadline(timeout), |q| Ok(q.items.pop_front())) {
                    Err(RemoteError::Timeout) => Err(RemoteError::Empty),
                    r => r,
                }
            }
            QueueOp::QSize => Ok(len_value(cell.lock().items.len())),
            QueueOp::Empty => Ok(DataValue::Bool(cell.lock().items.is_empty())),
            QueueOp::Full => Ok(DataValue::Bool(cell.lock().is_full())),
            QueueOp::TaskDone => {
                let mut q = cell.lock();
                if q.unfinished == 0 {
                    return Err(RemoteError::TaskDone);
                }
                q.unfinished -= 1;
                drop(q);
                cell.notify();
                Ok(DataValue::Null)
            }
            QueueOp::Join { timeout } => cell.wait_for(cx, deadline(timeout), |q| {
                Ok((q.unfinished == 0).then_some(DataValue::Null))
            }),
        }
    }
}

impl Encode for QueueOp {
    fn encode(self) -> WireCall {
        match self {
            QueueOp::Put { item, timeout } => WireCall::timed("put", vec![item], timeout),
            QueueOp::Get { timeout } => WireCall::timed("get", vec![], timeout),
            QueueOp::QSize => WireCall::new("qsize", vec![]),
            QueueOp::Empty => WireCall::new("empty", vec![]),
            QueueOp::Full => WireCall::new("full", vec![]),
            QueueOp::TaskDone => WireCall::new("task_done", vec![]),
            QueueOp::Join { timeout } => WireCall::timed("join", vec![], timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::manager::objects::testing::{Cancels, owner, parse, round_trips, run, until};

    const NOW: Option<Duration> = Some(Duration::ZERO);

    fn queue(maxsize: i64, joinable: bool) -> Cell<Queue> {
        Cell::new(Queue::new(DataValue::Int(maxsize), joinable).unwrap())
    }

    fn put(x: i64) -> QueueOp {
        QueueOp::Put {
            item: DataValue::Int(x),
            timeout: NOW,
        }
    }

    #[test]
    fn every_op_round_trips_through_its_name() {
        let q = Queue::new(DataValue::Null, true).unwrap();
        round_trips(
            &q,
            vec![
                QueueOp::Put {
                    item: DataValue::Str("x".into()),
                    timeout: None,
                },
                put(1),
                QueueOp::Get {
                    timeout: Some(Duration::from_millis(250)),
                },
                QueueOp::QSize,
                QueueOp::Empty,
                QueueOp::Full,
                QueueOp::TaskDone,
                QueueOp::Join { timeout: None },
            ],
        );
    }

    #[test]
    fn a_plain_queue_has_no_task_done_or_join() {
        let q = Queue::new(DataValue::Null, false).unwrap();
        assert_eq!(parse(&q, "task_done", vec![]), Ok(None));
        assert_eq!(parse(&q, "join", vec![]), Ok(None));
        assert_eq!(parse(&q, "put_nowait", vec![DataValue::Int(1)]), Ok(None));
        assert_eq!(
            parse(&q, "put", vec![]),
            Err(TypeError::MissingArgument { position: 1 }.into())
        );
        assert_eq!(
            Queue::new(DataValue::Int(-1), false).unwrap_err(),
            TypeError::NotACount {
                what: Count::MaxSize
            }
        );
        assert_eq!(
            Queue::new(DataValue::Str("2".into()), false).unwrap_err(),
            TypeError::NotACount {
                what: Count::MaxSize
            }
        );
    }

    #[test]
    fn bounded_fifo_with_full_and_empty() {
        let cell = queue(2, false);
        assert_eq!(run(&cell, QueueOp::Empty), Ok(DataValue::Bool(true)));
        assert_eq!(
            run(&cell, QueueOp::Get { timeout: NOW }),
            Err(RemoteError::Empty)
        );
        run(&cell, put(1)).unwrap();
        run(&cell, put(2)).unwrap();
        assert_eq!(run(&cell, QueueOp::Full), Ok(DataValue::Bool(true)));
        assert_eq!(run(&cell, put(3)), Err(RemoteError::Full));
        let t0 = Instant::now();
        assert_eq!(
            run(
                &cell,
                QueueOp::Put {
                    item: DataValue::Int(3),
                    timeout: Some(Duration::from_millis(50))
                }
            ),
            Err(RemoteError::Full)
        );
        assert!(t0.elapsed() >= Duration::from_millis(50));
        assert_eq!(run(&cell, QueueOp::QSize), Ok(DataValue::Int(2)));
        assert_eq!(
            run(&cell, QueueOp::Get { timeout: None }),
            Ok(DataValue::Int(1))
        );
        assert_eq!(
            run(&cell, QueueOp::Get { timeout: None }),
            Ok(DataValue::Int(2))
        );
        assert_eq!(run(&cell, QueueOp::Full), Ok(DataValue::Bool(false)));
        // Unbounded.
        let big = queue(0, false);
        for i in 0..1000 {
            run(&big, put(i)).unwrap();
        }
        assert_eq!(run(&big, QueueOp::Full), Ok(DataValue::Bool(false)));
    }

    #[test]
    fn a_blocked_get_is_woken_by_a_put() {
        let cell = Arc::new(queue(0, false));
        let c2 = cell.clone();
        let t = std::thread::spawn(move || {
            run(
                &c2,
                QueueOp::Get {
                    timeout: Some(Duration::from_secs(30)),
                },
            )
        });
        until("the get waits", || cell.sleeping() == 1);
        run(&cell, put(7)).unwrap();
        assert_eq!(t.join().unwrap(), Ok(DataValue::Int(7)));
    }

    #[test]
    fn a_cancelled_get_takes_no_item() {
        let cell = queue(0, false);
        let mut tick = Cancels;
        let mut cx = Ctx::new(owner(1), &mut tick);
        assert_eq!(
            Queue::apply(&cell, QueueOp::Get { timeout: None }, &mut cx),
            Err(RemoteError::Cancelled)
        );
        // An item that is there is taken before any check.
        run(&cell, put(1)).unwrap();
        assert_eq!(
            Queue::apply(&cell, QueueOp::Get { timeout: None }, &mut cx),
            Ok(DataValue::Int(1))
        );
    }

    #[test]
    fn task_done_and_join() {
        let cell = queue(0, true);
        assert_eq!(run(&cell, QueueOp::TaskDone), Err(RemoteError::TaskDone));
        assert_eq!(
            run(&cell, QueueOp::Join { timeout: NOW }),
            Ok(DataValue::Null)
        );
        run(&cell, put(1)).unwrap();
        run(&cell, put(2)).unwrap();
        assert_eq!(
            run(&cell, QueueOp::Join { timeout: NOW }),
            Err(RemoteError::Timeout)
        );
        run(&cell, QueueOp::Get { timeout: NOW }).unwrap();
        run(&cell, QueueOp::TaskDone).unwrap();
        assert_eq!(
            run(&cell, QueueOp::Join { timeout: NOW }),
            Err(RemoteError::Timeout)
        );
        run(&cell, QueueOp::Get { timeout: NOW }).unwrap();
        run(&cell, QueueOp::TaskDone).unwrap();
        assert_eq!(
            run(&cell, QueueOp::Join { timeout: NOW }),
            Ok(DataValue::Null)
        );
        assert_eq!(run(&cell, QueueOp::TaskDone), Err(RemoteError::TaskDone));
    }
}
