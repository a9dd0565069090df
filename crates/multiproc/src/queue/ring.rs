//! The ring in the segment, as the shared algorithm ([`RawQueue`]) sees it.

use multiproc_shm::Region;

// ----- the shared parts -----------------------------------------------------------

/// The ring in the segment, for the shared algorithm.
pub(super) struct Ring {
    pub(super) base: *mut u8,
    pub(super) cap: u32,
}

// SAFETY: `capacity()` is a power of two in MIN_CAPACITY..=MAX_CAPACITY
// (checked when the queue is made or received) and `base..base + cap` is
// inside the segment, which the `Inner` that makes the `Ring` keeps mapped.
// The ranges are checked again below, so no call can leave the ring.
unsafe impl Region for Ring {
    #[inline]
    fn capacity(&self) -> u32 {
        self.cap
    }

    #[inline]
    fn read(&self, at: u32, out: &mut [u8]) {
        if at as usize + out.len() > self.cap as usize {
            return; // never asked by the algorithm; no access outside the ring
        }
        // SAFETY: in bounds (checked above); `out` is private memory that
        // does not overlap the shared ring.
        unsafe {
            copy_from_ring(self.base.add(at as usize), out.as_mut_ptr(), out.len());
        }
    }

    #[inline]
    fn append(&self, at: u32, len: usize, out: &mut Vec<u8>) {
        if at as usize + len > self.cap as usize {
            return; // never asked by the algorithm; no access outside the ring
        }
        out.reserve(len);
        let start = out.len();
        // SAFETY: in bounds (checked above); `reserve` made room for `len`
        // more bytes in `out`, which the copy initializes before `set_len`
        // exposes them; `out` does not overlap the shared ring.
        unsafe {
            copy_from_ring(self.base.add(at as usize), out.as_mut_ptr().add(start), len);
            out.set_len(start + len);
        }
    }

    #[inline]
    fn write(&self, at: u32, src: &[u8]) {
        if at as usize + src.len() > self.cap as usize {
            return; // never asked by the algorithm; no access outside the ring
        }
        // SAFETY: in bounds (checked above); the ring is writable shared
        // memory that no Rust reference covers.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(at as usize), src.len());
        }
    }

    #[inline]
    fn load_header(&self, at: u32) -> u64 {
        self.header_word(at)
            .map_or(0, |w| w.load(std::sync::atomic::Ordering::Acquire))
    }

    #[inline]
    fn store_header(&self, at: u32, header: u64) {
        if let Some(w) = self.header_word(at) {
            w.store(header, std::sync::atomic::Ordering::Release);
        }
    }
}

impl Ring {
    /// The header word at `at`, if `at` is 8-aligned and inside the ring
    /// (the algorithm never asks for another).
    #[inline]
    fn header_word(&self, at: u32) -> Option<&std::sync::atomic::AtomicU64> {
        if at % 8 != 0 || u64::from(at) + 8 > u64::from(self.cap) {
            return None;
        }
        // SAFETY: in bounds (checked above) and 8-aligned (the ring starts on
        // a page boundary and `at` is a multiple of 8); every process
        // accesses header words only atomically, through this function
        // (bodies are never copied over a header a consumer may be reading
        // at the same time), and the segment outlives `self`.
        Some(unsafe { std::sync::atomic::AtomicU64::from_ptr(self.base.add(at as usize).cast()) })
    }
}

/// Records at least this large are copied out page by page with a
/// prefetch of the next page ([`copy_from_ring`]).
pub(super) const PREFETCH_FROM: usize = 64 << 10;

/// Copy `len` bytes out of the ring. A large record is copied 4 KiB at a
/// time, each step first prefetching the next 4 KiB of the source: its lines
/// were just written by another core (each one a cross-core transfer), and
/// the hardware prefetcher stops at every page boundary. Measured with
/// `multiproc bench --filter queue-bytes,memcpy --size 1048576`: 1 MiB
/// records stream 1.2x faster than with one `memcpy`.
///
/// # Safety
///
/// `src..src + len` is readable, `dst..dst + len` writable, and they do not
/// overlap.
unsafe fn copy_from_ring(src: *const u8, dst: *mut u8, len: usize) {
    const PAGE: usize = 4096;
    if len < PREFETCH_FROM || !cfg!(target_arch = "x86_64") {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
        return;
    }
    let mut done = 0;
    while done < len {
        let n = (len - done).min(PAGE);
        #[cfg(target_arch = "x86_64")]
        {
            let next = done + PAGE;
            let mut k = next;
            while k < len.min(next + PAGE) {
                // SAFETY: a prefetch is only a hint: it never faults and
                // changes no memory; `src + k` is inside the source (k < len).
                // SSE, which `_mm_prefetch` needs, is part of x86_64.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        src.add(k).cast(),
                    )
                };
                k += 64;
            }
        }
        // SAFETY: `done + n <= len`: inside both ranges (caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(src.add(done), dst.add(done), n) };
        done += n;
    }
}
