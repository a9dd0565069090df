//! `Process::join_async` (the `tokio` feature): the child's pidfd waits in
//! tokio's reactor; it turns readable when the child exits.

use std::time::Instant;

use serde::de::DeserializeOwned;

use crate::error::Waited;

use super::{Process, ProcessError};

impl<R: DeserializeOwned> Process<R> {
    /// [`join`](Self::join), awaiting the child's exit instead of blocking
    /// the thread (needs a tokio runtime).
    ///
    /// Cancel safe: dropping the future leaves the child as it was, to be
    /// joined later.
    pub async fn join_async(&mut self) -> Result<R, ProcessError> {
        loop {
            match self.join_until(Some(Instant::now())) {
                Err(Waited::GaveUp) => {}
                r => return r.map_err(Waited::into_blocking),
            }
            // GaveUp means running, so there is a sentinel.
            let Some(fd) = self.sentinel() else { continue };
            multiproc_sys::ready::ready(fd, true)
                .await
                .map_err(ProcessError::Io)?;
        }
    }
}
