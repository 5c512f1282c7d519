//! The Hearth worker's jobs, as a library so tests can run one step deterministically.
//!
//! # Layout
//! - [`reconcile_once`]: one ledger reconciliation run — proves `balance == sum(ledger)` for
//!   every wallet, logs each mismatch as an error and sets the `hearth_reconciliation_*`
//!   metrics.
//! - [`purge_idempotency_keys`]: forgets `Idempotency-Key`s past their retention.
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

/// Deletes idempotency keys older than `retention` and counts them.
///
/// # Errors
/// When the database cannot be written.
#[tracing::instrument(skip_all, err)]
pub async fn purge_idempotency_keys(
    db: &dyn Database,
    retention: Duration,
) -> Result<u64, StorageError> {
    let purged = db.purge_idempotency_keys(retention).await?;
    metrics::counter!(names::IDEMPOTENCY_KEYS_PURGED).increment(purged);
    tracing::info!(purged, "expired idempotency keys purged");
    Ok(purged)
}

/// How often each job runs.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Between reconciliation runs.
    pub reconcile_every: Duration,
    /// Between idempotency-key purges.
    pub purge_every: Duration,
    /// How long idempotency keys are kept.
    pub idempotency_retention: Duration,
}

/// Runs every job now and then on its schedule until `shutdown` completes. A job in progress
/// when shutdown arrives is finished first (each is one short statement or transaction).
pub async fn run(db: Arc<dyn Database>, schedule: Schedule, shutdown: impl Future<Output = ()>) {
    let mut reconcile = tokio::time::interval(schedule.reconcile_every);
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut purge = tokio::time::interval(schedule.purge_every);
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        // Errors are logged and counted inside each job; the next tick tries again.
        tokio::select! {
            () = &mut shutdown => break,
            _ = reconcile.tick() => {
                let _ = reconcile_once(db.as_ref()).await;
            }
            _ = purge.tick() => {
                let _ = purge_idempotency_keys(db.as_ref(), schedule.idempotency_retention).await;
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
