//! Proxies of the synchronization objects: `Lock`, `RLock`, `Semaphore` /
//! `BoundedSemaphore`, `Condition`, `Event` and `Barrier`.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{NOW, Proxy, ProxyGuard, Result, boolean, count, timed};
use crate::manager::client::Handle;
use crate::manager::kind::ObjectKind;
use crate::manager::objects::{BarrierOp, ConditionOp, EventOp, LockOp, SemaphoreOp};
use crate::manager::value::DataValue;

proxy!(
    /// A `Lock` on the server. Any thread may release it (as
    /// `threading.Lock`); locks held by a client whose connection closes are
    /// released.
    LockProxy<>,
    ObjectKind::Lock
);
lock_methods!(LockProxy);

proxy!(
    /// An `RLock` on the server: reentrant, owned by the acquiring thread of
    /// the acquiring process.
    RLockProxy<>,
    ObjectKind::RLock
);
lock_methods!(RLockProxy);

proxy!(
    /// A `Semaphore` or `BoundedSemaphore` on the server.
    SemaphoreProxy<>,
    ObjectKind::Semaphore
);

impl SemaphoreProxy {
    /// Take a permit, waiting as long as it takes.
    pub fn acquire(&self) -> Result<()> {
        self.op(SemaphoreOp::Acquire { timeout: None }).map(drop)
    }

    /// Take a permit if one is free now.
    pub fn try_acquire(&self) -> Result<bool> {
        timed(self.op(SemaphoreOp::Acquire { timeout: NOW }))
    }

    /// Take a permit, waiting at most `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        timed(self.op(SemaphoreOp::Acquire {
            timeout: Some(timeout),
        }))
    }

    /// Return a permit (`Remote(Release)` above a bounded semaphore's bound).
    pub fn release(&self) -> Result<()> {
        self.release_n(1)
    }

    /// Return `n` permits.
    pub fn release_n(&self, n: u64) -> Result<()> {
        self.op(SemaphoreOp::Release { n }).map(drop)
    }

    /// The permits free now.
    pub fn get_value(&self) -> Result<u64> {
        count(self.op(SemaphoreOp::GetValue)?)
    }
}

proxy!(
    /// A `Condition` on the server, with its own `RLock`.
    ConditionProxy<>,
    ObjectKind::Condition
);
lock_methods!(ConditionProxy);

impl ConditionProxy {
    /// Release the lock, wait for a notification, take the lock back.
    pub fn wait(&self) -> Result<()> {
        self.op(ConditionOp::Wait { timeout: None }).map(drop)
    }

    /// [`wait`](Self::wait) at most `timeout`; whether notified (the lock
    /// is held again either way).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        boolean(self.op(ConditionOp::Wait {
            timeout: Some(timeout),
        })?)
    }

    /// Wait until `pred()` holds (checked with the lock held), at most
    /// `timeout` in all (`None`: forever); the last value of `pred`.
    pub fn wait_for(
        &self,
        mut pred: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        let deadline = timeout.and_then(crate::deadline::after);
        loop {
            if pred() {
                return Ok(true);
            }
            match deadline {
                None => self.wait()?,
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        return Ok(pred());
                    }
                    self.wait_timeout(d - now)?;
                }
            }
        }
    }

    /// Wake one waiter.
    pub fn notify(&self) -> Result<()> {
        self.notify_n(1)
    }

    /// Wake up to `n` waiters.
    pub fn notify_n(&self, n: u64) -> Result<()> {
        self.op(ConditionOp::Notify { n }).map(drop)
    }

    /// Wake every waiter.
    pub fn notify_all(&self) -> Result<()> {
        self.op(ConditionOp::NotifyAll).map(drop)
    }
}

proxy!(
    /// An `Event` on the server.
    EventProxy<>,
    ObjectKind::Event
);

impl EventProxy {
    /// Set the flag and wake every waiter.
    pub fn set(&self) -> Result<()> {
        self.op(EventOp::Set).map(drop)
    }

    /// Clear the flag.
    pub fn clear(&self) -> Result<()> {
        self.op(EventOp::Clear).map(drop)
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> Result<bool> {
        boolean(self.op(EventOp::IsSet)?)
    }

    /// Wait until the flag is set.
    pub fn wait(&self) -> Result<()> {
        self.op(EventOp::Wait { timeout: None }).map(drop)
    }

    /// Wait at most `timeout`; whether the flag is set.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        timed(self.op(EventOp::Wait {
            timeout: Some(timeout),
        }))
    }
}

proxy!(
    /// A `Barrier` on the server.
    BarrierProxy<>,
    ObjectKind::Barrier
);

impl BarrierProxy {
    /// Wait for every party; this party's arrival index (0 for the first).
    /// `Remote(BrokenBarrier)` if the barrier is or gets broken.
    pub fn wait(&self) -> Result<u64> {
        count(self.op(BarrierOp::Wait { timeout: None })?)
    }

    /// [`wait`](Self::wait) at most `timeout`; timing out breaks the
    /// barrier (as in Python) and gives `Remote(BrokenBarrier)`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u64> {
        count(self.op(BarrierOp::Wait {
            timeout: Some(timeout),
        })?)
    }

    /// Break the barrier: every waiter gets `BrokenBarrier`.
    pub fn abort(&self) -> Result<()> {
        self.op(BarrierOp::Abort).map(drop)
    }

    /// Back to the initial, unbroken state.
    pub fn reset(&self) -> Result<()> {
        self.op(BarrierOp::Reset).map(drop)
    }

    /// The number of parties.
    pub fn parties(&self) -> Result<u64> {
        count(self.op(BarrierOp::Parties)?)
    }

    /// Parties waiting now.
    pub fn n_waiting(&self) -> Result<u64> {
        count(self.op(BarrierOp::NWaiting)?)
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> Result<bool> {
        boolean(self.op(BarrierOp::Broken)?)
    }
}
