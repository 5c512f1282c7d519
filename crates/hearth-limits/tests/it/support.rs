//! Test support: backends for the shared suite, a private redis-server, a metrics recorder
//! and log capture.

// Without the `redis` feature the Redis helpers have no callers.
#![cfg_attr(not(feature = "redis"), allow(dead_code, unused_imports))]

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hearth_limits::{BudgetSettings, Budgets, Clock, Limiter, ManualClock, RedisDownPolicy};

/// The shared Redis for tests (`HEARTH_TEST_REDIS_URL`), or `None` when the Redis suites skip
/// in this binary (announced once, by `hearth-test-support`). Under `CI=true` a missing URL is a
/// failure, not a skip.
pub(crate) fn redis_url() -> Option<String> {
    hearth_test_support::service_url(hearth_test_support::REDIS_URL_VAR, "Redis")
}

/// A key prefix no other test (or run) uses.
pub(crate) fn unique_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "hearth-test:{}:{nanos:x}:{}:",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Wall-clock now, for manual clocks whose periods must line up with Redis key expiry.
pub(crate) fn wall_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// One backend of the shared suite.
pub(crate) struct Backend {
    pub(crate) name: &'static str,
    pub(crate) limiter: Limiter,
    /// The in-process clock; `None` for Redis, whose scripts read the server's time.
    clock: Option<ManualClock>,
    /// The Redis URL, for budgets on the same server.
    redis: Option<String>,
}

impl Backend {
    pub(crate) async fn in_process() -> Option<Self> {
        let clock = ManualClock::new(wall_now());
        Some(Self {
            name: "in-process",
            limiter: Limiter::in_process_with_clock(Arc::new(clock.clone())),
            clock: Some(clock),
            redis: None,
        })
    }

    #[cfg(not(feature = "redis"))]
    pub(crate) async fn redis() -> Option<Self> {
        hearth_test_support::skip_suites("Redis suites", "built without the `redis` feature");
        None
    }

    #[cfg(feature = "redis")]
    pub(crate) async fn redis() -> Option<Self> {
        let url = redis_url()?;
        let prefix = unique_prefix();
        let limiter = Limiter::builder()
            .redis(url.as_str(), RedisDownPolicy::Refuse)
            .key_prefix(format!("{prefix}rl:"))
            .build()
            .await
            .expect("limiter");
        assert!(!limiter.is_degraded(), "the test Redis at {url} answers");
        Some(Self {
            name: "redis",
            limiter,
            clock: None,
            redis: Some(url),
        })
    }

    /// Lets time pass: moves the manual clock in-process, sleeps for Redis.
    pub(crate) async fn advance(&self, by: Duration) {
        match &self.clock {
            Some(clock) => clock.advance(by),
            None => tokio::time::sleep(by).await,
        }
    }

    /// Slack for timing assertions: none in-process, some for real time against Redis.
    pub(crate) fn slack(&self) -> Duration {
        if self.clock.is_some() {
            Duration::ZERO
        } else {
            Duration::from_millis(60)
        }
    }

    /// Budgets on this backend, with their own manual clock (budget periods follow the
    /// caller's clock on both backends).
    pub(crate) async fn budgets(&self, settings: &BudgetSettings) -> (Budgets, ManualClock) {
        let clock = ManualClock::new(wall_now());
        let dyn_clock: Arc<dyn Clock> = Arc::new(clock.clone());
        let budgets = match &self.redis {
            None => Budgets::in_process_with_clock(settings, dyn_clock),
            #[cfg(not(feature = "redis"))]
            Some(_) => unreachable!("no Redis backend without the feature"),
            #[cfg(feature = "redis")]
            // Each call gets its own counters, as a fresh in-process store would.
            Some(url) => Budgets::redis_with(
                url.as_str(),
                settings,
                RedisDownPolicy::Refuse,
                &format!("{}budget:", unique_prefix()),
                dyn_clock,
            )
            .await
            .expect("budgets"),
        };
        (budgets, clock)
    }
}

/// A redis-server of our own on a free port, for outage tests: never the shared one.
pub(crate) use hearth_test_support::PrivateRedis as OwnRedis;

/// Serializes tests that drive a limiter into the degraded state, so their gauge assertions
/// do not see each other.
pub(crate) async fn outage_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await
}

// ---- Metrics --------------------------------------------------------------------------------

/// Every value recorded, per metric name and labels (`name{k=v,…}`), in order.
#[derive(Default)]
pub(crate) struct Recorded {
    values: Mutex<HashMap<String, Vec<f64>>>,
}

impl Recorded {
    /// The history of `key` (e.g. `hearth_limits_degraded{component=rate_limit}`).
    pub(crate) fn history(&self, key: &str) -> Vec<f64> {
        self.values
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// The sum of a counter's increments.
    pub(crate) fn total(&self, key: &str) -> f64 {
        self.history(key).iter().sum()
    }
}

struct Handle {
    key: String,
    recorded: Arc<Recorded>,
}

impl Handle {
    fn push(&self, value: f64) {
        self.recorded
            .values
            .lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default()
            .push(value);
    }
}

impl metrics::CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.push(value as f64);
    }
    fn absolute(&self, value: u64) {
        self.push(value as f64);
    }
}

impl metrics::GaugeFn for Handle {
    fn increment(&self, value: f64) {
        self.push(value);
    }
    fn decrement(&self, value: f64) {
        self.push(-value);
    }
    fn set(&self, value: f64) {
        self.push(value);
    }
}

impl metrics::HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.push(value);
    }
}

struct TestRecorder(Arc<Recorded>);

impl TestRecorder {
    fn handle(&self, key: &metrics::Key) -> Arc<Handle> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        Arc::new(Handle {
            key: format!("{}{{{}}}", key.name(), labels.join(",")),
            recorded: self.0.clone(),
        })
    }
}

impl metrics::Recorder for TestRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::from_arc(self.handle(key))
    }
}

/// The process-wide test recorder (installed on first use).
pub(crate) fn metrics() -> Arc<Recorded> {
    static RECORDED: OnceLock<Arc<Recorded>> = OnceLock::new();
    RECORDED
        .get_or_init(|| {
            let recorded = Arc::new(Recorded::default());
            metrics::set_global_recorder(TestRecorder(recorded.clone()))
                .expect("no other recorder in the test binary");
            recorded
        })
        .clone()
}

// ---- Logs -----------------------------------------------------------------------------------

/// Log lines written on this thread while the guard lives.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this thread's logs (use on a current-thread runtime so spawned tasks are
/// included).
pub(crate) fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    hearth_test_support::tracing_interest::keep_global();
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    hearth_test_support::tracing_interest::refresh();
    (logs, guard)
}
