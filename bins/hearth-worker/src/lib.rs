//! The Hearth worker's jobs, as a library so tests can run one step deterministically.
//!
//! # Layout
//! - [`reconcile_once`]: one ledger reconciliation run — proves `balance == sum(ledger)` for
//!   every wallet, logs each mismatch as an error and sets the `hearth_reconciliation_*`
//!   metrics.
//! - [`run`]: the schedule loop, until shutdown.
//! - [`admin_router`]: `/metrics` and `/health/live` for the worker's admin port.
//!
//! # What it does not do (yet)
//! The durable job queue (leases, retries, dead letters) is not in this release; jobs here are
//! periodic and idempotent, so N workers running them at once is harmless.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use hearth_observability::metrics::{PrometheusHandle, names};
use hearth_storage::{Database, Reconciliation, StorageError};

/// Runs one reconciliation and records its outcome in logs and metrics.
///
/// # Errors
/// When the database cannot be read; the failure is also counted.
#[tracing::instrument(skip_all, err)]
pub async fn reconcile_once(db: &dyn Database) -> Result<Reconciliation, StorageError> {
    let result = db.reconcile().await;
    match &result {
        Ok(report) => {
            metrics::gauge!(names::RECONCILIATION_WALLETS).set(report.wallets as f64);
            metrics::gauge!(names::RECONCILIATION_MISMATCHES).set(report.mismatches.len() as f64);
            for mismatch in &report.mismatches {
                tracing::error!(
                    user_id = %mismatch.user_id,
                    balance = mismatch.balance,
                    ledger_sum = mismatch.ledger_sum,
                    difference = mismatch.balance - mismatch.ledger_sum,
                    "wallet balance differs from its ledger"
                );
            }
            let outcome = if report.mismatches.is_empty() {
                "ok"
            } else {
                "mismatch"
            };
            metrics::counter!(names::RECONCILIATION_RUNS, "outcome" => outcome).increment(1);
            tracing::info!(
                wallets = report.wallets,
                mismatches = report.mismatches.len(),
                "reconciliation finished"
            );
        }
        Err(_) => {
            metrics::counter!(names::RECONCILIATION_RUNS, "outcome" => "error").increment(1);
        }
    }
    result
}

/// Runs reconciliation now and then every `interval` until `shutdown` completes. A run in
/// progress when shutdown arrives is finished (it only reads).
pub async fn run(db: Arc<dyn Database>, interval: Duration, shutdown: impl Future<Output = ()>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {
                // Errors are logged and counted inside; the next tick tries again.
                let _ = reconcile_once(db.as_ref()).await;
            }
        }
    }
    tracing::info!("worker stopped");
}

/// The worker's admin endpoints: `/metrics` and `/health/live`.
pub fn admin_router(metrics: PrometheusHandle) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                        metrics.render(),
                    )
                }
            }),
        )
        .route(
            "/health/live",
            get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
}
