//! The ring in the segment, as the shared algorithm ([`RawQueue`]) sees it.
//!
//! [`RawQueue`]: multiproc_shm::RawQueue

use std::sync::atomic::{AtomicU64, Ordering};

use multiproc_shm::Region;
use multiproc_sys::shm::MappedWords;

use crate::shared::segment::{PAYLOAD, Segment};

/// The ring in the segment, for the shared algorithm: its 8-byte words (a
/// record header is the word at its offset) whose bytes the bodies are
/// copied in and out of, every access checked against the ring.
pub(super) struct Ring<'a> {
    bytes: MappedWords<'a>,
    cap: u32,
}

impl<'a> Ring<'a> {
    /// The `cap` bytes of `seg`'s payload from `offset`, or `None` if they
    /// are not inside it or not 8-aligned.
    #[inline]
    pub(super) fn new(seg: &'a Segment, offset: usize, cap: u32) -> Option<Ring<'a>> {
        Some(Ring {
            bytes: seg.bytes().words(PAYLOAD + offset, cap as usize / 8)?,
            cap,
        })
    }

    /// The header word at `at`, if `at` is 8-aligned and inside the ring
    /// (the algorithm never asks for another). Every process accesses
    /// header words only atomically, through this view: bodies are never
    /// copied over a header a consumer may be reading at the same time.
    #[inline]
    fn header_word(&self, at: u32) -> Option<&'a AtomicU64> {
        if at % 8 != 0 {
            return None;
        }
        self.bytes.words().get(at as usize / 8)
    }
}

// SAFETY: `capacity()` is a power of two in MIN_CAPACITY..=MAX_CAPACITY
// (checked when the queue is made or received) and never changes; `read`,
// `append` and `write` are safe code over the mapping's copies, each
// bounds-checked against the ring, so every call is sound (a range the
// algorithm never asks for, outside the ring, is not accessed).
unsafe impl Region for Ring<'_> {
    #[inline]
    fn capacity(&self) -> u32 {
        self.cap
    }

    #[inline]
    fn read(&self, at: u32, out: &mut [u8]) {
        let _ = self.bytes.copy_out(at as usize, out);
    }

    #[inline]
    fn append(&self, at: u32, len: usize, out: &mut Vec<u8>) {
        let _ = self.bytes.append_to(at as usize, len, out);
    }

    #[inline]
    fn write(&self, at: u32, src: &[u8]) {
        let _ = self.bytes.copy_in(at as usize, src);
    }

    #[inline]
    fn load_header(&self, at: u32) -> u64 {
        self.header_word(at)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }

    #[inline]
    fn store_header(&self, at: u32, header: u64) {
        if let Some(w) = self.header_word(at) {
            w.store(header, Ordering::Release);
        }
    }
}
