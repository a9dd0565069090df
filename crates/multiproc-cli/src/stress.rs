//! `multiproc stress`: many short randomized histories of the queues across
//! real processes, each checked for loss, duplication, order, corruption and
//! hangs.
//!
//! A history is drawn from one seed: the kind (`Queue`, `SimpleQueue`,
//! `JoinableQueue`), 1–8 producers and 1–8 consumers (often more processes
//! than cores), the ring (4–64 KiB, so that wraps, lap restarts and
//! reclaims happen all the time, or the default 128 MiB), a bound on the
//! item count or none, item sizes from 0 B to past the in-ring limit (the
//! out-of-line side channel), the call forms each process mixes (blocking,
//! `try_`, `_timeout`, batches, and an async get on a current-thread tokio
//! runtime cancelled by a random timer), and which processes are killed with
//! `SIGKILL`, when. Producers exit right after their last put; the parent
//! joins them and then puts one sentinel per consumer (the seeds' pattern).
//! In a `JoinableQueue` history, consumers may hand items to a finisher
//! process that calls `task_done` for them, while the parent `join`s.
//!
//! What is checked, from shared arrays each process writes as it goes:
//! - every item whose put returned `Ok` is delivered exactly once, unless a
//!   consumer was killed (each killed consumer may take at most one batch
//!   with it); no item is ever delivered twice;
//! - each consumer sees each producer's items in the order they were put,
//!   and no item after a sentinel;
//! - every item arrives whole (size and checksum, from the seed);
//! - every timed call returns within its timeout (plus a slack for an
//!   oversubscribed machine), and the history ends within its bound;
//! - `join` returns `Ok` only when every task is done.
//!
//! `--chaos` makes every failpoint inside the locks and the queue yield,
//! spin or sleep at random in the child processes
//! ([`multiproc::failpoint::chaos`]).

use std::io;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use multiproc::queue::{GetError, JoinError};
use multiproc::{Connection, Process, ProcessError, TimeoutError, TryError, pipe};

/// Options of `multiproc stress`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Run for at most about 45 s (for CI).
    #[arg(long)]
    quick: bool,
    /// Run histories for this many seconds (a soak). Default: 60.
    #[arg(long)]
    seconds: Option<u64>,
    /// Run the one history drawn from this seed (printed with every
    /// violation) and print its plan.
    #[arg(long)]
    replay: Option<u64>,
    /// The first history's seed (default: from the clock). History `i` uses
    /// `seed + i`.
    #[arg(long)]
    seed: Option<u64>,
    /// Make the children yield, spin or sleep at random at every failpoint
    /// of the locks and the queue.
    #[arg(long)]
    chaos: bool,
}

mod model;
mod plan;
mod workers;

use model::{
    AnyQueue, BAD_COLS, BAD_NAMES, Books, HISTORY_BOUND, Job, MAX_BATCH, SENTINEL, sentinel,
};

use plan::{Plan, Role};
use workers::{consumer, finisher, producer};

// ----- one history ----------------------------------------------------------------------

/// What one history did and found.
#[derive(Debug, Default)]
struct Outcome {
    items: u64,
    kills: u64,
    violations: Vec<String>,
}

fn spawn(
    target: fn(Job),
    plan: &Plan,
    q: &AnyQueue,
    books: &Books,
    index: u32,
    to_finisher: Option<Connection<u32>>,
) -> Result<Process<()>, ProcessError> {
    Process::spawn(
        target,
        Job {
            plan: plan.clone(),
            q: q.clone(),
            books: books.clone(),
            index,
            to_finisher,
        },
    )
}

/// Wait for `p` until `deadline`; kill it if it is still running then.
/// Returns its exit code, or, if it hung, where its threads were (from
/// `/proc`, read before the kill).
fn reap(p: &mut Process<()>, deadline: Instant) -> Result<i32, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    match p.wait_timeout(left) {
        Ok(Some(code)) => Ok(code),
        _ => {
            let where_ = p.pid().map_or_else(|| "no pid".into(), threads_of);
            let _ = p.kill();
            let _ = p.wait();
            Err(where_)
        }
    }
}

/// `tid state wchan syscall` for each thread of `pid`, from `/proc` (what a
/// hang report needs to tell a process asleep in the queue from one
/// starved, stopped or stuck elsewhere).
fn threads_of(pid: u32) -> String {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return format!("pid {pid}: no /proc entry");
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let dir = t.path();
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "?".into())
        };
        let stat = read("stat");
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("?")
            .to_owned();
        let syscall = read("syscall");
        let syscall = syscall.split_whitespace().next().unwrap_or("?");
        out.push(format!(
            "{} {state} wchan={} syscall={syscall}",
            t.file_name().to_string_lossy(),
            read("wchan")
        ));
    }
    format!("pid {pid} threads [{}]", out.join("; "))
}

fn run_history(plan: &Plan) -> Result<Outcome, Box<dyn std::error::Error>> {
    let mut out = Outcome::default();
    let q = AnyQueue::new(plan)?;
    let books = Books::new(plan)?;
    let t0 = Instant::now();
    let deadline = t0 + HISTORY_BOUND;
    let (mut fin_rx, fin_tx) = if plan.finisher {
        let (rx, tx) = pipe::<u32>()?;
        (Some(rx), Some(tx))
    } else {
        (None, None)
    };
    let mut consumers = Vec::new();
    for c in 0..plan.consumers {
        let tx = fin_tx.as_ref().map(Connection::try_clone).transpose()?;
        consumers.push(spawn(consumer, plan, &q, &books, c, tx)?);
    }
    drop(fin_tx);
    let mut finisher_p = match fin_rx.take() {
        Some(rx) => Some(spawn(finisher, plan, &q, &books, 0, Some(rx))?),
        None => None,
    };
    let mut producers = Vec::new();
    for p in 0..plan.producers {
        producers.push(spawn(producer, plan, &q, &books, p, None)?);
    }

    // Kills, in time order.
    let mut kills = plan.kills.clone();
    kills.sort_by_key(|k| k.2);
    let mut killed_consumers = 0;
    for &(role, i, at) in &kills {
        let when = t0 + Duration::from_millis(at);
        std::thread::sleep(when.saturating_duration_since(Instant::now()));
        let victim = match role {
            Role::Producer => &mut producers[i as usize],
            Role::Consumer => &mut consumers[i as usize],
        };
        if victim.is_alive() {
            let _ = victim.kill();
        }
    }

    // Producers end (on their own, or killed).
    let mut producers_killed = vec![false; plan.producers as usize];
    for (i, p) in producers.iter_mut().enumerate() {
        match reap(p, deadline) {
            Ok(0) => {}
            Ok(-9) => {
                producers_killed[i] = true;
                out.kills += 1;
            }
            Ok(code) => out
                .violations
                .push(format!("producer {i} exited with {code}")),
            Err(at) => out
                .violations
                .push(format!("producer {i} hung ({at}); queue: {}", q.diagnose())),
        }
    }

    // The seeds' pattern: a sentinel per consumer after the producers
    // joined, and one more for each consumer killed meanwhile (it may have
    // taken one with it). They are put from a thread: with every consumer
    // dead a put may block for good, and then closing the queue ends it.
    let mut live_consumers: Vec<bool> = consumers.iter_mut().map(|c| c.is_alive()).collect();
    let sentinels = plan.consumers as usize + live_consumers.iter().filter(|l| !**l).count();
    let putter = {
        let q = q.clone();
        std::thread::spawn(move || (0..sentinels).all(|_| q.put(sentinel()).is_ok()))
    };

    // A join while consumers and the finisher still work: when it returns
    // Ok, every task got so far must have been marked done.
    if let AnyQueue::Joinable(jq) = &q {
        let kill_planned = plan.kills.iter().any(|k| k.0 == Role::Consumer);
        // With consumers killed, tasks (and the extra sentinels) may stay
        // unfinished for good: a short join then.
        let mut left = deadline.saturating_duration_since(Instant::now());
        if kill_planned {
            left = left.min(multiproc::queue::ABANDON_AFTER + Duration::from_secs(1));
        }
        match jq.join_timeout(left) {
            Ok(()) => {
                let taken: u64 = (0..plan.consumers as usize)
                    .map(|c| books.taken.get(c).unwrap_or(0))
                    .sum();
                let done: u64 = (0..=plan.consumers as usize)
                    .map(|c| books.intents.get(c).unwrap_or(0))
                    .sum();
                if done < taken && !kill_planned {
                    out.violations.push(format!(
                        "join returned with {} of {taken} tasks not marked done",
                        taken - done
                    ));
                }
            }
            Err(TimeoutError::Timeout) if kill_planned => {}
            Err(TimeoutError::Failed(JoinError::Abandoned { .. })) if kill_planned => {}
            Err(e) => out.violations.push(format!("join: {e}")),
        }
    }

    // A consumer giving back an extra sentinel may wait for room that only
    // a consumer which still needs one would make: once every consumer
    // still running got its own sentinel, nobody will, and closing the
    // queue ends those puts. (Seen under load: maxsize 2 full of surplus
    // sentinels, put for killed consumers that had taken none.)
    loop {
        let mut running = 0;
        let mut all_done = true;
        for (i, c) in consumers.iter_mut().enumerate() {
            if matches!(c.try_wait(), Ok(None)) {
                running += 1;
                all_done &= books.done.get(i).unwrap_or(0) == 1;
            }
        }
        if running == 0 || Instant::now() >= deadline {
            break;
        }
        if all_done {
            q.close();
            break;
        }
        // Wait a little on one that runs (its exit ends the wait early).
        for c in consumers.iter_mut() {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.wait_timeout(Duration::from_millis(10));
                break;
            }
        }
    }
    for (i, c) in consumers.iter_mut().enumerate() {
        match reap(c, deadline) {
            Ok(0) => {}
            Ok(-9) => {
                live_consumers[i] = false;
                killed_consumers += 1;
                out.kills += 1;
            }
            Ok(code) => out
                .violations
                .push(format!("consumer {i} exited with {code}")),
            Err(at) => out
                .violations
                .push(format!("consumer {i} hung ({at}); queue: {}", q.diagnose())),
        }
    }
    // Every consumer is gone: a sentinel put still blocked has nobody to
    // make room for it.
    if !putter.is_finished() {
        q.close();
    }
    if !putter.join().unwrap_or(false) && killed_consumers == 0 {
        out.violations
            .push("the parent's sentinel put failed".into());
    }
    if let Some(f) = finisher_p.as_mut() {
        match reap(f, deadline) {
            Ok(0) => {}
            Ok(code) => out.violations.push(format!("finisher exited with {code}")),
            Err(at) => out
                .violations
                .push(format!("finisher hung ({at}); queue: {}", q.diagnose())),
        }
    }

    // What is left may only be sentinels.
    loop {
        let left = match &q {
            AnyQueue::Simple(s) if s.is_empty() => break,
            AnyQueue::Simple(s) => match s.get() {
                Ok(item) => Some(item),
                Err(GetError::Closed) => break,
                Err(e) => {
                    out.violations.push(format!("draining: {e}"));
                    break;
                }
            },
            _ => match q.full().expect("full API").try_get() {
                Ok(item) => Some(item),
                Err(TryError::WouldBlock | TryError::Failed(GetError::Closed)) => break,
                Err(e) => {
                    out.violations.push(format!("draining: {e}"));
                    break;
                }
            },
        };
        match left {
            Some(item) if item.p != SENTINEL => out.violations.push(format!(
                "item {}:{} was left in the queue behind the sentinels",
                item.p, item.seq
            )),
            Some(_) => {}
            None => break,
        }
    }

    // Bad events the processes recorded.
    for proc in 0..(plan.producers + plan.consumers + 1) as usize {
        for (kind, name) in BAD_NAMES.iter().enumerate() {
            let n = books.bad.get(proc * BAD_COLS + kind).unwrap_or(0);
            if n > 0 {
                out.violations.push(format!("{n}× {name} (process {proc})"));
            }
        }
    }

    // Exactly once.
    let slots = plan.slots();
    let mut got = vec![0u8; slots * plan.consumers as usize];
    books.got.read(0, &mut got)?;
    let mut acked = vec![0u8; slots];
    books.acked.read(0, &mut acked)?;
    let mut missing = Vec::new();
    for at in 0..slots {
        let n: u32 = (0..plan.consumers as usize)
            .map(|c| u32::from(got[c * slots + at]))
            .sum();
        let (p, seq) = (at / plan.items as usize, at % plan.items as usize);
        if n > 1 {
            out.violations
                .push(format!("item {p}:{seq} delivered {n} times"));
        }
        if acked[at] == 1 {
            out.items += 1;
            if n == 0 {
                missing.push(format!("{p}:{seq}"));
            }
        } else if !producers_killed[p] && n == 0 {
            out.violations
                .push(format!("producer {p} never put item {seq}"));
        }
    }
    let allowed = killed_consumers * MAX_BATCH as usize;
    if missing.len() > allowed {
        missing.truncate(8);
        out.violations.push(format!(
            "lost items (put returned Ok, never delivered; {killed_consumers} consumers killed): {}",
            missing.join(", ")
        ));
    }
    Ok(out)
}

// ----- the command ----------------------------------------------------------------------

/// `multiproc stress`.
pub fn run(opts: &Options) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(seed) = opts.replay {
        let plan = Plan::draw(seed, opts.chaos);
        println!("stress: replaying {plan:?}");
        let out = run_history(&plan)?;
        for v in &out.violations {
            println!("violation: {v}");
        }
        return finish(1, out.items, out.kills, out.violations.len());
    }
    let budget = Duration::from_secs(match (opts.quick, opts.seconds) {
        (_, Some(s)) => s,
        (true, None) => 45,
        (false, None) => 60,
    });
    let base = opts.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    println!(
        "stress: seed {base}{}, {} s",
        if opts.chaos { ", chaos" } else { "" },
        budget.as_secs()
    );
    let bar = ProgressBar::with_draw_target(Some(budget.as_secs()), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s {msg}")
            .map_err(io::Error::other)?,
    );
    let t0 = Instant::now();
    let (mut histories, mut items, mut kills, mut violations) = (0u64, 0u64, 0u64, 0usize);
    while t0.elapsed() < budget {
        let plan = Plan::draw(base.wrapping_add(histories), opts.chaos);
        let out = run_history(&plan)?;
        histories += 1;
        items += out.items;
        kills += out.kills;
        if !out.violations.is_empty() {
            violations += out.violations.len();
            bar.suspend(|| {
                println!(
                    "violation in history {} (replay: multiproc stress --replay {}{}):",
                    histories - 1,
                    plan.seed,
                    if opts.chaos { " --chaos" } else { "" }
                );
                for v in &out.violations {
                    println!("  {v}");
                }
            });
        }
        bar.set_position(t0.elapsed().as_secs().min(budget.as_secs()));
        bar.set_message(format!(
            "{histories} histories, {items} items, {kills} kills, {violations} violations"
        ));
    }
    bar.finish_and_clear();
    finish(histories, items, kills, violations)
}

fn finish(
    histories: u64,
    items: u64,
    kills: u64,
    violations: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "stress: {histories} histories, {items} items, {kills} kills, {violations} violations"
    );
    if violations > 0 {
        std::process::exit(1);
    }
    Ok(())
}
