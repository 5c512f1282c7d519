//! The worker's periodic jobs, as functions so tests (and operators' tools) can run one step.
//!
//! # Layout
//! - [`reconcile_once`]: one ledger reconciliation run — proves `balance == sum(ledger)` for
//!   every wallet, logs each mismatch as an error and sets the `hearth_reconciliation_*`
//!   metrics.
//! - [`purge_idempotency_keys`]: forgets `Idempotency-Key`s past their retention.
//! - [`purge_revocations`]: deletes revocations nothing alive can need any more (run on the
//!   same tick as the idempotency purge).
//! - [`rebuild_leaderboards`]: rebuilds the shared (Redis) leaderboards from the database.
//! - [`Schedule`] and [`run`]: the schedule loop, until shutdown.
//!
//! # What it does not do (yet)
//! The durable job queue (leases, retries, dead letters) is not in this release; jobs here are
//! periodic and idempotent, so N workers running them at once is harmless.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hearth_observability::metrics::names;
use hearth_storage::{Database, Reconciliation, StorageError};

use crate::Hearth;
use crate::leaderboards::{self, LeaderboardError, Leaderboards};

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

/// Deletes the revocations whose tokens have all expired, and counts them.
///
/// # Errors
/// When the database cannot be written.
#[tracing::instrument(skip_all, err)]
pub async fn purge_revocations(db: &dyn Database) -> Result<u64, StorageError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let purged = db.purge_revocations(now).await?;
    metrics::counter!(names::REVOCATIONS_PURGED).increment(purged);
    tracing::info!(purged, "expired revocations purged");
    Ok(purged)
}

/// How often each job runs.
#[derive(Clone)]
pub struct Schedule {
    /// Between reconciliation runs.
    pub reconcile_every: Duration,
    /// Between idempotency-key (and expired revocation) purges.
    pub purge_every: Duration,
    /// How long idempotency keys are kept.
    pub idempotency_retention: Duration,
    /// Shared leaderboards to rebuild, and how often (`None` in embedded mode, where each
    /// gateway keeps its own).
    pub leaderboards: Option<(Arc<dyn Leaderboards>, Duration)>,
}

impl Schedule {
    /// The schedule the settings' `worker` section describes. The leaderboards are rebuilt
    /// only when they are shared (Redis): in-process boards belong to each gateway.
    pub fn from_settings(hearth: &Hearth) -> Self {
        let worker = &hearth.settings.worker;
        let shared = hearth.leaderboards.backend() == "redis";
        Self {
            reconcile_every: Duration::from_secs(worker.reconcile_interval_secs.max(1)),
            purge_every: Duration::from_secs(worker.purge_interval_secs.max(1)),
            idempotency_retention: Duration::from_secs(
                hearth.settings.wallet.idempotency_retention_secs,
            ),
            leaderboards: shared.then(|| {
                let every = Duration::from_secs(worker.leaderboard_rebuild_secs.max(1));
                (hearth.leaderboards.clone(), every)
            }),
        }
    }
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedule")
            .field("reconcile_every", &self.reconcile_every)
            .field("purge_every", &self.purge_every)
            .field("idempotency_retention", &self.idempotency_retention)
            .field(
                "leaderboards_every",
                &self.leaderboards.as_ref().map(|(_, every)| every),
            )
            .finish()
    }
}

/// Rebuilds the shared leaderboards from the database.
///
/// # Errors
/// When the database or Redis fails; also counted.
#[tracing::instrument(skip_all, err)]
pub async fn rebuild_leaderboards(
    db: &dyn Database,
    boards: &dyn Leaderboards,
) -> Result<usize, LeaderboardError> {
    let now = time::OffsetDateTime::now_utc();
    let result = leaderboards::rebuild(
        db.as_leaderboard_source(),
        boards,
        now,
        leaderboards::REBUILD_LIMIT,
    )
    .await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!(names::LEADERBOARD_REBUILDS, "outcome" => outcome).increment(1);
    if let Ok(entries) = &result {
        tracing::info!(entries, "leaderboards rebuilt");
    }
    result
}

/// Runs every job now and then on its schedule until `shutdown` completes. A job in progress
/// when shutdown arrives is finished first (each is one short statement or transaction).
pub async fn run(db: Arc<dyn Database>, schedule: Schedule, shutdown: impl Future<Output = ()>) {
    let mut reconcile = tokio::time::interval(schedule.reconcile_every);
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut purge = tokio::time::interval(schedule.purge_every);
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (boards, rebuild_every) = match &schedule.leaderboards {
        Some((boards, every)) => (Some(boards.clone()), *every),
        // Without shared boards the branch below is disabled; the interval is never polled.
        None => (None, Duration::from_secs(3600)),
    };
    let mut rebuild = tokio::time::interval(rebuild_every);
    rebuild.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                let _ = purge_revocations(db.as_ref()).await;
            }
            _ = rebuild.tick(), if boards.is_some() => {
                if let Some(boards) = &boards {
                    let _ = rebuild_leaderboards(db.as_ref(), boards.as_ref()).await;
                }
            }
        }
    }
    tracing::info!("worker stopped");
}
