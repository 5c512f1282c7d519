//! The process-wide Prometheus registry and the names of Hearth's metrics.

use std::sync::OnceLock;

/// The handle that renders the registry as Prometheus text.
pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

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
    /// Counter: leaderboard rebuilds by `outcome`.
    pub const LEADERBOARD_REBUILDS: &str = "hearth_leaderboard_rebuilds_total";
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

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global Prometheus recorder once and returns its handle.
///
/// Later calls return the same handle, so tests that start several apps in one process share
/// one registry instead of panicking. If some other recorder is already installed, the handle
/// renders an empty registry and a warning is logged.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(names::HTTP_DURATION.into()), LATENCY_BUCKETS)
                .expect("the latency bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics will be empty");
            }
            describe();
            handle
        })
        .clone()
}

/// Registers help text for every metric, so the exposition is self-describing.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::HTTP_REQUESTS,
        "HTTP requests by route template, method and status"
    );
    describe_histogram!(names::HTTP_DURATION, Unit::Seconds, "HTTP request latency");
    describe_gauge!(names::HTTP_IN_FLIGHT, "HTTP requests being served");
    describe_counter!(names::GAME_ROUNDS, "Settled game rounds by game");
    describe_counter!(names::GAME_WAGERED, "Coins wagered by game");
    describe_counter!(names::GAME_PAID, "Coins paid out by game");
    describe_counter!(names::LOGIN_FAILURES, "Failed logins by reason");
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
    describe_counter!(
        names::LEADERBOARD_REBUILDS,
        "Leaderboard rebuilds by outcome"
    );
    describe_counter!(
        names::IDEMPOTENCY_KEYS_PURGED,
        "Idempotency keys deleted after retention"
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
