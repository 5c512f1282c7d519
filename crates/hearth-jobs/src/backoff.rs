//! Exponential backoff with jitter between attempts.

use std::time::Duration;

/// The delay before attempt `n + 1` after attempt `n` failed: `base · 2^(n-1)`, capped at
/// `max`, then a random point in its upper half ("equal jitter"), so jobs that failed together
/// (an SMTP outage) do not all come back in the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure, before jitter.
    pub base: Duration,
    /// The longest delay, before jitter.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The capped delay after failed attempt `attempt` (1-based), before jitter.
    pub fn ceiling(&self, attempt: i32) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 32)).unwrap_or(32);
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay after failed attempt `attempt`, with `unit` (in `[0, 1)`) placing it in the
    /// upper half of [`Self::ceiling`].
    pub fn delay_with(&self, attempt: i32, unit: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The delay after failed attempt `attempt`, with fresh jitter.
    pub fn delay(&self, attempt: i32) -> Duration {
        use rand::RngExt as _;
        self.delay_with(attempt, rand::rng().random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_stay_in_the_upper_half() {
        let backoff = Backoff {
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        let ceilings: Vec<u64> = (1..=7).map(|n| backoff.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, [2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff.ceiling(1_000), Duration::from_secs(60));
        assert_eq!(backoff.delay_with(3, 0.0), Duration::from_secs(4));
        assert_eq!(backoff.delay_with(3, 1.0), Duration::from_secs(8));
        for _ in 0..100 {
            let delay = backoff.delay(4);
            assert!(delay >= Duration::from_secs(8) && delay <= Duration::from_secs(16));
        }
    }
}
