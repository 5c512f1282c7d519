//! The job queue on PostgreSQL: claims take due rows with `FOR UPDATE SKIP LOCKED`, so
//! concurrent workers never wait on, or take, each other's jobs.

use async_trait::async_trait;
use sqlx::PgConnection;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::PostgresDatabase;
use crate::StorageError;
use crate::jobs::{
    Claim, ClaimedJob, FailOutcome, JOB_COLUMNS, Job, JobKindStats, JobRepository, JobRow,
    JobState, JobStatsRow, LEASE_EXPIRED_ERROR, NewJob, fold_stats, to_ms, trace_column,
};

/// Inserts `job` on `conn`: inside the caller's transaction when it is one (the outbox).
pub(crate) async fn insert_job(conn: &mut PgConnection, job: &NewJob) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at_ms, \
         trace_context, created_at_ms) VALUES ($1, $2, $3, 'queued', 0, $4, $5, $6, $7)",
    )
    .bind(job.id)
    .bind(&job.kind)
    .bind(Json(&job.payload))
    .bind(job.max_attempts.max(1))
    .bind(to_ms(job.run_at))
    .bind(trace_column(&job.trace_context))
    .bind(to_ms(OffsetDateTime::now_utc()))
    .execute(conn)
    .await?;
    Ok(())
}

fn lease_until(claim: &Claim) -> i64 {
    let lease_ms = i64::try_from(claim.lease.as_millis()).unwrap_or(i64::MAX);
    to_ms(claim.now).saturating_add(lease_ms)
}

#[async_trait]
impl JobRepository for PostgresDatabase {
    #[tracing::instrument(skip_all, fields(kind = %job.kind), err)]
    async fn enqueue_job(&self, job: NewJob) -> Result<(), StorageError> {
        let mut conn = self.pool.acquire().await?;
        insert_job(&mut conn, &job).await
    }

    #[tracing::instrument(skip_all, fields(schedule), err)]
    async fn enqueue_scheduled(
        &self,
        schedule: &str,
        slot: OffsetDateTime,
        job: NewJob,
    ) -> Result<bool, StorageError> {
        let mut tx = self.pool.begin().await?;
        let taken = sqlx::query(
            "INSERT INTO job_slots (schedule, slot_ms, job_id) VALUES ($1, $2, $3) \
             ON CONFLICT (schedule, slot_ms) DO NOTHING",
        )
        .bind(schedule)
        .bind(to_ms(slot))
        .bind(job.id)
        .execute(&mut *tx)
        .await?;
        if taken.rows_affected() == 0 {
            return Ok(false);
        }
        insert_job(&mut tx, &job).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all, fields(limit = claim.limit), err)]
    async fn claim_jobs(&self, claim: Claim) -> Result<Vec<ClaimedJob>, StorageError> {
        let now = to_ms(claim.now);
        let token = Uuid::now_v7();
        let mut tx = self.pool.begin().await?;
        // A job whose worker died during its last allowed attempt gets no further one.
        sqlx::query(
            "UPDATE jobs SET state = 'dead', lease_token = NULL, lease_until_ms = NULL, \
             last_error = $2 \
             WHERE id IN (SELECT id FROM jobs WHERE state = 'running' AND lease_until_ms <= $1 \
             AND attempts >= max_attempts FOR UPDATE SKIP LOCKED)",
        )
        .bind(now)
        .bind(LEASE_EXPIRED_ERROR)
        .execute(&mut *tx)
        .await?;
        // `picked.id` would make a bare `id` ambiguous in RETURNING, hence `jobs.id`.
        let rows: Vec<JobRow> = sqlx::query_as(
            // Each half walks its own partial index in order and stops at `$2` rows; one
            // `WHERE … OR …` over both states scanned and sorted every due job on each claim.
            "WITH due AS MATERIALIZED ( \
               SELECT id, run_at_ms FROM jobs WHERE state = 'queued' AND run_at_ms <= $1 \
               ORDER BY run_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED), \
             expired AS MATERIALIZED ( \
               SELECT id, run_at_ms FROM jobs \
               WHERE state = 'running' AND lease_until_ms <= $1 \
               ORDER BY lease_until_ms LIMIT $2 FOR UPDATE SKIP LOCKED), \
             picked AS ( \
               SELECT id FROM (SELECT id, run_at_ms FROM due \
                               UNION ALL SELECT id, run_at_ms FROM expired) AS candidates \
               ORDER BY run_at_ms LIMIT $2) \
             UPDATE jobs SET state = 'running', attempts = jobs.attempts + 1, \
               lease_token = $3, lease_until_ms = $4 \
             FROM picked WHERE jobs.id = picked.id \
             RETURNING jobs.id, kind, payload, state, attempts, max_attempts, run_at_ms, \
               lease_until_ms, last_error, trace_context, created_at_ms",
        )
        .bind(now)
        .bind(i64::from(claim.limit))
        .bind(token)
        .bind(lease_until(&claim))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut claimed = rows
            .into_iter()
            .map(|row| row.into_job().map(|job| ClaimedJob { job, lease: token }))
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|c| (c.job.run_at, c.job.id));
        Ok(claimed)
    }

    #[tracing::instrument(skip_all, fields(job_id = %id), err)]
    async fn complete_job(&self, id: Uuid, lease: Uuid) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "DELETE FROM jobs WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(lease)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, fields(job_id = %id), err)]
    async fn fail_job(
        &self,
        id: Uuid,
        lease: Uuid,
        error: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> Result<FailOutcome, StorageError> {
        let state: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET \
               state = CASE WHEN $4::BIGINT IS NULL OR attempts >= max_attempts \
                       THEN 'dead' ELSE 'queued' END, \
               run_at_ms = COALESCE($4::BIGINT, run_at_ms), \
               last_error = $3, lease_token = NULL, lease_until_ms = NULL \
             WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING state",
        )
        .bind(id)
        .bind(lease)
        .bind(error)
        .bind(retry_at.map(to_ms))
        .fetch_optional(&self.pool)
        .await?;
        Ok(match state.as_deref() {
            None => FailOutcome::LeaseLost,
            Some("dead") => FailOutcome::Dead,
            Some(_) => FailOutcome::Retrying,
        })
    }

    #[tracing::instrument(skip_all, fields(job_id = %id), err)]
    async fn release_job(&self, id: Uuid, lease: Uuid) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = GREATEST(attempts - 1, 0), \
             lease_token = NULL, lease_until_ms = NULL \
             WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(lease)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, fields(job_id = %id), err)]
    async fn renew_lease(
        &self,
        id: Uuid,
        lease: Uuid,
        until: OffsetDateTime,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until_ms = $3 \
             WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(lease)
        .bind(to_ms(until))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, err)]
    async fn jobs_in_state(&self, state: JobState, limit: u32) -> Result<Vec<Job>, StorageError> {
        let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state = $1 ORDER BY run_at_ms, id LIMIT $2"
        )))
        .bind(state.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(JobRow::into_job).collect()
    }

    #[tracing::instrument(skip_all, fields(job_id = %id), err)]
    async fn job(&self, id: Uuid) -> Result<Option<Job>, StorageError> {
        let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(JobRow::into_job).transpose()
    }

    #[tracing::instrument(skip_all, fields(job_id = %id), err)]
    async fn retry_dead_job(&self, id: Uuid, now: OffsetDateTime) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at_ms = $2 \
             WHERE id = $1 AND state = 'dead'",
        )
        .bind(id)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, err)]
    async fn job_stats(&self, now: OffsetDateTime) -> Result<Vec<JobKindStats>, StorageError> {
        let rows: Vec<JobStatsRow> = sqlx::query_as(
            "SELECT kind, state, count(*) AS total, \
               count(*) FILTER (WHERE run_at_ms <= $1) AS due, \
               min(run_at_ms) FILTER (WHERE run_at_ms <= $1) AS oldest_due_ms \
             FROM jobs GROUP BY kind, state",
        )
        .bind(to_ms(now))
        .fetch_all(&self.pool)
        .await?;
        fold_stats(rows)
    }

    #[tracing::instrument(skip_all, err)]
    async fn purge_job_slots(&self, before: OffsetDateTime) -> Result<u64, StorageError> {
        let done = sqlx::query("DELETE FROM job_slots WHERE slot_ms < $1")
            .bind(to_ms(before))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
