//! Getting: taking records under the consumers' lock.

use std::time::Instant;

use crate::env::{self, Env};
use crate::sync::Ordering;

use super::{
    HEADER, KIND_INLINE, KIND_SIDE, KIND_WRAP, Pos, QueueError, RawQueue, Region, SIDE_PREFIX,
    Sink, TAKE_BYTES, Taken, read_u64, record_span, wake_room,
};

impl RawQueue {
    /// Take up to `max` records (at least one, waiting until `deadline`),
    /// each appended to `buf` and passed to `sink`. Returns how many.
    pub fn get<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        max: usize,
        deadline: Option<Instant>,
        scratch: &mut Vec<u8>,
        sink: Sink<'_>,
    ) -> Result<usize, QueueError> {
        loop {
            self.lock(&self.cons.lock, env, deadline, false)?;
            env.failpoint("get.locked");
            let mut side = false;
            let r = self.take(env, ring, max.max(1), scratch, &mut side, sink);
            Self::unlock(&self.cons.lock, env);
            match r {
                Ok(0) => {}
                Ok(n) => {
                    self.not_full
                        .0
                        .notify_if(env, u32::MAX, || side || self.room_worth_a_wake(ring));
                    return Ok(n);
                }
                Err(e) => return Err(e),
            }
            if env::expired(env, deadline) {
                return Err(QueueError::Timeout);
            }
            // Spin briefly on `tail`, then sleep on `not_empty`.
            // Ordering::Relaxed: only a hint; `take` decides.
            let seen = self.tail.0.load(Ordering::Relaxed);
            if env::spin_until(env, || {
                self.tail.0.load(Ordering::Relaxed) != seen || self.is_closed()
            }) {
                continue;
            }
            let ticket = self.not_empty.0.prepare(env);
            // Re-check after registering (Dekker with the producers' notify).
            if self.has_items(ring) || self.is_closed() {
                self.not_empty.0.cancel();
                continue;
            }
            // Never longer than a liveness check: a producer killed after
            // publishing its record and before its wake-up leaves no one to
            // wake us (seen under stress: with `maxsize` 1 the queue then
            // stays full and no later put notifies).
            self.not_empty
                .0
                .park(env, ticket, env::slice(env, deadline));
        }
    }

    /// After a get, with producers asleep for room: whether to wake them.
    /// Producers waiting for item slots always; producers waiting for bytes
    /// once [`wake_room`] bytes are free (a producer far ahead of its
    /// consumers then runs in long strides instead of one wake-up per get),
    /// or when the head reaches a WRAP (the producer may free its lap) or
    /// the last record. Every sleeper's condition needs one of these first:
    /// a record fits in at most half the ring, so it fits in an empty ring.
    /// (Side records, whose budget producers may wait for, always wake:
    /// the caller checks.)
    fn room_worth_a_wake<R: Region + ?Sized>(&self, ring: &R) -> bool {
        if self.maxsize() != 0 {
            return true;
        }
        let cap = ring.capacity();
        let h = Pos::unpack(self.head.0.load(Ordering::Relaxed));
        let t = Pos::unpack(self.tail.0.load(Ordering::Relaxed));
        let used = t.at.wrapping_sub(h.at);
        used > cap
            || cap - used >= wake_room(cap)
            || matches!(Self::read_header(ring, h.at & (cap - 1)).1, 0 | KIND_WRAP)
    }

    /// Whether a record (or a WRAP) is committed at the head (no lock; a
    /// hint).
    #[inline]
    fn has_items<R: Region + ?Sized>(&self, ring: &R) -> bool {
        let h = Pos::unpack(self.head.0.load(Ordering::Acquire));
        // SYNC POINT: read (Acquire), as in `take`.
        Self::read_header(ring, h.at & (ring.capacity() - 1)).1 != 0
    }

    /// With the C lock held: take up to `max` records. `Ok(0)`: empty (and
    /// not closed). An error after some records were taken is left for the
    /// next call to meet again (the bad record stays at the head).
    fn take<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        max: usize,
        scratch: &mut Vec<u8>,
        side: &mut bool,
        sink: Sink<'_>,
    ) -> Result<usize, QueueError> {
        let fail = |n: usize, e: QueueError| if n > 0 { Ok(n) } else { Err(e) };
        let cap = ring.capacity();
        let mut h = Pos::unpack(self.head.0.load(Ordering::Relaxed));
        let mut n = 0usize;
        let joinable = self.joinable();
        let mut slot = None;
        let base = scratch.len();
        // WRAPs skipped since the last record: a sane ring never has two in
        // a row, so a second one means a hostile ring (and no endless loop).
        let mut wraps = 0;
        while n < max {
            if h.at % 8 != 0 {
                return fail(n, QueueError::Corrupted);
            }
            let off = h.at & (cap - 1);
            // The header is the record's commit (module docs): kind 0 is the
            // cleared slot after the last committed record.
            let (len, kind) = Self::read_header(ring, off);
            if kind == 0 {
                if n > 0 {
                    break;
                }
                // Closed and drained? A put that happened before the close
                // is visible once the close is (Acquire), so look at the
                // header once more after seeing it.
                if self.config.closed.load(Ordering::Acquire) != 0 {
                    if Self::read_header(ring, off).1 == 0 {
                        return Err(QueueError::Closed);
                    }
                    continue;
                }
                return Ok(0);
            }
            if kind == KIND_WRAP {
                wraps += 1;
                if wraps > 1 {
                    return fail(n, QueueError::Corrupted);
                }
                h.at = h.at.wrapping_add(cap - off);
                // SYNC POINT: write, as below (the filler is consumed).
                self.head.0.store(h.pack(), Ordering::Release);
                continue;
            }
            wraps = 0;
            let size = record_span(len);
            let valid_kind =
                kind == KIND_INLINE || (kind == KIND_SIDE && len as usize >= SIDE_PREFIX);
            if !valid_kind || size > u64::from(cap - off) {
                return fail(n, QueueError::Corrupted);
            }
            let start = scratch.len();
            ring.append(off + HEADER, len as usize, scratch);
            let mut taken = Taken {
                kind,
                seq: 0,
                ool: 0,
            };
            if kind == KIND_SIDE {
                *side = true;
                taken.seq = read_u64(scratch, start);
                taken.ool = read_u64(scratch, start + 8);
                scratch.drain(start..start + SIDE_PREFIX);
                if taken.ool != 0 {
                    // Before the commit: a consumer dying in between makes
                    // the budget looser, never tighter.
                    let v = self.cons.ool_got.load(Ordering::Relaxed);
                    self.cons
                        .ool_got
                        .store(v.wrapping_add(taken.ool), Ordering::Relaxed);
                }
            }
            let use_credit = joinable && self.cons.credit.load(Ordering::Relaxed) > 0;
            if joinable && !use_credit {
                // Before the commit: a consumer dying in between holds one
                // task too many, which is forgiven with the rest of its
                // tasks when its death is noticed.
                self.count_task_taken(env, &mut slot);
            }
            env.failpoint("get.copied");
            h.at = h.at.wrapping_add(size as u32);
            h.items = h.items.wrapping_add(1);
            // The commit point. SYNC POINT: write. Release pairs with the
            // producers' Acquire of `head`: our reads are done before they
            // overwrite the bytes.
            self.head.0.store(h.pack(), Ordering::Release);
            env.failpoint("get.committed");
            if use_credit {
                // After the commit: a consumer dying in between leaves the
                // credit unused, so `join` may return early, never late.
                let c = self.cons.credit.load(Ordering::Relaxed);
                self.cons
                    .credit
                    .store(c.saturating_sub(1), Ordering::Relaxed);
            }
            n += 1;
            if !sink(taken, scratch, start) || scratch.len().saturating_sub(base) >= TAKE_BYTES {
                break;
            }
        }
        Ok(n)
    }

    // ----- state ------------------------------------------------------------------
}
