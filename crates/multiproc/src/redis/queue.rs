//! The machinery of `Queue` and `JoinableQueue` on a Redis stream with a
//! consumer group: one handle's connections, heartbeat and deliveries.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::Value;
use serde::de::DeserializeOwned;

use super::reply::{as_array, as_bytes, as_int, as_string, parse_entries, parse_read};
use super::{
    Conn, DeadLetter, Delivery, JoinConn, Options, RedisError, decode, key, scripts, sign, verify,
};
use crate::TimeoutError;

/// The consumer group every handle of a queue reads in.
const GROUP: &str = "multiproc";
/// How often a consumer waiting in `get` looks for dead consumers' entries.
const RECLAIM_EVERY: Duration = Duration::from_secs(1);
/// Most entries one look claims from dead consumers: a few, so that the
/// other live consumers get the rest (claimed entries wait in this
/// handle's buffer, pending with it).
const RECLAIM_BATCH: usize = 4;
/// Entries per page when a consumer reads its own pending list.
const PAGE: usize = 100;
/// The longest a full queue's `put` sleeps before it tries again.
const PUT_BACKOFF_MAX: Duration = Duration::from_millis(50);
/// Most items one `put` script adds (a script blocks the server while it
/// runs).
const PUT_CHUNK: usize = 512;

/// An entry read from the stream, not decoded yet.
#[derive(Debug)]
struct Raw {
    id: String,
    data: Vec<u8>,
    deliveries: u64,
}

/// How long a `get` may wait.
#[derive(Debug, Clone, Copy)]
pub(super) enum Wait {
    Now,
    Until(Instant),
    Forever,
}

impl Wait {
    pub(super) fn of(timeout: Duration) -> Wait {
        if timeout == Duration::MAX {
            Wait::Forever
        } else {
            Instant::now()
                .checked_add(timeout)
                .map_or(Wait::Forever, Wait::Until)
        }
    }
}

/// The reading side of a handle: its own connection (a blocked read does
/// not hold up `put`), entries claimed and not delivered yet, and when it
/// looks for dead consumers next.
#[derive(Debug)]
struct Reader {
    conn: Conn,
    claimed: VecDeque<Raw>,
    next_reclaim: Instant,
    /// A consumer opened under a given name takes back its own pending
    /// entries first (also after a failed read).
    own_checked: bool,
    /// Where that look goes on (an exclusive start id, or "-").
    own_from: String,
}

/// The heartbeat thread of a consumer.
#[derive(Debug)]
struct Heartbeat {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    /// The process whose thread it is (a forked child has none).
    pid: u32,
}

/// What a `Queue` and a `JoinableQueue` handle share.
#[derive(Debug)]
pub(super) struct Core {
    stream: String,
    dead: String,
    pub(super) unfinished: String,
    pub(super) channel: String,
    heartbeat_prefix: String,
    joinable: bool,
    pub(super) options: Options,
    pub(super) client: redis::Client,
    pub(super) consumer: String,
    /// `put` refuses ([`RedisError::Removed`]) instead of creating the
    /// stream when it is gone.
    must_exist: bool,
    pub(super) cmd: Mutex<Conn>,
    reader: Mutex<Reader>,
    heartbeat: Mutex<Option<Heartbeat>>,
    /// `join`'s pub/sub connection, and the process it was opened in.
    pub(super) join_conn: Mutex<Option<(u32, JoinConn)>>,
    /// Deliveries of this handle not done yet, oldest first (joinable).
    pub(super) outstanding: Mutex<VecDeque<String>>,
    pub(super) closed: AtomicBool,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Core {
    pub(super) fn open(
        url: &str,
        name: &str,
        options: Options,
        joinable: bool,
        must_exist: bool,
    ) -> Result<Core, RedisError> {
        let client = redis::Client::open(url)?;
        let mut cmd = Conn::new(client.clone());
        let stream = key(name, "stream");
        if must_exist {
            let exists: bool = cmd.run(|c| redis::cmd("EXISTS").arg(&stream).query(c))?;
            if !exists {
                return Err(RedisError::Removed(name.to_owned()));
            }
        }
        // The group reads from the stream's start: items put before any
        // consumer existed are delivered too.
        let created = cmd.run(|c| {
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&stream)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query::<()>(c)
        });
        match created {
            Err(RedisError::Redis(e)) if e.code() == Some("BUSYGROUP") => {}
            other => other?,
        }
        let consumer = options.consumer.clone().unwrap_or_else(default_consumer);
        Ok(Core {
            dead: key(name, "dead"),
            unfinished: key(name, "unfinished"),
            channel: key(name, "done"),
            heartbeat_prefix: key(name, "heartbeat:"),
            stream,
            joinable,
            reader: Mutex::new(Reader {
                conn: Conn::new(client.clone()),
                claimed: VecDeque::new(),
                next_reclaim: Instant::now(),
                own_checked: options.consumer.is_none(),
                own_from: "-".to_owned(),
            }),
            options,
            client,
            consumer,
            must_exist,
            cmd: Mutex::new(cmd),
            heartbeat: Mutex::new(None),
            join_conn: Mutex::new(None),
            outstanding: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// An invocation of `script` with the queue's keys (stream, dead-letter
    /// stream, unfinished count).
    fn script<'s>(&self, script: &'s redis::Script) -> redis::ScriptInvocation<'s> {
        let mut inv = script.key(&self.stream);
        inv.key(&self.dead).key(&self.unfinished);
        inv
    }

    fn heartbeat_key(&self) -> String {
        format!("{}{}", self.heartbeat_prefix, self.consumer)
    }

    /// Before this handle first reads as a consumer: its heartbeat exists
    /// (so no one takes its entries for a dead consumer's) and a thread
    /// keeps it alive.
    fn ensure_consumer(&self) -> Result<(), RedisError> {
        let mut hb = lock(&self.heartbeat);
        if hb.is_some() {
            return Ok(());
        }
        let ttl = millis(self.options.heartbeat);
        let key = self.heartbeat_key();
        beat(&mut lock(&self.cmd), &key, ttl)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let every = self.options.heartbeat / 3;
        let mut conn = Conn::new(self.client.clone());
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("multiproc-redis-heartbeat".into())
            .spawn(move || {
                let (stopped, cv) = &*signal;
                let mut s = lock(stopped);
                while !*s {
                    s = cv
                        .wait_timeout(s, every)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    if *s {
                        break;
                    }
                    // Not under the lock: a slow server must not hold up
                    // the handle's drop. A failed refresh is tried again
                    // next period; past the time to live this consumer's
                    // entries go to another.
                    drop(s);
                    let _ = beat(&mut conn, &key, ttl);
                    s = lock(stopped);
                }
            })
            .map_err(|e| RedisError::Protocol(format!("cannot start the heartbeat thread: {e}")))?;
        *hb = Some(Heartbeat {
            pid: std::process::id(),
            stop,
            thread: Some(thread),
        });
        Ok(())
    }

    fn authkey(&self) -> Option<&[u8]> {
        self.options.authkey.as_deref()
    }

    /// Put encoded items in order, as many per script as there is room
    /// for, waiting for room as `wait` allows; how many went in (all of
    /// them unless the wait ran out), or how many had gone in and the
    /// error.
    pub(super) fn put(&self, data: &[Vec<u8>], wait: Wait) -> Result<usize, (usize, RedisError)> {
        if self.closed.load(Ordering::Relaxed) {
            return Err((0, RedisError::Closed));
        }
        // Signed for this queue: an item cannot be moved to another.
        let data: Vec<Vec<u8>> = data
            .iter()
            .map(|d| sign(self.authkey(), self.stream.as_bytes(), d.clone()))
            .collect();
        let mut put = 0;
        let mut backoff = Duration::from_millis(1);
        while put < data.len() {
            let chunk = &data[put..(put + PUT_CHUNK).min(data.len())];
            if self.options.maxsize == 0 && !self.joinable && !self.must_exist {
                // Nothing to check or count: plain XADDs, without the
                // script's cost on the server; a batch in one MULTI, so
                // that no other producer's item lands inside it.
                lock(&self.cmd)
                    .run(|c| {
                        let mut p = redis::pipe();
                        if chunk.len() > 1 {
                            p.atomic();
                        }
                        for d in chunk {
                            p.cmd("XADD")
                                .arg(&self.stream)
                                .arg("*")
                                .arg("d")
                                .arg(d)
                                .ignore();
                        }
                        p.query::<()>(c)
                    })
                    .map_err(|e| (put, e))?;
                put += chunk.len();
                continue;
            }
            let added: i64 = lock(&self.cmd)
                .run(|c| {
                    let mut inv = self.script(scripts::put());
                    inv.arg(self.options.maxsize)
                        .arg(u8::from(self.joinable))
                        .arg(GROUP)
                        .arg(u8::from(self.must_exist));
                    for d in chunk {
                        inv.arg(d);
                    }
                    inv.invoke(c)
                })
                .map_err(|e| (put, e))?;
            if added < 0 {
                return Err((put, RedisError::Removed(self.stream.clone())));
            }
            if added > 0 {
                put += added as usize;
                backoff = Duration::from_millis(1);
                continue;
            }
            // Full: look again, a little later each time.
            let sleep = match wait {
                Wait::Now => return Ok(put),
                Wait::Forever => backoff,
                Wait::Until(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => backoff.min(left),
                    _ => return Ok(put),
                },
            };
            std::thread::sleep(sleep);
            backoff = (backoff * 2).min(PUT_BACKOFF_MAX);
        }
        Ok(put)
    }

    /// The next deliveries for this consumer, decoded, at most `max`:
    /// claimed entries of dead consumers first, then new ones.
    /// `Err(Timeout)` when `wait` ran out before the first. An entry that
    /// is not signed with the authkey or does not decode is buried and
    /// left out; if that was every entry taken, its error is returned.
    pub(super) fn deliver<T: DeserializeOwned>(
        &self,
        wait: Wait,
        max: usize,
    ) -> Result<Vec<Delivery<T>>, TimeoutError<RedisError>> {
        let mut out = Vec::new();
        let mut first_err = None;
        for raw in self.take(wait, max.max(1))? {
            match self.open_delivery(raw) {
                Ok(d) => out.push(d),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) if out.is_empty() => Err(e.into()),
            _ => Ok(out),
        }
    }

    fn take(&self, wait: Wait, max: usize) -> Result<Vec<Raw>, TimeoutError<RedisError>> {
        self.ensure_consumer()?;
        let mut r = lock(&self.reader);
        loop {
            let first = match self.next_raw(&mut r, wait, max) {
                Ok(Some(raw)) => raw,
                Ok(None) => match wait {
                    Wait::Now => return Err(TimeoutError::Timeout),
                    Wait::Until(d) if Instant::now() >= d => return Err(TimeoutError::Timeout),
                    _ => continue,
                },
                Err(e) => {
                    // A reply lost with a broken connection may have
                    // delivered an entry to this consumer that it never
                    // saw: look at its own pending entries again.
                    r.own_checked = false;
                    r.own_from = "-".to_owned();
                    if interrupted(&e) {
                        // A signal (Python's handlers interrupt system
                        // calls): look again, on a new connection; a
                        // deadline still ends the wait, and a Python
                        // caller's slice with it, so its handler runs.
                        continue;
                    }
                    return Err(e.into());
                }
            };
            let mut batch = vec![first];
            while batch.len() < max {
                match r.claimed.pop_front() {
                    Some(raw) => batch.push(raw),
                    None => break,
                }
            }
            // Handed over while the reader lock is held, so a look at this
            // consumer's own pending entries never takes one a second time.
            if self.joinable {
                lock(&self.outstanding).extend(batch.iter().map(|raw| raw.id.clone()));
                return Ok(batch);
            }
            let ids: Vec<&str> = batch.iter().map(|raw| raw.id.as_str()).collect();
            match self.done_many(&ids) {
                Ok(status) => {
                    // 0: another consumer took it meanwhile; it is theirs.
                    let kept: Vec<Raw> = batch
                        .into_iter()
                        .zip(status)
                        .filter(|(_, s)| *s != 0)
                        .map(|(raw, _)| raw)
                        .collect();
                    if !kept.is_empty() {
                        return Ok(kept);
                    }
                }
                Err(e) => {
                    // Kept for the next try: the acknowledgement may have
                    // run with its reply lost (then it answers "done
                    // already"), or not at all.
                    for raw in batch.into_iter().rev() {
                        r.claimed.push_front(raw);
                    }
                    if interrupted(&e) {
                        continue;
                    }
                    return Err(e.into());
                }
            }
        }
    }

    /// The next entry for this consumer, or `None` when none came within
    /// this look (the caller decides whether to look again). A read takes
    /// up to `count` new entries; those after the first wait in `claimed`.
    fn next_raw(
        &self,
        r: &mut Reader,
        wait: Wait,
        count: usize,
    ) -> Result<Option<Raw>, RedisError> {
        if let Some(raw) = r.claimed.pop_front() {
            return Ok(Some(raw));
        }
        if !r.own_checked {
            if let Some(raw) = self.take_back_one(r)? {
                return Ok(Some(raw));
            }
            r.own_checked = true;
            r.own_from = "-".to_owned();
        }
        let now = Instant::now();
        if now >= r.next_reclaim {
            r.next_reclaim = now + RECLAIM_EVERY;
            // No more than this caller asked for: claimed entries wait in
            // this handle's buffer, where no other consumer can take them.
            let budget = count.min(RECLAIM_BATCH);
            let claimed = self.reclaim(&mut r.conn, budget)?;
            if claimed.len() == budget {
                // There may be more: the next call looks again at once
                // rather than a second later.
                r.next_reclaim = now;
            }
            if !claimed.is_empty() {
                r.claimed.extend(claimed);
                return Ok(r.claimed.pop_front());
            }
        }
        let block = match wait {
            Wait::Now => None,
            Wait::Forever => Some(r.next_reclaim.saturating_duration_since(now)),
            Wait::Until(d) => {
                let left = d.saturating_duration_since(now);
                (!left.is_zero()).then(|| left.min(r.next_reclaim.saturating_duration_since(now)))
            }
        };
        let mut read = self.read_new(&mut r.conn, block, count)?;
        let first = read.pop_front();
        r.claimed.extend(read);
        Ok(first)
    }

    fn read_new(
        &self,
        conn: &mut Conn,
        block: Option<Duration>,
        count: usize,
    ) -> Result<VecDeque<Raw>, RedisError> {
        let reply: Value = conn.run_blocking(block.unwrap_or_default(), |c| {
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(GROUP)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(count);
            if let Some(b) = block {
                cmd.arg("BLOCK").arg(millis(b));
            }
            cmd.arg("STREAMS").arg(&self.stream).arg(">").query(c)
        })?;
        Ok(parse_read(reply)?
            .into_iter()
            .map(|(id, data)| Raw {
                id,
                data: data.unwrap_or_default(),
                deliveries: 1,
            })
            .collect())
    }

    /// The entries still pending with this consumer's name (it was opened
    /// again after a crash), claimed to itself so their counts go up.
    /// The next entry still pending with this consumer's name (it was
    /// opened again after a crash, or a read's reply was lost), claimed to
    /// itself so its count goes up; `None` at the end of the list. One at
    /// a time: an entry's count goes up only when it is handed out, so a
    /// consumer that crashes again does not use up the deliveries of
    /// entries it never saw.
    fn take_back_one(&self, r: &mut Reader) -> Result<Option<Raw>, RedisError> {
        loop {
            let pending: Value = r.conn.run(|c| {
                redis::cmd("XPENDING")
                    .arg(&self.stream)
                    .arg(GROUP)
                    .arg(&r.own_from)
                    .arg("+")
                    .arg(PAGE)
                    .arg(&self.consumer)
                    .query(c)
            })?;
            let mut ids = Vec::new();
            for e in as_array(pending)? {
                let mut f = as_array(e)?.into_iter();
                let id = as_string(f.next())?;
                let _owner = f.next();
                let _idle = f.next();
                let n = as_int(f.next())?;
                ids.push((id, n));
            }
            if ids.is_empty() {
                return Ok(None);
            }
            for (id, n) in ids {
                // Pages start after the last id looked at (exclusive
                // ranges, Redis 6.2+).
                r.own_from = format!("({id}");
                // Those handed to the caller and not finished are not lost.
                if lock(&self.outstanding).contains(&id) {
                    continue;
                }
                let got: Value = r.conn.run(|c| {
                    redis::cmd("XCLAIM")
                        .arg(&self.stream)
                        .arg(GROUP)
                        .arg(&self.consumer)
                        .arg(0)
                        .arg(&id)
                        .query(c)
                })?;
                match parse_entries(got)?.pop_front() {
                    Some((id, Some(data))) => {
                        let raw = Raw {
                            id,
                            data,
                            deliveries: u64::try_from(n).unwrap_or(0) + 1,
                        };
                        // The delivery limit holds for a consumer that
                        // comes back under its name too (one that dies on
                        // a poison item would get it for ever).
                        let limit = self.options.max_deliveries;
                        if limit > 0 && raw.deliveries > limit {
                            self.bury(&raw, "delivery limit", true)?;
                            continue;
                        }
                        return Ok(Some(raw));
                    }
                    _ => {
                        // Deleted while pending: nothing to deliver.
                        let _ = r.conn.run(|c| {
                            redis::cmd("XACK")
                                .arg(&self.stream)
                                .arg(GROUP)
                                .arg(&id)
                                .query::<()>(c)
                        });
                    }
                }
            }
        }
    }

    fn reclaim(&self, conn: &mut Conn, budget: usize) -> Result<Vec<Raw>, RedisError> {
        let reply: Value = conn.run(|c| {
            self.script(scripts::reclaim())
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(&self.heartbeat_prefix)
                .arg(self.options.max_deliveries)
                .arg(u8::from(self.joinable))
                .arg(&self.channel)
                .arg(budget)
                .invoke(c)
        })?;
        let flat = as_array(reply)?;
        let mut out = Vec::with_capacity(flat.len() / 3);
        let mut it = flat.into_iter();
        while let Some(id) = it.next() {
            let id = as_string(Some(id))?;
            let data = as_bytes(it.next())?;
            let deliveries = u64::try_from(as_int(it.next())?).unwrap_or(0);
            out.push(Raw {
                id,
                data,
                deliveries,
            });
        }
        Ok(out)
    }

    /// Finish delivery `id` of this consumer.
    pub(super) fn done(&self, id: &str) -> Result<(), RedisError> {
        match self.done_many(&[id])?.first() {
            Some(1 | -1) => Ok(()),
            _ => Err(RedisError::Reclaimed(id.to_owned())),
        }
    }

    /// Finish deliveries `ids` of this consumer in one script; for each, 1
    /// when done, 0 when another consumer holds it now, -1 when it was done
    /// already.
    fn done_many(&self, ids: &[&str]) -> Result<Vec<i64>, RedisError> {
        let status: Vec<i64> = lock(&self.cmd).run(|c| {
            let mut inv = self.script(scripts::done());
            inv.arg(GROUP)
                .arg(&self.consumer)
                .arg(u8::from(self.joinable))
                .arg(&self.channel);
            for id in ids {
                inv.arg(*id);
            }
            inv.invoke(c)
        })?;
        if status.len() != ids.len() {
            return Err(RedisError::Protocol(format!(
                "task_done of {} deliveries answered {} times",
                ids.len(),
                status.len()
            )));
        }
        Ok(status)
    }

    /// Move a delivery this handle's caller could not use (its payload
    /// `data` as encoded, not signed) to the dead letters.
    pub(super) fn bury_delivery(
        &self,
        id: &str,
        data: Vec<u8>,
        deliveries: u64,
        reason: &str,
    ) -> Result<(), RedisError> {
        let raw = Raw {
            id: id.to_owned(),
            data: sign(self.authkey(), self.stream.as_bytes(), data),
            deliveries,
        };
        self.bury(&raw, reason, self.joinable)
    }

    /// Move `raw` to the dead letters; `pending`: it is still pending with
    /// this consumer (else a plain queue acknowledged it as it was taken).
    fn bury(&self, raw: &Raw, reason: &str, pending: bool) -> Result<(), RedisError> {
        if !pending {
            return lock(&self.cmd).run(|c| {
                redis::cmd("XADD")
                    .arg(&self.dead)
                    .arg("*")
                    .arg("d")
                    .arg(&raw.data)
                    .arg("id")
                    .arg(&raw.id)
                    .arg("deliveries")
                    .arg(raw.deliveries)
                    .arg("consumer")
                    .arg(&self.consumer)
                    .arg("reason")
                    .arg(reason)
                    .query::<()>(c)
            });
        }
        lock(&self.outstanding).retain(|o| *o != raw.id);
        lock(&self.cmd).run(|c| {
            self.script(scripts::bury())
                .arg(GROUP)
                .arg(&raw.id)
                .arg(&self.consumer)
                .arg(&raw.data)
                .arg(raw.deliveries)
                .arg(reason)
                .arg(u8::from(self.joinable))
                .arg(&self.channel)
                .invoke::<i64>(c)
        })?;
        Ok(())
    }

    /// Decode a delivery; one that is not signed with the authkey, or does
    /// not decode, is buried.
    fn open_delivery<T: DeserializeOwned>(&self, raw: Raw) -> Result<Delivery<T>, RedisError> {
        let data = match verify(self.authkey(), self.stream.as_bytes(), &raw.data, &raw.id) {
            Ok(d) => d,
            Err(e) => {
                self.bury(&raw, "authentication", self.joinable)?;
                return Err(e);
            }
        };
        match decode(data, &raw.id) {
            Ok(value) => Ok(Delivery {
                value,
                id: raw.id,
                deliveries: raw.deliveries,
            }),
            Err(e) => {
                self.bury(&raw, "decode", self.joinable)?;
                Err(e)
            }
        }
    }

    pub(super) fn qsize(&self) -> Result<usize, RedisError> {
        let (len, pending): (i64, Value) = lock(&self.cmd).run(|c| {
            redis::pipe()
                .cmd("XLEN")
                .arg(&self.stream)
                .cmd("XPENDING")
                .arg(&self.stream)
                .arg(GROUP)
                .query(c)
        })?;
        let pending = as_int(as_array(pending)?.into_iter().next())?;
        Ok(usize::try_from(len - pending).unwrap_or(0))
    }

    pub(super) fn dead_letters<T: DeserializeOwned>(
        &self,
    ) -> Result<Vec<DeadLetter<T>>, RedisError> {
        let reply: Value = lock(&self.cmd).run(|c| {
            redis::cmd("XRANGE")
                .arg(&self.dead)
                .arg("-")
                .arg("+")
                .query(c)
        })?;
        let mut out = Vec::new();
        for e in as_array(reply)? {
            let mut e = as_array(e)?.into_iter();
            let id = as_string(e.next())?;
            let fields = as_array(e.next().unwrap_or(Value::Nil))?;
            let (mut data, mut original_id, mut deliveries, mut consumer, mut reason) =
                (None, String::new(), 0, String::new(), String::new());
            let mut f = fields.into_iter();
            while let (Some(k), Some(v)) = (f.next(), f.next()) {
                match as_string(Some(k))?.as_str() {
                    "d" => data = Some(as_bytes(Some(v))?),
                    "id" => original_id = as_string(Some(v))?,
                    "deliveries" => deliveries = as_string(Some(v))?.parse().unwrap_or(0),
                    "consumer" => consumer = as_string(Some(v))?,
                    "reason" => reason = as_string(Some(v))?,
                    _ => {}
                }
            }
            let value = match data {
                Some(d) => verify(self.authkey(), self.stream.as_bytes(), &d, &id)
                    .and_then(|d| decode(d, &id)),
                None => Err(RedisError::Protocol(format!(
                    "dead letter {id} has no payload"
                ))),
            };
            out.push(DeadLetter {
                id,
                original_id,
                deliveries,
                consumer,
                reason,
                value,
            });
        }
        Ok(out)
    }

    pub(super) fn requeue(&self, dead_id: &str) -> Result<bool, RedisError> {
        let id: Option<String> = lock(&self.cmd).run(|c| {
            self.script(scripts::requeue())
                .arg(dead_id)
                .arg(u8::from(self.joinable))
                .invoke(c)
        })?;
        Ok(id.is_some())
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        let hb = self
            .heartbeat
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut hb) = hb {
            if hb.pid != std::process::id() {
                // A forked child's copy: the thread and the heartbeat are
                // its parent's, which lives on with them (joining a thread
                // this process lacks would panic).
                std::mem::forget(hb);
                return;
            }
            *lock(&hb.stop.0) = true;
            hb.stop.1.notify_all();
            if let Some(t) = hb.thread.take() {
                let _ = t.join();
            }
            // Gone on purpose: what this consumer still holds goes to
            // another at once, not after the time to live.
            let key = self.heartbeat_key();
            let _ = lock(&self.cmd).run(|c| redis::cmd("DEL").arg(&key).query::<()>(c));
        }
    }
}

/// Set heartbeat `key` to live `ttl_ms` more milliseconds.
fn beat(conn: &mut Conn, key: &str, ttl_ms: u64) -> Result<(), RedisError> {
    conn.run(|c| {
        redis::cmd("SET")
            .arg(key)
            .arg(1)
            .arg("PX")
            .arg(ttl_ms)
            .query::<()>(c)
    })
}

/// Whether `e` is a system call interrupted by a signal.
pub(super) fn interrupted(e: &RedisError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::Interrupted
        {
            return true;
        }
        source = s.source();
    }
    // The client may keep only the text of the error.
    e.to_string().contains("Interrupted system call")
}

fn default_consumer() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    format!(
        "{}-{}-{:016x}",
        host.trim(),
        std::process::id(),
        u64::from_le_bytes(r)
    )
}
