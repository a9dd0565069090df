//! The processes of one history: producers, consumers and the finisher,
//! each recording what it did in the shared books.

use std::time::Duration;

use multiproc::Connection;
use multiproc::queue::PutError;
use multiproc::{SendTimeoutError, TimeoutError, TryError, TrySendError};

use super::model::{
    AnyQueue, BAD_AFTER_SENTINEL, BAD_CORRUPT, BAD_ERROR, BAD_ORDER, Books, Item, Job, MAX_BATCH,
    SENTINEL, checksum, make_item, sentinel, start_chaos, timed,
};
use super::plan::{Plan, Rng};

// ----- producers ------------------------------------------------------------------------

pub(super) fn producer(job: Job) {
    let Job {
        plan,
        q,
        books,
        index,
        ..
    } = job;
    start_chaos(&plan, u64::from(index) + 1);
    let me = index as usize;
    let p = index as u16;
    let mut r = Rng::new(plan.seed ^ 0x5052_4f44 ^ u64::from(index));
    let ack = |seq: u32| {
        let _ = books.acked.set(me * plan.items as usize + seq as usize, 1);
    };
    let mut seq = 0;
    while seq < plan.items {
        let form = match q.full() {
            Some(_) => r.range(0, 3),
            None => 0,
        };
        match form {
            // Blocking put.
            0 => {
                if q.put(make_item(&plan, p, seq)).is_err() {
                    books.bad(me, BAD_ERROR);
                    return;
                }
                ack(seq);
                seq += 1;
            }
            // try_put until there is room.
            1 => {
                let full = q.full().expect("full API");
                let mut item = make_item(&plan, p, seq);
                loop {
                    match full.try_put(item) {
                        Ok(()) => break,
                        Err(TrySendError::Full(back)) => {
                            item = back;
                            std::thread::yield_now();
                        }
                        Err(_) => {
                            books.bad(me, BAD_ERROR);
                            return;
                        }
                    }
                }
                ack(seq);
                seq += 1;
            }
            // put_timeout, again on Timeout.
            2 => {
                let full = q.full().expect("full API");
                let mut item = make_item(&plan, p, seq);
                let t = Duration::from_micros(r.range(10, 20_000));
                loop {
                    match timed(&books, me, t, || full.put_timeout(item, t)) {
                        Ok(()) => break,
                        Err(SendTimeoutError::Timeout(back)) => item = back,
                        Err(_) => {
                            books.bad(me, BAD_ERROR);
                            return;
                        }
                    }
                }
                ack(seq);
                seq += 1;
            }
            // A batch.
            _ => {
                let full = q.full().expect("full API");
                let n = (r.range(2, 8) as u32).min(plan.items - seq);
                let items = (seq..seq + n).map(|s| make_item(&plan, p, s));
                match full.put_many(items) {
                    Ok(k) if k == n as usize => {}
                    _ => {
                        books.bad(me, BAD_ERROR);
                        return;
                    }
                }
                for s in seq..seq + n {
                    ack(s);
                }
                seq += n;
            }
        }
    }
    // Exit right after the last put (the seeds' pattern).
}

// ----- consumers ------------------------------------------------------------------------

/// What a consumer keeps while it runs.
pub(super) struct Seen {
    last: Vec<Option<u32>>,
    sentinels: u32,
}

pub(super) fn consumer(job: Job) {
    let Job {
        plan,
        q,
        books,
        index,
        mut to_finisher,
    } = job;
    start_chaos(&plan, 100 + u64::from(index));
    let me = plan.producers as usize + index as usize;
    let c = index as usize;
    let mut r = Rng::new(plan.seed ^ 0x434f_4e53 ^ u64::from(index));
    let mut seen = Seen {
        last: vec![None; plan.producers as usize],
        sentinels: 0,
    };
    let mut batch = Vec::new();
    let mut async_rt: Option<tokio::runtime::Runtime> = None;
    while seen.sentinels == 0 {
        batch.clear();
        let Some(full) = q.full() else {
            match q.get() {
                Ok(item) => batch.push(item),
                Err(_) => {
                    books.bad(me, BAD_ERROR);
                    return;
                }
            }
            take(
                &plan,
                &books,
                c,
                me,
                &mut seen,
                &mut batch,
                &q,
                &mut to_finisher,
                &mut r,
            );
            continue;
        };
        match r.range(0, 4) {
            0 => match full.get() {
                Ok(item) => batch.push(item),
                Err(_) => {
                    books.bad(me, BAD_ERROR);
                    return;
                }
            },
            1 => match full.try_get() {
                Ok(item) => batch.push(item),
                Err(TryError::WouldBlock) => {
                    std::thread::yield_now();
                    continue;
                }
                Err(_) => {
                    books.bad(me, BAD_ERROR);
                    return;
                }
            },
            2 => {
                let t = Duration::from_micros(r.range(10, 20_000));
                match timed(&books, me, t, || full.get_timeout(t)) {
                    Ok(item) => batch.push(item),
                    Err(TimeoutError::Timeout) => continue,
                    Err(_) => {
                        books.bad(me, BAD_ERROR);
                        return;
                    }
                }
            }
            3 => {
                // An async get on a current-thread runtime, cancelled by a
                // timer at a random point (while registered, just after its
                // wake-up, …): a cancelled get must take nothing.
                let t = Duration::from_micros(r.range(10, 20_000));
                let rt = async_rt.get_or_insert_with(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                        .expect("a current-thread runtime")
                });
                let got = timed(&books, me, t, || {
                    rt.block_on(async { tokio::time::timeout(t, full.get_async()).await })
                });
                match got {
                    Ok(Ok(item)) => batch.push(item),
                    Err(_) => continue,
                    Ok(Err(_)) => {
                        books.bad(me, BAD_ERROR);
                        return;
                    }
                }
            }
            _ => {
                let t = Duration::from_micros(r.range(10, 20_000));
                let max = r.range(1, u64::from(MAX_BATCH)) as usize;
                match timed(&books, me, t, || full.get_many(max, Some(t))) {
                    Ok(items) => batch.extend(items),
                    Err(TimeoutError::Timeout) => continue,
                    Err(_) => {
                        books.bad(me, BAD_ERROR);
                        return;
                    }
                }
            }
        }
        take(
            &plan,
            &books,
            c,
            me,
            &mut seen,
            &mut batch,
            &q,
            &mut to_finisher,
            &mut r,
        );
    }
}

/// Check and record a batch a consumer got.
#[allow(clippy::too_many_arguments)]
pub(super) fn take(
    plan: &Plan,
    books: &Books,
    c: usize,
    me: usize,
    seen: &mut Seen,
    batch: &mut Vec<Item>,
    q: &AnyQueue,
    to_finisher: &mut Option<Connection<u32>>,
    r: &mut Rng,
) {
    Books::add(&books.taken, c, batch.len() as u64);
    let mut extra_sentinels = 0;
    for item in batch.drain(..) {
        if item.p == SENTINEL {
            if seen.sentinels > 0 {
                extra_sentinels += 1;
            }
            seen.sentinels += 1;
        } else if item.p as u32 >= plan.producers || item.seq >= plan.items {
            books.bad(me, BAD_CORRUPT);
        } else {
            if seen.sentinels > 0 {
                books.bad(me, BAD_AFTER_SENTINEL);
            }
            if item.body.len() != plan.size_of(item.p, item.seq)
                || item.sum != checksum(item.p, item.seq, &item.body)
            {
                books.bad(me, BAD_CORRUPT);
            }
            let last = &mut seen.last[item.p as usize];
            if last.is_some_and(|l| l >= item.seq) {
                books.bad(me, BAD_ORDER);
            }
            *last = Some(item.seq);
            let at = c * plan.slots() + item.p as usize * plan.items as usize + item.seq as usize;
            let n = books.got.get(at).unwrap_or(0);
            let _ = books.got.set(at, n.saturating_add(1));
        }
        if let AnyQueue::Joinable(jq) = q {
            // Hand the task to the finisher now and then (Python allows
            // task_done from any process), else mark it done here.
            match to_finisher {
                Some(tx) if r.chance(1, 2) => {
                    if tx.send(&0).is_err() {
                        books.bad(me, BAD_ERROR);
                    }
                }
                _ => {
                    Books::add(&books.intents, c, 1);
                    if jq.task_done().is_err() {
                        books.bad(me, BAD_ERROR);
                    }
                }
            }
        }
    }
    if seen.sentinels > 0 {
        let _ = books.done.set(c, 1);
    }
    // A batch that took another consumer's sentinel gives it back. The
    // parent closes the queue once every consumer still running is done:
    // then nobody needs it (the queue may be full of surplus sentinels,
    // put for killed consumers that took none).
    for _ in 0..extra_sentinels {
        match q.put(sentinel()) {
            Ok(()) | Err(PutError::Closed(_)) => {}
            Err(_) => books.bad(me, BAD_ERROR),
        }
    }
}

// ----- the finisher -------------------------------------------------------------------------

pub(super) fn finisher(job: Job) {
    let Job {
        plan,
        q,
        books,
        to_finisher,
        ..
    } = job;
    start_chaos(&plan, 1000);
    let me = (plan.producers + plan.consumers) as usize;
    let (AnyQueue::Joinable(jq), Some(mut rx)) = (q, to_finisher) else {
        return;
    };
    // Until every consumer closed its end.
    while rx.recv().is_ok() {
        Books::add(&books.intents, plan.consumers as usize, 1);
        if jq.task_done().is_err() {
            books.bad(me, BAD_ERROR);
        }
    }
}
