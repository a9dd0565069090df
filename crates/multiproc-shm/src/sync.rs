//! The one place atomics come from, so loom can stand in for them
//! (`RUSTFLAGS="--cfg multiproc_loom"`).

#[cfg(multiproc_loom)]
pub use loom::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering, fence};

#[cfg(not(multiproc_loom))]
pub use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering, fence};

/// Only a compiler barrier: loom has no model of it, and the models never
/// take the light-barrier path that uses it (see `Env::light_barriers`).
pub use core::sync::atomic::compiler_fence;
