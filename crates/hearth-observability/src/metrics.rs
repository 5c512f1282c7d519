//! The process-wide Prometheus registry and the names of Hearth's metrics.
//!
//! Most metrics go through the `metrics` facade into the recorder [`install`] sets up. The
//! HTTP latency histogram, recorded on every request, is a [`FixedHistogram`] instead: the
//! recorder keeps each histogram sample until it folds them into buckets, where a fixed
//! histogram adds to two counters and allocates nothing. [`render`] writes both.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// The handle that renders the registry as Prometheus text.
pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{PrometheusBuilder, formatting};

/// Every metric Hearth emits, so that emitters and dashboards agree on spelling.
pub mod names {
    /// Counter: HTTP requests by `route` template, `method` and `status`.
    pub const HTTP_REQUESTS: &str = "hearth_http_requests_total";
    /// Histogram: HTTP request latency in seconds by `route` and `method`.
    pub const HTTP_DURATION: &str = "hearth_http_request_duration_seconds";
    /// Gauge: requests being served right now.
    pub const HTTP_IN_FLIGHT: &str = "hearth_http_requests_in_flight";
    /// Counter: settled game rounds by `game`.
    pub const GAME_ROUNDS: &str = "hearth_game_rounds_total";
    /// Counter: coins wagered by `game`.
    pub const GAME_WAGERED: &str = "hearth_game_wagered_coins_total";
    /// Counter: coins paid out by `game`.
    pub const GAME_PAID: &str = "hearth_game_paid_coins_total";
    /// Counter: failed logins by `reason`.
    pub const LOGIN_FAILURES: &str = "hearth_auth_login_failures_total";
    /// Counter: accounts registered.
    pub const REGISTRATIONS: &str = "hearth_auth_registrations_total";
    /// Counter: reconciliation runs by `outcome` (`ok`, `mismatch`, `error`).
    pub const RECONCILIATION_RUNS: &str = "hearth_reconciliation_runs_total";
    /// Gauge: wallets whose balance differed from their ledger sum at the last run.
    pub const RECONCILIATION_MISMATCHES: &str = "hearth_reconciliation_mismatches";
    /// Gauge: wallets checked at the last reconciliation run.
    pub const RECONCILIATION_WALLETS: &str = "hearth_reconciliation_wallets_checked";
    /// Counter: idempotency keys deleted after their retention.
    pub const IDEMPOTENCY_KEYS_PURGED: &str = "hearth_idempotency_keys_purged_total";
    /// Counter: revocations deleted from the database once nothing they refuse can be alive.
    pub const REVOCATIONS_PURGED: &str = "hearth_auth_revocations_purged_total";
    /// Counter: revocation caches filled from the database (at start in process, or after
    /// Redis lost its contents).
    pub const REVOCATION_REFILLS: &str = "hearth_auth_revocation_cache_refills_total";
    /// Counter: leaderboard rebuilds by `outcome`.
    pub const LEADERBOARD_REBUILDS: &str = "hearth_leaderboard_rebuilds_total";
    /// Gauge: WebSocket connections open (upgraded, authenticated or not yet).
    pub const WS_CONNECTIONS: &str = "hearth_ws_connections";
    /// Counter: WebSocket messages by `direction` (`in`, `out`) and `type` (the message's
    /// `type`; `invalid` for an inbound one that could not be read).
    pub const WS_MESSAGES: &str = "hearth_ws_messages_total";
    /// Counter: WebSocket connections closed, by close `code` (the server's, or the
    /// client's when it closed first, `other` for codes RFC 6455 does not define; `none` when
    /// the socket ended without a close frame).
    pub const WS_CLOSES: &str = "hearth_ws_closes_total";
    /// Histogram: seconds from a push's publish (on any gateway, by the hub's wall clock) to
    /// its socket's writer handing the frame to the socket.
    pub const WS_PUSH_LATENCY: &str = "hearth_ws_push_latency_seconds";
    /// Gauge: distinct users with a socket or an authenticated request in the last 5
    /// minutes, in this gateway process (computed when `/metrics` is scraped).
    pub const ACTIVE_USERS: &str = "hearth_active_users";
    /// Gauge (always 1): build information in labels `version` and `service`.
    pub const BUILD_INFO: &str = "hearth_build_info";
    /// Gauge: open database connections by `state` (`idle`, `in_use`).
    pub const DB_POOL_CONNECTIONS: &str = "hearth_db_pool_connections";
    /// Gauge: the most connections the pool may open (`database.max_connections`).
    pub const DB_POOL_MAX: &str = "hearth_db_pool_max_connections";
    /// Counter: statements that sent queued game rounds together (PostgreSQL).
    pub const DB_ROUND_STATEMENTS: &str = "hearth_db_round_statements_total";
    /// Counter: game rounds those statements carried.
    pub const DB_ROUND_STATEMENT_ROUNDS: &str = "hearth_db_round_statement_rounds_total";
    /// Counter: statements of several rounds that failed; their rounds were played alone.
    pub const DB_ROUND_STATEMENT_FAILURES: &str = "hearth_db_round_statement_failures_total";
    /// Counter: responses that were 500s because of an internal error or a panic; each is
    /// logged at ERROR with its cause chain.
    pub const INTERNAL_ERRORS: &str = "hearth_http_internal_errors_total";
    /// Gauge: seconds since the process started.
    pub const UPTIME: &str = "hearth_process_uptime_seconds";
    /// Gauge: resident memory of the process in bytes (Linux only).
    pub const RESIDENT_MEMORY: &str = "hearth_process_resident_memory_bytes";
}

/// Latency buckets in seconds: fine below 100 ms where a healthy API lives, coarse above.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Push latency buckets in seconds: from a tenth of a millisecond (a push within one
/// process) through Redis round trips to seconds (a backed-up socket).
const PUSH_LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// One labelled series of a [`HistogramFamily`]: a count per bucket and the sum, each one
/// atomic addition per sample.
#[derive(Debug)]
pub struct FixedHistogram {
    bounds: &'static [f64],
    /// Samples per bucket (not cumulative), the last one above every bound.
    counts: Box<[AtomicU64]>,
    /// The sum of the samples in nanoseconds, so it is one integer addition.
    sum_nanos: AtomicU64,
}

impl FixedHistogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one sample, in seconds (negative and NaN samples count as zero).
    pub fn record(&self, seconds: f64) {
        let seconds = if seconds > 0.0 { seconds } else { 0.0 };
        let bucket = self.bounds.partition_point(|bound| *bound < seconds);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        // Saturating float-to-integer conversion: a sample over 584 years counts as that.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let nanos = (seconds * 1e9) as u64;
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// A histogram metric with fixed buckets, one [`FixedHistogram`] per label set, rendered by
/// [`render`] in the Prometheus text format.
#[derive(Debug)]
pub struct HistogramFamily {
    name: &'static str,
    help: &'static str,
    bounds: &'static [f64],
    /// Each series with its labels as written between the braces (`route="/x",method="GET"`).
    series: RwLock<Vec<(String, Arc<FixedHistogram>)>>,
}

impl HistogramFamily {
    const fn new(name: &'static str, help: &'static str, bounds: &'static [f64]) -> Self {
        Self {
            name,
            help,
            bounds,
            series: RwLock::new(Vec::new()),
        }
    }

    /// The series for `labels`, made on first use. Callers keep the handle: looking it up
    /// takes a lock and formats the labels.
    pub fn series(&self, labels: &[(&str, &str)]) -> Arc<FixedHistogram> {
        // Written as the recorder writes its own labels, so the exposition agrees on escaping.
        let text = labels
            .iter()
            .map(|(name, value)| {
                format!(
                    "{}=\"{}\"",
                    formatting::sanitize_label_key(name),
                    formatting::sanitize_label_value(value)
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let mut series = self.series.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, existing)) = series.iter().find(|(labels, _)| *labels == text) {
            return Arc::clone(existing);
        }
        let histogram = Arc::new(FixedHistogram::new(self.bounds));
        series.push((text, Arc::clone(&histogram)));
        histogram
    }

    /// Appends the family in the Prometheus text format; nothing while it has no series.
    fn render(&self, out: &mut String) {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        if series.is_empty() {
            return;
        }
        let name = self.name;
        formatting::write_help_line(out, name, None, None, self.help);
        formatting::write_type_line(out, name, None, None, "histogram");
        for (labels, histogram) in series.iter() {
            // An unlabelled series: `le` alone inside the braces, none on the sum and count.
            let (sep, braced) = if labels.is_empty() {
                ("", String::new())
            } else {
                (",", format!("{{{labels}}}"))
            };
            let mut cumulative = 0_u64;
            let bounds = self.bounds.iter().map(|b| Some(*b)).chain([None]);
            for (bound, count) in bounds.zip(histogram.counts.iter()) {
                cumulative += count.load(Ordering::Relaxed);
                let _ = match bound {
                    Some(bound) => {
                        writeln!(
                            out,
                            "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
                        )
                    }
                    None => {
                        writeln!(
                            out,
                            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
                        )
                    }
                };
            }
            #[allow(clippy::cast_precision_loss)]
            let sum = histogram.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{name}_sum{braced} {sum}");
            let _ = writeln!(out, "{name}_count{braced} {cumulative}");
        }
        out.push('\n');
    }
}

/// `hearth_http_request_duration_seconds`, by `route` and `method`.
pub static HTTP_DURATION: HistogramFamily = HistogramFamily::new(
    names::HTTP_DURATION,
    "HTTP request latency",
    LATENCY_BUCKETS,
);

/// `hearth_ws_push_latency_seconds`, unlabelled (see [`ws_push_latency`]).
pub static WS_PUSH_LATENCY: HistogramFamily = HistogramFamily::new(
    names::WS_PUSH_LATENCY,
    "Seconds from a push's publish to its socket's writer sending it",
    PUSH_LATENCY_BUCKETS,
);

/// The one series of [`WS_PUSH_LATENCY`], looked up once per process.
pub fn ws_push_latency() -> &'static FixedHistogram {
    static SERIES: OnceLock<Arc<FixedHistogram>> = OnceLock::new();
    SERIES.get_or_init(|| WS_PUSH_LATENCY.series(&[]))
}

/// The Prometheus text exposition: the recorder's metrics, then the fixed histograms.
pub fn render(handle: &PrometheusHandle) -> String {
    let mut text = handle.render();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    HTTP_DURATION.render(&mut text);
    WS_PUSH_LATENCY.render(&mut text);
    text
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global Prometheus recorder once and returns its handle.
///
/// Later calls return the same handle, so tests that start several apps in one process share
/// one registry instead of panicking. If some other recorder is already installed, the handle
/// renders an empty registry and a warning is logged.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics will be empty");
            }
            describe();
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// The upkeep thread's name (Linux shows 15 bytes of a thread name).
const UPKEEP_THREAD: &str = "metrics-upkeep";

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds histogram samples into their buckets every [`UPKEEP_INTERVAL`], on a thread of its
/// own (so it needs no runtime). The recorder keeps every sample it is given until then: a
/// process nobody scrapes would otherwise hold one sample per request forever.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name(UPKEEP_THREAD.into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "could not start the metrics upkeep thread; histograms are folded only when scraped");
    }
}

/// Registers help text for every metric, so the exposition is self-describing.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(
        names::HTTP_REQUESTS,
        "HTTP requests by route template, method and status"
    );
    describe_gauge!(names::HTTP_IN_FLIGHT, "HTTP requests being served");
    describe_counter!(names::GAME_ROUNDS, "Settled game rounds by game");
    describe_counter!(names::GAME_WAGERED, "Coins wagered by game");
    describe_counter!(names::GAME_PAID, "Coins paid out by game");
    describe_counter!(
        names::LOGIN_FAILURES,
        "Failed logins, unknown names and wrong passwords or codes alike"
    );
    describe_counter!(names::REGISTRATIONS, "Accounts registered");
    describe_counter!(
        names::RECONCILIATION_RUNS,
        "Ledger reconciliation runs by outcome"
    );
    describe_gauge!(
        names::RECONCILIATION_MISMATCHES,
        "Wallets off their ledger at the last run"
    );
    describe_gauge!(
        names::RECONCILIATION_WALLETS,
        "Wallets checked at the last run"
    );
    describe_gauge!(names::BUILD_INFO, "Build information");
    describe_gauge!(names::WS_CONNECTIONS, "WebSocket connections open");
    describe_counter!(
        names::WS_MESSAGES,
        "WebSocket messages by direction and type"
    );
    describe_counter!(
        names::WS_CLOSES,
        "WebSocket connections closed by close code"
    );
    describe_counter!(
        names::LEADERBOARD_REBUILDS,
        "Leaderboard rebuilds by outcome"
    );
    describe_counter!(
        names::IDEMPOTENCY_KEYS_PURGED,
        "Idempotency keys deleted after retention"
    );
    describe_counter!(
        names::REVOCATIONS_PURGED,
        "Revocations deleted once nothing they refuse can be alive"
    );
    describe_counter!(
        names::REVOCATION_REFILLS,
        "Revocation caches filled from the database"
    );
    describe_gauge!(
        names::DB_POOL_CONNECTIONS,
        "Database pool connections by state"
    );
    describe_gauge!(names::DB_POOL_MAX, "Most connections the pool may open");
    describe_counter!(
        names::DB_ROUND_STATEMENTS,
        "Statements that sent queued game rounds together"
    );
    describe_counter!(
        names::DB_ROUND_STATEMENT_ROUNDS,
        "Game rounds sent in shared statements"
    );
    describe_counter!(
        names::DB_ROUND_STATEMENT_FAILURES,
        "Shared round statements that failed and were replayed round by round"
    );
    describe_counter!(
        names::INTERNAL_ERRORS,
        "Internal errors and panics answered with a 500"
    );
    describe_gauge!(
        names::UPTIME,
        Unit::Seconds,
        "Time since the process started"
    );
    describe_gauge!(
        names::RESIDENT_MEMORY,
        Unit::Bytes,
        "Resident memory of the process"
    );
}

/// Sets `hearth_build_info{service, version} 1`.
pub fn record_build_info(service: &'static str, version: &'static str) {
    metrics::gauge!(names::BUILD_INFO, "service" => service, "version" => version).set(1.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_histograms_render_cumulative_buckets_sum_and_count() {
        static FAMILY: HistogramFamily =
            HistogramFamily::new("test_latency_seconds", "Test latency", &[0.01, 0.1, 1.0]);
        let get = FAMILY.series(&[("route", "/v1/x/{id}"), ("method", "GET")]);
        for seconds in [0.005, 0.01, 0.05, 0.5, 3.0, -1.0, f64::NAN] {
            get.record(seconds);
        }
        // The same labels give the same series; a quote in a value is escaped.
        FAMILY
            .series(&[("route", "/v1/x/{id}"), ("method", "GET")])
            .record(0.2);
        FAMILY
            .series(&[("route", "a\"b"), ("method", "POST")])
            .record(0.0);
        let mut text = String::new();
        FAMILY.render(&mut text);
        let expected = [
            "# HELP test_latency_seconds Test latency",
            "# TYPE test_latency_seconds histogram",
            r#"test_latency_seconds_bucket{route="/v1/x/{id}",method="GET",le="0.01"} 4"#,
            r#"test_latency_seconds_bucket{route="/v1/x/{id}",method="GET",le="0.1"} 5"#,
            r#"test_latency_seconds_bucket{route="/v1/x/{id}",method="GET",le="1"} 7"#,
            r#"test_latency_seconds_bucket{route="/v1/x/{id}",method="GET",le="+Inf"} 8"#,
            r#"test_latency_seconds_sum{route="/v1/x/{id}",method="GET"} 3.765"#,
            r#"test_latency_seconds_count{route="/v1/x/{id}",method="GET"} 8"#,
            r#"test_latency_seconds_bucket{route="a\"b",method="POST",le="0.01"} 1"#,
        ];
        for line in expected {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn an_unlabelled_series_renders_le_alone_and_a_bare_sum_and_count() {
        static FAMILY: HistogramFamily =
            HistogramFamily::new("test_push_seconds", "Test push", &[0.001, 1.0]);
        FAMILY.series(&[]).record(0.0005);
        FAMILY.series(&[]).record(2.0);
        let mut text = String::new();
        FAMILY.render(&mut text);
        let expected = [
            r#"test_push_seconds_bucket{le="0.001"} 1"#,
            r#"test_push_seconds_bucket{le="1"} 1"#,
            r#"test_push_seconds_bucket{le="+Inf"} 2"#,
            "test_push_seconds_sum 2.0005",
            "test_push_seconds_count 2",
        ];
        for line in expected {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn install_starts_the_upkeep_thread_once() {
        let upkeep_threads = || {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .filter(|name| name.trim_end() == UPKEEP_THREAD)
                .count()
        };
        install();
        install();
        // A thread names itself once it runs.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while upkeep_threads() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(upkeep_threads(), 1);
    }
}
