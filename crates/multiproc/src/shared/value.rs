//! Typed values and arrays in shared memory: Python's `Value`, `Array`,
//! `RawValue` and `RawArray`.
//!
//! `T` is plain old data ([`bytemuck::Pod`]): any bit pattern another
//! process writes is a valid `T`. Values are copied in and out with relaxed
//! atomic loads and stores, one atomic word at a time (8, 4 or 1 bytes, the
//! widest `T`'s alignment allows: a `u64` or `f64` moves in one access), so
//! a read racing a write is defined; no `&T` or `&mut T` into memory another
//! process writes is ever handed out. [`Value`] and [`Array`] carry a robust
//! [`Lock`]: `get`/`set` take it for one copy, and
//! [`Value::lock`]/[`Array::lock`] hold it across several operations
//! (Python's `with v.get_lock(): v.value += 1`).
//! [`RawValue`]/[`RawArray`] have no lock; a read racing a write may see a
//! mix of the two (word by word).

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use bytemuck::Pod;
use multiproc_shm::{Acquired, LockError, RawLock, SharedState};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::codec::{self, Fd};
use crate::env::ProcessEnv;
use crate::shared::segment::{self, Segment};
use crate::sync::{Lock, embedded_lock};

const ENV: ProcessEnv = ProcessEnv;
/// The data starts here in the payload (after the lock and the length).
const DATA: usize = 64;
const LEN_AT: usize = 32;

/// Errors of the shared value and array accessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SharedError {
    /// An index or range outside the array.
    #[error("index {index} out of range for length {len}")]
    OutOfRange {
        /// The first index that does not exist.
        index: usize,
        /// The array's length.
        len: usize,
    },
    /// The lock is not recoverable (an owner died and was not repaired).
    #[error("the lock is not recoverable")]
    NotRecoverable,
}

fn layout<T>(kind: &str) -> u64 {
    // "/2": the lock at offset 0 records its owner in one 64-bit atomic.
    let desc = format!("{kind}/2<{}>", std::any::type_name::<T>());
    segment::layout_hash(&desc, std::mem::size_of::<T>(), std::mem::align_of::<T>())
}

/// An atomic word a `T`'s bytes are copied through.
trait Word: Pod {
    /// The atomic of this width.
    type Cell: SharedState;
    fn load(cell: &Self::Cell) -> Self;
    fn store(cell: &Self::Cell, v: Self);
}

macro_rules! word {
    ($($w:ty => $cell:ty),*) => {
        $(
            impl Word for $w {
                type Cell = $cell;
                // Ordering::Relaxed: a cell orders nothing; `Value`/`Array`
                // order by their lock.
                fn load(cell: &$cell) -> $w {
                    cell.load(Ordering::Relaxed)
                }
                fn store(cell: &$cell, v: $w) {
                    cell.store(v, Ordering::Relaxed)
                }
            }
        )*
    };
}

word!(u8 => AtomicU8, u32 => AtomicU32, u64 => AtomicU64);

/// Copy `out.len()` words from payload offset `at` of `seg` into `out`.
fn load_words<W: Word>(seg: &Segment, at: usize, out: &mut [W]) {
    let cells = seg
        .view_slice::<W::Cell>(at, out.len())
        .expect("the cells lie inside the segment (checked)");
    for (o, c) in out.iter_mut().zip(cells) {
        *o = W::load(c);
    }
}

/// Copy `src` to payload offset `at` of `seg`.
fn store_words<W: Word>(seg: &Segment, at: usize, src: &[W]) {
    let cells = seg
        .view_slice::<W::Cell>(at, src.len())
        .expect("the cells lie inside the segment (checked)");
    for (c, &v) in cells.iter().zip(src) {
        W::store(c, v);
    }
}

/// The width of the atomic words a `T` moves through: the widest of 8, 4
/// and 1 bytes that `T`'s alignment allows (its size is then a multiple,
/// and every process picks the same for the same cells: the layout names
/// `T`).
const fn width<T>() -> usize {
    match std::mem::align_of::<T>() {
        a if a >= 8 => 8,
        a if a >= 4 => 4,
        _ => 1,
    }
}

/// Copy `out.len()` `T`s from payload offset `at` of `seg` (checked by the
/// caller to lie inside it) into `out`.
fn load_cells<T: Pod>(seg: &Segment, at: usize, out: &mut [T]) {
    if std::mem::size_of::<T>() == 0 {
        return;
    }
    match width::<T>() {
        8 => load_words::<u64>(seg, at, bytemuck::cast_slice_mut(out)),
        4 => load_words::<u32>(seg, at, bytemuck::cast_slice_mut(out)),
        _ => load_words::<u8>(seg, at, bytemuck::cast_slice_mut(out)),
    }
}

/// Copy `src` to payload offset `at` of `seg` (checked by the caller to lie
/// inside it).
fn store_cells<T: Pod>(seg: &Segment, at: usize, src: &[T]) {
    if std::mem::size_of::<T>() == 0 {
        return;
    }
    match width::<T>() {
        8 => store_words::<u64>(seg, at, bytemuck::cast_slice(src)),
        4 => store_words::<u32>(seg, at, bytemuck::cast_slice(src)),
        _ => store_words::<u8>(seg, at, bytemuck::cast_slice(src)),
    }
}

/// The cells of a value or array: `len` `T`s at `DATA` in a segment.
struct Cells<T> {
    seg: Arc<Segment>,
    len: usize,
    layout: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Cells<T> {
    fn clone(&self) -> Self {
        Cells {
            seg: self.seg.clone(),
            len: self.len,
            layout: self.layout,
            _t: PhantomData,
        }
    }
}

impl<T: Pod> Cells<T> {
    const ALIGN_OK: () = assert!(std::mem::align_of::<T>() <= DATA);

    fn create(kind: &str, values: impl ExactSizeIterator<Item = T>) -> io::Result<Self> {
        let () = Self::ALIGN_OK;
        let len = values.len();
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .and_then(|b| b.checked_add(DATA))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "array too large"))?;
        let layout = layout::<T>(kind);
        let seg = Segment::anonymous(kind, layout, bytes.max(DATA + 1), |seg| {
            // Ordering::Relaxed: the header's publication orders these.
            seg.view::<AtomicU64>(LEN_AT)
                .expect("the length lies before the data")
                .store(len as u64, Ordering::Relaxed);
            for (i, v) in values.enumerate() {
                store_cells(seg, Self::offset(i), &[v]);
            }
        })?;
        Ok(Cells {
            seg,
            len,
            layout,
            _t: PhantomData,
        })
    }

    fn from_segment(seg: Segment, layout: u64) -> io::Result<Self> {
        let () = Self::ALIGN_OK;
        // Ordering::Relaxed: written before the header was published, which
        // `Segment::from_fd` saw.
        let len = seg
            .view::<AtomicU64>(LEN_AT)
            .expect("the length lies before the data")
            .load(Ordering::Relaxed);
        let fits = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_mul(std::mem::size_of::<T>()))
            .and_then(|b| b.checked_add(DATA))
            .is_some_and(|end| end <= seg.payload_len());
        if !fits {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "shared array length does not fit its segment",
            ));
        }
        Ok(Cells {
            seg: Arc::new(seg),
            len: len as usize,
            layout,
            _t: PhantomData,
        })
    }

    /// The payload offset of element `i` (in bounds: `i <= len`).
    fn offset(i: usize) -> usize {
        DATA + i * std::mem::size_of::<T>()
    }

    fn check(&self, r: &Range<usize>) -> Result<(), SharedError> {
        if r.start > r.end || r.end > self.len {
            return Err(SharedError::OutOfRange {
                index: r.end.max(r.start),
                len: self.len,
            });
        }
        Ok(())
    }

    fn load(&self, i: usize) -> Result<T, SharedError> {
        let mut v = [T::zeroed()];
        self.read_into(i, &mut v)?;
        Ok(v[0])
    }

    fn store(&self, i: usize, v: T) -> Result<(), SharedError> {
        self.write_from(i, &[v])
    }

    fn read_into(&self, start: usize, out: &mut [T]) -> Result<(), SharedError> {
        self.check(&(start..start + out.len()))?;
        load_cells(&self.seg, Self::offset(start), out);
        Ok(())
    }

    fn write_from(&self, start: usize, src: &[T]) -> Result<(), SharedError> {
        self.check(&(start..start + src.len()))?;
        store_cells(&self.seg, Self::offset(start), src);
        Ok(())
    }

    fn to_vec(&self) -> Vec<T> {
        let mut v = vec![T::zeroed(); self.len];
        self.read_into(0, &mut v).expect("whole range is in bounds");
        v
    }

    fn lock(&self) -> &RawLock {
        self.seg
            .view(0)
            .expect("the lock is the first 32 bytes of the payload")
    }

    /// Run `f` under the lock; a dead previous holder's torn write is
    /// accepted (any bit pattern is a valid `T`) and the lock repaired.
    fn locked<R>(&self, f: impl FnOnce() -> R) -> Result<R, SharedError> {
        match self.lock().lock(&ENV, None) {
            Ok(Acquired::OwnerDied) => self.lock().mark_consistent(),
            Ok(_) => {}
            Err(LockError::NotRecoverable) => return Err(SharedError::NotRecoverable),
            Err(LockError::WouldBlock) => unreachable!("no deadline"),
        }
        let r = f();
        let _ = self.lock().unlock(&ENV);
        Ok(r)
    }
}

#[derive(Serialize, Deserialize)]
struct CellsWire<F> {
    fd: F,
}

impl<T> Serialize for Cells<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        CellsWire {
            fd: segment::SegRef(&self.seg),
        }
        .serialize(s)
    }
}

fn deserialize_cells<'de, D: Deserializer<'de>, T: Pod>(
    d: D,
    kind: &str,
) -> Result<Cells<T>, D::Error> {
    let w = CellsWire::<Fd>::deserialize(d)?;
    let layout = layout::<T>(kind);
    let seg = Segment::from_fd(w.fd.0, layout)
        .map_err(|e| codec::handle_error_de(codec::HandleError::wrong_object(e)))?;
    Cells::from_segment(seg, layout).map_err(serde::de::Error::custom)
}

macro_rules! cells_type {
    ($(#[$doc:meta])* $ty:ident, $kind:literal) => {
        $(#[$doc])*
        pub struct $ty<T> {
            cells: Cells<T>,
        }

        impl<T> Clone for $ty<T> {
            fn clone(&self) -> Self {
                $ty { cells: self.cells.clone() }
            }
        }

        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("len", &self.cells.len)
                    .finish_non_exhaustive()
            }
        }

        impl<T> Serialize for $ty<T> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.cells.serialize(s)
            }
        }

        impl<'de, T: Pod> Deserialize<'de> for $ty<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($ty { cells: deserialize_cells(d, $kind)? })
            }
        }
    };
}

cells_type!(
    /// A `T` in shared memory with a lock (Python's `multiprocessing.Value`).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let counter = multiproc::Value::new(20i64)?;
    /// // Python: with counter.get_lock(): counter.value -= 1
    /// counter.lock().map_err(|e| e.to_string())?.update(|v| v - 1);
    /// assert_eq!(counter.get()?, 19);
    /// # Ok(()) }
    /// ```
    Value,
    "multiproc::Value"
);
cells_type!(
    /// A `T` in shared memory without a lock (Python's `RawValue`).
    RawValue,
    "multiproc::RawValue"
);
cells_type!(
    /// `[T]` in shared memory with a lock (Python's `multiprocessing.Array`).
    Array,
    "multiproc::Array"
);
cells_type!(
    /// `[T]` in shared memory without a lock (Python's `RawArray`).
    RawArray,
    "multiproc::RawArray"
);

/// Holds a [`Value`]'s lock: read-modify-write without interference.
#[must_use = "the lock is released when the guard is dropped"]
pub struct ValueGuard<'a, T: Pod> {
    v: &'a Value<T>,
    /// Took the lock over from a dead owner (handed out in `OwnerDied`).
    heir: bool,
}

impl<T: Pod> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueGuard").finish_non_exhaustive()
    }
}

impl<T: Pod> ValueGuard<'_, T> {
    /// The value.
    pub fn get(&self) -> T {
        self.v.cells.load(0).expect("a value has one cell")
    }

    /// Replace the value.
    pub fn set(&self, v: T) {
        self.v.cells.store(0, v).expect("a value has one cell");
    }

    /// Replace the value with `f(value)`; returns the new value.
    pub fn update(&self, f: impl FnOnce(T) -> T) -> T {
        let v = f(self.get());
        self.set(v);
        v
    }

    /// After [`AcquireError::OwnerDied`](crate::AcquireError::OwnerDied): the value is repaired.
    pub fn mark_consistent(&self) {
        self.v.cells.lock().mark_consistent();
    }
}

impl<T: Pod> Drop for ValueGuard<'_, T> {
    fn drop(&mut self) {
        if self.heir {
            crate::sync::warn_if_abandoned(self.v.cells.lock(), "a Value's lock");
        }
        let _ = self.v.cells.lock().unlock(&ENV);
    }
}

/// The lock forms of a locked cell type (`Value`, `Array`) and its guard,
/// over the shared ones (`crate::sync::lock_forms`).
macro_rules! cell_lock_forms {
    ($guard:ident, $field:ident) => {
        fn take(&self, deadline: Option<Instant>) -> Result<Acquired, LockError> {
            self.cells.lock().lock(&ENV, deadline)
        }

        fn try_take(&self) -> Result<Acquired, LockError> {
            self.cells.lock().try_lock(&ENV)
        }

        fn guard(&self, heir: bool) -> $guard<'_, T> {
            $guard { $field: self, heir }
        }

        crate::sync::lock_forms!($guard<'_, T>);
    };
}

impl<T: Pod> Value<T> {
    /// A new shared value.
    pub fn new(v: T) -> io::Result<Self> {
        Ok(Value {
            cells: Cells::create("multiproc::Value", std::iter::once(v))?,
        })
    }

    /// Read the value under the lock.
    ///
    /// A holder that died is not reported here: `get` and `set` repair the
    /// lock and go on. Each is one copy of a plain-old-data `T` (every bit
    /// pattern is a valid `T`), so there is no invariant across calls for the
    /// lock to vouch for; a holder killed in the middle of a `set` can at
    /// worst leave a `T` whose bytes mix the old and the new value, which a
    /// racing `RawValue` can show anyway. Code that keeps an invariant over
    /// several operations holds the lock with [`lock`](Value::lock), which
    /// does report the death ([`AcquireError::OwnerDied`](crate::AcquireError::OwnerDied)).
    pub fn get(&self) -> Result<T, SharedError> {
        self.cells.locked(|| self.cells.load(0))?
    }

    /// Write the value under the lock.
    pub fn set(&self, v: T) -> Result<(), SharedError> {
        self.cells.locked(|| self.cells.store(0, v))?
    }

    cell_lock_forms!(ValueGuard, v);

    /// The lock inside the value, as a [`Lock`] (Python's `get_lock()`),
    /// for use on its own or to send to other processes.
    pub fn get_lock(&self) -> Lock {
        embedded_lock(self.cells.seg.clone(), 0, self.cells.layout)
    }
}

impl<T: Pod> RawValue<T> {
    /// A new shared value without a lock.
    pub fn new(v: T) -> io::Result<Self> {
        Ok(RawValue {
            cells: Cells::create("multiproc::RawValue", std::iter::once(v))?,
        })
    }

    /// Read the value (may see a concurrent write half done).
    pub fn get(&self) -> T {
        self.cells.load(0).expect("a value has one cell")
    }

    /// Write the value.
    pub fn set(&self, v: T) {
        self.cells.store(0, v).expect("a value has one cell");
    }
}

/// Holds an [`Array`]'s lock.
#[must_use = "the lock is released when the guard is dropped"]
pub struct ArrayGuard<'a, T: Pod> {
    a: &'a Array<T>,
    /// Took the lock over from a dead owner (handed out in `OwnerDied`).
    heir: bool,
}

impl<T: Pod> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayGuard").finish_non_exhaustive()
    }
}

impl<T: Pod> Drop for ArrayGuard<'_, T> {
    fn drop(&mut self) {
        if self.heir {
            crate::sync::warn_if_abandoned(self.a.cells.lock(), "an Array's lock");
        }
        let _ = self.a.cells.lock().unlock(&ENV);
    }
}

impl<T: Pod> ArrayGuard<'_, T> {
    fn cells(&self) -> &Cells<T> {
        &self.a.cells
    }

    /// Element `i`.
    pub fn get(&self, i: usize) -> Result<T, SharedError> {
        self.cells().load(i)
    }

    /// Set element `i`.
    pub fn set(&self, i: usize, v: T) -> Result<(), SharedError> {
        self.cells().store(i, v)
    }

    /// Copy `out.len()` elements from `start` into `out`.
    pub fn read(&self, start: usize, out: &mut [T]) -> Result<(), SharedError> {
        self.cells().read_into(start, out)
    }

    /// Copy `src` into the array from `start`.
    pub fn write(&self, start: usize, src: &[T]) -> Result<(), SharedError> {
        self.cells().write_from(start, src)
    }

    /// All elements.
    pub fn to_vec(&self) -> Vec<T> {
        self.cells().to_vec()
    }

    /// After [`AcquireError::OwnerDied`](crate::AcquireError::OwnerDied): the array is repaired.
    pub fn mark_consistent(&self) {
        self.cells().lock().mark_consistent();
    }
}

impl<T: Pod> Array<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.cells.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.cells.len == 0
    }

    /// A shared array holding `values`.
    pub fn from_slice(values: &[T]) -> io::Result<Self> {
        Ok(Array {
            cells: Cells::create("multiproc::Array", values.iter().copied())?,
        })
    }

    /// A shared array of `len` zeroed elements (Python's `Array('i', 10)`).
    pub fn zeroed(len: usize) -> io::Result<Self> {
        Ok(Array {
            cells: Cells::create("multiproc::Array", std::iter::repeat_n(T::zeroed(), len))?,
        })
    }

    /// Element `i`, under the lock.
    pub fn get(&self, i: usize) -> Result<T, SharedError> {
        self.cells.locked(|| self.cells.load(i))?
    }

    /// Set element `i`, under the lock.
    pub fn set(&self, i: usize, v: T) -> Result<(), SharedError> {
        self.cells.locked(|| self.cells.store(i, v))?
    }

    /// All elements, under the lock (Python's `arr[:]`).
    pub fn to_vec(&self) -> Result<Vec<T>, SharedError> {
        self.cells.locked(|| self.cells.to_vec())
    }

    /// Copy `src` in from `start`, under the lock (Python's
    /// `arr[start:start + len(src)] = src`).
    pub fn write(&self, start: usize, src: &[T]) -> Result<(), SharedError> {
        self.cells.locked(|| self.cells.write_from(start, src))?
    }

    cell_lock_forms!(ArrayGuard, a);

    /// The lock inside the array (Python's `get_lock()`).
    pub fn get_lock(&self) -> Lock {
        embedded_lock(self.cells.seg.clone(), 0, self.cells.layout)
    }
}

impl<T: Pod> RawArray<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.cells.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.cells.len == 0
    }

    /// A shared array holding `values`, without a lock.
    pub fn from_slice(values: &[T]) -> io::Result<Self> {
        Ok(RawArray {
            cells: Cells::create("multiproc::RawArray", values.iter().copied())?,
        })
    }

    /// A shared array of `len` zeroed elements, without a lock.
    pub fn zeroed(len: usize) -> io::Result<Self> {
        Ok(RawArray {
            cells: Cells::create("multiproc::RawArray", std::iter::repeat_n(T::zeroed(), len))?,
        })
    }

    /// Element `i`.
    pub fn get(&self, i: usize) -> Result<T, SharedError> {
        self.cells.load(i)
    }

    /// Set element `i`.
    pub fn set(&self, i: usize, v: T) -> Result<(), SharedError> {
        self.cells.store(i, v)
    }

    /// Copy `out.len()` elements from `start`.
    pub fn read(&self, start: usize, out: &mut [T]) -> Result<(), SharedError> {
        self.cells.read_into(start, out)
    }

    /// Copy `src` in from `start`.
    pub fn write(&self, start: usize, src: &[T]) -> Result<(), SharedError> {
        self.cells.write_from(start, src)
    }

    /// All elements.
    pub fn to_vec(&self) -> Vec<T> {
        self.cells.to_vec()
    }
}
