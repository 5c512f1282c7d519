//! Request-rate anomaly detection: per key, an EWMA baseline of the rate with an EWMA of its
//! variance, and a z-score plus spike-ratio test (the maths is in the crate docs).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::metric_names;
use crate::settings::AnomalySettings;

const SHARDS: usize = 16;
/// A key unseen for this many intervals is forgotten (it would restart its warm-up anyway
/// after such a gap) unless it is blocked.
const IDLE_INTERVALS: u64 = 60;
/// Longer gaps than this restart a key's statistics instead of replaying empty intervals.
const MAX_GAP_REPLAY: u64 = 200;

/// What the detector thinks of one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Nothing unusual (or not enough history to judge).
    Normal,
    /// The key's current rate is far above its baseline. Logged and counted once per key and
    /// interval.
    Anomalous {
        /// The z-score of the current rate.
        z: f64,
        /// The current interval's rate so far, requests per second.
        rate: f64,
        /// The baseline (EWMA) rate, requests per second.
        baseline: f64,
    },
    /// The key is blocked (after an anomaly, when settings say so) until `until`.
    Blocked {
        /// When the block ends.
        until: Instant,
    },
}

impl Verdict {
    /// Whether the request should be refused.
    pub fn is_blocked(&self) -> bool {
        matches!(self, Self::Blocked { .. })
    }
}

#[derive(Debug, Clone)]
struct KeyStats {
    /// Index of the interval being counted.
    interval: u64,
    /// Requests counted in it so far.
    count: u64,
    /// EWMA of closed intervals' rates (requests per second).
    mean: f64,
    /// EWMA of their variance.
    var: f64,
    /// Closed intervals seen.
    samples: u32,
    /// Whether this interval's anomaly was already logged and counted.
    flagged: bool,
    blocked_until: Option<Instant>,
}

impl KeyStats {
    fn new(interval: u64) -> Self {
        Self {
            interval,
            count: 0,
            mean: 0.0,
            var: 0.0,
            samples: 0,
            flagged: false,
            blocked_until: None,
        }
    }

    /// Folds one closed interval's rate into the baseline (Finch's incremental EWMA variance).
    fn update(&mut self, rate: f64, alpha: f64) {
        if self.samples == 0 {
            self.mean = rate;
            self.var = 0.0;
        } else {
            let diff = rate - self.mean;
            let incr = alpha * diff;
            self.mean += incr;
            self.var = (1.0 - alpha) * (self.var + diff * incr);
        }
        self.samples = self.samples.saturating_add(1);
    }

    /// Moves to interval `now_ix`, closing the counted interval and any empty ones between.
    fn roll(&mut self, now_ix: u64, interval_secs: f64, alpha: f64) {
        if now_ix <= self.interval {
            return;
        }
        let gap = now_ix - self.interval - 1;
        if gap > MAX_GAP_REPLAY {
            *self = Self {
                blocked_until: self.blocked_until,
                ..Self::new(now_ix)
            };
            return;
        }
        self.update(self.count as f64 / interval_secs, alpha);
        for _ in 0..gap {
            self.update(0.0, alpha);
        }
        self.interval = now_ix;
        self.count = 0;
        self.flagged = false;
    }
}

/// Per-key request-rate anomaly detection, in this process only: each gateway judges the
/// traffic it sees (behind a load balancer that spreads a key's requests, each sees a fair
/// share, so rates scale down together and the test is unchanged).
#[derive(Debug)]
pub struct AnomalyDetector {
    settings: AnomalySettings,
    origin: Instant,
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

#[derive(Debug, Default)]
struct Shard {
    keys: HashMap<Box<str>, KeyStats>,
    writes: usize,
}

impl AnomalyDetector {
    /// A detector with these settings; intervals are counted from now.
    pub fn new(settings: AnomalySettings) -> Self {
        Self {
            settings,
            origin: Instant::now(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &AnomalySettings {
        &self.settings
    }

    /// Counts one request of `key` at `now` and judges the key's current rate. Times before
    /// the detector's creation count as its creation.
    pub fn observe(&self, key: &str, now: Instant) -> Verdict {
        let s = &self.settings;
        if !s.enabled {
            return Verdict::Normal;
        }
        let interval_secs = s.interval_secs.max(1);
        let ix = now.saturating_duration_since(self.origin).as_secs() / interval_secs;
        let interval_secs = interval_secs as f64;
        let shard_ix = (self.hasher.hash_one(key) as usize) % SHARDS;
        let mut shard = self.shards[shard_ix]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shard.sweep_if_due(ix, now);
        let stats = match shard.keys.get_mut(key) {
            Some(stats) => stats,
            None => shard
                .keys
                .entry(key.into())
                .or_insert_with(|| KeyStats::new(ix)),
        };
        if let Some(until) = stats.blocked_until {
            if now < until {
                return Verdict::Blocked { until };
            }
            stats.blocked_until = None;
        }
        stats.roll(ix, interval_secs, s.alpha);
        stats.count += 1;
        if stats.samples < s.warmup_intervals.max(1) {
            return Verdict::Normal;
        }
        // The rate so far in this interval: a lower bound of its final rate, so judging early
        // can only under-report.
        let rate = stats.count as f64 / interval_secs;
        let mean = stats.mean;
        // A Poisson count over the interval has variance rate/interval; that (at no less than
        // min_rate) floors the observed variance so perfectly steady traffic is not infinitely
        // sensitive.
        let floor = mean.max(s.min_rate) / interval_secs;
        let sd = stats.var.max(floor).max(f64::MIN_POSITIVE).sqrt();
        let z = (rate - mean) / sd;
        let anomalous = rate >= s.min_rate && z >= s.z_threshold && rate >= s.spike_ratio * mean;
        if !anomalous {
            return Verdict::Normal;
        }
        let until = now + Duration::from_secs(s.block_secs);
        if !stats.flagged {
            stats.flagged = true;
            metrics::counter!(metric_names::ANOMALIES).increment(1);
            if s.block {
                tracing::warn!(
                    key,
                    z,
                    rate,
                    baseline = mean,
                    block_secs = s.block_secs,
                    "request-rate anomaly: key blocked"
                );
            } else {
                tracing::warn!(key, z, rate, baseline = mean, "request-rate anomaly");
            }
        }
        if s.block {
            stats.blocked_until = Some(until);
            return Verdict::Blocked { until };
        }
        Verdict::Anomalous {
            z,
            rate,
            baseline: mean,
        }
    }

    /// Lifts a block on `key` (an operator's decision).
    pub fn unblock(&self, key: &str) {
        let shard_ix = (self.hasher.hash_one(key) as usize) % SHARDS;
        let mut shard = self.shards[shard_ix]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(stats) = shard.keys.get_mut(key) {
            stats.blocked_until = None;
        }
    }
}

impl Shard {
    fn sweep_if_due(&mut self, ix: u64, now: Instant) {
        self.writes += 1;
        if self.writes < self.keys.len().max(1024) {
            return;
        }
        self.writes = 0;
        self.keys.retain(|_, s| {
            s.blocked_until.is_some_and(|until| until > now) || ix <= s.interval + IDLE_INTERVALS
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AnomalySettings {
        AnomalySettings::default()
    }

    /// Replays a trace: `rates[i]` requests per second during interval i (10 s), evenly
    /// spaced. Returns the first interval with an anomalous or blocked verdict.
    fn replay(detector: &AnomalyDetector, t0: Instant, rates: &[f64]) -> Option<(usize, Verdict)> {
        let interval = Duration::from_secs(detector.settings().interval_secs);
        let mut first = None;
        for (i, &rate) in rates.iter().enumerate() {
            let n = (rate * interval.as_secs_f64()).round() as u32;
            for k in 0..n {
                let at = t0 + interval * i as u32 + interval.mul_f64(f64::from(k) / f64::from(n));
                let verdict = detector.observe("ip:203.0.113.7", at);
                if verdict != Verdict::Normal && first.is_none() {
                    first = Some((i, verdict));
                }
            }
        }
        first
    }

    /// A deterministic noise source (an LCG) so traces are reproducible.
    fn noisy(base: f64, spread: f64, len: usize) -> Vec<f64> {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                base + spread * (2.0 * u - 1.0)
            })
            .collect()
    }

    #[test]
    fn steady_noisy_traffic_is_never_anomalous() {
        let d = AnomalyDetector::new(settings());
        let t0 = Instant::now();
        // One hour at 5 ± 1 requests per second.
        assert_eq!(replay(&d, t0, &noisy(5.0, 1.0, 360)), None);
    }

    #[test]
    fn a_slow_ramp_is_never_anomalous() {
        let d = AnomalyDetector::new(settings());
        let t0 = Instant::now();
        // From 1 to 30 requests per second over an hour (+8% per minute at the start).
        let ramp: Vec<f64> = (0..360)
            .map(|i| 1.0 + 29.0 * f64::from(i) / 359.0)
            .collect();
        assert_eq!(replay(&d, t0, &ramp), None);
    }

    #[test]
    fn a_sudden_spike_is_anomalous_within_its_interval() {
        let d = AnomalyDetector::new(settings());
        let t0 = Instant::now();
        let mut trace = noisy(2.0, 0.5, 60);
        trace.extend([40.0; 3]);
        let (interval, verdict) = replay(&d, t0, &trace).expect("the spike is detected");
        assert_eq!(interval, 60, "detected in the spike's first interval");
        let Verdict::Anomalous { z, rate, baseline } = verdict else {
            panic!("not blocking by default: {verdict:?}");
        };
        assert!(z >= 4.0, "z = {z}");
        assert!(rate >= 3.0 * baseline);
        assert!((1.5..2.5).contains(&baseline), "baseline {baseline}");
    }

    #[test]
    fn low_traffic_bursts_stay_under_the_minimum_rate() {
        let d = AnomalyDetector::new(settings());
        let t0 = Instant::now();
        // One request every 20 s, then 5 requests within a second: 0.5 req/s < min_rate 1.
        let mut trace = vec![0.05; 60];
        trace.push(0.5);
        assert_eq!(replay(&d, t0, &trace), None);
    }

    #[test]
    fn a_blocking_detector_blocks_the_key_then_lets_it_go() {
        let d = AnomalyDetector::new(AnomalySettings {
            block: true,
            block_secs: 60,
            ..settings()
        });
        let t0 = Instant::now();
        let mut trace = vec![2.0; 30];
        trace.push(50.0);
        let (interval, verdict) = replay(&d, t0, &trace).expect("blocked");
        assert_eq!(interval, 30);
        let Verdict::Blocked { until } = verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            d.observe("ip:203.0.113.7", until - Duration::from_secs(1))
                .is_blocked()
        );
        assert_eq!(
            d.observe("ip:198.51.100.1", until),
            Verdict::Normal,
            "other keys are not blocked"
        );
        // After the block: back to normal at the old pace.
        let after = until + Duration::from_secs(10);
        assert_eq!(d.observe("ip:203.0.113.7", after), Verdict::Normal);
    }

    #[test]
    fn a_disabled_detector_says_normal() {
        let d = AnomalyDetector::new(AnomalySettings {
            enabled: false,
            ..settings()
        });
        let t0 = Instant::now();
        let mut trace = vec![1.0; 10];
        trace.push(100.0);
        assert_eq!(replay(&d, t0, &trace), None);
    }

    #[test]
    fn the_ewma_variance_matches_the_textbook_recursion() {
        let mut s = KeyStats::new(0);
        for x in [4.0, 6.0, 4.0, 6.0] {
            s.update(x, 0.5);
        }
        // mean: 4, 5, 4.5, 5.25; var: 0, 0.5*(0+2*1)=1, 0.5*(1+(-1)(-0.5))=0.75,
        // 0.5*(0.75+1.5*0.75)=0.9375
        assert!((s.mean - 5.25).abs() < 1e-12);
        assert!((s.var - 0.9375).abs() < 1e-12);
    }
}
