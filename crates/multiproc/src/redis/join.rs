//! `join` of a joinable queue: the unfinished count, and a pub/sub wake-up
//! from the `task_done` that brings it to zero.

use std::time::{Duration, Instant};

use super::queue::{Core, Wait, interrupted, lock};
use super::{CONNECT_TIMEOUT, JoinConn, REPLY_TIMEOUT, RedisError};
use crate::TimeoutError;

/// How often `join` looks at the count even without a message.
const JOIN_RECHECK: Duration = Duration::from_secs(1);

impl Core {
    pub(super) fn unfinished(&self) -> Result<u64, RedisError> {
        let n: Option<i64> =
            lock(&self.cmd).run(|c| redis::cmd("GET").arg(&self.unfinished).query(c))?;
        Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
    }

    pub(super) fn join(&self, wait: Wait) -> Result<(), TimeoutError<RedisError>> {
        loop {
            match self.join_on_one_connection(wait) {
                // A signal cut the subscription's read (and maybe a reply in
                // half): subscribe again on a new connection.
                Err(TimeoutError::Failed(e)) if interrupted(&e) => {}
                other => return other,
            }
        }
    }

    /// One `join` on the handle's pub/sub connection (kept between calls,
    /// so a Python caller's short slices do not open one each); a
    /// connection that failed is dropped, and one kept from an earlier
    /// call gets one more try on a new connection.
    fn join_on_one_connection(&self, wait: Wait) -> Result<(), TimeoutError<RedisError>> {
        let pid = std::process::id();
        let kept = lock(&self.join_conn).take().filter(|(p, _)| *p == pid);
        let reused = kept.is_some();
        let mut conn = match kept {
            Some((_, JoinConn(c))) => c,
            None => self
                .client
                .get_connection_with_timeout(CONNECT_TIMEOUT)
                .map_err(RedisError::from)?,
        };
        let r = self.join_on(&mut conn, wait);
        match &r {
            Ok(()) | Err(TimeoutError::Timeout) => {
                *lock(&self.join_conn) = Some((pid, JoinConn(conn)));
            }
            Err(TimeoutError::Failed(e)) if reused && !interrupted(e) => {
                // It may have broken while it was kept.
                return self.join_on_one_connection(wait);
            }
            Err(_) => {}
        }
        r
    }

    fn join_on(
        &self,
        conn: &mut redis::Connection,
        wait: Wait,
    ) -> Result<(), TimeoutError<RedisError>> {
        // redis-rs clears the connect timeout once connected: without its
        // own, a server that stops answering would hold `subscribe` (and
        // the unsubscribe of `PubSub`'s drop) for ever.
        conn.set_read_timeout(Some(REPLY_TIMEOUT))
            .map_err(RedisError::from)?;
        conn.set_write_timeout(Some(REPLY_TIMEOUT))
            .map_err(RedisError::from)?;
        let mut ps = conn.as_pubsub();
        // Subscribed before the count is read: a publish after the read is
        // not missed.
        ps.subscribe(&self.channel).map_err(RedisError::from)?;
        loop {
            if self.unfinished()? == 0 {
                return Ok(());
            }
            let slice = match wait {
                Wait::Now => return Err(TimeoutError::Timeout),
                Wait::Forever => JOIN_RECHECK,
                Wait::Until(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(JOIN_RECHECK),
                    _ => return Err(TimeoutError::Timeout),
                },
            };
            ps.set_read_timeout(Some(slice)).map_err(RedisError::from)?;
            match ps.get_message() {
                Ok(_) => {}
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(RedisError::from(e).into()),
            }
        }
    }
}
