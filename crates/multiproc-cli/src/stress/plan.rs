//! The plan of one history, drawn from a seeded generator: the queue kind,
//! who produces and consumes, batch sizes, kills.

use serde::{Deserialize, Serialize};

// ----- randomness --------------------------------------------------------------------

/// SplitMix64: small, seedable, good enough to draw plans and payloads.
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub(super) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub(super) fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
}

// ----- the plan of one history ----------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Kind {
    Queue,
    Simple,
    Joinable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Role {
    Producer,
    Consumer,
}

/// Everything about one history, drawn from its seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Plan {
    pub(super) seed: u64,
    pub(super) kind: Kind,
    pub(super) producers: u32,
    pub(super) consumers: u32,
    /// Ring bytes; `None`: the default ring.
    pub(super) capacity: Option<usize>,
    /// Item bound; 0: unbounded.
    pub(super) maxsize: usize,
    /// Items each producer puts.
    pub(super) items: u32,
    /// The largest payload (past the in-ring limit when large items are on).
    max_payload: usize,
    /// One in this many items is large.
    large_one_in: u64,
    /// Processes to kill, and when (ms after the start; most histories
    /// take 50-300 ms).
    pub(super) kills: Vec<(Role, u32, u64)>,
    /// JoinableQueue: consumers hand some tasks to a finisher process.
    pub(super) finisher: bool,
    /// Chaos rate in the children (per 1024 failpoint hits).
    pub(super) chaos: u32,
}

impl Plan {
    pub(super) fn draw(seed: u64, chaos: bool) -> Plan {
        let mut r = Rng::new(seed);
        let kind = match r.range(0, 5) {
            0 | 1 => Kind::Queue,
            2 => Kind::Simple,
            _ => Kind::Joinable,
        };
        // Small counts are common, many processes now and then.
        let count = |r: &mut Rng| {
            if r.chance(1, 4) {
                r.range(1, 8) as u32
            } else {
                r.range(1, 3) as u32
            }
        };
        let producers = count(&mut r);
        let consumers = count(&mut r);
        let capacity = if r.chance(1, 5) {
            None
        } else {
            Some(4096 << r.range(0, 4))
        };
        let maxsize = if kind != Kind::Simple && r.chance(1, 3) {
            r.range(1, 16) as usize
        } else {
            0
        };
        let in_ring = capacity.unwrap_or(multiproc::queue::DEFAULT_CAPACITY) / 4;
        let max_payload = match capacity {
            Some(cap) => cap * 2,
            None => 256 << 10,
        }
        .max(in_ring.min(256 << 10) + 64);
        let large_one_in = if r.chance(1, 2) { 20 } else { 1000 };
        let items = r.range(20, 1200 / u64::from(producers).max(1)) as u32;
        // Distinct victims, and never every consumer: producers would then
        // block on a full queue for good, as they would in Python.
        let mut kills: Vec<(Role, u32, u64)> = Vec::new();
        if r.chance(2, 5) {
            for _ in 0..r.range(1, 3) {
                let (role, n) = if r.chance(1, 2) {
                    (Role::Producer, producers)
                } else {
                    (Role::Consumer, consumers)
                };
                let i = r.range(0, u64::from(n) - 1) as u32;
                let consumer_kills = kills.iter().filter(|k| k.0 == Role::Consumer).count() as u32;
                let taken = kills.iter().any(|k| k.0 == role && k.1 == i);
                if !taken && (role == Role::Producer || consumer_kills + 1 < consumers) {
                    kills.push((role, i, r.range(0, 120)));
                }
            }
        }
        let finisher = kind == Kind::Joinable && r.chance(1, 2);
        let chaos = if chaos {
            [16, 64, 256][r.range(0, 2) as usize]
        } else {
            0
        };
        Plan {
            seed,
            kind,
            producers,
            consumers,
            capacity,
            maxsize,
            items,
            max_payload,
            large_one_in,
            kills,
            finisher,
            chaos,
        }
    }

    /// The payload size of item `seq` of producer `p` (deterministic).
    pub(super) fn size_of(&self, p: u16, seq: u32) -> usize {
        let mut r = Rng::new(self.seed ^ (u64::from(p) << 40) ^ u64::from(seq).wrapping_mul(31));
        let x = r.next();
        if x.is_multiple_of(self.large_one_in) {
            r.range(1, self.max_payload as u64) as usize
        } else if x.is_multiple_of(3) {
            r.range(64, 2048) as usize
        } else {
            r.range(0, 64) as usize
        }
    }

    pub(super) fn slots(&self) -> usize {
        self.producers as usize * self.items as usize
    }
}
