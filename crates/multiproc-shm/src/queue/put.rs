//! Putting: the producers' lock, a lap restart when the ring is full of
//! consumed records, and appending one record or a run of them.

use std::time::Instant;

use crate::bias::BiasLock;
use crate::env::{self, Env};
use crate::eventcount::EventCount;
use crate::lock::{Acquired, LockError};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

use super::{
    Appended, Config, Consumers, HEADER, KIND_INLINE, KIND_SIDE, KIND_WRAP, LAP_PROBE_EVERY,
    PUT_MANY_BYTES, Pos, Producers, QueueError, RawQueue, Rec, Region, SIDE_PREFIX, SendSide,
    Signal, Space, Taker, Word, lock_deadline, pad8, placement, record_size, record_span,
    restart_backlog, soft_limit,
};

impl RawQueue {
    /// A fresh queue state (heap use: loom models and tests).
    pub fn new(maxsize: u32, budget: u64, joinable: bool) -> Self {
        let q = RawQueue {
            config: Config {
                maxsize: AtomicU32::new(0),
                closed: AtomicU32::new(0),
                joinable: AtomicU32::new(0),
                _reserved: AtomicU32::new(0),
                budget: AtomicU64::new(0),
            },
            prod: Producers {
                lock: BiasLock::new(),
                head_seen: AtomicU64::new(0),
                side_seq: AtomicU64::new(0),
                ool_put: AtomicU64::new(0),
                lap_probe: AtomicU32::new(0),
                restart_wrap: AtomicU64::new(0),
            },
            tail: Word(AtomicU64::new(0)),
            cons: Consumers {
                lock: BiasLock::new(),
                ool_got: AtomicU64::new(0),
                credit: AtomicU32::new(0),
                untracked: AtomicU32::new(0),
            },
            head: Word(AtomicU64::new(0)),
            not_empty: Signal(EventCount::new()),
            not_full: Signal(EventCount::new()),
            all_done: Signal(EventCount::new()),
            takers: core::array::from_fn(|_| Taker {
                id: AtomicU64::new(0),
                held: AtomicU32::new(0),
                _reserved: AtomicU32::new(0),
            }),
        };
        q.init(maxsize, budget, joinable);
        q
    }

    /// Initialize zeroed shared memory (before the segment is published).
    pub fn init(&self, maxsize: u32, budget: u64, joinable: bool) {
        // Ordering::Relaxed: published by the segment header's Release.
        self.config.maxsize.store(maxsize, Ordering::Relaxed);
        self.config.budget.store(budget, Ordering::Relaxed);
        self.config
            .joinable
            .store(u32::from(joinable), Ordering::Relaxed);
    }

    // Fields of the producer group are read and written with the P lock
    // held, those of the consumer group with the C lock held
    // (Ordering::Relaxed: the lock's Acquire/Release order them); `tail`
    // and `head` are the SYNC POINTs described in the module docs.

    /// Take the P lock; from a dead producer, first move `tail` over what
    /// it committed ([`roll_forward`](Self::roll_forward)).
    #[inline]
    fn lock_producers<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        deadline: Option<Instant>,
    ) -> Result<(), QueueError> {
        if self.lock(&self.prod.lock, env, deadline, false)? {
            self.roll_forward(ring);
        }
        Ok(())
    }

    /// With the P lock taken over from a dead producer: move `tail` over
    /// the records that producer committed (their headers are written) but
    /// did not yet count in `tail`. The walk stops at the first cleared
    /// header slot, and at anything insane.
    #[cold]
    fn roll_forward<R: Region + ?Sized>(&self, ring: &R) {
        let cap = ring.capacity();
        let start = Pos::unpack(self.tail.0.load(Ordering::Relaxed));
        let mut t = start;
        let mut walked = 0u32;
        while t.at % 8 == 0 && walked < cap {
            let off = t.at & (cap - 1);
            let (len, kind) = Self::read_header(ring, off);
            let step = match kind {
                KIND_WRAP => cap - off,
                KIND_INLINE | KIND_SIDE if record_span(len) <= u64::from(cap - off) => {
                    record_span(len) as u32
                }
                _ => break,
            };
            t.at = t.at.wrapping_add(step);
            if kind != KIND_WRAP {
                t.items = t.items.wrapping_add(1);
            }
            walked = walked.saturating_add(step);
        }
        if t != start {
            // SYNC POINT: write, as in `append_one`.
            self.tail.0.store(t.pack(), Ordering::Release);
        }
    }

    /// Take `lock` (`aside`: an occasional taker, see
    /// [`BiasLock::lock_aside`]); whether it was taken over from a dead
    /// holder (marked consistent: the caller repairs what needs it).
    #[inline]
    pub(crate) fn lock<E: Env + ?Sized>(
        &self,
        lock: &BiasLock,
        env: &E,
        deadline: Option<Instant>,
        aside: bool,
    ) -> Result<bool, QueueError> {
        // A `try_` or timed call waits at least LOCK_GRACE for a held lock;
        // the clock is read only if it is held.
        let taken = if aside {
            lock.lock_aside(env, lock_deadline(env, deadline))
        } else {
            lock.lock_with(env, || lock_deadline(env, deadline))
        };
        match taken {
            Ok(Acquired::OwnerDied) => {
                // Every change commits with one store (module docs); the
                // only repair is the producers' `tail`, which the P lock's
                // caller rolls forward.
                lock.mark_consistent();
                Ok(true)
            }
            Ok(_) => Ok(false),
            // Only a hostile process can make a queue lock unrecoverable:
            // this code always marks it consistent.
            Err(LockError::NotRecoverable) => Err(QueueError::Corrupted),
            Err(LockError::WouldBlock) => Err(QueueError::Timeout),
        }
    }

    #[inline]
    pub(crate) fn unlock<E: Env + ?Sized>(lock: &BiasLock, env: &E) {
        // Only fails if another process released our lock: nothing to do.
        let _ = lock.unlock(env);
    }

    #[inline]
    pub(crate) fn maxsize(&self) -> u32 {
        // Ordering::Relaxed: set before publication, never changed.
        self.config.maxsize.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn joinable(&self) -> bool {
        self.config.joinable.load(Ordering::Relaxed) != 0
    }

    // ----- put ------------------------------------------------------------------

    /// With the P lock held: the room after `t`, judged by the cached head
    /// (a lower bound of the real one) or, with `fresh`, by `head` itself.
    #[inline]
    fn space<R: Region + ?Sized>(
        &self,
        ring: &R,
        t: Pos,
        fresh: bool,
    ) -> Result<Space, QueueError> {
        let cap = ring.capacity();
        let h = if fresh {
            // SYNC POINT: read. Acquire pairs with the consumers' Release of
            // `head`: the bytes they copied out are free to overwrite.
            let h = Pos::unpack(self.head.0.load(Ordering::Acquire));
            self.prod.head_seen.store(h.pack(), Ordering::Relaxed);
            h
        } else {
            Pos::unpack(self.prod.head_seen.load(Ordering::Relaxed))
        };
        let used = t.at.wrapping_sub(h.at);
        if used > cap || h.at % 8 != 0 {
            return Err(QueueError::Corrupted);
        }
        let maxsize = self.maxsize();
        let slots = if maxsize == 0 {
            u32::MAX
        } else {
            maxsize.saturating_sub(t.items.wrapping_sub(h.items))
        };
        Ok(Space {
            free: cap - used,
            slots,
        })
    }

    /// With the P lock held: whether a record of `size` fits at `t`; the
    /// filler it needs first. Looks at `head` itself only when the cached
    /// one says no.
    #[inline]
    fn fits<R: Region + ?Sized>(
        &self,
        ring: &R,
        t: Pos,
        size: u32,
    ) -> Result<Option<u32>, QueueError> {
        let (wrap, need) = placement(ring.capacity(), t.at, size);
        // The record, and the header slot after it (cleared at the commit).
        let need = need + HEADER;
        if self.space(ring, t, false).is_ok_and(|s| s.takes(need))
            || self.space(ring, t, true)?.takes(need)
        {
            Ok(Some(wrap))
        } else {
            Ok(None)
        }
    }

    /// With the P lock held and the queue looking empty far into the lap:
    /// commit a WRAP record so that the next record starts the next lap at
    /// offset 0, and the ring's first pages are reused. Consumers skip the
    /// WRAP on their next get; a producer that runs out of room while it
    /// is still there frees the rest of the lap itself
    /// ([`reclaim_lap`](Self::reclaim_lap)).
    #[inline]
    fn restart_lap<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        t: Pos,
        size: u32,
    ) -> Pos {
        let cap = ring.capacity();
        let soft = soft_limit(cap, size);
        if t.at & (cap - 1) < soft {
            return t;
        }
        self.restart_lap_slow(env, ring, t, soft)
    }

    #[cold]
    fn restart_lap_slow<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        t: Pos,
        soft: u32,
    ) -> Pos {
        // Look at the consumers at most once every LAP_PROBE_EVERY bytes
        // (the `head` load below is a cache miss). Only `tail` positions up
        // to that far before the probe wait, so a stale probe never stops
        // the looks for good.
        let cap = ring.capacity();
        let every = LAP_PROBE_EVERY.min(soft);
        let wait = self
            .prod
            .lap_probe
            .load(Ordering::Relaxed)
            .wrapping_sub(t.at);
        if wait != 0 && wait <= every {
            return t;
        }
        let off = t.at & (cap - 1);
        // SYNC POINT: read, as in `space`.
        let h = Pos::unpack(self.head.0.load(Ordering::Acquire));
        // Restart when what is pending is all in this lap, small, and no
        // larger than the filler: then a producer short of room in the next
        // lap can always move it into the filler's end and free the rest of
        // this lap ([`reclaim_lap`](Self::reclaim_lap)). A stream whose
        // consumers keep pace is rarely empty at a put, only a record or two
        // behind, and without this would walk the whole ring.
        let pending = t.at.wrapping_sub(h.at);
        // (The move keeps the WRAP header: it needs `pending + HEADER`.)
        // The header slot at offset 0, which the WRAP's commit clears, must
        // be consumed: hence `pending + HEADER <= off`. And at most half a
        // lap pending: with more, a producer faster than its consumers
        // would reach them in the next lap before they pass the WRAP, and
        // copy what is pending at every lap (`reclaim_lap`); measured, a
        // 64 B stream runs 1.7x faster than with up to 4 MiB pending.
        let restart = pending + HEADER <= off
            && pending <= restart_backlog(cap).min(soft / 2)
            && pending + HEADER <= cap - off;
        if !restart {
            self.prod
                .lap_probe
                .store(t.at.wrapping_add(every), Ordering::Relaxed);
            return t;
        }
        // The hint first: a producer killed before the commit leaves a hint
        // that `records_before_wrap` finds false, nothing worse.
        self.prod
            .restart_wrap
            .store(1 << 32 | u64::from(t.at), Ordering::Relaxed);
        Self::clear_header(ring, 0);
        Self::write_header(ring, off, 0, KIND_WRAP);
        let t = Pos {
            at: t.at.wrapping_add(cap - off),
            items: t.items,
        };
        // SYNC POINT: write, as in `append_one`.
        self.tail.0.store(t.pack(), Ordering::Release);
        env.failpoint("restart.committed");
        t
    }

    /// Whether the record at `head` is a WRAP (a hint for a waiting
    /// producer: [`reclaim_lap`](Self::reclaim_lap) frees its lap).
    fn wrap_at_head<R: Region + ?Sized>(&self, ring: &R) -> bool {
        let h = Pos::unpack(self.head.0.load(Ordering::Acquire));
        let t = Pos::unpack(self.tail.0.load(Ordering::Acquire));
        if h.at == t.at || h.at % 8 != 0 {
            return false;
        }
        Self::read_header(ring, h.at & (ring.capacity() - 1)).1 == KIND_WRAP
    }

    /// With the P lock held and no room: free the rest of a lap that a
    /// WRAP ahead of the consumers holds. If the records before the first
    /// WRAP after the head are few (at most [`restart_backlog`] bytes, as a
    /// lap restart leaves them) and fit in its filler, copy them to the end
    /// of the filler and move `head` to the copy with one store, under the
    /// C lock: the rest of the lap is free, the records and their order
    /// unchanged. A WRAP right at the head (consumers idle) is simply
    /// consumed. Returns whether `head` moved.
    ///
    /// A producer killed before the `head` store leaves only bytes inside
    /// the filler, which nobody reads; after it, the copy is the queue.
    fn reclaim_lap<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        deadline: Option<Instant>,
    ) -> Result<bool, QueueError> {
        let cap = ring.capacity();
        // Without the C lock first, so that a ring that is simply full costs
        // no lock and no walk: there is something to do only with a WRAP at
        // the head, or the consumers before the last restart's WRAP (by at
        // most what a restart leaves) — and never when the item limit, not
        // the room, is what is short.
        let h = Pos::unpack(self.head.0.load(Ordering::Acquire));
        let t = Pos::unpack(self.tail.0.load(Ordering::Relaxed));
        let maxsize = self.maxsize();
        if maxsize != 0 && t.items.wrapping_sub(h.items) >= maxsize {
            return Ok(false);
        }
        let w = self.prod.restart_wrap.load(Ordering::Relaxed);
        let behind_restart = w >> 32 == 1 && (w as u32).wrapping_sub(h.at) <= restart_backlog(cap);
        if !behind_restart && !self.wrap_at_head(ring) {
            return Ok(false);
        }
        // Lock order is always P then C.
        self.lock(&self.cons.lock, env, deadline, true)?;
        let start = Pos::unpack(self.head.0.load(Ordering::Relaxed));
        let mut h = start;
        while let Some(before) = self.records_before_wrap(ring, h) {
            let w = h.at.wrapping_add(before);
            let lap_end = w.wrapping_add(cap - (w & (cap - 1)));
            if before > 0 {
                let from = h.at & (cap - 1);
                let to = cap - before;
                if to < (w & (cap - 1)) + HEADER {
                    break;
                }
                Self::copy_records(ring, from, to, before);
                env.failpoint("reclaim.copied");
            }
            h.at = lap_end.wrapping_sub(before);
            // SYNC POINT: write, as in `take`: consumers that see the new
            // head read the copy (the bytes were written before).
            self.head.0.store(h.pack(), Ordering::Release);
            if before > 0 {
                break;
            }
        }
        if h != start {
            self.prod.head_seen.store(h.pack(), Ordering::Relaxed);
        }
        Self::unlock(&self.cons.lock, env);
        Ok(h != start)
    }

    /// With both locks held: copy the `len` bytes of sane records at `from`
    /// to `to` (no overlap), bodies first and each header after its body.
    fn copy_records<R: Region + ?Sized>(ring: &R, from: u32, to: u32, len: u32) {
        let mut done = 0u32;
        let mut body = Vec::new();
        while done < len {
            let (n, kind) = Self::read_header(ring, from + done);
            let size = record_span(n).min(u64::from(len - done)) as u32;
            body.clear();
            body.resize((size - HEADER) as usize, 0);
            ring.read(from + done + HEADER, &mut body);
            ring.write(to + done + HEADER, &body);
            Self::write_header(ring, to + done, n, kind);
            done += size;
        }
    }

    /// Bytes of the records from `h` to the first WRAP after it, if that
    /// WRAP is committed, they are at most [`restart_backlog`] bytes and in
    /// `h`'s lap, and the headers on the way are sane.
    fn records_before_wrap<R: Region + ?Sized>(&self, ring: &R, h: Pos) -> Option<u32> {
        let cap = ring.capacity();
        let t = Pos::unpack(self.tail.0.load(Ordering::Acquire));
        let avail = t.at.wrapping_sub(h.at);
        if avail > cap || h.at % 8 != 0 {
            return None;
        }
        let limit = restart_backlog(cap).min(avail);
        let mut before = 0u32;
        loop {
            if before >= avail {
                return None;
            }
            let off = h.at.wrapping_add(before) & (cap - 1);
            let (len, kind) = Self::read_header(ring, off);
            if kind == KIND_WRAP {
                return (cap - off <= avail - before).then_some(before);
            }
            let size = record_span(len);
            if size > u64::from(cap - off) || size > u64::from(limit - before.min(limit)) {
                return None;
            }
            before += size as u32;
        }
    }

    /// The header at `off`: `(len, kind)`, as written (unvalidated; kind 0:
    /// nothing committed there). SYNC POINT: read (Acquire, in
    /// [`Region::load_header`]): pairs with the Release in `write_header`,
    /// so a record's bytes are visible once its header is.
    #[inline]
    pub(crate) fn read_header<R: Region + ?Sized>(ring: &R, off: u32) -> (u32, u32) {
        let w = ring.load_header(off);
        (w as u32, (w >> 32) as u32)
    }

    /// Commit a header at `off`. SYNC POINT: write (Release, in
    /// [`Region::store_header`]): the record's body, and the cleared header
    /// after it, are written first.
    #[inline]
    fn write_header<R: Region + ?Sized>(ring: &R, off: u32, len: u32, kind: u32) {
        ring.store_header(off, u64::from(len) | u64::from(kind) << 32);
    }

    /// Clear the header slot at `off` (the one after a record about to be
    /// committed), so that consumers reaching it see "nothing yet".
    #[inline]
    fn clear_header<R: Region + ?Sized>(ring: &R, off: u32) {
        ring.store_header(off, 0);
    }

    /// With the P lock held and room found (for `wrap` bytes of filler, the
    /// record, and the header slot after it): write a record at `t` and
    /// commit it (consumers can take it from then on); returns the position
    /// after it. The caller then moves `tail` there.
    ///
    /// Order: body, the next header slot cleared, the record's header
    /// (Release), and with a filler the filler's header last, since
    /// consumers reach the record only through it.
    #[inline]
    fn write_record<E: Env + ?Sized, R: Region + ?Sized>(
        env: &E,
        ring: &R,
        t: Pos,
        wrap: u32,
        kind: u32,
        prefix: &[u8],
        body: &[u8],
    ) -> Pos {
        let cap = ring.capacity();
        let at = t.at.wrapping_add(wrap);
        let off = at & (cap - 1);
        let len = (prefix.len() + body.len()) as u32;
        let o = off + HEADER;
        if !prefix.is_empty() {
            ring.write(o, prefix);
        }
        let o = o + prefix.len() as u32;
        if env.failpoints_armed() && body.len() >= 2 {
            // A failpoint halfway through the body: a producer killed here
            // leaves a torn record beyond `tail`.
            let half = body.len() / 2;
            ring.write(o, &body[..half]);
            env.failpoint("put.half");
            ring.write(o + half as u32, &body[half..]);
        } else {
            ring.write(o, body);
        }
        let next = at.wrapping_add(HEADER + pad8(len));
        Self::clear_header(ring, next & (cap - 1));
        Self::write_header(ring, off, len, kind);
        if wrap != 0 {
            Self::write_header(ring, t.at & (cap - 1), 0, KIND_WRAP);
        }
        Pos {
            at: next,
            items: t.items.wrapping_add(1),
        }
    }

    /// Whether the out-of-line budget lets `ool` more bytes in (P lock held).
    #[inline]
    fn budget_allows(&self, ool: u64, t: Pos) -> bool {
        if ool == 0 {
            return true;
        }
        // Ordering::Relaxed: `ool_got` is a counter whose staleness only
        // delays a put; `ool_put` is ours under the P lock.
        let pending = self
            .prod
            .ool_put
            .load(Ordering::Relaxed)
            .saturating_sub(self.cons.ool_got.load(Ordering::Relaxed));
        let budget = self.config.budget.load(Ordering::Relaxed);
        // An empty queue takes any one payload, so no payload is refused for
        // good.
        let empty = Pos::unpack(self.head.0.load(Ordering::Acquire)).items == t.items;
        pending.saturating_add(ool) <= budget || (pending == 0 && empty)
    }

    /// Put one record, waiting for room until `deadline` (`try_`: a deadline
    /// of now). For a side record, `send` hands the socket message over
    /// before the record is committed.
    pub fn put<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        rec: Rec<'_>,
        deadline: Option<Instant>,
        send: Option<SendSide<'_>>,
    ) -> Result<(), QueueError> {
        let size = record_size(rec.body_len()).ok_or(QueueError::TooLarge)?;
        if size > ring.capacity() / 2 {
            return Err(QueueError::TooLarge);
        }
        let mut send = send;
        loop {
            self.lock_producers(env, ring, deadline)?;
            env.failpoint("put.locked");
            let r = self.append_one(env, ring, rec, size, deadline, &mut send);
            Self::unlock(&self.prod.lock, env);
            match r? {
                Appended::Yes => {
                    env.failpoint("put.unlocked");
                    self.not_empty.0.notify(env, 1);
                    return Ok(());
                }
                Appended::NoRoom => self.wait_for(env, deadline, || self.room_hint(ring, size))?,
                Appended::NoBudget => {
                    let ool = match rec {
                        Rec::Side { ool, .. } => ool,
                        Rec::Inline(_) => 0,
                    };
                    self.wait_for(env, deadline, || {
                        let t = Pos::unpack(self.tail.0.load(Ordering::Acquire));
                        self.budget_allows(ool, t)
                    })?;
                }
            }
        }
    }

    /// With the P lock held: append `rec` if there is room (`Ok(false)`
    /// if not).
    fn append_one<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        rec: Rec<'_>,
        size: u32,
        deadline: Option<Instant>,
        send: &mut Option<SendSide<'_>>,
    ) -> Result<Appended, QueueError> {
        if self.is_closed() {
            return Err(QueueError::Closed);
        }
        let t = Pos::unpack(self.tail.0.load(Ordering::Relaxed));
        let t = self.restart_lap(env, ring, t, size);
        let wrap = match self.fits(ring, t, size)? {
            Some(wrap) => wrap,
            None if self.reclaim_lap(env, ring, deadline)? => match self.fits(ring, t, size)? {
                Some(wrap) => wrap,
                None => return Ok(Appended::NoRoom),
            },
            None => return Ok(Appended::NoRoom),
        };
        let next = match rec {
            Rec::Inline(body) => Self::write_record(env, ring, t, wrap, KIND_INLINE, &[], body),
            Rec::Side { meta, ool } => {
                if !self.budget_allows(ool, t) {
                    return Ok(Appended::NoBudget);
                }
                let send = send.as_mut().ok_or(QueueError::Corrupted)?;
                // The number is used up even if the send fails: numbers only
                // need to increase.
                let seq = self.prod.side_seq.load(Ordering::Relaxed);
                self.prod.side_seq.store(seq + 1, Ordering::Relaxed);
                if !send(seq)? {
                    return Err(QueueError::SideFull);
                }
                env.failpoint("put.sent");
                let mut prefix = [0u8; SIDE_PREFIX];
                prefix[..8].copy_from_slice(&seq.to_le_bytes());
                prefix[8..].copy_from_slice(&ool.to_le_bytes());
                Self::write_record(env, ring, t, wrap, KIND_SIDE, &prefix, meta)
            }
        };
        // Consumers can take the record now (its header is the commit); a
        // producer killed here leaves `tail` behind it, which the next
        // producer rolls forward.
        env.failpoint("put.published");
        // SYNC POINT: write. Release pairs with the Acquire loads of `tail`
        // by producers (and `len`): the record's bytes are written first.
        self.tail.0.store(next.pack(), Ordering::Release);
        env.failpoint("put.committed");
        if let Rec::Side { ool, .. } = rec {
            if ool != 0 {
                let v = self.prod.ool_put.load(Ordering::Relaxed);
                self.prod
                    .ool_put
                    .store(v.wrapping_add(ool), Ordering::Relaxed);
            }
        }
        Ok(Appended::Yes)
    }

    /// Without a lock: sleep until a consumer's get makes `ready` true (or
    /// the queue closes, or the deadline passes). Returns early (spuriously)
    /// at times; the caller re-checks under its lock.
    fn wait_for<E: Env + ?Sized>(
        &self,
        env: &E,
        deadline: Option<Instant>,
        ready: impl Fn() -> bool,
    ) -> Result<(), QueueError> {
        if env::expired(env, deadline) {
            return Err(QueueError::Timeout);
        }
        let seen = self.not_full.0.prepare(env);
        // Re-check after registering (Dekker with the consumers' notify).
        if self.is_closed() || ready() {
            self.not_full.0.cancel();
            return Ok(());
        }
        // Never longer than a liveness check: a consumer killed after
        // taking its record and before its wake-up leaves no one to wake us.
        self.not_full.0.park(env, seen, env::slice(env, deadline));
        Ok(())
    }

    /// Whether a record of `size` bytes would fit now (no lock; a hint).
    fn room_hint<R: Region + ?Sized>(&self, ring: &R, size: u32) -> bool {
        let t = Pos::unpack(self.tail.0.load(Ordering::Acquire));
        let (_, need) = placement(ring.capacity(), t.at, size);
        self.space(ring, t, true)
            .map_or(true, |s| s.takes(need + HEADER))
            || self.wrap_at_head(ring)
    }

    /// Put inline records under one lock hold while they fit, committing
    /// them with one store; waits for room for the rest. Returns how many
    /// went in (all of them, or those before an error).
    ///
    /// Records are committed every [`PUT_MANY_BYTES`], so a batch of large
    /// records streams to consumers instead of arriving all at once.
    pub fn put_many<E: Env + ?Sized, R: Region + ?Sized>(
        &self,
        env: &E,
        ring: &R,
        items: &[&[u8]],
        deadline: Option<Instant>,
    ) -> Result<usize, (usize, QueueError)> {
        let fits = |b: &[u8]| record_size(b.len()).filter(|&s| s <= ring.capacity() / 2);
        let mut n = 0usize;
        while n < items.len() {
            let size = fits(items[n]).ok_or((n, QueueError::TooLarge))?;
            self.lock_producers(env, ring, deadline)
                .map_err(|e| (n, e))?;
            if self.is_closed() {
                Self::unlock(&self.prod.lock, env);
                return Err((n, QueueError::Closed));
            }
            let t0 = Pos::unpack(self.tail.0.load(Ordering::Relaxed));
            let mut t = self.restart_lap(env, ring, t0, size);
            let cap = ring.capacity();
            let mut added = 0u32;
            let mut space = match self.space(ring, t, false) {
                Ok(sp) => sp,
                Err(_) => Space { free: 0, slots: 0 },
            };
            let mut fresh = false;
            let mut skipped = false;
            let mut i = n;
            while i < items.len() {
                let body = items[i];
                let Some(size) = fits(body) else { break };
                let (wrap, need) = placement(cap, t.at, size);
                // (Room for the header slot after it too, as in `fits`.)
                if !space.takes(need + HEADER) {
                    // Look at the real head once; then try to skip a WRAP
                    // left at the head once.
                    let refreshed = if !fresh {
                        fresh = true;
                        self.space(ring, t, true)
                    } else if !skipped && added == 0 {
                        skipped = true;
                        match self.reclaim_lap(env, ring, deadline) {
                            Ok(true) => self.space(ring, t, true),
                            Ok(false) => break,
                            Err(e) => Err(e),
                        }
                    } else {
                        break;
                    };
                    match refreshed {
                        Ok(sp) => space = sp,
                        Err(e) => {
                            Self::unlock(&self.prod.lock, env);
                            return Err((n, e));
                        }
                    }
                    continue;
                }
                t = Self::write_record(env, ring, t, wrap, KIND_INLINE, &[], body);
                space.take(need);
                added += 1;
                i += 1;
                if t.at.wrapping_sub(t0.at) >= PUT_MANY_BYTES {
                    // Commit what is written, so consumers copy it out while
                    // we write the rest (and other producers get a turn).
                    break;
                }
            }
            if added > 0 {
                // SYNC POINT: write, as in `append_one`.
                self.tail.0.store(t.pack(), Ordering::Release);
            }
            Self::unlock(&self.prod.lock, env);
            if added > 0 {
                self.not_empty.0.notify(env, added);
                n += added as usize;
            } else if let Err(e) = self.wait_for(env, deadline, || self.room_hint(ring, size)) {
                return Err((n, e));
            }
        }
        Ok(n)
    }

    // ----- get ------------------------------------------------------------------
}
