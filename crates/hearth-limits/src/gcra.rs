//! The GCRA arithmetic shared by the in-process store, the Redis script's result decoding and
//! the per-connection limiter. All times are whole microseconds.

use std::time::{Duration, Instant};

use crate::clock::to_micros;
use crate::rule::{AsCheck, Decision, Rule};

/// A rule in microseconds: emission interval `T = window / quota` (rounded down, at least
/// 1 µs) and the window `W`. A request is allowed when the new theoretical arrival time is
/// at most `W` ahead of now, i.e. the tolerance is `W − T` and `quota` requests pass at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    pub(crate) interval: u64,
    pub(crate) window: u64,
    /// The quota the limiter can enforce: the rule's, or `W / T` for a rule finer than one
    /// request per microsecond (a billion per minute is sixty million), so the `RateLimit-*`
    /// headers never promise more than is allowed.
    pub(crate) quota: u32,
}

impl Params {
    pub(crate) fn of(rule: &Rule) -> Self {
        let window = to_micros(rule.window).max(1);
        let interval = if rule.quota == 0 {
            u64::MAX
        } else {
            (window / u64::from(rule.quota)).max(1)
        };
        let enforced = u32::try_from(window / interval).unwrap_or(u32::MAX);
        Self {
            interval,
            window,
            quota: rule.quota.min(enforced),
        }
    }
}

/// One rule's verdict. `debt` is how far the rule's theoretical arrival time is ahead of now
/// after the decision (committed when allowed, unchanged when refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RuleResult {
    pub(crate) allowed: bool,
    pub(crate) debt: u64,
    pub(crate) retry: u64,
}

/// Evaluates one rule for a key whose stored TAT is `tat`. Returns the verdict and the TAT to
/// store if the whole decision is allowed.
pub(crate) fn evaluate(tat: Option<u64>, now: u64, p: Params) -> (RuleResult, u64) {
    let tat = tat.unwrap_or(now).max(now);
    if p.quota == 0 {
        let result = RuleResult {
            allowed: false,
            debt: tat - now,
            retry: p.window,
        };
        return (result, tat);
    }
    let new_tat = tat.saturating_add(p.interval);
    if new_tat - now > p.window {
        let result = RuleResult {
            allowed: false,
            debt: tat - now,
            retry: new_tat - now - p.window,
        };
        (result, tat)
    } else {
        let result = RuleResult {
            allowed: true,
            debt: new_tat - now,
            retry: 0,
        };
        (result, new_tat)
    }
}

/// Requests still allowed right now with this much debt.
pub(crate) fn remaining(p: Params, debt: u64) -> u32 {
    if p.quota == 0 {
        return 0;
    }
    let left = p.window.saturating_sub(debt) / p.interval;
    u32::try_from(left).unwrap_or(u32::MAX).min(p.quota)
}

/// Folds per-rule results into one decision: all allowed → the rule with the fewest remaining
/// (ties: the longest reset); otherwise the refusing rule with the longest retry.
pub(crate) fn decision<C: AsCheck>(checks: &[C], results: &[RuleResult]) -> Decision {
    let allowed = results.iter().all(|r| r.allowed);
    // The chosen rule: its index, its remaining requests and its enforced quota.
    let mut best: Option<(usize, u32, u32)> = None;
    for (i, (check, r)) in checks.iter().zip(results).enumerate() {
        if !allowed && r.allowed {
            continue;
        }
        let p = Params::of(check.rule());
        let rem = remaining(p, r.debt);
        let better = match best {
            None => true,
            Some((j, best_rem, _)) if allowed => {
                rem < best_rem || (rem == best_rem && r.debt > results[j].debt)
            }
            Some((j, _, _)) => r.retry > results[j].retry,
        };
        if better {
            best = Some((i, rem, p.quota));
        }
    }
    let Some((i, rem, limit)) = best else {
        return Decision::unlimited();
    };
    let (check, r) = (&checks[i], results[i]);
    Decision {
        allowed,
        limit,
        remaining: if allowed { rem } else { 0 },
        reset: Duration::from_micros(r.debt),
        retry_after: (!allowed).then(|| Duration::from_micros(r.retry)),
        rule: check.rule().name.clone(),
    }
}

/// A rate limiter for one connection's messages (`limits.rules.websocket`, 30/min by
/// default), owned by the connection's task: no map, no lock, no await.
///
/// # Example
/// ```
/// use hearth_limits::{ConnectionLimiter, Rule};
///
/// let mut messages = ConnectionLimiter::new(Rule::per_minute("websocket.minute", 30));
/// for _ in 0..30 {
///     assert!(messages.check().allowed);
/// }
/// assert!(!messages.check().allowed);
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    rule: Rule,
    params: Params,
    origin: Instant,
    tat: Option<u64>,
}

impl ConnectionLimiter {
    /// A limiter enforcing `rule` on one connection.
    pub fn new(rule: Rule) -> Self {
        Self {
            params: Params::of(&rule),
            rule,
            origin: Instant::now(),
            tat: None,
        }
    }

    /// Counts one message now.
    pub fn check(&mut self) -> Decision {
        self.check_at(Instant::now())
    }

    /// Counts one message at `now` (for tests and simulations; times before the limiter's
    /// creation count as its creation).
    pub fn check_at(&mut self, now: Instant) -> Decision {
        let now = to_micros(now.saturating_duration_since(self.origin));
        let (result, tat) = evaluate(self.tat, now, self.params);
        if result.allowed {
            self.tat = Some(tat);
        }
        decision(&[(&self.rule, "")], &[result])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    fn params(quota: u32, window_secs: u64) -> Params {
        Params::of(&Rule::new("t", quota, Duration::from_secs(window_secs)))
    }

    /// Drives one key through `evaluate`, committing allowed requests.
    struct Key {
        tat: Option<u64>,
        p: Params,
    }

    impl Key {
        fn hit(&mut self, now: u64) -> RuleResult {
            let (r, tat) = evaluate(self.tat, now, self.p);
            if r.allowed {
                self.tat = Some(tat);
            }
            r
        }
    }

    #[test]
    fn a_quota_finer_than_a_microsecond_reports_what_is_enforced() {
        assert_eq!(params(7, 60).quota, 7);
        assert_eq!(params(1_000_000, 3600).quota, 1_000_000);
        let huge = Rule::per_minute("t", 1_000_000_000);
        let p = Params::of(&huge);
        assert_eq!((p.interval, p.quota), (1, 60_000_000));
        let (first, _) = evaluate(None, 0, p);
        let decision = decision(&[(&huge, "k")], &[first]);
        assert_eq!(decision.limit, 60_000_000);
        assert_eq!(decision.remaining, 59_999_999);
    }

    #[test]
    fn quota_requests_pass_at_once_then_one_per_interval() {
        let mut key = Key {
            tat: None,
            p: params(5, 60),
        };
        for i in 0..5 {
            let r = key.hit(0);
            assert!(r.allowed, "request {i}");
            assert_eq!(remaining(key.p, r.debt), 4 - i);
        }
        let refused = key.hit(0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry, 12 * S, "one interval (60 s / 5)");
        assert!(!key.hit(12 * S - 1).allowed);
        assert!(key.hit(12 * S).allowed);
        assert!(!key.hit(12 * S).allowed);
    }

    #[test]
    fn a_burst_before_a_minute_boundary_gives_no_second_burst_after_it() {
        // A fixed window would allow 5 at 59.9 s and 5 more at 60.1 s.
        let mut key = Key {
            tat: None,
            p: params(5, 60),
        };
        let t = 59_900_000;
        assert!((0..5).all(|_| key.hit(t).allowed));
        let after = key.hit(60_100_000);
        assert!(!after.allowed);
        assert_eq!(after.retry, 11_800_000);
    }

    #[test]
    fn over_a_long_run_the_rate_never_exceeds_quota_per_window() {
        // Hammering every 10 ms for 10 minutes: the quota at once, then one per interval:
        // 60 + floor(599.99 s / 1 s) = 659.
        let mut key = Key {
            tat: None,
            p: params(60, 60),
        };
        let allowed = (0..60_000).filter(|i| key.hit(i * 10_000).allowed).count();
        assert_eq!(allowed, 659);
    }

    #[test]
    fn zero_quota_refuses_with_a_window_retry() {
        let (r, _) = evaluate(None, 7, params(0, 60));
        assert!(!r.allowed);
        assert_eq!(r.retry, 60 * S);
    }

    #[test]
    fn decision_reports_the_tightest_allowed_rule_or_the_longest_refusal() {
        let a = Rule::new("a", 10, Duration::from_secs(10));
        let b = Rule::new("b", 2, Duration::from_secs(10));
        let checks = [(&a, "k"), (&b, "k")];
        let ok = [
            RuleResult {
                allowed: true,
                debt: S,
                retry: 0,
            },
            RuleResult {
                allowed: true,
                debt: 5 * S,
                retry: 0,
            },
        ];
        let d = decision(&checks, &ok);
        assert!(d.allowed);
        assert_eq!((d.rule.as_ref(), d.limit, d.remaining), ("b", 2, 1));
        let refused = [
            RuleResult {
                allowed: false,
                debt: 10 * S,
                retry: 2 * S,
            },
            RuleResult {
                allowed: false,
                debt: 10 * S,
                retry: 4 * S,
            },
        ];
        let d = decision(&checks, &refused);
        assert!(!d.allowed);
        assert_eq!(d.rule, "b");
        assert_eq!(d.retry_after, Some(Duration::from_secs(4)));
        let mixed = [ok[0], refused[0]];
        let d = decision(&checks, &mixed);
        assert_eq!((d.rule.as_ref(), d.remaining), ("b", 0));
    }

    #[test]
    fn the_connection_limiter_allows_the_quota_then_refills() {
        let mut limiter = ConnectionLimiter::new(Rule::per_minute("websocket.minute", 30));
        let t0 = Instant::now();
        assert!((0..30).all(|_| limiter.check_at(t0).allowed));
        let refused = limiter.check_at(t0);
        assert!(!refused.allowed);
        assert_eq!(refused.rule, "websocket.minute");
        assert!(limiter.check_at(t0 + Duration::from_secs(2)).allowed);
    }
}
