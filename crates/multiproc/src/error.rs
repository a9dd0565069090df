//! What the non-blocking and timed forms of an operation report, on top of
//! the blocking form's own error.
//!
//! Every blocking operation `x` has one error type `E` for what can go
//! wrong however long it waits (a closed queue, a dead lock owner, a
//! corrupted message). Its other forms add exactly one way of giving up,
//! and nothing else (crossbeam's `TryRecvError` / `RecvTimeoutError`, std's
//! `TryLockError`):
//!
//! | form | returns |
//! |---|---|
//! | `x()` | `Result<_, E>` |
//! | `try_x()` | `Result<_, TryError<E>>`: [`WouldBlock`](TryError::WouldBlock) or [`Failed(E)`](TryError::Failed) |
//! | `x_timeout(d)`, `x_deadline(t)` | `Result<_, TimeoutError<E>>`: [`Timeout`](TimeoutError::Timeout) or [`Failed(E)`](TimeoutError::Failed) |
//!
//! An operation that takes its item by value hands it back in every
//! error: [`TrySendError`] and [`SendTimeoutError`] carry it when there was
//! no room, and the blocking form's error `E` carries it otherwise
//! ([`HandsBack`]). Modules name the combinations they use
//! (`queue::TryGetError`, `queue::TryPutError<T>`, …).
//!
//! A `?` in a function returning `E` does not compile on a `TryError<E>`,
//! on purpose: "would block" is not a failure of the blocking form.

use std::fmt;

/// Why a `try_x` form did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TryError<E> {
    /// The operation would have had to wait (Python's `queue.Empty`,
    /// `queue.Full`, or `False` from `acquire(block=False)`).
    WouldBlock,
    /// The operation failed as the blocking form would have.
    Failed(E),
}

/// Why an `x_timeout` or `x_deadline` form did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeoutError<E> {
    /// The time ran out first.
    Timeout,
    /// The operation failed as the blocking form would have.
    Failed(E),
}

/// An error of a blocking form that owns the item the operation was given.
pub trait HandsBack {
    /// The item.
    type Item;
    /// The item that was not sent or put.
    fn into_inner(self) -> Self::Item;
}

/// Why a `try_send`/`try_put` did not complete; the item comes back.
pub enum TrySendError<E: HandsBack> {
    /// No room now (Python's `queue.Full`).
    Full(E::Item),
    /// The operation failed as the blocking form would have.
    Failed(E),
}

/// Why a `send_timeout`/`put_timeout` (or `_deadline`) did not complete;
/// the item comes back.
pub enum SendTimeoutError<E: HandsBack> {
    /// No room before the time ran out (Python's `queue.Full`).
    Timeout(E::Item),
    /// The operation failed as the blocking form would have.
    Failed(E),
}

macro_rules! gave_up {
    ($ty:ident, $variant:ident, $is:ident, $text:literal) => {
        impl<E> $ty<E> {
            #[doc = concat!("Whether the operation gave up (`", stringify!($variant), "`).")]
            pub fn $is(&self) -> bool {
                matches!(self, $ty::$variant)
            }

            /// The blocking form's error, if that is what happened.
            pub fn failed(self) -> Option<E> {
                match self {
                    $ty::$variant => None,
                    $ty::Failed(e) => Some(e),
                }
            }

            /// The same outcome with the blocking form's error mapped.
            pub fn map<F>(self, f: impl FnOnce(E) -> F) -> $ty<F> {
                match self {
                    $ty::$variant => $ty::$variant,
                    $ty::Failed(e) => $ty::Failed(f(e)),
                }
            }
        }

        impl<E> From<E> for $ty<E> {
            fn from(e: E) -> Self {
                $ty::Failed(e)
            }
        }

        impl<E: fmt::Display> fmt::Display for $ty<E> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $ty::$variant => f.write_str($text),
                    $ty::Failed(e) => e.fmt(f),
                }
            }
        }

        impl<E: std::error::Error + 'static> std::error::Error for $ty<E> {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $ty::$variant => None,
                    $ty::Failed(e) => Some(e),
                }
            }
        }
    };
}

gave_up!(
    TryError,
    WouldBlock,
    is_would_block,
    "the operation would block"
);
gave_up!(TimeoutError, Timeout, is_timeout, "the operation timed out");

macro_rules! gave_up_with_item {
    ($ty:ident, $variant:ident, $is:ident, $text:literal) => {
        impl<E: HandsBack> $ty<E> {
            #[doc = concat!("Whether the operation gave up (`", stringify!($variant), "`).")]
            pub fn $is(&self) -> bool {
                matches!(self, $ty::$variant(_))
            }

            /// The item that was not sent.
            pub fn into_inner(self) -> E::Item {
                match self {
                    $ty::$variant(t) => t,
                    $ty::Failed(e) => e.into_inner(),
                }
            }

            /// The blocking form's error, if that is what happened.
            pub fn failed(self) -> Option<E> {
                match self {
                    $ty::$variant(_) => None,
                    $ty::Failed(e) => Some(e),
                }
            }
        }

        impl<E: HandsBack> HandsBack for $ty<E> {
            type Item = E::Item;
            fn into_inner(self) -> E::Item {
                $ty::into_inner(self)
            }
        }

        impl<E: HandsBack> From<E> for $ty<E> {
            fn from(e: E) -> Self {
                $ty::Failed(e)
            }
        }

        impl<E: HandsBack + fmt::Debug> fmt::Debug for $ty<E> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $ty::$variant(_) => f.write_str(concat!(stringify!($variant), "(..)")),
                    $ty::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
                }
            }
        }

        impl<E: HandsBack + fmt::Display> fmt::Display for $ty<E> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $ty::$variant(_) => f.write_str($text),
                    $ty::Failed(e) => e.fmt(f),
                }
            }
        }

        impl<E: HandsBack + std::error::Error + 'static> std::error::Error for $ty<E> {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $ty::$variant(_) => None,
                    $ty::Failed(e) => Some(e),
                }
            }
        }
    };
}

gave_up_with_item!(TrySendError, Full, is_full, "no room now");
gave_up_with_item!(
    SendTimeoutError,
    Timeout,
    is_timeout,
    "timed out waiting for room"
);

/// The outcome of a private `*_deadline(Option<Instant>)` core, as the
/// form that called it reports it. The core says "would block" for a
/// deadline that passed (or for no wait at all); the blocking form passes
/// `None` and cannot see it.
pub(crate) enum Waited<E> {
    /// The wait ended without the operation (no time left).
    GaveUp,
    /// The operation failed.
    Failed(E),
}

impl<E> Waited<E> {
    /// For the `try_x` form.
    pub(crate) fn into_try(self) -> TryError<E> {
        match self {
            Waited::GaveUp => TryError::WouldBlock,
            Waited::Failed(e) => TryError::Failed(e),
        }
    }

    /// For the `x_timeout` and `x_deadline` forms.
    pub(crate) fn into_timeout(self) -> TimeoutError<E> {
        match self {
            Waited::GaveUp => TimeoutError::Timeout,
            Waited::Failed(e) => TimeoutError::Failed(e),
        }
    }

    /// For the blocking form, whose core waits with no deadline and so never
    /// gives up.
    pub(crate) fn into_blocking(self) -> E {
        match self {
            Waited::GaveUp => unreachable!("a wait without a deadline gave up"),
            Waited::Failed(e) => e,
        }
    }
}

/// A core that says "gave up" with `Ok(None)`, as a [`Waited`].
pub(crate) fn waited<T, E>(r: Result<Option<T>, E>) -> Result<T, Waited<E>> {
    match r {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(Waited::GaveUp),
        Err(e) => Err(Waited::Failed(e)),
    }
}

impl<E> From<E> for Waited<E> {
    fn from(e: E) -> Self {
        Waited::Failed(e)
    }
}

/// [`Waited`] for an operation that owns its item: giving up hands it back.
pub(crate) enum WaitedWith<E: HandsBack> {
    /// The wait ended without the operation (no time left); the item.
    GaveUp(E::Item),
    /// The operation failed.
    Failed(E),
}

impl<E: HandsBack> WaitedWith<E> {
    /// For the `try_x` form.
    pub(crate) fn into_try(self) -> TrySendError<E> {
        match self {
            WaitedWith::GaveUp(t) => TrySendError::Full(t),
            WaitedWith::Failed(e) => TrySendError::Failed(e),
        }
    }

    /// For the `x_timeout` and `x_deadline` forms.
    pub(crate) fn into_timeout(self) -> SendTimeoutError<E> {
        match self {
            WaitedWith::GaveUp(t) => SendTimeoutError::Timeout(t),
            WaitedWith::Failed(e) => SendTimeoutError::Failed(e),
        }
    }

    /// For the blocking form, whose core waits with no deadline and so never
    /// gives up.
    pub(crate) fn into_blocking(self) -> E {
        match self {
            WaitedWith::GaveUp(_) => unreachable!("a wait without a deadline gave up"),
            WaitedWith::Failed(e) => e,
        }
    }
}

/// "Would block now" is a timeout of zero: for callers that treat the
/// `try_` form as the first slice of a timed wait.
impl<E> From<TryError<E>> for TimeoutError<E> {
    fn from(e: TryError<E>) -> Self {
        match e {
            TryError::WouldBlock => TimeoutError::Timeout,
            TryError::Failed(e) => TimeoutError::Failed(e),
        }
    }
}

/// "No room now" is a timeout of zero (as for [`TimeoutError`]).
impl<E: HandsBack> From<TrySendError<E>> for SendTimeoutError<E> {
    fn from(e: TrySendError<E>) -> Self {
        match e {
            TrySendError::Full(t) => SendTimeoutError::Timeout(t),
            TrySendError::Failed(e) => SendTimeoutError::Failed(e),
        }
    }
}
