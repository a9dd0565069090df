//! Data structures that live in shared memory, free of system calls.
//!
//! Everything here works on memory it is handed (a mapped segment in
//! production, heap memory under loom and miri) and takes waiting and waking
//! as parameters, so the same algorithms are model-checked with threads
//! standing in for processes. Today the crate holds the atomics facade and the
//! segment header every shared object starts with; the lock, event, semaphore
//! and queue state machines follow.

pub mod header;
pub mod sync;

pub use header::{Header, HeaderError, InitState};
