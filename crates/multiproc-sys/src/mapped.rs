//! Bytes mapped into this process that other processes may write at any
//! time ([`MappedBytes`], [`MappedWords`]): the one place the workspace
//! turns a mapping's address into accesses. Everything here is
//! bounds-checked against the mapping; bytes move only by copy, and
//! references are made only to [`SharedState`] types (atomics only, valid
//! for every bit pattern).
//!
//! A copy is a plain `memcpy` (the queue's records move through these):
//! one that meets another access to the same bytes, from another process
//! or from this one (a copy on another thread, an atomic through a view),
//! gets old or new bytes, each a valid `u8`, on every platform multiproc
//! runs on, but the Rust memory model leaves such a race undefined. Users
//! keep their copies apart from other accesses by their own protocol (the
//! queue's records are copied only while no one else may touch them), as
//! every user of shared memory must.

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

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
    #[inline]
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

/// The public byte copies of a type whose `span()` is its bytes: offsets
/// and bounds are relative to those bytes.
macro_rules! byte_copies {
    () => {
        /// Copy `out.len()` bytes from byte `offset` into `out`. A byte
        /// another process writes during the copy comes out old or new: the
        /// caller's protocol decides when the bytes are stable.
        #[inline]
        pub fn copy_out(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfRange> {
            self.span().copy_out(offset, out)
        }

        /// Append `len` bytes from byte `offset` to `out`, copied straight
        /// into its spare capacity (no zero-fill first).
        #[inline]
        pub fn append_to(
            &self,
            offset: usize,
            len: usize,
            out: &mut Vec<u8>,
        ) -> Result<(), OutOfRange> {
            self.span().append_to(offset, len, out)
        }

        /// Copy `src` in at byte `offset`. Mapped read-only, there is no
        /// byte to write: any non-empty write is out of range (of size 0),
        /// never a fault.
        #[inline]
        pub fn copy_in(&self, offset: usize, src: &[u8]) -> Result<(), OutOfRange> {
            self.span().copy_in(offset, src)
        }
    };
}

/// The bytes of a live mapping (a [`Mapping`](crate::shm::Mapping) or a
/// System V [`Attachment`](crate::sysv::Attachment), which hand it out
/// through `Deref` and keep it mapped for as long as it is borrowed).
///
/// Other processes may write these bytes at any time, so no `&[u8]` over
/// them is ever made: bytes are copied in and out ([`copy_in`](Self::copy_in),
/// [`copy_out`](Self::copy_out), [`append_to`](Self::append_to)), and
/// shared state is reached through typed views ([`view`](Self::view),
/// [`view_slice`](Self::view_slice)) of [`SharedState`] types only.
/// [`words`](Self::words) is both at once, for a hot path that works within
/// one part of a mapping.
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
// SAFETY: `&MappedBytes` offers `&T` of `SharedState` types, which are
// atomics only (`Sync`), and byte copies through raw pointers, which meet
// copies and accesses from other threads as they meet those of other
// processes (module docs): sharing is what the memory is for.
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

/// The alignment every mapping starts at (the smallest page size of the
/// platforms multiproc runs on): a view at an offset that is a multiple of
/// its type's alignment is aligned, with no look at the address.
const PAGE_ALIGN: usize = 4096;

impl MappedBytes {
    /// The bytes `ptr..ptr + len`.
    ///
    /// # Safety
    ///
    /// `ptr` is the start of a mapping, so page-aligned (to
    /// [`PAGE_ALIGN`] at least); the caller keeps the bytes mapped
    /// (readable, and writable if `writable`) for as long as the value
    /// lives, unmaps them only after it is gone, and makes no Rust
    /// reference to them.
    pub(crate) unsafe fn new(ptr: NonNull<u8>, len: usize, writable: bool) -> MappedBytes {
        debug_assert_eq!(ptr.as_ptr() as usize % PAGE_ALIGN, 0);
        MappedBytes { ptr, len, writable }
    }

    /// The first byte. Dereferencing it is `unsafe`: other processes may
    /// write these bytes at any time.
    #[inline]
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes (never for a mapping: zero-length
    /// mappings are refused).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the bytes are mapped writable.
    #[inline]
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// All the bytes, as a span.
    #[inline]
    fn span(&self) -> Span<'_> {
        Span::new(self.ptr, self.len, self.writable)
    }

    byte_copies!();

    /// The `n` values of `T` from byte `offset`, if they lie inside the
    /// mapping at `T`'s alignment. The one place a reference into mapped
    /// memory is made.
    #[inline]
    pub fn view_slice<T: SharedState>(&self, offset: usize, n: usize) -> Option<&[T]> {
        let align = std::mem::align_of::<T>();
        if align > PAGE_ALIGN || offset % align != 0 {
            return None;
        }
        let size = std::mem::size_of::<T>().checked_mul(n)?;
        let ptr = self.span().at(offset, size).ok()?;
        // SAFETY: the `n` values lie inside the mapping (checked by `at`),
        // at `T`'s alignment (the mapping starts page-aligned, `offset` is
        // a multiple of the alignment: checked); the mapping stays mapped
        // while `self` is borrowed, which the returned borrow cannot outlive;
        // `T: SharedState` is made of atomics only and valid for every bit
        // pattern, so whatever other processes write, concurrently or not,
        // is an atomic access to a valid value.
        Some(unsafe { std::slice::from_raw_parts(ptr.as_ptr().cast::<T>(), n) })
    }

    /// The `T` at byte `offset` (see [`view_slice`](Self::view_slice)).
    #[inline]
    pub fn view<T: SharedState>(&self, offset: usize) -> Option<&T> {
        self.view_slice(offset, 1).map(|s| &s[0])
    }

    /// The `n` 8-byte words from byte `offset` as [`MappedWords`], if they
    /// lie inside the mapping, 8-aligned, and the mapping is writable.
    #[inline]
    pub fn words(&self, offset: usize, n: usize) -> Option<MappedWords<'_>> {
        if !self.writable {
            return None;
        }
        Some(MappedWords {
            words: self.view_slice(offset, n)?,
        })
    }
}

/// Part of a writable mapping seen two ways at once, checked once when it
/// is made ([`MappedBytes::words`]): as 8-byte atomic words
/// ([`words`](Self::words)), and as bytes copied in and out at offsets
/// relative to it, each copy checked against it alone. The queue's ring is
/// one: its record headers are words, its bodies copies.
#[derive(Debug, Clone, Copy)]
pub struct MappedWords<'a> {
    /// A view into a writable mapping (the only way to make one).
    words: &'a [AtomicU64],
}

impl<'a> MappedWords<'a> {
    /// The words.
    #[inline]
    pub fn words(&self) -> &'a [AtomicU64] {
        self.words
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        std::mem::size_of_val(self.words)
    }

    /// Whether there are no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The words' bytes, as a span: inside a writable mapping (the words
    /// came from one) borrowed for `'a`.
    #[inline]
    fn span(&self) -> Span<'a> {
        Span::new(NonNull::from(self.words).cast(), self.len(), true)
    }

    byte_copies!();
}

/// `len` mapped bytes from `ptr`, borrowed for `'a`: where the copies'
/// unsafe accesses are.
#[derive(Clone, Copy)]
struct Span<'a> {
    /// Inside a mapping, with `len` mapped bytes from it for `'a`.
    ptr: NonNull<u8>,
    len: usize,
    /// `len` if the mapping is writable, else 0: the bytes a write may
    /// reach.
    writable_len: usize,
    _mapping: PhantomData<&'a MappedBytes>,
}

impl<'a> Span<'a> {
    /// The `len` bytes from `ptr`, which lie inside a mapping borrowed for
    /// `'a` (writable if `writable`).
    #[inline]
    fn new(ptr: NonNull<u8>, len: usize, writable: bool) -> Span<'a> {
        Span {
            ptr,
            len,
            writable_len: if writable { len } else { 0 },
            _mapping: PhantomData,
        }
    }

    /// The address of byte `offset`, once `offset..offset + n` is checked
    /// to lie inside the span.
    #[inline]
    fn at(&self, offset: usize, n: usize) -> Result<NonNull<u8>, OutOfRange> {
        OutOfRange::check(offset, n, self.len)?;
        // SAFETY: `offset <= offset + n <= len` (checked): the address is
        // inside the span or one past its end, within one mapping.
        Ok(unsafe { self.ptr.add(offset) })
    }

    #[inline]
    fn copy_out(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfRange> {
        let src = self.at(offset, out.len())?;
        // SAFETY: `src..src + out.len()` is inside the span (checked by
        // `at`), so inside a mapping that stays mapped for `'a`; `out` is a
        // `&mut` buffer of this process, so it cannot overlap the mapping
        // (no Rust reference covers mapped bytes). Bytes written meanwhile
        // come out old or new (module docs), each a valid `u8`.
        unsafe { stream_copy(src.as_ptr(), out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    #[inline]
    fn append_to(&self, offset: usize, len: usize, out: &mut Vec<u8>) -> Result<(), OutOfRange> {
        let src = self.at(offset, len)?;
        out.reserve(len);
        let start = out.len();
        // SAFETY: `src..src + len` is inside the span (checked by `at`), so
        // inside a mapping that stays mapped for `'a`; `reserve` made room
        // for `len` more bytes after `start`, all of which `stream_copy`
        // initializes before `set_len` exposes them; `out`'s buffer is this
        // process's heap and cannot overlap the mapping.
        unsafe {
            stream_copy(src.as_ptr(), out.as_mut_ptr().add(start), len);
            out.set_len(start + len);
        }
        Ok(())
    }

    #[inline]
    fn copy_in(&self, offset: usize, src: &[u8]) -> Result<(), OutOfRange> {
        OutOfRange::check(offset, src.len(), self.writable_len)?;
        let dst = self.ptr.as_ptr().wrapping_add(offset);
        // SAFETY: `dst..dst + src.len()` is inside the span (checked
        // against `writable_len`: its length, or 0 if read-only), so inside
        // a mapping that is writable (or nothing is written) and stays
        // mapped for `'a`; no Rust reference covers mapped bytes except
        // `SharedState` views, atomics whose interior mutability allows the
        // write, so none is invalidated; `src`, a reference, cannot overlap
        // them. A concurrent reader sees old or new bytes (module docs).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        Ok(())
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
    if len < PREFETCH_FROM || !cfg!(target_arch = "x86_64") {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { stream_copy_paged(src, dst, len) }
}

/// [`stream_copy`] of a large copy, page by page (out of line: the hot
/// paths of small copies stay small).
///
/// # Safety
///
/// As [`stream_copy`].
#[inline(never)]
unsafe fn stream_copy_paged(src: *const u8, dst: *mut u8, len: usize) {
    const PAGE: usize = 4096;
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
    fn words_are_checked_against_themselves() {
        let m = mapping(4096, true);
        assert!(m.words(4000, 13).is_none(), "past the end");
        assert!(m.words(1020, 8).is_none(), "misaligned");
        let w = m.words(1024, 8).unwrap();
        assert_eq!(w.len(), 64);
        w.copy_in(60, b"wxyz").unwrap();
        assert_eq!(
            w.copy_in(61, b"wxyz"),
            Err(OutOfRange {
                offset: 61,
                end: 65,
                size: 64
            })
        );
        let mut out = [0u8; 4];
        m.copy_out(1084, &mut out).unwrap();
        assert_eq!(&out, b"wxyz");
        assert_eq!(
            w.words()[7].load(Ordering::Relaxed).to_ne_bytes()[4..],
            *b"wxyz"
        );
        let mut v = Vec::new();
        w.append_to(60, 4, &mut v).unwrap();
        assert_eq!(v, b"wxyz");
        assert!(w.copy_out(61, &mut out).is_err());
        assert!(mapping(64, false).words(0, 8).is_none(), "read-only");
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
    fn a_read_only_mapping_refuses_writes() {
        let m = mapping(64, false);
        let mut out = [1u8; 4];
        m.copy_out(0, &mut out).unwrap();
        assert_eq!(out, [0; 4]);
        let refused = OutOfRange {
            offset: 0,
            end: 1,
            size: 0,
        };
        assert_eq!(m.copy_in(0, b"x"), Err(refused));
        assert_eq!(m.copy_in(0, b""), Ok(()));
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
