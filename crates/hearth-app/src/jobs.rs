//! The worker's jobs: what each job kind does, and the runner that runs them on the durable
//! queue ([`hearth_jobs`]).
//!
//! # Layout
//! - [`runner`]: the [`Runner`] with every handler registered and the cron schedules from the
//!   `jobs` settings section: reconciliation, clean-up and (with Redis) leaderboard rebuilds.
//! - [`kinds`]: the job kinds.
//! - The handlers: [`DeliverEmail`] (the outbox, through a [`Mailer`]), [`Reconcile`],
//!   [`Cleanup`] and [`RebuildLeaderboards`].
//! - One step of each, as functions for tests and tools: [`reconcile_once`] (proves
//!   `balance == sum(ledger)` for every wallet, logs each mismatch, sets the
//!   `hearth_reconciliation_*` metrics), [`purge_idempotency_keys`], [`purge_revocations`] and
//!   [`rebuild_leaderboards`].
//!
//! Every handler is idempotent: a job run twice (its worker died after the effect) has one
//! effect. Reconciliation, purges and rebuilds are so by nature; e-mail delivery skips a
//! message already marked sent.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hearth_jobs::{Handler, JobError, Registry, Runner, ScheduleError, Scheduled};
use hearth_observability::metrics::names;
use hearth_storage::{Database, Job, Reconciliation, StorageError};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Hearth;
use crate::leaderboards::{self, LeaderboardError, Leaderboards};
use crate::mail::{MailError, Mailer, OutgoingMail};

/// Runs one reconciliation and records its outcome in logs, metrics and the database (for the
/// admin figures).
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
            // The admin figures show the last run; failing to record it fails nothing else.
            if let Err(error) = db
                .record_reconciliation(
                    report.wallets,
                    report.mismatches.len() as u64,
                    time::OffsetDateTime::now_utc(),
                )
                .await
            {
                tracing::warn!(%error, "the reconciliation's outcome could not be recorded");
            }
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

/// The job kinds this worker runs.
pub mod kinds {
    /// Delivers one outbox e-mail (payload `{"email_id"}`), written with its cause.
    pub const EMAIL: &str = hearth_storage::jobs::EMAIL_JOB_KIND;
    /// Reconciles every wallet with its ledger.
    pub const RECONCILE: &str = "reconcile";
    /// Deletes expired idempotency keys, revocations, reset and verification tokens, and old
    /// schedule slots.
    pub const CLEANUP: &str = "cleanup";
    /// Rebuilds the shared leaderboards from the database.
    pub const LEADERBOARDS: &str = "leaderboards.rebuild";
    /// Takes a verified backup and prunes old ones.
    pub const BACKUP: &str = "backup";
}

/// Counter: backups by `outcome` (`ok`, `error`).
pub const BACKUP_RUNS: &str = "hearth_backup_runs_total";
/// Gauge: Unix time of the last verified backup (alert when it grows old).
pub const BACKUP_LAST_SUCCESS: &str = "hearth_backup_last_success_timestamp_seconds";
/// Gauge: the size of the last verified backup.
pub const BACKUP_BYTES: &str = "hearth_backup_bytes";

/// Registers the backup metrics' help text.
pub fn describe_metrics() {
    metrics::describe_counter!(BACKUP_RUNS, "Backups taken, by outcome (ok, error)");
    metrics::describe_gauge!(
        BACKUP_LAST_SUCCESS,
        metrics::Unit::Seconds,
        "Unix time of the last backup that was restored and reconciled"
    );
    metrics::describe_gauge!(
        BACKUP_BYTES,
        metrics::Unit::Bytes,
        "Size of the last verified backup"
    );
}

/// How long a schedule slot is remembered: longer than any schedule's period, so a slot is
/// never enqueued twice (a monthly job's latest slot is at most 31 days old).
const SLOT_RETENTION: time::Duration = time::Duration::days(40);

/// The runner of every job kind, with the schedules the `jobs` section names, sending mail
/// through `mailer`. Leaderboards are rebuilt on schedule only when they are shared (Redis):
/// in-process boards belong to each gateway.
///
/// # Errors
/// When a schedule's cron expression does not parse (settings checks refuse that earlier).
pub fn runner(hearth: &Hearth, mailer: Arc<dyn Mailer>) -> Result<Runner, ScheduleError> {
    let settings = &hearth.settings.jobs;
    let db = hearth.db.clone();
    let mut registry = Registry::new()
        .with(
            kinds::EMAIL,
            Arc::new(DeliverEmail {
                db: db.clone(),
                mailer,
            }),
        )
        .with(kinds::RECONCILE, Arc::new(Reconcile { db: db.clone() }))
        .with(
            kinds::CLEANUP,
            Arc::new(Cleanup {
                db: db.clone(),
                idempotency_retention: Duration::from_secs(
                    hearth.settings.wallet.idempotency_retention_secs,
                ),
            }),
        );
    let mut schedules = vec![
        Scheduled::new(
            kinds::RECONCILE,
            &settings.reconcile_schedule,
            kinds::RECONCILE,
        )?,
        Scheduled::new(kinds::CLEANUP, &settings.cleanup_schedule, kinds::CLEANUP)?,
    ];
    // Registered in every mode (an operator may enqueue one); scheduled only when shared.
    registry = registry.with(
        kinds::LEADERBOARDS,
        Arc::new(RebuildLeaderboards {
            db: db.clone(),
            boards: hearth.leaderboards.clone(),
        }),
    );
    if hearth.leaderboards.backend() == "redis" {
        schedules.push(Scheduled::new(
            kinds::LEADERBOARDS,
            &settings.leaderboard_schedule,
            kinds::LEADERBOARDS,
        )?);
    }
    let backup = &hearth.settings.backup;
    registry = registry.with(
        kinds::BACKUP,
        Arc::new(Backup {
            db: db.clone(),
            dir: backup.dir.clone(),
            keep: backup.keep.max(1),
        }),
    );
    if !backup.schedule.trim().is_empty() {
        let mut scheduled = Scheduled::new(kinds::BACKUP, &backup.schedule, kinds::BACKUP)?;
        // A backup that keeps failing is worth a look soon: two retries, then a dead letter.
        scheduled.max_attempts = 3;
        schedules.push(scheduled);
    }
    describe_metrics();
    let queue: Arc<dyn hearth_storage::JobRepository> = db;
    Ok(Runner::new(queue, registry, settings.runner()).with_schedules(schedules))
}

/// Sends one outbox message and marks it sent. A message already sent (the job ran twice) is
/// skipped; a transient SMTP failure is retried after the backoff; a permanent one (an address
/// the server refuses) kills the job at once.
pub struct DeliverEmail {
    /// Where the outbox is.
    pub db: Arc<dyn Database>,
    /// How mail leaves.
    pub mailer: Arc<dyn Mailer>,
}

#[async_trait]
impl Handler for DeliverEmail {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let id = job
            .payload
            .get("email_id")
            .and_then(serde_json::Value::as_str)
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| JobError::Permanent("payload has no valid email_id".to_owned()))?;
        let Some(email) = self
            .db
            .unsent_email(id)
            .await
            .map_err(|e| JobError::retry(&e))?
        else {
            tracing::info!(email_id = %id, "e-mail already sent (or gone); nothing to do");
            return Ok(());
        };
        let mail = OutgoingMail {
            id: email.id,
            to: email.to_address,
            subject: email.subject,
            text: email.body,
            html: email.html_body,
        };
        let sent = self.mailer.send(&mail).await;
        let now = OffsetDateTime::now_utc();
        // Counted either way; a failure to count is not a reason to send again.
        if let Err(error) = self.db.record_email_attempt(id, sent.is_ok(), now).await {
            tracing::warn!(email_id = %id, %error, "e-mail attempt not recorded");
            if sent.is_ok() {
                return Err(JobError::retry(&error));
            }
        }
        match sent {
            Ok(()) => {
                tracing::info!(email_id = %id, mailer = self.mailer.kind(), "e-mail sent");
                Ok(())
            }
            Err(error @ MailError::Rejected(_)) => Err(JobError::permanent(&error)),
            Err(error) => Err(JobError::retry(&error)),
        }
    }
}

/// Runs [`reconcile_once`].
pub struct Reconcile {
    /// The database.
    pub db: Arc<dyn Database>,
}

#[async_trait]
impl Handler for Reconcile {
    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        reconcile_once(self.db.as_ref())
            .await
            .map(|_| ())
            .map_err(|e| JobError::retry(&e))
    }
}

/// Deletes what stopped mattering: idempotency keys past retention, expired revocations,
/// expired password-reset and e-mail verification tokens, and old schedule slots.
pub struct Cleanup {
    /// The database.
    pub db: Arc<dyn Database>,
    /// How long idempotency keys are kept.
    pub idempotency_retention: Duration,
}

#[async_trait]
impl Handler for Cleanup {
    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        purge_idempotency_keys(self.db.as_ref(), self.idempotency_retention)
            .await
            .map_err(|e| JobError::retry(&e))?;
        purge_revocations(self.db.as_ref())
            .await
            .map_err(|e| JobError::retry(&e))?;
        let slots = self
            .db
            .purge_job_slots(OffsetDateTime::now_utc() - SLOT_RETENTION)
            .await
            .map_err(|e| JobError::retry(&e))?;
        let tokens = self
            .db
            .purge_expired_tokens(OffsetDateTime::now_utc())
            .await
            .map_err(|e| JobError::retry(&e))?;
        tracing::info!(
            slots,
            tokens,
            "old schedule slots and expired reset and verification tokens purged"
        );
        Ok(())
    }
}

/// Runs [`rebuild_leaderboards`].
pub struct RebuildLeaderboards {
    /// The database.
    pub db: Arc<dyn Database>,
    /// The boards to rebuild.
    pub boards: Arc<dyn Leaderboards>,
}

#[async_trait]
impl Handler for RebuildLeaderboards {
    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        rebuild_leaderboards(self.db.as_ref(), self.boards.as_ref())
            .await
            .map(|_| ())
            .map_err(|e| JobError::retry(&e))
    }
}

/// Takes a verified backup ([`hearth_storage::BackupRepository::backup`]: written, restored
/// into a scratch database, every wallet reconciled there), then deletes all but the newest
/// `keep`.
pub struct Backup {
    /// The database.
    pub db: Arc<dyn Database>,
    /// Where backups go.
    pub dir: std::path::PathBuf,
    /// How many are kept.
    pub keep: usize,
}

#[async_trait]
impl Handler for Backup {
    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        backup_once(self.db.as_ref(), &self.dir, self.keep)
            .await
            .map(|_| ())
            .map_err(|e| JobError::retry(&e))
    }
}

/// One verified backup into `dir`, keeping the newest `keep`; records the backup metrics.
///
/// # Errors
/// When the backup or its verification fails (counted as `outcome="error"`); old backups are
/// then left alone.
#[tracing::instrument(skip_all, err)]
pub async fn backup_once(
    db: &dyn Database,
    dir: &std::path::Path,
    keep: usize,
) -> Result<hearth_storage::BackupReport, hearth_storage::BackupError> {
    let now = OffsetDateTime::now_utc();
    let result = db.backup(dir, now).await;
    match &result {
        Ok(report) => {
            metrics::counter!(BACKUP_RUNS, "outcome" => "ok").increment(1);
            metrics::gauge!(BACKUP_LAST_SUCCESS).set(now.unix_timestamp() as f64);
            metrics::gauge!(BACKUP_BYTES).set(report.bytes as f64);
            tracing::info!(
                path = %report.path.display(),
                bytes = report.bytes,
                wallets = report.restored.wallets,
                "backup written, restored and reconciled"
            );
            match prune_backups(dir, keep).await {
                Ok(removed) if removed > 0 => tracing::info!(removed, keep, "old backups deleted"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "old backups not deleted"),
            }
        }
        Err(_) => {
            metrics::counter!(BACKUP_RUNS, "outcome" => "error").increment(1);
        }
    }
    result
}

/// Whether `name` is a backup this worker writes.
fn is_backup(name: &str) -> bool {
    name.starts_with("hearth-") && (name.ends_with(".dump") || name.ends_with(".sqlite3"))
}

/// Deletes all but the newest `keep` backups in `dir` (names sort by time); returns how many.
///
/// # Errors
/// When the directory cannot be read or a file cannot be deleted.
pub async fn prune_backups(dir: &std::path::Path, keep: usize) -> std::io::Result<usize> {
    let mut names = Vec::new();
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_backup(&name) {
            names.push(name);
        }
    }
    names.sort_unstable();
    let excess = names.len().saturating_sub(keep);
    for name in &names[..excess] {
        tokio::fs::remove_file(dir.join(name)).await?;
    }
    Ok(excess)
}

/// Sets `hearth_backup_last_success_timestamp_seconds` from the newest backup already in
/// `dir` (its modification time), so a restarted worker does not report "never".
pub async fn record_existing_backups(dir: &std::path::Path) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    let mut newest: Option<std::time::SystemTime> = None;
    while let Ok(Some(entry)) = entries.next_entry().await {
        if !is_backup(&entry.file_name().to_string_lossy()) {
            continue;
        }
        if let Ok(modified) = entry.metadata().await.and_then(|m| m.modified()) {
            newest = newest.max(Some(modified));
        }
    }
    if let Some(at) = newest.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()) {
        metrics::gauge!(BACKUP_LAST_SUCCESS).set(at.as_secs_f64());
    }
}
