//! [`Barrier`]: a fixed number of parties meet; one death breaks it.

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use multiproc_shm::{BarrierError, RawBarrier};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::shared::segment::{self};

use super::handle::Handle;
use super::{BarrierWaitError, BrokenBarrierError, ENV, deadline};

// ----- Barrier -----------------------------------------------------------------

const BARRIER_LAYOUT: u64 = segment::layout_hash(
    "multiproc::Barrier/3",
    std::mem::size_of::<RawBarrier>(),
    std::mem::align_of::<RawBarrier>(),
);
const BARRIER_SLOTS: usize = 64; // offset of the slots: RawBarrier rounded up
const _: () = assert!(std::mem::size_of::<RawBarrier>() <= BARRIER_SLOTS);

/// A barrier for a fixed number of parties in any processes (Python's
/// `multiprocessing.Barrier`).
///
/// A party that dies while waiting breaks the barrier for the others within
/// about [`LIVENESS_CHECK`](multiproc_shm::LIVENESS_CHECK); a timeout breaks
/// it too, as in Python.
#[derive(Clone, Debug)]
pub struct Barrier {
    h: Handle<RawBarrier>,
}

impl Serialize for Barrier {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.h.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = Barrier {
            h: Handle::deserialize(d)?,
        };
        // The slots must fit in what was mapped.
        let need = BARRIER_SLOTS as u64 + 4 * u64::from(b.h.get().parties());
        if need > b.h.seg.payload_len() as u64 || b.h.get().parties() == 0 {
            return Err(serde::de::Error::custom(
                "barrier segment too small for its parties",
            ));
        }
        Ok(b)
    }
}

impl Barrier {
    /// A barrier for `parties` (at least 1).
    pub fn new(parties: u32) -> io::Result<Barrier> {
        if parties == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a barrier needs at least one party",
            ));
        }
        let extra = BARRIER_SLOTS - std::mem::size_of::<RawBarrier>() + 4 * parties as usize;
        Ok(Barrier {
            h: Handle::create("barrier", BARRIER_LAYOUT, extra, |b: &RawBarrier| {
                b.init(parties)
            })?,
        })
    }

    fn slots(&self) -> &[AtomicU32] {
        let n = self.h.get().parties() as usize;
        // `parties` slots fit in the payload (checked at creation and on
        // receipt), but another process may have written any `parties`
        // since: never more slots than the segment holds.
        let fits = self.h.seg.payload_len().saturating_sub(BARRIER_SLOTS)
            / std::mem::size_of::<AtomicU32>();
        self.h
            .seg
            .view_slice(BARRIER_SLOTS, n.min(fits))
            .unwrap_or(&[])
    }

    /// Wait for every party; returns this party's arrival index
    /// (`0..parties`).
    pub fn wait(&self) -> Result<u32, BrokenBarrierError> {
        self.h
            .get()
            .wait(&ENV, self.slots(), None)
            .map_err(|_| BrokenBarrierError)
    }

    /// [`wait`](Self::wait) at most `timeout`; timing out breaks the barrier.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32, BrokenBarrierError> {
        self.h
            .get()
            .wait(&ENV, self.slots(), deadline(timeout))
            .map_err(|_| BrokenBarrierError)
    }

    /// [`wait`](Self::wait), until `deadline` (the barrier breaks then, as
    /// with [`wait_timeout`](Self::wait_timeout)).
    pub fn wait_deadline(&self, deadline: Instant) -> Result<u32, BrokenBarrierError> {
        self.h
            .get()
            .wait(&ENV, self.slots(), Some(deadline))
            .map_err(|_| BrokenBarrierError)
    }

    /// [`wait`](Self::wait), awaiting the other parties instead of blocking
    /// the thread (any executor). A party that dies while waiting still
    /// breaks the barrier for the others, as in the blocking form.
    ///
    /// Cancel safe: a future dropped while the barrier is still filling
    /// leaves it as if this party had never arrived (as an interrupted
    /// blocking wait does); the barrier is not broken and waits for another
    /// party in its place. One dropped after the last party arrived but
    /// before it looked was counted in that passing (the others passed
    /// with it); only its own caller does not learn the index.
    pub async fn wait_async(&self) -> Result<u32, BrokenBarrierError> {
        super::aio::barrier_wait(self.h.get(), self.slots(), None)
            .await
            .map_err(|_| BrokenBarrierError)
    }

    /// [`wait_timeout`](Self::wait_timeout), awaiting instead of blocking:
    /// timing out breaks the barrier. Cancel safe as
    /// [`wait_async`](Self::wait_async).
    pub async fn wait_timeout_async(&self, timeout: Duration) -> Result<u32, BrokenBarrierError> {
        super::aio::barrier_wait(self.h.get(), self.slots(), deadline(timeout))
            .await
            .map_err(|_| BrokenBarrierError)
    }

    /// [`wait`](Self::wait) (at most `timeout` if given), calling
    /// `interrupted` between sleeps of at most `every` (a binding checks for
    /// signals this way, so that Ctrl-C works). An interrupted party leaves
    /// as if it had never arrived, as with Python's `threading.Barrier`: the
    /// barrier is not broken and waits for another party in its place.
    pub fn wait_interruptible(
        &self,
        timeout: Option<Duration>,
        every: Duration,
        interrupted: impl FnMut() -> bool,
    ) -> Result<u32, BarrierWaitError> {
        self.h
            .get()
            .wait_interruptible(
                &ENV,
                self.slots(),
                timeout.and_then(deadline),
                every,
                interrupted,
            )
            .map_err(|e| match e {
                BarrierError::Broken => BarrierWaitError::Broken,
                BarrierError::Interrupted => BarrierWaitError::Interrupted,
            })
    }

    /// Break the barrier.
    pub fn abort(&self) {
        self.h.get().abort(&ENV);
    }

    /// Return to the initial state; current waiters get
    /// [`BrokenBarrierError`].
    pub fn reset(&self) {
        self.h.get().reset(&ENV);
    }

    /// Parties waiting now.
    pub fn n_waiting(&self) -> u32 {
        self.h.get().n_waiting()
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.h.get().parties()
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.h.get().broken()
    }
}
