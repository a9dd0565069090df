//! The header at offset 0 of every shared segment.
//!
//! Layout (all little-endian fixed-width fields, 32 bytes, `repr(C)`):
//!
//! | offset | field       | meaning |
//! |--------|-------------|---------|
//! | 0      | `magic`     | [`MAGIC`], `b"MPROCSEG"` |
//! | 8      | `layout`    | a hash of the object's layout, chosen by its type |
//! | 16     | `abi`       | [`ABI_VERSION`] |
//! | 20     | `state`     | [`InitState`], the publication word |
//! | 24     | `size`      | the segment's size in bytes |
//!
//! The `state` word:
//!
//! | value | state          | who writes it |
//! |-------|----------------|---------------|
//! | 0     | `Uninit`       | the kernel (fresh pages are zero) |
//! | 1     | `Initializing` | the creator, before it fills the payload |
//! | 2     | `Ready`        | the creator, last, with `Release` |
//!
//! An opener reads `state` with `Acquire` (pairs with the creator's
//! `Release` store of `Ready`) and only then reads anything else.

use crate::sync::{AtomicU32, Ordering};

/// The first eight bytes of every multiproc segment.
pub const MAGIC: u64 = u64::from_le_bytes(*b"MPROCSEG");
/// The version of the shared-memory ABI this build writes and accepts.
pub const ABI_VERSION: u32 = 1;

/// Publication state of a segment (the `state` word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum InitState {
    /// Fresh zero pages: nobody has started.
    Uninit = 0,
    /// The creator is filling the segment.
    Initializing = 1,
    /// The header and payload are complete.
    Ready = 2,
}

/// The header at the start of every shared segment.
#[derive(Debug)]
#[repr(C)]
pub struct Header {
    magic: AtomicU32Pair,
    layout: AtomicU32Pair,
    abi: AtomicU32,
    state: AtomicU32,
    size: AtomicU32Pair,
}

/// A 64-bit field stored as two 32-bit atomics, so the header needs only
/// 4-byte alignment and no 64-bit atomics.
#[derive(Debug)]
#[repr(C)]
struct AtomicU32Pair([AtomicU32; 2]);

impl AtomicU32Pair {
    fn store(&self, v: u64) {
        // Ordering::Relaxed: published by the Release store of `state`.
        self.0[0].store(v as u32, Ordering::Relaxed);
        self.0[1].store((v >> 32) as u32, Ordering::Relaxed);
    }
    fn load(&self) -> u64 {
        // Ordering::Relaxed: read after the Acquire load of `state`.
        u64::from(self.0[0].load(Ordering::Relaxed))
            | (u64::from(self.0[1].load(Ordering::Relaxed)) << 32)
    }
}

#[cfg(not(multiproc_loom))]
const _: () = assert!(core::mem::size_of::<Header>() == 32);

/// Why a segment's header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The creator has not published the segment (yet, or it died first).
    NotReady,
    /// The segment is not a multiproc segment, or one of another version or
    /// layout.
    Incompatible {
        /// What this build expected: (magic, abi, layout).
        expected: (u64, u32, u64),
        /// What the header holds.
        found: (u64, u32, u64),
    },
    /// The header claims a size other than the mapping's.
    SizeMismatch {
        /// The size of the mapping.
        mapped: u64,
        /// The size recorded in the header.
        recorded: u64,
    },
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotReady => f.write_str("shared segment is not initialized"),
            Self::Incompatible { expected, found } => write!(
                f,
                "incompatible shared segment: expected magic {:#x} abi {} layout {:#x}, found magic {:#x} abi {} layout {:#x}",
                expected.0, expected.1, expected.2, found.0, found.1, found.2
            ),
            Self::SizeMismatch { mapped, recorded } => write!(
                f,
                "shared segment size mismatch: mapped {mapped} bytes, header says {recorded}"
            ),
        }
    }
}

impl std::error::Error for HeaderError {}

impl Header {
    /// Mark the segment as being initialized by its creator.
    pub fn begin_init(&self) {
        // Ordering::Relaxed: nothing is published by this store; it only
        // tells a concurrent opener that it must wait.
        self.state
            .store(InitState::Initializing as u32, Ordering::Relaxed);
    }

    /// Fill the header and publish the segment. Call after the payload is
    /// written.
    pub fn publish(&self, layout: u64, size: u64) {
        self.magic.store(MAGIC);
        self.layout.store(layout);
        // Ordering::Relaxed: published by the Release store below.
        self.abi.store(ABI_VERSION, Ordering::Relaxed);
        self.size.store(size);
        // SYNC POINT: write. Pairs with the Acquire load in `check`.
        self.state.store(InitState::Ready as u32, Ordering::Release);
    }

    /// Whether the segment is a published multiproc segment of any layout.
    pub fn is_published(&self) -> bool {
        self.state.load(Ordering::Acquire) == InitState::Ready as u32 && self.magic.load() == MAGIC
    }

    /// Check the header before touching the payload.
    pub fn check(&self, layout: u64, mapped_size: u64) -> Result<(), HeaderError> {
        // SYNC POINT: read. Pairs with the Release store in `publish`.
        let state = self.state.load(Ordering::Acquire);
        if state == InitState::Uninit as u32 || state == InitState::Initializing as u32 {
            return Err(HeaderError::NotReady);
        }
        let found = (
            self.magic.load(),
            // Ordering::Relaxed: ordered by the Acquire load of `state`.
            self.abi.load(Ordering::Relaxed),
            self.layout.load(),
        );
        let expected = (MAGIC, ABI_VERSION, layout);
        // A state word that is no state at all is as foreign as a wrong magic.
        if found != expected || state != InitState::Ready as u32 {
            return Err(HeaderError::Incompatible { expected, found });
        }
        let recorded = self.size.load();
        if recorded != mapped_size {
            return Err(HeaderError::SizeMismatch {
                mapped: mapped_size,
                recorded,
            });
        }
        Ok(())
    }
}

#[cfg(all(test, not(multiproc_loom)))]
mod tests {
    use super::*;

    fn zeroed() -> Box<Header> {
        // A header is all atomics; zero is the kernel's fresh-page state.
        Box::new(Header {
            magic: AtomicU32Pair([AtomicU32::new(0), AtomicU32::new(0)]),
            layout: AtomicU32Pair([AtomicU32::new(0), AtomicU32::new(0)]),
            abi: AtomicU32::new(0),
            state: AtomicU32::new(0),
            size: AtomicU32Pair([AtomicU32::new(0), AtomicU32::new(0)]),
        })
    }

    #[test]
    fn unpublished_is_not_ready() {
        let h = zeroed();
        assert_eq!(h.check(1, 32), Err(HeaderError::NotReady));
        h.begin_init();
        assert_eq!(h.check(1, 32), Err(HeaderError::NotReady));
    }

    #[test]
    fn published_checks_layout_and_size() {
        let h = zeroed();
        h.publish(0xfeed, 4096);
        assert_eq!(h.check(0xfeed, 4096), Ok(()));
        assert!(matches!(
            h.check(0xbeef, 4096),
            Err(HeaderError::Incompatible { .. })
        ));
        assert!(matches!(
            h.check(0xfeed, 8192),
            Err(HeaderError::SizeMismatch { .. })
        ));
    }
}
