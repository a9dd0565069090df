//! What may live in memory shared with other processes ([`SharedState`]).
//!
//! A mapping is seen by other processes, any of which may be buggy or
//! hostile, so only a `&T` whose every access is atomic and whose every bit
//! pattern is valid may be handed out over it. The trait says which types
//! are such, and the views that hand out references into a mapping
//! (`MappedBytes::view` in `multiproc-sys`) accept nothing else.

use crate::sync::{AtomicU8, AtomicU32, AtomicU64};

/// A type that may live in memory shared with other processes and be used
/// there through a `&Self`.
///
/// # Safety
///
/// Implement only for a type that:
/// - is made only of atomics, or of other `SharedState` types (arrays of
///   them included), with `#[repr(C)]` or a single field, so that every
///   access is atomic and concurrent access from other processes is
///   defined;
/// - is valid for every bit pattern, since another process may write any
///   bytes;
/// - is in its fresh state when all its bytes are zero (a new mapping is
///   zero-filled);
/// - holds no pointer, reference or `usize` (addresses and widths differ
///   between processes).
///
/// zerocopy's `FromZeros` plus "atomics only" is the model.
pub unsafe trait SharedState: Sync {}

// SAFETY: an atomic integer is one atomic, valid for every bit pattern, zero
// is its fresh value, and it holds no pointer.
unsafe impl SharedState for AtomicU8 {}
// SAFETY: as for `AtomicU8`.
unsafe impl SharedState for AtomicU32 {}
// SAFETY: as for `AtomicU8`.
unsafe impl SharedState for AtomicU64 {}
// SAFETY: an array of shared states is as valid, as fresh when zero and as
// pointer-free as its elements, and has no padding between them.
unsafe impl<T: SharedState, const N: usize> SharedState for [T; N] {}

/// `unsafe impl SharedState` for the state structs of this crate, each a
/// `#[repr(C)]` struct whose fields are all atomics or shared states
/// (checked by the field list in its definition; every one of them
/// documents "all state is atomics, zero means fresh" in the crate docs).
macro_rules! shared_state {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: a `#[repr(C)]` struct of atomics and shared states
            // only (see its definition): every access atomic, every bit
            // pattern valid, all-zero its fresh state, no pointer.
            unsafe impl SharedState for $t {}
        )*
    };
}

shared_state!(
    crate::Header,
    crate::RawLock,
    crate::BiasLock,
    crate::RawSemaphore,
    crate::RawEvent,
    crate::RawCondition,
    crate::RawBarrier,
    crate::RawQueue,
);
