//! The one place a timeout becomes a deadline.
//!
//! `Duration::MAX` (or any timeout too long for the clock) means "no
//! timeout": the deadline is `None`, which every waiting call treats as
//! "forever", instead of panicking with "overflow when adding duration to
//! instant".

use std::time::{Duration, Instant};

/// The deadline `timeout` from now, or `None` (wait forever) when it is
/// past what the monotonic clock can represent.
#[inline]
pub(crate) fn after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The instant `timeout` from now, for calls that need an `Instant`: a
/// timeout past a century is a century (no timeout in practice).
#[inline]
pub(crate) fn instant_after(timeout: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_timeouts_mean_no_deadline() {
        assert_eq!(after(Duration::MAX), None);
        assert_eq!(after(Duration::from_secs(u64::MAX / 2)), None);
        let d = after(Duration::from_secs(1)).expect("representable");
        assert!(d > Instant::now());
        assert!(
            instant_after(Duration::MAX) > Instant::now() + Duration::from_secs(3600 * 24 * 365)
        );
    }
}
