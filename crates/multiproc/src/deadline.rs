//! The one place a timeout becomes a deadline, and the one backoff of the
//! calls that poll (System V queues, FIFO opens, a segment being
//! published).
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

/// Sleeps between the tries of a polling wait: doubling from `first` up to
/// `max`, never past the deadline.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff whose first sleep is `first` and whose sleeps grow to `max`.
    pub(crate) const fn new(first: Duration, max: Duration) -> Self {
        Backoff { next: first, max }
    }

    /// Sleep for the next step, never past `deadline` (`None`: no deadline);
    /// `false`, without sleeping, once the deadline has passed.
    pub(crate) fn sleep(&mut self, deadline: Option<Instant>) -> bool {
        let step = match deadline {
            None => self.next,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => self.next.min(left),
                _ => return false,
            },
        };
        std::thread::sleep(step);
        self.next = (self.next * 2).min(self.max);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_max_and_stops_at_the_deadline() {
        let mut b = Backoff::new(Duration::from_micros(10), Duration::from_micros(40));
        assert!(b.sleep(None));
        assert_eq!(b.next, Duration::from_micros(20));
        assert!(b.sleep(None) && b.sleep(None));
        assert_eq!(b.next, Duration::from_micros(40));
        assert!(!b.sleep(Some(Instant::now())));
        let deadline = Instant::now() + Duration::from_millis(1);
        while b.sleep(Some(deadline)) {}
        assert!(Instant::now() >= deadline);
    }

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
