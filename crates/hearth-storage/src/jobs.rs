//! The durable job queue: the values its repository takes and returns, and the trait.
//!
//! A job is a row in `jobs`: written by [`JobRepository::enqueue_job`] or, for the outbox, in
//! the same transaction as the change that causes it (a password reset writes its e-mail's
//! job with the reset code). A worker claims due jobs under a lease
//! ([`JobRepository::claim_jobs`]); the claim's token must be shown to
//! [complete](JobRepository::complete_job), [fail](JobRepository::fail_job) or
//! [release](JobRepository::release_job) the job, so a worker whose lease expired (it was
//! killed, or stalled) cannot touch a job another worker has claimed since. Completed jobs
//! are deleted; a job that failed `max_attempts` times stays, `dead`, with its last error.
//!
//! Times cross this interface as [`OffsetDateTime`] and are stored as Unix milliseconds on
//! both backends.

use std::collections::HashMap;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StorageError;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its `run_at`, or due.
    Queued,
    /// Claimed by a worker whose lease has not been released.
    Running,
    /// Failed its last attempt; kept with the error until retried by an operator.
    Dead,
}

impl JobState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Dead => "dead",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "queued" => Some(Self::Queued),
            "running" => Some(Self::Running),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// Id chosen by the caller (UUIDv7).
    pub id: Uuid,
    /// Which handler runs it (`email.send`, `reconcile`, …).
    pub kind: String,
    /// The handler's input.
    pub payload: serde_json::Value,
    /// Not claimed before this moment.
    pub run_at: OffsetDateTime,
    /// Attempts before the job is dead (at least 1).
    pub max_attempts: i32,
    /// The W3C trace context (`traceparent`, `tracestate`) of the work that enqueued it; empty
    /// for none.
    pub trace_context: HashMap<String, String>,
}

impl NewJob {
    /// A job of `kind` due now, with up to `max_attempts` attempts and no trace context.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value, max_attempts: i32) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: kind.into(),
            payload,
            run_at: OffsetDateTime::now_utc(),
            max_attempts: max_attempts.max(1),
            trace_context: HashMap::new(),
        }
    }

    /// The same job, carrying `context` (from the enqueuing span).
    #[must_use]
    pub fn traced(mut self, context: HashMap<String, String>) -> Self {
        self.trace_context = context;
        self
    }

    /// The same job, not claimed before `run_at`.
    #[must_use]
    pub fn at(mut self, run_at: OffsetDateTime) -> Self {
        self.run_at = run_at;
        self
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Job {
    /// Id.
    pub id: Uuid,
    /// Which handler runs it.
    pub kind: String,
    /// The handler's input.
    pub payload: serde_json::Value,
    /// Where it is in its life.
    pub state: JobState,
    /// Attempts started so far, this claim included while running.
    pub attempts: i32,
    /// Attempts before it is dead.
    pub max_attempts: i32,
    /// When it is (or was) due.
    #[serde(with = "time::serde::rfc3339")]
    pub run_at: OffsetDateTime,
    /// When the current lease ends (running jobs only).
    #[serde(with = "time::serde::rfc3339::option")]
    pub lease_until: Option<OffsetDateTime>,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
    /// The trace context it was enqueued with.
    #[serde(skip)]
    pub trace_context: HashMap<String, String>,
    /// When it was enqueued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A job claimed by a worker: the job and the token its lease is held by.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    /// The job, with `attempts` counting this one.
    pub job: Job,
    /// Shown to complete, fail or release it.
    pub lease: Uuid,
}

/// What a claim asks for.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    /// The moment the claim is made at (due means `run_at <= now`; an expired lease means
    /// `lease_until <= now`).
    pub now: OffsetDateTime,
    /// How long the claimed jobs are leased.
    pub lease: std::time::Duration,
    /// At most this many jobs.
    pub limit: u32,
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again, due at the given time.
    Retrying,
    /// Out of attempts (or failed permanently): dead.
    Dead,
    /// The lease was not held any more (expired and claimed again): nothing changed.
    LeaseLost,
}

/// The queue's state for one kind, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobKindStats {
    /// The kind.
    pub kind: String,
    /// Queued jobs (due or not).
    pub queued: i64,
    /// Queued jobs already due.
    pub due: i64,
    /// Running jobs.
    pub running: i64,
    /// Dead jobs.
    pub dead: i64,
    /// The `run_at` of the oldest due job, if any.
    pub oldest_due: Option<OffsetDateTime>,
}

/// The durable job queue.
#[async_trait]
pub trait JobRepository: Send + Sync {
    /// Enqueues a job on its own.
    ///
    /// # Errors
    /// [`StorageError::Conflict`] when the id is taken; otherwise when the write fails.
    async fn enqueue_job(&self, job: NewJob) -> Result<(), StorageError>;

    /// Enqueues the job for one slot of a schedule, unless that slot was enqueued already (by
    /// this or any other worker): `true` when this call enqueued it.
    ///
    /// # Errors
    /// When the write fails (nothing is written then).
    async fn enqueue_scheduled(
        &self,
        schedule: &str,
        slot: OffsetDateTime,
        job: NewJob,
    ) -> Result<bool, StorageError>;

    /// Claims up to `claim.limit` jobs that are due, or running with an expired lease (their
    /// worker died), oldest `run_at` first; each gets one more attempt and a lease until
    /// `claim.now + claim.lease` under one fresh token. A job whose lease expired after its
    /// last allowed attempt is made dead instead. Jobs claimed by other workers meanwhile are
    /// skipped, never waited for.
    ///
    /// # Errors
    /// When the statement fails (nothing is claimed then).
    async fn claim_jobs(&self, claim: Claim) -> Result<Vec<ClaimedJob>, StorageError>;

    /// Deletes a job that ran to completion; `false` when the lease is not held any more.
    ///
    /// # Errors
    /// When the statement fails.
    async fn complete_job(&self, id: Uuid, lease: Uuid) -> Result<bool, StorageError>;

    /// Records a failed attempt: queued again at `retry_at`, or dead when it was the last
    /// attempt or `retry_at` is `None` (a permanent failure).
    ///
    /// # Errors
    /// When the statement fails.
    async fn fail_job(
        &self,
        id: Uuid,
        lease: Uuid,
        error: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> Result<FailOutcome, StorageError>;

    /// Gives a claimed job back untouched (its attempt not counted), due at once: for a worker
    /// that stops before running it. `false` when the lease is not held any more.
    ///
    /// # Errors
    /// When the statement fails.
    async fn release_job(&self, id: Uuid, lease: Uuid) -> Result<bool, StorageError>;

    /// Extends a held lease to `until`; `false` when it is not held any more.
    ///
    /// # Errors
    /// When the statement fails.
    async fn renew_lease(
        &self,
        id: Uuid,
        lease: Uuid,
        until: OffsetDateTime,
    ) -> Result<bool, StorageError>;

    /// Up to `limit` jobs in `state`, oldest `run_at` first.
    ///
    /// # Errors
    /// When the query fails.
    async fn jobs_in_state(&self, state: JobState, limit: u32) -> Result<Vec<Job>, StorageError>;

    /// One job.
    ///
    /// # Errors
    /// When the query fails.
    async fn job(&self, id: Uuid) -> Result<Option<Job>, StorageError>;

    /// Queues a dead job again with its attempts reset, due at `now`; `false` when there is no
    /// dead job with this id.
    ///
    /// # Errors
    /// When the statement fails.
    async fn retry_dead_job(&self, id: Uuid, now: OffsetDateTime) -> Result<bool, StorageError>;

    /// Counts by kind and state, and the oldest due job per kind, at `now`.
    ///
    /// # Errors
    /// When the query fails.
    async fn job_stats(&self, now: OffsetDateTime) -> Result<Vec<JobKindStats>, StorageError>;

    /// Forgets schedule slots before `before` (their jobs ran long ago); returns how many.
    ///
    /// # Errors
    /// When the statement fails.
    async fn purge_job_slots(&self, before: OffsetDateTime) -> Result<u64, StorageError>;
}

/// The kind of the job that delivers one outbox e-mail; its payload is `{"email_id": …}`.
pub const EMAIL_JOB_KIND: &str = "email.send";
/// Attempts an outbox e-mail gets before its job is dead (with the default backoff, about a
/// day of retries).
pub const EMAIL_MAX_ATTEMPTS: i32 = 12;

/// The delivery job for outbox message `email_id`.
pub fn email_job(email_id: Uuid, trace_context: HashMap<String, String>) -> NewJob {
    NewJob::new(
        EMAIL_JOB_KIND,
        serde_json::json!({ "email_id": email_id }),
        EMAIL_MAX_ATTEMPTS,
    )
    .traced(trace_context)
}

/// Unix milliseconds of a moment (saturating far outside the representable range).
pub(crate) fn to_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The moment `ms` Unix milliseconds name.
pub(crate) fn from_ms(ms: i64) -> Result<OffsetDateTime, StorageError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| StorageError::Corrupt(format!("job time {ms}: {e}")))
}

/// The stored form of a trace context: a JSON object, or NULL when empty.
pub(crate) fn trace_column(context: &HashMap<String, String>) -> Option<String> {
    if context.is_empty() {
        None
    } else {
        serde_json::to_string(context).ok()
    }
}

/// The columns every job query selects, in [`JobRow`]'s order.
pub(crate) const JOB_COLUMNS: &str = "id, kind, payload, state, attempts, max_attempts, \
     run_at_ms, lease_until_ms, last_error, trace_context, created_at_ms";

/// A `jobs` row as both backends return it.
#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: Uuid,
    kind: String,
    payload: sqlx::types::Json<serde_json::Value>,
    state: String,
    attempts: i32,
    max_attempts: i32,
    run_at_ms: i64,
    lease_until_ms: Option<i64>,
    last_error: Option<String>,
    trace_context: Option<String>,
    created_at_ms: i64,
}

impl JobRow {
    pub(crate) fn into_job(self) -> Result<Job, StorageError> {
        let state = JobState::parse(&self.state)
            .ok_or_else(|| StorageError::Corrupt(format!("job state {:?}", self.state)))?;
        let trace_context = match self.trace_context {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| StorageError::Corrupt(format!("job trace context: {e}")))?,
            None => HashMap::new(),
        };
        Ok(Job {
            id: self.id,
            kind: self.kind,
            payload: self.payload.0,
            state,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            run_at: from_ms(self.run_at_ms)?,
            lease_until: self.lease_until_ms.map(from_ms).transpose()?,
            last_error: self.last_error,
            trace_context,
            created_at: from_ms(self.created_at_ms)?,
        })
    }
}

/// A stats row: kind, state, count, due count, oldest due `run_at_ms`.
#[derive(sqlx::FromRow)]
pub(crate) struct JobStatsRow {
    kind: String,
    state: String,
    total: i64,
    due: i64,
    oldest_due_ms: Option<i64>,
}

/// Folds per-(kind, state) rows into one [`JobKindStats`] per kind, sorted by kind.
pub(crate) fn fold_stats(rows: Vec<JobStatsRow>) -> Result<Vec<JobKindStats>, StorageError> {
    let mut by_kind: std::collections::BTreeMap<String, JobKindStats> =
        std::collections::BTreeMap::new();
    for row in rows {
        let entry = by_kind
            .entry(row.kind.clone())
            .or_insert_with(|| JobKindStats {
                kind: row.kind.clone(),
                queued: 0,
                due: 0,
                running: 0,
                dead: 0,
                oldest_due: None,
            });
        match JobState::parse(&row.state) {
            Some(JobState::Queued) => {
                entry.queued = row.total;
                entry.due = row.due;
                entry.oldest_due = row.oldest_due_ms.map(from_ms).transpose()?;
            }
            Some(JobState::Running) => entry.running = row.total,
            Some(JobState::Dead) => entry.dead = row.total,
            None => return Err(StorageError::Corrupt(format!("job state {:?}", row.state))),
        }
    }
    Ok(by_kind.into_values().collect())
}

/// The message kept for a job that a dead worker held through its last allowed attempt.
pub(crate) const LEASE_EXPIRED_ERROR: &str =
    "the lease expired during the last allowed attempt (the worker stopped or stalled)";
