//! The waiter thread: one per process, asleep in `futex_waitv(2)` on every
//! word an async task waits for, plus a control word of its own. It wakes
//! the tasks whose word changed or whose time is up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use multiproc_sys::futex::{self, WaitAny, Watched};

/// Words one `futex_waitv` can watch, the control word included.
const MAX_WORDS: usize = 128;

/// How often words beyond [`MAX_WORDS`] (or all of them, on a kernel
/// without `futex_waitv`) are looked at.
const POLL: Duration = Duration::from_millis(1);

/// One task's wait.
struct Entry {
    at: Watched,
    until: Option<Instant>,
    waker: Waker,
    /// The helper saw the word change or the time pass and woke the task;
    /// the entry stays until the task sees it.
    fired: bool,
}

#[derive(Default)]
struct State {
    next: u64,
    entries: HashMap<u64, Entry>,
    /// The helper is (about to be) asleep: a new entry must wake it.
    sleeping: bool,
    started: bool,
    /// No `futex_waitv` here: poll every [`POLL`].
    polling: bool,
}

/// The helper of one process.
pub(crate) struct Helper {
    state: Mutex<State>,
    /// Bumped (under `state`) to make the helper look at its entries again.
    ctl: AtomicU32,
}

/// Helpers by process generation: a child forked from a process with a
/// helper inherits the memory but not the thread (nor, perhaps, an unlocked
/// `state`), so it takes the next slot and starts its own. Slots are never
/// freed; a process that exhausts them (32 generations of forks without
/// exec, each using async waits) gets no helper (see [`Helper::get`]).
static SLOTS: [OnceLock<Helper>; 32] = [const { OnceLock::new() }; 32];
/// The next slot to take.
static NEXT: AtomicUsize = AtomicUsize::new(0);
/// `pid << 32 | slot + 1` of the process whose helper is in use (0: none).
static CURRENT: AtomicU64 = AtomicU64::new(0);

/// How a task's entry stands.
pub(crate) enum Polled {
    Waiting,
    Fired,
}

impl Helper {
    /// This process's helper; `None` only when the slots are used up, and
    /// then every wait ends at once (the task retries, yielding to its
    /// runtime in between: busy, but never stuck).
    pub(crate) fn get() -> Option<&'static Helper> {
        let pid = u64::from(crate::env::my_pid());
        // Ordering::Acquire: pairs with the Release below, so the slot's
        // initialization is seen.
        let cur = CURRENT.load(Ordering::Acquire);
        if cur >> 32 == pid && cur as u32 != 0 {
            return SLOTS.get(cur as u32 as usize - 1)?.get();
        }
        // Ordering::Relaxed: a counter; each taker gets its own slot.
        let slot = NEXT.fetch_add(1, Ordering::Relaxed);
        let helper = SLOTS.get(slot)?.get_or_init(|| Helper {
            state: Mutex::new(State::default()),
            ctl: AtomicU32::new(0),
        });
        let mine = pid << 32 | (slot as u64 + 1);
        match CURRENT.compare_exchange(cur, mine, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Some(helper),
            // Another thread of this process installed one first: use that
            // (the slot taken here stays unused).
            Err(other) if other >> 32 == pid && other as u32 != 0 => {
                SLOTS.get(other as u32 as usize - 1)?.get()
            }
            Err(_) => Self::get(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding it (an allocation failure) leaves the map
        // consistent: every change is a single insert or remove.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Make the helper look again (under `state`, so it cannot miss it).
    fn poke(&self, st: &State) {
        if st.sleeping {
            self.ctl.fetch_add(1, Ordering::Release);
            futex::wake(&self.ctl, 1);
        }
    }

    /// Wait for `word` to change from `seen` or for `until`, waking
    /// `waker` then. Returns the entry's id, or `None` when no thread can
    /// be started (the process is out of threads): the caller then tries
    /// again after yielding to its runtime, until one can.
    ///
    /// The helper never reads the word: it hands its address to the
    /// kernel, which compares and sleeps.
    pub(crate) fn register(
        &'static self,
        word: &AtomicU32,
        seen: u32,
        until: Option<Instant>,
        waker: &Waker,
    ) -> Option<u64> {
        let mut st = self.lock();
        if !st.started {
            st.started = std::thread::Builder::new()
                .name("multiproc-async-waiter".into())
                .spawn(move || self.run())
                .is_ok();
            if !st.started {
                return None;
            }
        }
        st.next += 1;
        let id = st.next;
        st.entries.insert(
            id,
            Entry {
                at: Watched::new(word, seen),
                until,
                waker: waker.clone(),
                fired: false,
            },
        );
        self.poke(&st);
        Some(id)
    }

    /// Whether entry `id` fired (it is then removed); if not, `waker` is
    /// the one to wake.
    pub(crate) fn poll(&self, id: u64, waker: &Waker) -> Polled {
        let mut st = self.lock();
        // Wakers replaced or removed are dropped after the lock is let go
        // (an executor's waker may do anything when dropped).
        let old = match st.entries.get_mut(&id) {
            Some(e) if !e.fired => {
                if e.waker.will_wake(waker) {
                    return Polled::Waiting;
                }
                Some(std::mem::replace(&mut e.waker, waker.clone()))
            }
            _ => {
                let gone = st.entries.remove(&id);
                drop(st);
                drop(gone);
                return Polled::Fired;
            }
        };
        drop(st);
        drop(old);
        Polled::Waiting
    }

    /// Remove entry `id` before it was seen to fire. Returns the word if it
    /// had fired: the caller passes that wake-up on.
    pub(crate) fn cancel(&self, id: u64) -> Option<Watched> {
        let mut st = self.lock();
        let e = st.entries.remove(&id)?;
        if e.fired {
            drop(st);
            return Some(e.at);
        }
        // Let the helper stop waiting on the word if nobody else does (it
        // must not keep an address that may be unmapped soon in its list
        // for long).
        if !st.entries.values().any(|o| o.at.addr() == e.at.addr()) {
            self.poke(&st);
        }
        drop(st);
        drop(e);
        None
    }

    /// The thread.
    fn run(&'static self) {
        let mut words: Vec<Watched> = Vec::with_capacity(MAX_WORDS);
        let mut wake: Vec<Waker> = Vec::new();
        // What the last sleep said: fire every entry (a word had changed
        // before the sleep: which one is not reported), those on a word, or
        // those that did not fit in the list (looked at every POLL).
        let mut fire_all = false;
        let mut fire_at: Option<Watched> = None;
        let mut fire_unlisted = false;
        loop {
            let mut deadline: Option<Instant> = None;
            let mut overflow = false;
            let polling;
            {
                let mut st = self.lock();
                st.sleeping = false;
                polling = st.polling;
                let now = Instant::now();
                if let Some(w) = fire_at {
                    if !st.entries.values().any(|e| e.at.addr() == w.addr()) {
                        // Nobody waits there any more (cancelled): the
                        // wake-up was meant for another sleeper.
                        futex::wake_watched(w, 1);
                    }
                }
                words.clear();
                // SYNC POINT: read. Acquire pairs with the Release bump in
                // `poke`: entries added before it are in the map we read.
                words.push(Watched::new(&self.ctl, self.ctl.load(Ordering::Acquire)));
                for e in st.entries.values_mut().filter(|e| !e.fired) {
                    // One slot per (word, value): tasks that registered
                    // before and after a change each need their value
                    // compared, or the earlier ones would sleep through it.
                    let listed = words.contains(&e.at)
                        || (words.len() < MAX_WORDS && {
                            words.push(e.at);
                            true
                        });
                    let hit = fire_all
                        || fire_at.is_some_and(|w| w.addr() == e.at.addr())
                        || (fire_unlisted && !listed);
                    if hit || e.until.is_some_and(|u| u <= now) {
                        e.fired = true;
                        wake.push(e.waker.clone());
                        continue;
                    }
                    overflow |= !listed;
                    deadline = match (deadline, e.until) {
                        (Some(d), Some(u)) => Some(d.min(u)),
                        (d, u) => d.or(u),
                    };
                }
                st.sleeping = wake.is_empty();
            }
            fire_all = false;
            fire_at = None;
            fire_unlisted = false;
            if !wake.is_empty() {
                wake.drain(..).for_each(Waker::wake);
                continue;
            }
            if overflow || polling {
                // Entries beyond the list (all of them without
                // futex_waitv) are looked at every POLL.
                let poll = Instant::now() + POLL;
                deadline = Some(deadline.map_or(poll, |d| d.min(poll)));
            }
            if polling {
                futex::wait(&self.ctl, words[0].expected(), deadline);
                fire_all = true;
                continue;
            }
            match futex::wait_any(&words, deadline) {
                WaitAny::Woken(0) => {}
                WaitAny::Woken(i) => fire_at = Some(words[i]),
                // Our own control word moved (a registration or a cancel
                // meanwhile): look again without waking anyone; a task's
                // word that changed too gives EAGAIN again next time.
                // Ordering::Relaxed: only compared; the next pass reads it
                // with Acquire under the lock.
                WaitAny::Changed if self.ctl.load(Ordering::Relaxed) != words[0].expected() => {}
                WaitAny::Changed => fire_all = true,
                WaitAny::TimedOut => fire_unlisted = overflow,
                WaitAny::Unsupported => self.lock().polling = true,
            }
        }
    }
}
