//! The queue ring in one thread, against a model: every interleaving of
//! puts, batches and gets a seeded generator picks keeps FIFO order, byte
//! content, counts and room exactly as a `VecDeque` would; a restarted lap
//! never costs room; a hostile process that scribbles on the ring or the
//! commit words gets `Corrupted` back, never a panic, a hang or an access
//! outside the ring.

#![cfg(not(multiproc_loom))]

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::time::Instant;

use multiproc_shm::queue::{HEADER, KIND_INLINE, KIND_SIDE, record_size};
use multiproc_shm::sync::AtomicU32;
use multiproc_shm::{Env, Me, QueueError, RawQueue, Rec, Region, Taken};

/// One process, never waiting: every call in these tests uses a deadline
/// of now, so a wait would be a bug.
struct Solo;

impl Env for Solo {
    fn wait(&self, _word: &AtomicU32, _expected: u32, _deadline: Option<Instant>) -> bool {
        false
    }
    fn wake(&self, _word: &AtomicU32, _n: u32) {}
    fn is_dead(&self, _pid: u32, _start: Option<u32>) -> bool {
        false
    }
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, d: std::time::Duration) {
        std::thread::sleep(d);
    }
    fn yield_now(&self) {
        std::thread::yield_now();
    }
    fn me(&self) -> Me {
        Me {
            pid: 1,
            tid: 1,
            start: 0,
        }
    }
}

struct Heap {
    bytes: UnsafeCell<Vec<u8>>,
    cap: u32,
}

impl Heap {
    fn new(cap: u32) -> Heap {
        Heap {
            bytes: UnsafeCell::new(vec![0; cap as usize]),
            cap,
        }
    }

    /// Overwrite ring bytes, as a hostile process could.
    fn scribble(&self, at: u32, src: &[u8]) {
        self.write(at, src);
    }
}

// SAFETY: `cap` is a power of two ≥ 64 (the tests only build such), the
// vector has exactly `cap` bytes, and one thread uses it; `read`/`write`
// index with bounds checks, so no access leaves it.
unsafe impl Region for Heap {
    fn capacity(&self) -> u32 {
        self.cap
    }
    fn read(&self, at: u32, out: &mut [u8]) {
        // SAFETY: one thread; no other reference to the vector is live.
        let v = unsafe { &*self.bytes.get() };
        out.copy_from_slice(&v[at as usize..at as usize + out.len()]);
    }
    fn write(&self, at: u32, src: &[u8]) {
        // SAFETY: as above.
        let v = unsafe { &mut *self.bytes.get() };
        v[at as usize..at as usize + src.len()].copy_from_slice(src);
    }
    fn load_header(&self, at: u32) -> u64 {
        let mut b = [0u8; 8];
        self.read(at, &mut b);
        u64::from_le_bytes(b)
    }
    fn store_header(&self, at: u32, header: u64) {
        self.write(at, &header.to_le_bytes());
    }
}

fn now() -> Option<Instant> {
    Some(Instant::now())
}

/// A small xorshift generator: runs are reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn message(id: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| (id.wrapping_mul(0x9E37_79B9) ^ k as u32) as u8)
        .collect()
}

fn put(q: &RawQueue, ring: &Heap, body: &[u8]) -> Result<(), QueueError> {
    q.put(&Solo, ring, Rec::Inline(body), now(), None)
}

/// Take up to `max` records: their bodies.
fn get(q: &RawQueue, ring: &Heap, max: usize) -> Result<Vec<Vec<u8>>, QueueError> {
    let mut buf = Vec::new();
    let mut ends = Vec::new();
    let mut sink = |t: Taken, b: &mut Vec<u8>, _start: usize| {
        assert_eq!(t.kind, KIND_INLINE);
        ends.push(b.len());
        true
    };
    q.get(&Solo, ring, max, now(), &mut buf, &mut sink)?;
    let mut start = 0;
    Ok(ends
        .iter()
        .map(|&e| {
            let v = buf[start..e].to_vec();
            start = e;
            v
        })
        .collect())
}

/// Bytes of the ring the model's pending records occupy (without fillers).
fn model_bytes(model: &VecDeque<Vec<u8>>) -> u32 {
    model.iter().map(|m| record_size(m.len()).unwrap()).sum()
}

#[test]
fn random_interleavings_match_a_fifo_model() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
        let cap = 64u32 << rng.below(5); // 64 B .. 1 KiB
        let maxsize = [0, 3, 7][rng.below(3) as usize];
        let ring = Heap::new(cap);
        let q = RawQueue::new(maxsize, 1 << 20, false);
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut next = 0u32;
        for step in 0..3_000 {
            let ctx = format!("seed {seed} step {step} cap {cap} maxsize {maxsize}");
            match rng.below(4) {
                0 | 1 => {
                    let len = rng.below(u64::from(cap / 3)) as usize;
                    let m = message(next, len);
                    match put(&q, &ring, &m) {
                        Ok(()) => {
                            model.push_back(m);
                            next += 1;
                        }
                        Err(QueueError::Timeout) => {
                            // Refused only when full by count, or when the
                            // record could not fit even with a filler as
                            // large as the largest record (a filler is what
                            // a record left at the end of a lap).
                            let by_count = maxsize != 0 && model.len() as u32 >= maxsize;
                            let need = record_size(len).unwrap();
                            let filler = record_size(cap as usize / 3).unwrap();
                            let by_bytes = model_bytes(&model) + need + filler > cap;
                            assert!(by_count || by_bytes, "{ctx}: refused with room");
                        }
                        Err(e) => panic!("{ctx}: {e:?}"),
                    }
                }
                2 => {
                    let ms: Vec<Vec<u8>> = (0..rng.below(6))
                        .map(|i| message(next + i as u32, rng.below(u64::from(cap / 8)) as usize))
                        .collect();
                    let slices: Vec<&[u8]> = ms.iter().map(Vec::as_slice).collect();
                    let n = match q.put_many(&Solo, &ring, &slices, now()) {
                        Ok(n) => n,
                        Err((n, QueueError::Timeout)) => n,
                        Err((_, e)) => panic!("{ctx}: {e:?}"),
                    };
                    let count = slices.len() as u32;
                    drop(slices);
                    model.extend(ms.into_iter().take(n));
                    next += count;
                }
                _ => {
                    let max = 1 + rng.below(4) as usize;
                    match get(&q, &ring, max) {
                        Ok(got) => {
                            assert!(!got.is_empty() && got.len() <= max, "{ctx}");
                            for g in got {
                                assert_eq!(Some(g), model.pop_front(), "{ctx}: wrong record");
                            }
                        }
                        Err(QueueError::Timeout) => assert!(model.is_empty(), "{ctx}: empty?"),
                        Err(e) => panic!("{ctx}: {e:?}"),
                    }
                }
            }
            assert_eq!(q.len() as usize, model.len(), "{ctx}: len");
            assert!(q.used_bytes() <= cap, "{ctx}: used {}", q.used_bytes());
        }
        // Drain: everything comes out, in order.
        while let Ok(got) = get(&q, &ring, 16) {
            for g in got {
                assert_eq!(Some(g), model.pop_front(), "seed {seed}: drain");
            }
        }
        assert!(model.is_empty(), "seed {seed}: lost records");
    }
}

#[test]
fn a_restarted_lap_costs_no_room_even_with_idle_consumers() {
    let cap = 4096;
    let ring = Heap::new(cap);
    let q = RawQueue::new(0, 1 << 20, false);
    let body = [7u8; 56]; // 64-byte records
    // Move well past the soft limit with an empty queue at each put: the
    // producer restarts the lap, leaving a WRAP for consumers to skip.
    for _ in 0..40 {
        put(&q, &ring, &body).unwrap();
        get(&q, &ring, 1).unwrap();
    }
    // Now nobody consumes: the whole ring must still fill (but for the
    // header slot after the last record, which stays cleared).
    let mut n = 0;
    while put(&q, &ring, &body).is_ok() {
        n += 1;
    }
    assert_eq!(
        n,
        (cap - HEADER) / 64,
        "a restart left room stranded: {}",
        q.debug_state()
    );
    assert_eq!(get(&q, &ring, 1000).unwrap().len() as u32, n);
}

#[test]
fn a_lap_restarted_with_records_pending_is_reclaimed_when_consumers_stop() {
    let cap = 4096;
    let rec = |id: u32| message(id, 56); // 64-byte records
    for lead in [1u32, 3] {
        let ring = Heap::new(cap);
        let q = RawQueue::new(0, 1 << 20, false);
        let (mut next, mut want) = (0u32, 0u32);
        for _ in 0..lead {
            put(&q, &ring, &rec(next)).unwrap();
            next += 1;
        }
        // Consumers `lead` records behind, as in a stream, until a put
        // restarts the lap with those records still pending (a WRAP after
        // them: the used bytes jump by the filler).
        loop {
            put(&q, &ring, &rec(next)).unwrap();
            next += 1;
            if q.used_bytes() > (lead + 1) * 64 {
                break;
            }
            assert_eq!(get(&q, &ring, 1).unwrap(), vec![rec(want)]);
            want += 1;
        }
        // Now nobody consumes: the ring must still fill completely (the
        // pending records move behind the WRAP, the rest of the lap is
        // free again), but for the cleared header slot after the last.
        while put(&q, &ring, &rec(next)).is_ok() {
            next += 1;
        }
        assert_eq!(
            q.len() * 64,
            cap - 64,
            "lead {lead}: room stranded: {}",
            q.debug_state()
        );
        // And everything comes out in order.
        while want < next {
            let got = get(&q, &ring, 7).unwrap();
            for g in got {
                assert_eq!(g, rec(want), "lead {lead}");
                want += 1;
            }
        }
        assert!(q.is_empty());
    }
}

#[test]
fn item_limit_and_closing() {
    let ring = Heap::new(256);
    let q = RawQueue::new(2, 1 << 20, false);
    put(&q, &ring, b"a").unwrap();
    put(&q, &ring, b"b").unwrap();
    assert!(q.is_full());
    assert_eq!(put(&q, &ring, b"c"), Err(QueueError::Timeout));
    q.close(&Solo);
    assert_eq!(put(&q, &ring, b"c"), Err(QueueError::Closed));
    assert_eq!(
        get(&q, &ring, 5).unwrap(),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(get(&q, &ring, 5), Err(QueueError::Closed));
}

#[test]
fn records_too_large_for_the_ring_are_refused() {
    let ring = Heap::new(256);
    let q = RawQueue::new(0, 1 << 20, false);
    assert_eq!(put(&q, &ring, &[0; 200]), Err(QueueError::TooLarge));
    put(&q, &ring, &[0; 100]).unwrap();
}

/// Puts two records, lets `attack` scribble, and checks that the consumer
/// gets records or `Corrupted`, and the producer a typed answer too, with
/// no panic, no access outside the ring and no endless loop. (What a record
/// holds is not checked: a process that can write the ring can forge any
/// record, e.g. stretch a header over the next one; only the bounds are
/// the queue's to keep.)
fn survive(attack: impl Fn(&Heap, &RawQueue)) {
    let ring = Heap::new(256);
    let q = RawQueue::new(0, 1 << 20, false);
    put(&q, &ring, b"first record").unwrap();
    put(&q, &ring, b"second").unwrap();
    attack(&ring, &q);
    for _ in 0..4 {
        match get(&q, &ring, 8) {
            Ok(got) => {
                for g in got {
                    assert!(g.len() <= 256 - 8, "record larger than the ring: {g:?}");
                }
            }
            Err(QueueError::Corrupted | QueueError::Timeout) => {}
            Err(e) => panic!("{e:?}"),
        }
        match put(&q, &ring, b"more") {
            Ok(()) | Err(QueueError::Corrupted | QueueError::Timeout) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
}

#[test]
fn hostile_headers_give_corrupted_not_panics() {
    // A length reaching past the ring, past the tail, or near u32::MAX.
    for len in [u32::MAX, u32::MAX - 7, 250, 249, 64] {
        survive(|ring, _| {
            let mut h = [0u8; 8];
            h[..4].copy_from_slice(&len.to_le_bytes());
            h[4..].copy_from_slice(&KIND_INLINE.to_le_bytes());
            ring.scribble(0, &h);
        });
    }
    // An unknown kind, a side record too short for its prefix, a stray WRAP.
    for (len, kind) in [(5, 99), (3, KIND_SIDE), (0, 3)] {
        survive(|ring, _| {
            let mut h = [0u8; 8];
            h[..4].copy_from_slice(&(len as u32).to_le_bytes());
            h[4..].copy_from_slice(&kind.to_le_bytes());
            ring.scribble(HEADER + 16, &h);
        });
    }
    // Random garbage over the whole ring.
    let mut rng = Rng(99);
    for _ in 0..200 {
        let bytes: Vec<u8> = (0..256).map(|_| rng.below(256) as u8).collect();
        survive(|ring, _| ring.scribble(0, &bytes));
    }
}

#[test]
fn hostile_commit_words_give_corrupted_not_panics() {
    // The state's commit words are atomics in shared memory: a hostile
    // process can store anything in them. Reach them through the state's
    // bytes (offsets from its documented layout: tail at 256, head at 512).
    for (off, v) in [
        (256usize, u64::MAX),
        (256, 3),
        (256, 1 << 40),
        (512, u64::MAX),
        (512, 5),
        (512, 0x0000_0001_0000_1000),
    ] {
        survive(|_, q| {
            let p = (q as *const RawQueue).cast::<u8>();
            // SAFETY: `off` is the offset of an AtomicU64 inside the state
            // (asserted by the layout test below); storing through an
            // atomic is what another process would do.
            let w = unsafe { &*p.add(off).cast::<std::sync::atomic::AtomicU64>() };
            w.store(v, std::sync::atomic::Ordering::Relaxed);
        });
    }
}

#[test]
fn commit_words_sit_where_the_hostile_test_reaches_them() {
    let ring = Heap::new(256);
    let q = RawQueue::new(0, 1 << 20, false);
    put(&q, &ring, b"abc").unwrap();
    let p = (&q as *const RawQueue).cast::<u8>();
    // SAFETY: reads of the state's own bytes at in-bounds, aligned offsets.
    let (tail, head) = unsafe {
        (
            (*p.add(256).cast::<std::sync::atomic::AtomicU64>())
                .load(std::sync::atomic::Ordering::Relaxed),
            (*p.add(512).cast::<std::sync::atomic::AtomicU64>())
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    };
    assert_eq!(tail, u64::from(record_size(3).unwrap()) | (1 << 32));
    assert_eq!(head, 0);
}

/// The queue's commit word at byte `off` of its state (256: tail, 512:
/// head; checked by the test above).
fn word(q: &RawQueue, off: usize) -> &std::sync::atomic::AtomicU64 {
    let p = (q as *const RawQueue).cast::<u8>();
    // SAFETY: an in-bounds, 8-aligned offset of the state, which lives as
    // long as `q`; the state's words are atomics.
    unsafe { &*p.add(off).cast::<std::sync::atomic::AtomicU64>() }
}

#[test]
fn laps_restart_wherever_the_position_counter_is() {
    // Start the commit words a few laps before the 32-bit position counter
    // wraps, and cross that point (and 2^31 before it) in a ping-pong of
    // records over the soft limit: every put must restart the lap, so the
    // ring's first record slots are all it ever uses.
    let cap = 4096u32;
    let ring = Heap::new(cap);
    let body = [5u8; 1100];
    let size = record_size(body.len()).unwrap();
    for start in [
        (1u64 << 31) - 4 * u64::from(cap),
        (1u64 << 32) - 4 * u64::from(cap),
    ] {
        let q = RawQueue::new(0, 1 << 20, false);
        // tail, head, and the cached copies after each group's 32-byte lock
        // (the producers' head_seen, the consumers' tail_seen).
        assert_eq!(std::mem::size_of::<multiproc_shm::RawLock>(), 32);
        for off in [256, 512, 128 + 32, 384 + 32] {
            word(&q, off).store(start, std::sync::atomic::Ordering::Relaxed);
        }
        for round in 0..64 {
            put(&q, &ring, &body).unwrap();
            let off = word(&q, 256).load(std::sync::atomic::Ordering::Relaxed) as u32 & (cap - 1);
            assert!(
                off <= 2 * size,
                "start {start:#x} round {round}: the lap was not restarted: {}",
                q.debug_state()
            );
            assert_eq!(get(&q, &ring, 1).unwrap(), vec![body.to_vec()]);
        }
    }
}

#[test]
fn large_batches_commit_and_copy_in_bounded_chunks() {
    use multiproc_shm::queue::{PUT_MANY_BYTES, TAKE_BYTES};
    let cap = 16 << 20;
    let ring = Heap::new(cap);
    let q = RawQueue::new(0, 1 << 20, false);
    // put_many commits every PUT_MANY_BYTES: a batch of several such
    // chunks still goes in whole and in order.
    let big = PUT_MANY_BYTES as usize + 100;
    let ms: Vec<Vec<u8>> = (0..5).map(|i| message(i, big)).collect();
    let slices: Vec<&[u8]> = ms.iter().map(Vec::as_slice).collect();
    assert_eq!(q.put_many(&Solo, &ring, &slices, now()), Ok(5));
    // A get of many stops after TAKE_BYTES (at least one record).
    let mib = 1 << 20;
    for i in 5..13 {
        put(&q, &ring, &message(i, mib)).unwrap();
    }
    let mut got = Vec::new();
    while let Ok(batch) = get(&q, &ring, 1000) {
        let bytes: usize = batch.iter().map(Vec::len).sum();
        assert!(
            bytes < TAKE_BYTES + mib,
            "one get copied {bytes} bytes: not bounded"
        );
        got.extend(batch);
    }
    let expected: Vec<Vec<u8>> = (0..5)
        .map(|i| message(i, big))
        .chain((5..13).map(|i| message(i, mib)))
        .collect();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "records out of order or damaged");
}

/// Records the deadline of every sleep, and closes the queue at the first,
/// as a peer would after a notifier died between its change and its
/// wake-up (so nothing else ends the wait).
struct Sleeper<'a> {
    q: &'a RawQueue,
    sleeps: std::cell::RefCell<Vec<Option<Instant>>>,
}

impl Env for Sleeper<'_> {
    fn wait(&self, _word: &AtomicU32, _expected: u32, deadline: Option<Instant>) -> bool {
        self.sleeps.borrow_mut().push(deadline);
        self.q.close(&Solo);
        false
    }
    // The rest is `Solo`'s.
    fn wake(&self, word: &AtomicU32, n: u32) {
        Solo.wake(word, n)
    }
    fn is_dead(&self, pid: u32, start: Option<u32>) -> bool {
        Solo.is_dead(pid, start)
    }
    fn now(&self) -> Instant {
        Solo.now()
    }
    fn sleep(&self, d: std::time::Duration) {
        Solo.sleep(d)
    }
    fn yield_now(&self) {
        Solo.yield_now()
    }
    fn me(&self) -> Me {
        Solo.me()
    }
}

/// A get or a put without a deadline never sleeps longer than a liveness
/// check: a producer killed after publishing its record and before its
/// wake-up (or a consumer killed after taking one) leaves nobody to wake
/// the sleepers, and with `maxsize` 1 no later put would either (a stress
/// history hung so).
#[test]
fn a_waiter_without_a_deadline_sleeps_at_most_a_liveness_check() {
    let ring = Heap::new(4096);
    let check = |sleeps: &[Option<Instant>], from: Instant| {
        assert!(!sleeps.is_empty(), "the call never slept");
        for d in sleeps {
            let d = d.expect("an unbounded sleep");
            assert!(d <= from + multiproc_shm::LIVENESS_CHECK + std::time::Duration::from_secs(1));
        }
    };
    // A consumer on an empty queue.
    let q = RawQueue::new(0, 1 << 20, false);
    let env = Sleeper {
        q: &q,
        sleeps: Default::default(),
    };
    let from = Instant::now();
    let mut buf = Vec::new();
    let mut sink = |_: Taken, _: &mut Vec<u8>, _: usize| true;
    assert!(matches!(
        q.get(&env, &ring, 1, None, &mut buf, &mut sink),
        Err(QueueError::Closed)
    ));
    check(&env.sleeps.borrow(), from);
    // A producer on a full queue (`maxsize` 1).
    let q = RawQueue::new(1, 1 << 20, false);
    put(&q, &ring, b"the one item").unwrap();
    let env = Sleeper {
        q: &q,
        sleeps: Default::default(),
    };
    let from = Instant::now();
    assert!(matches!(
        q.put(&env, &ring, Rec::Inline(b"no room"), None, None),
        Err(QueueError::Closed)
    ));
    check(&env.sleeps.borrow(), from);
}
