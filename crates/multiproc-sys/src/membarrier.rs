//! Asymmetric memory barriers between processes: `membarrier(2)` with
//! `MEMBARRIER_CMD_GLOBAL_EXPEDITED`.
//!
//! A Dekker pair (each side stores its flag, then loads the other's) needs a
//! full barrier on both sides. When one side is hot (a queue's producer
//! notifying after every put) and the other rare (a consumer about to
//! sleep), the rare side can issue [`global`], which runs a full barrier on
//! every CPU that runs a thread of a [`register`]ed process, and the hot
//! side needs only a compiler barrier. See `membarrier(2)`.

use rustix::thread::{MembarrierCommand, membarrier};

/// Register this process for [`global`] barriers (idempotent, per process;
/// a forked child registers again). Returns whether it is registered.
pub fn register() -> bool {
    membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
}

/// Run a full memory barrier on every CPU that runs a thread of a
/// registered process (and on this one). Returns `false` if the kernel
/// refused (then the caller must fall back to a plain fence and treat the
/// hot side as unsynchronized).
pub fn global() -> bool {
    membarrier(MembarrierCommand::GlobalExpedited).is_ok()
}
