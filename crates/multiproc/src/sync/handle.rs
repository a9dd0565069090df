//! The handle under every synchronization object: a shared segment and the
//! offset of the object's state in it, serialized as the segment's descriptor.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::codec::{self, Fd};
use multiproc_shm::SharedState;

use crate::shared::segment::{self, Segment, SegmentError};

// ----- the shared handle under every object ----------------------------------

/// A segment and the offset of one object's state in its payload.
pub(super) struct Handle<T> {
    pub(super) seg: Arc<Segment>,
    off: usize,
    layout: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        Handle {
            seg: self.seg.clone(),
            off: self.off,
            layout: self.layout,
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("segment", &self.seg)
            .field("offset", &self.off)
            .finish()
    }
}

impl<T: SharedState> Handle<T> {
    /// The object at `off` in `seg`'s payload, which holds a `T` of this
    /// `layout` (already checked by the caller).
    pub(super) fn at(seg: Arc<Segment>, off: usize, layout: u64) -> Self {
        Handle {
            seg,
            off,
            layout,
            _t: PhantomData,
        }
    }

    pub(super) fn create(
        kind: &str,
        layout: u64,
        extra: usize,
        init: impl FnOnce(&T),
    ) -> io::Result<Self> {
        let seg = Segment::anonymous(kind, layout, std::mem::size_of::<T>() + extra, |_| {})?;
        let h = Handle {
            seg,
            off: 0,
            layout,
            _t: PhantomData,
        };
        init(h.get());
        Ok(h)
    }

    #[inline]
    pub(super) fn get(&self) -> &T {
        self.seg
            .view(self.off)
            .expect("checked when the handle was made or received")
    }

    pub(super) fn check(seg: &Segment, off: usize) -> Result<(), SegmentError> {
        if seg.view::<T>(off).is_some() {
            Ok(())
        } else {
            Err(SegmentError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "object offset outside its shared segment",
            )))
        }
    }
}

#[derive(Serialize, Deserialize)]
struct HandleWire<F> {
    fd: F,
    off: u32,
    layout: u64,
}

impl<T> Serialize for Handle<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        HandleWire {
            fd: segment::SegRef(&self.seg),
            off: self.off as u32,
            layout: self.layout,
        }
        .serialize(s)
    }
}

impl<'de, T: SharedState> Deserialize<'de> for Handle<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = HandleWire::<Fd>::deserialize(d)?;
        let seg = Segment::from_fd(w.fd.0, w.layout)
            .map_err(|e| codec::handle_error_de(codec::HandleError::wrong_object(e)))?;
        let off = w.off as usize;
        Handle::<T>::check(&seg, off).map_err(serde::de::Error::custom)?;
        Ok(Handle {
            seg: Arc::new(seg),
            off,
            layout: w.layout,
            _t: PhantomData,
        })
    }
}

macro_rules! handle_object {
    ($ty:ident) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.h.serialize(s)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($ty {
                    h: Handle::deserialize(d)?,
                })
            }
        }
    };
}
