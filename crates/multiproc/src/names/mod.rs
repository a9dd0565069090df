//! Named kernel objects: the owner records of everything multiproc creates
//! under a name, for `multiproc ls` and `multiproc clean`.
//!
//! - [`registry`]: the record store (one small file per object).

pub mod registry;
