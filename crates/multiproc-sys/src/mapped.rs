//! Bytes mapped into this process that other processes may write at any
//! time ([`MappedBytes`]): the one place the workspace turns a mapping's
//! address into accesses. Everything here is bounds-checked against the
//! mapping; bytes move only by copy, and references are made only to
//! [`SharedState`] types (atomics only, valid for every bit pattern).

use std::fmt;
use std::ptr::NonNull;

use multiproc_shm::SharedState;

/// An access outside a block of mapped bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange {
    /// Start of the access.
    pub offset: usize,
    /// End of the access (exclusive), saturated.
    pub end: usize,
    /// The block's size.
    pub size: usize,
}

impl OutOfRange {
    /// Check an access of `n` bytes at `offset` in a block of `size` bytes.
    pub fn check(offset: usize, n: usize, size: usize) -> Result<(), OutOfRange> {
        match offset.checked_add(n) {
            Some(end) if end <= size => Ok(()),
            end => Err(OutOfRange {
                offset,
                end: end.unwrap_or(usize::MAX),
                size,
            }),
        }
    }
}

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bytes {}..{} are outside a block of {} bytes",
            self.offset, self.end, self.size
        )
    }
}

impl std::error::Error for OutOfRange {}

/// The bytes of a live mapping (a [`Mapping`](crate::shm::Mapping) or a
/// System V [`Attachment`](crate::sysv::Attachment), which hand it out
/// through `Deref` and keep it mapped for as long as it is borrowed).
///
/// Other processes may write these bytes at any time, so no `&[u8]` over
/// them is ever made: bytes are copied in and out ([`copy_in`](Self::copy_in),
/// [`copy_out`](Self::copy_out), [`append_to`](Self::append_to)), and
/// shared state is reached through typed views ([`view`](Self::view),
/// [`view_slice`](Self::view_slice)) of [`SharedState`] types only.
pub struct MappedBytes {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: `MappedBytes` is an address range of a mapping that its owner
// keeps alive while it is borrowed; it holds no thread-local state, and
// every access it offers (copies, `SharedState` views) is as valid from one
// thread as from another.
unsafe impl Send for MappedBytes {}
// SAFETY: `&MappedBytes` offers copies, whose racing with other writers is
// argued at each copy, and `&T` of `SharedState` types, which are `Sync`
// (atomics only).
unsafe impl Sync for MappedBytes {}

impl fmt::Debug for MappedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedBytes")
            .field("len", &self.len)
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

/// Copies out of a mapping at least this large go page by page with a
/// prefetch of the next page ([`stream_copy`]).
const PREFETCH_FROM: usize = 64 << 10;

impl MappedBytes {
    /// The bytes `ptr..ptr + len`, which the caller keeps mapped (readable,
    /// and writable if `writable`) for as long as the value lives and
    /// unmaps only after it is gone.
    pub(crate) fn new(ptr: NonNull<u8>, len: usize, writable: bool) -> MappedBytes {
        MappedBytes { ptr, len, writable }
    }

    /// The first byte. Dereferencing it is `unsafe`: other processes may
    /// write these bytes at any time.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes (never for a mapping: zero-length
    /// mappings are refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the bytes are mapped writable.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The address of byte `offset`, once `offset..offset + n` is checked
    /// to lie inside the mapping.
    fn at(&self, offset: usize, n: usize) -> Result<*mut u8, OutOfRange> {
        OutOfRange::check(offset, n, self.len)?;
        Ok(self.ptr.as_ptr().wrapping_add(offset))
    }

    /// Copy `out.len()` bytes from `offset` into `out`.
    ///
    /// A byte another process writes during the copy comes out old or new
    /// (a copy can see a mix of two writes): the caller's protocol decides
    /// when the bytes are stable.
    #[inline]
    pub fn copy_out(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfRange> {
        let src = self.at(offset, out.len())?;
        // SAFETY: `src..src + out.len()` is inside the mapping (checked by
        // `at`), which stays mapped while `self` is borrowed; `out` is a
        // `&mut` buffer of this process, so it cannot overlap the mapping
        // (no Rust reference covers mapped bytes).
        unsafe { stream_copy(src, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Append `len` bytes from `offset` to `out`, copied straight into its
    /// spare capacity (no zero-fill first).
    #[inline]
    pub fn append_to(
        &self,
        offset: usize,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), OutOfRange> {
        let src = self.at(offset, len)?;
        out.reserve(len);
        let start = out.len();
        // SAFETY: `src..src + len` is inside the mapping (checked by `at`),
        // which stays mapped while `self` is borrowed; `reserve` made room
        // for `len` more bytes after `start`, all of which `stream_copy`
        // initializes before `set_len` exposes them; `out`'s buffer is this
        // process's heap and cannot overlap the mapping.
        unsafe {
            stream_copy(src, out.as_mut_ptr().add(start), len);
            out.set_len(start + len);
        }
        Ok(())
    }

    /// Copy `src` into the mapping at `offset`.
    ///
    /// # Panics
    ///
    /// If the bytes are mapped read-only (a write would fault); callers
    /// that map read-only refuse writes before they get here.
    #[inline]
    pub fn copy_in(&self, offset: usize, src: &[u8]) -> Result<(), OutOfRange> {
        assert!(self.writable, "write through a read-only mapping");
        let dst = self.at(offset, src.len())?;
        // SAFETY: `dst..dst + src.len()` is inside the mapping (checked by
        // `at`), which is writable (asserted) and stays mapped while `self`
        // is borrowed; no Rust reference covers mapped bytes, so none is
        // invalidated, and `src`, a reference, cannot overlap them. A
        // concurrent reader in another process sees old or new bytes.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        Ok(())
    }

    /// The `n` values of `T` from byte `offset`, if they lie inside the
    /// mapping at `T`'s alignment. The one place a reference into mapped
    /// memory is made.
    #[inline]
    pub fn view_slice<T: SharedState>(&self, offset: usize, n: usize) -> Option<&[T]> {
        let size = std::mem::size_of::<T>().checked_mul(n)?;
        let ptr = self.at(offset, size).ok()?;
        if !ptr.cast::<T>().is_aligned() {
            return None;
        }
        // SAFETY: the `n` values lie inside the mapping (checked by `at`),
        // at `T`'s alignment (checked); the mapping stays mapped while
        // `self` is borrowed, which the returned borrow cannot outlive;
        // `T: SharedState` is made of atomics only and valid for every bit
        // pattern, so whatever other processes write, concurrently or not,
        // is an atomic access to a valid value.
        Some(unsafe { std::slice::from_raw_parts(ptr.cast::<T>(), n) })
    }

    /// The `T` at byte `offset` (see [`view_slice`](Self::view_slice)).
    #[inline]
    pub fn view<T: SharedState>(&self, offset: usize) -> Option<&T> {
        self.view_slice(offset, 1).map(|s| &s[0])
    }
}

/// Copy `len` bytes from `src` to `dst`. A large copy goes 4 KiB at a
/// time, each step first prefetching the next 4 KiB of the source: its
/// lines were usually just written by another core (each one a cross-core
/// transfer), and the hardware prefetcher stops at every page boundary.
/// Measured with `multiproc bench --filter queue-bytes,memcpy --size
/// 1048576`: 1 MiB queue records stream 1.2x faster than with one `memcpy`.
///
/// # Safety
///
/// `src..src + len` is readable, `dst..dst + len` writable, and they do not
/// overlap.
#[inline]
unsafe fn stream_copy(src: *const u8, dst: *mut u8, len: usize) {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    use super::OutOfRange;
    use crate::shm::{Mapping, memfd};

    fn mapping(len: usize, writable: bool) -> Mapping {
        let fd = memfd("multiproc-sys-test", len as u64).unwrap();
        Mapping::new(&fd, len, writable).unwrap()
    }

    #[test]
    fn copies_are_bounds_checked() {
        let m = mapping(4096, true);
        m.copy_in(4090, b"abcdef").unwrap();
        let mut out = [0u8; 6];
        m.copy_out(4090, &mut out).unwrap();
        assert_eq!(&out, b"abcdef");
        let past = OutOfRange {
            offset: 4091,
            end: 4097,
            size: 4096,
        };
        assert_eq!(m.copy_in(4091, b"abcdef"), Err(past));
        assert_eq!(m.copy_out(4091, &mut out), Err(past));
        assert_eq!(
            m.copy_out(usize::MAX, &mut out).unwrap_err().end,
            usize::MAX
        );
        let mut v = b"xy".to_vec();
        m.append_to(4090, 3, &mut v).unwrap();
        assert_eq!(v, b"xyabc");
        assert_eq!(m.append_to(4095, 2, &mut v).unwrap_err().end, 4097);
        assert_eq!(v, b"xyabc");
    }

    #[test]
    fn large_copies_take_the_prefetching_path() {
        let len = super::PREFETCH_FROM * 2 + 100;
        let m = mapping(len + 8, true);
        let src: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        m.copy_in(8, &src).unwrap();
        let mut out = vec![0; len];
        m.copy_out(8, &mut out).unwrap();
        assert_eq!(out, src);
        let mut v = vec![1];
        m.append_to(8, len, &mut v).unwrap();
        assert_eq!(&v[1..], &src[..]);
    }

    #[test]
    fn views_are_inside_and_aligned() {
        let m = mapping(64, true);
        let w = m.view::<AtomicU64>(8).unwrap();
        w.store(0x0102_0304_0506_0708, Ordering::Relaxed);
        let mut out = [0u8; 8];
        m.copy_out(8, &mut out).unwrap();
        assert_eq!(u64::from_ne_bytes(out), 0x0102_0304_0506_0708);
        assert!(m.view::<AtomicU64>(4).is_none(), "misaligned");
        assert!(m.view::<AtomicU64>(60).is_none(), "past the end");
        assert!(m.view::<AtomicU32>(60).is_some());
        assert_eq!(m.view_slice::<AtomicU32>(0, 16).unwrap().len(), 16);
        assert!(m.view_slice::<AtomicU32>(0, 17).is_none());
        assert!(m.view_slice::<AtomicU32>(0, usize::MAX).is_none());
    }

    #[test]
    #[should_panic(expected = "read-only")]
    fn a_read_only_mapping_refuses_writes() {
        let m = mapping(64, false);
        let mut out = [1u8; 4];
        m.copy_out(0, &mut out).unwrap();
        assert_eq!(out, [0; 4]);
        let _ = m.copy_in(0, b"x");
    }

    #[test]
    fn a_sysv_attachment_is_bounds_checked() {
        use crate::sysv;
        let id = sysv::shmget(sysv::IPC_PRIVATE, 100, sysv::IPC_CREAT | 0o600).unwrap();
        let a = sysv::Attachment::new(id, false).unwrap();
        let r = sysv::Attachment::new(id, true).unwrap();
        sysv::shm_remove(id).unwrap();
        assert_eq!(
            (a.len(), a.is_writable(), r.is_writable()),
            (100, true, false)
        );
        a.copy_in(96, b"abcd").unwrap();
        let mut out = [0u8; 4];
        r.copy_out(96, &mut out).unwrap();
        assert_eq!(&out, b"abcd");
        assert!(a.copy_in(97, b"abcd").is_err());
    }
}
