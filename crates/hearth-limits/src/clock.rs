//! Time for in-process decisions and budget periods, injectable so tests never sleep.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, as a duration since the UNIX epoch.
///
/// In-process rate limits and every budget period read time through this trait, so tests can
/// use a [`ManualClock`] and move time explicitly. (Redis-backed rate limits read the Redis
/// server's `TIME` instead; see the crate docs.)
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time since the UNIX epoch.
    fn now(&self) -> Duration;

    /// The time at `instant`, a moment the caller has just read, so that one reading of the
    /// system clock serves several decisions about the same event (a request's arrival).
    /// Clocks that do not follow [`Instant`] (a [`ManualClock`]) answer [`now`](Self::now).
    fn at(&self, instant: Instant) -> Duration {
        let _ = instant;
        self.now()
    }
}

/// The default clock: wall time read once at creation, then advanced by a monotonic
/// [`Instant`], so a system clock step (NTP, an operator) never moves limits backwards or
/// forwards mid-flight.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    wall_at_start: Duration,
    start: Instant,
}

impl SystemClock {
    /// A clock anchored at the current wall time.
    pub fn new() -> Self {
        Self {
            wall_at_start: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.wall_at_start + self.start.elapsed()
    }

    fn at(&self, instant: Instant) -> Duration {
        self.wall_at_start + instant.saturating_duration_since(self.start)
    }
}

/// A clock that only moves when told to; clones share the same time. For tests and
/// simulations.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    micros: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `start` (since the UNIX epoch).
    pub fn new(start: Duration) -> Self {
        Self {
            micros: Arc::new(AtomicU64::new(to_micros(start))),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.micros.fetch_add(to_micros(by), Ordering::SeqCst);
    }

    /// Sets the clock to `to` (since the UNIX epoch), forwards or backwards.
    pub fn set(&self, to: Duration) {
        self.micros.store(to_micros(to), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_micros(self.micros.load(Ordering::SeqCst))
    }
}

/// Whole microseconds, saturating: every internal timestamp is a `u64` of microseconds.
pub(crate) fn to_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = ManualClock::new(Duration::from_secs(100));
        let other = clock.clone();
        clock.advance(Duration::from_millis(1500));
        assert_eq!(other.now(), Duration::from_millis(101_500));
        other.set(Duration::from_secs(5));
        assert_eq!(clock.now(), Duration::from_secs(5));
    }

    #[test]
    fn the_system_clock_is_near_wall_time_and_never_goes_back() {
        let clock = SystemClock::new();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
        assert!(a.abs_diff(wall) < Duration::from_secs(1));
        let instant = Instant::now();
        let at = clock.at(instant);
        assert!(at >= b && at <= clock.now());
        // A moment before the clock was made reads as the clock's start, not earlier.
        assert_eq!(
            clock.at(clock.start - Duration::from_millis(1)),
            clock.wall_at_start
        );
    }
}
