//! The circuit breaker of one provider.
//!
//! ```text
//!            N failures within the window            cool-down over: one probe
//!   Closed ──────────────────────────────▶ Open ──────────────────────────────▶ HalfOpen
//!     ▲                                     ▲                                     │
//!     │                                     └──────────── the probe fails ───────┤
//!     └──────────────────────────── the probe succeeds ─────────────────────────┘
//! ```
//!
//! An open provider is skipped at once, without a connection attempt; while half-open, only
//! the probe reaches it and every other call skips it. A probe abandoned half-way (its call
//! cancelled by the deadline) lets the next call probe instead. Times are `tokio::time`
//! instants.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::metric_names;

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures within `window` that open the breaker.
    pub failures: u32,
    /// How far back failures count.
    pub window: Duration,
    /// How long the breaker stays open before a probe.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(30),
        }
    }
}

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls skip the provider until the cool-down ends.
    Open,
    /// One probe call is allowed; its outcome closes or reopens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The value of the `hearth_ai_breaker_state` gauge: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }
}

/// A breaker's state and counts, for health pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSnapshot {
    /// The state now.
    pub state: BreakerState,
    /// Failures within the window (while closed).
    pub recent_failures: usize,
    /// Failures since start.
    pub total_failures: u64,
    /// Times it opened since start.
    pub times_opened: u64,
    /// While open: how long until the probe.
    pub probe_in: Option<Duration>,
}

#[derive(Debug)]
enum State {
    Closed { failures: VecDeque<Instant> },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

impl State {
    fn public(&self) -> BreakerState {
        match self {
            Self::Closed { .. } => BreakerState::Closed,
            Self::Open { .. } => BreakerState::Open,
            Self::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    total_failures: u64,
    times_opened: u64,
}

/// The breaker of one provider.
#[derive(Debug)]
pub(crate) struct Breaker {
    provider: String,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Leave to call the provider once; report how it went.
#[derive(Debug)]
#[must_use = "report the outcome"]
pub(crate) struct Permit {
    breaker: Arc<Breaker>,
    probe: bool,
    done: bool,
}

impl Breaker {
    pub(crate) fn new(provider: &str, config: BreakerConfig) -> Arc<Self> {
        metrics::gauge!(metric_names::BREAKER_STATE, "provider" => provider.to_owned())
            .set(BreakerState::Closed.gauge());
        Arc::new(Self {
            provider: provider.to_owned(),
            config,
            inner: Mutex::new(Inner {
                state: State::Closed {
                    failures: VecDeque::new(),
                },
                total_failures: 0,
                times_opened: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A permit to call, or `None` when the provider is to be skipped (open, or half-open with
    /// a probe already in flight).
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Permit> {
        let mut inner = self.lock();
        let probe = match &mut inner.state {
            State::Closed { .. } => false,
            State::Open { until } => {
                if Instant::now() < *until {
                    return None;
                }
                true
            }
            State::HalfOpen { probing } => {
                if *probing {
                    return None;
                }
                *probing = true;
                true
            }
        };
        if matches!(inner.state, State::Open { .. }) {
            self.transition(&mut inner, State::HalfOpen { probing: true });
        }
        Some(Permit {
            breaker: Arc::clone(self),
            probe,
            done: false,
        })
    }

    /// The state and counts now (an open breaker whose cool-down is over reports open until a
    /// call probes it).
    pub(crate) fn snapshot(&self) -> BreakerSnapshot {
        let mut inner = self.lock();
        let now = Instant::now();
        let window = self.config.window;
        let (recent_failures, probe_in) = match &mut inner.state {
            State::Closed { failures } => {
                prune(failures, now, window);
                (failures.len(), None)
            }
            State::Open { until } => (0, Some(until.saturating_duration_since(now))),
            State::HalfOpen { .. } => (0, None),
        };
        BreakerSnapshot {
            state: inner.state.public(),
            recent_failures,
            total_failures: inner.total_failures,
            times_opened: inner.times_opened,
            probe_in,
        }
    }

    fn transition(&self, inner: &mut Inner, to: State) {
        let from = inner.state.public();
        let target = to.public();
        inner.state = to;
        if from == target {
            return;
        }
        if target == BreakerState::Open {
            inner.times_opened += 1;
            tracing::warn!(provider = %self.provider, from = from.as_str(), "AI provider circuit opened");
        } else {
            tracing::info!(provider = %self.provider, from = from.as_str(), to = target.as_str(), "AI provider circuit changed");
        }
        metrics::gauge!(metric_names::BREAKER_STATE, "provider" => self.provider.clone())
            .set(target.gauge());
        metrics::counter!(
            metric_names::BREAKER_TRANSITIONS,
            "provider" => self.provider.clone(),
            "to" => target.as_str()
        )
        .increment(1);
    }

    fn record(&self, probe: bool, outcome: Outcome) {
        let mut inner = self.lock();
        let now = Instant::now();
        if outcome == Outcome::Failure {
            inner.total_failures += 1;
        }
        let open = State::Open {
            until: now + self.config.cooldown,
        };
        let next = match (&mut inner.state, outcome) {
            (State::HalfOpen { .. }, Outcome::Failure) if probe => Some(open),
            (State::HalfOpen { .. }, Outcome::Success) if probe => Some(State::Closed {
                failures: VecDeque::new(),
            }),
            (State::HalfOpen { probing }, Outcome::Abandoned) if probe => {
                *probing = false;
                None
            }
            (State::Closed { failures }, Outcome::Failure) => {
                failures.push_back(now);
                prune(failures, now, self.config.window);
                (failures.len() >= self.config.failures as usize).then_some(open)
            }
            // Successes keep a closed breaker closed (failures age out of the window); a late
            // answer to a call made before the breaker opened changes nothing.
            _ => None,
        };
        if let Some(next) = next {
            self.transition(&mut inner, next);
        }
    }
}

fn prune(failures: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while failures
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) > window)
    {
        failures.pop_front();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    Abandoned,
}

impl Permit {
    /// The provider answered (a refusal of the request itself counts: the provider is up).
    pub(crate) fn success(mut self) {
        self.done = true;
        self.breaker.record(self.probe, Outcome::Success);
    }

    /// The provider failed: a timeout, a connection error, a 5xx or 429, a broken answer.
    pub(crate) fn failure(mut self) {
        self.done = true;
        self.breaker.record(self.probe, Outcome::Failure);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.record(self.probe, Outcome::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time with short durations: tokio's paused clock needs its `test-util` feature,
    // which would rebuild tokio for the whole workspace.
    const COOLDOWN: Duration = Duration::from_millis(60);
    const WINDOW: Duration = Duration::from_millis(150);

    fn config() -> BreakerConfig {
        BreakerConfig {
            failures: 3,
            window: WINDOW,
            cooldown: COOLDOWN,
        }
    }

    async fn after_cooldown() {
        tokio::time::sleep(COOLDOWN + Duration::from_millis(10)).await;
    }

    #[tokio::test]
    async fn it_opens_after_n_failures_in_the_window_and_probes_after_the_cooldown() {
        let breaker = Breaker::new("t", config());
        for _ in 0..2 {
            breaker.admit().unwrap().failure();
        }
        assert_eq!(breaker.snapshot().state, BreakerState::Closed);
        assert_eq!(breaker.snapshot().recent_failures, 2);
        breaker.admit().unwrap().failure();
        assert_eq!(breaker.snapshot().state, BreakerState::Open);
        assert!(breaker.admit().is_none(), "an open breaker skips at once");

        after_cooldown().await;
        let probe = breaker.admit().expect("the cool-down is over: a probe");
        assert_eq!(breaker.snapshot().state, BreakerState::HalfOpen);
        assert!(breaker.admit().is_none(), "one probe at a time");
        probe.failure();
        assert_eq!(breaker.snapshot().state, BreakerState::Open);

        after_cooldown().await;
        breaker.admit().unwrap().success();
        let snapshot = breaker.snapshot();
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!((snapshot.total_failures, snapshot.times_opened), (4, 2));
    }

    #[tokio::test]
    async fn failures_older_than_the_window_do_not_count() {
        let breaker = Breaker::new("t", config());
        breaker.admit().unwrap().failure();
        breaker.admit().unwrap().failure();
        tokio::time::sleep(WINDOW + Duration::from_millis(20)).await;
        breaker.admit().unwrap().failure();
        assert_eq!(breaker.snapshot().state, BreakerState::Closed);
        assert_eq!(breaker.snapshot().recent_failures, 1);
    }

    #[tokio::test]
    async fn an_abandoned_probe_lets_the_next_call_probe() {
        let breaker = Breaker::new("t", config());
        for _ in 0..3 {
            breaker.admit().unwrap().failure();
        }
        after_cooldown().await;
        drop(breaker.admit().unwrap());
        assert_eq!(breaker.snapshot().state, BreakerState::HalfOpen);
        breaker.admit().expect("a new probe").success();
        assert_eq!(breaker.snapshot().state, BreakerState::Closed);
    }
}
