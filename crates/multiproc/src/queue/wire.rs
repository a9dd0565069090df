//! How a queue handle travels: its segment and side-channel descriptors.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::codec::{self, Fd};
use crate::shared::segment::Segment;

use super::LAYOUT;
use super::inner::Inner;
use super::mpmc::Queue;

// ----- handles ---------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
pub(super) struct Wire<F> {
    seg: F,
    side_tx: F,
    side_rx: F,
}

/// A borrowed descriptor that serializes as a handle.
pub(super) struct FdRef<'a>(BorrowedFd<'a>);

impl Serialize for FdRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        codec::serialize_fd(self.0, s)
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            seg: FdRef(self.inner.seg.as_fd()),
            side_tx: FdRef(self.inner.side_tx.as_fd()),
            side_rx: FdRef(self.inner.side_rx.as_fd()),
        }
        .serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let w = Wire::<Fd>::deserialize(d)?;
        let seg = Segment::from_fd(w.seg.0, LAYOUT)
            .map_err(|e| codec::handle_error_de(codec::HandleError::wrong_object(e)))?;
        let inner = Inner::new(seg, w.side_tx.0, w.side_rx.0).map_err(D::Error::custom)?;
        Ok(Queue::from_inner(Arc::new(inner)))
    }
}
