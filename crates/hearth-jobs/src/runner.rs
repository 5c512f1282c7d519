//! The runner: claims due jobs, runs their handlers, records each outcome, enqueues schedule
//! slots, and stops gracefully.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_storage::{ClaimedJob, FailOutcome, JobRepository, StorageError};
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::backoff::Backoff;
use crate::handler::{JobError, Registry};
use crate::metric_names as names;
use crate::schedule::Scheduled;

/// How a runner claims and runs jobs.
#[derive(Debug, Clone, Copy)]
pub struct RunnerSettings {
    /// How long a claim holds a job; renewed every third of it while the handler runs, so
    /// only a worker that died (or stalled) loses its jobs to another.
    pub lease: Duration,
    /// Jobs claimed at once, and run concurrently.
    pub batch: u32,
    /// The pause after finding nothing due.
    pub idle_poll: Duration,
    /// After shutdown is requested, how long jobs in hand may take to finish before they are
    /// released (given back untouched) for another worker.
    pub shutdown_grace: Duration,
    /// Delays between attempts.
    pub backoff: Backoff,
    /// How often the queue's gauges are refreshed.
    pub stats_every: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            batch: 4,
            idle_poll: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
            backoff: Backoff::default(),
            stats_every: Duration::from_secs(15),
        }
    }
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Done; the job is deleted.
    Completed,
    /// Failed; queued again after its backoff.
    Retrying,
    /// Failed its last attempt (or permanently); kept as a dead letter.
    Dead,
    /// Not finished before shutdown's grace ran out; given back untouched.
    Released,
    /// Another worker holds the job now (this one's lease expired); nothing recorded.
    LeaseLost,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Completed => "ok",
            Self::Retrying => "retry",
            Self::Dead => "dead",
            Self::Released => "released",
            Self::LeaseLost => "lease_lost",
        }
    }
}

/// What [`Runner::run_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Schedule slots enqueued.
    pub slots: usize,
    /// Attempts by outcome.
    pub outcomes: HashMap<Outcome, usize>,
}

impl RunReport {
    /// Attempts that ended as `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.outcomes.get(&outcome).copied().unwrap_or(0)
    }

    /// Attempts in all.
    pub fn attempts(&self) -> usize {
        self.outcomes.values().sum()
    }
}

/// Claims jobs from the queue and runs them. Cheap to share behind an `Arc`; several runners
/// (in one process or many) may work one queue.
pub struct Runner {
    queue: Arc<dyn JobRepository>,
    registry: Registry,
    schedules: Vec<Scheduled>,
    settings: RunnerSettings,
    /// The slot each schedule last enqueued (or found taken) from this runner, so each slot
    /// costs one insert per runner rather than one per poll.
    seen_slots: Mutex<HashMap<String, OffsetDateTime>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("registry", &self.registry)
            .field("schedules", &self.schedules)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// A runner of `registry`'s handlers over `queue`.
    pub fn new(
        queue: Arc<dyn JobRepository>,
        registry: Registry,
        settings: RunnerSettings,
    ) -> Self {
        names::describe();
        Self {
            queue,
            registry,
            schedules: Vec::new(),
            settings,
            seen_slots: Mutex::new(HashMap::new()),
        }
    }

    /// The same runner, also enqueueing these schedules' slots.
    #[must_use]
    pub fn with_schedules(mut self, schedules: Vec<Scheduled>) -> Self {
        self.schedules = schedules;
        self
    }

    /// The schedules it enqueues.
    pub fn schedules(&self) -> &[Scheduled] {
        &self.schedules
    }

    /// Enqueues the latest slot at or before `now` of every schedule, unless it was enqueued
    /// already (by any worker); returns how many this call enqueued. A slot missed while no
    /// worker ran is caught up once, by its latest slot.
    ///
    /// # Errors
    /// When the queue cannot be written; slots not reached are tried on the next call.
    pub async fn enqueue_due_slots(&self, now: OffsetDateTime) -> Result<usize, StorageError> {
        let mut enqueued = 0;
        for schedule in &self.schedules {
            let Some(slot) = schedule.latest_slot(now) else {
                continue;
            };
            if self.seen(&schedule.name) == Some(slot) {
                continue;
            }
            let won = self
                .queue
                .enqueue_scheduled(&schedule.name, slot, schedule.job(slot))
                .await?;
            if won {
                enqueued += 1;
                metrics::counter!(names::SLOTS, "schedule" => schedule.name.clone()).increment(1);
                tracing::info!(schedule = %schedule.name, kind = %schedule.kind, %slot, "schedule slot enqueued");
            }
            if let Ok(mut seen) = self.seen_slots.lock() {
                seen.insert(schedule.name.clone(), slot);
            }
        }
        Ok(enqueued)
    }

    fn seen(&self, schedule: &str) -> Option<OffsetDateTime> {
        self.seen_slots
            .lock()
            .ok()
            .and_then(|seen| seen.get(schedule).copied())
    }

    /// Claims one batch of due jobs and runs it to the end; returns each attempt's outcome
    /// (empty when nothing was due).
    ///
    /// # Errors
    /// When the claim fails. A failure to record an outcome is logged; the job's lease then
    /// expires and another attempt runs it.
    pub async fn step(&self) -> Result<Vec<Outcome>, StorageError> {
        self.step_until(None).await
    }

    async fn step_until(
        &self,
        stop: Option<&watch::Receiver<bool>>,
    ) -> Result<Vec<Outcome>, StorageError> {
        let claimed = self
            .queue
            .claim_jobs(hearth_storage::Claim {
                now: OffsetDateTime::now_utc(),
                lease: self.settings.lease,
                limit: self.settings.batch.max(1),
            })
            .await?;
        let attempts = claimed
            .into_iter()
            .map(|job| self.execute(job, stop.cloned()));
        Ok(futures_util::future::join_all(attempts).await)
    }

    /// Enqueues due schedule slots, then runs every due job until none is left, and returns
    /// what happened: for tests, cron and operators (`hearth-worker run-once`). Jobs that fail
    /// wait for their backoff, so they are not retried within one call.
    ///
    /// # Errors
    /// When the queue cannot be read or written.
    pub async fn run_once(&self) -> Result<RunReport, StorageError> {
        let mut report = RunReport {
            slots: self.enqueue_due_slots(OffsetDateTime::now_utc()).await?,
            ..RunReport::default()
        };
        loop {
            let outcomes = self.step().await?;
            if outcomes.is_empty() {
                break;
            }
            for outcome in outcomes {
                *report.outcomes.entry(outcome).or_default() += 1;
            }
        }
        self.record_stats().await?;
        Ok(report)
    }

    /// Runs until `shutdown` completes: enqueues schedule slots, claims and runs jobs, and
    /// refreshes the queue's gauges. Once shutdown is requested it claims nothing more; jobs in
    /// hand get [`RunnerSettings::shutdown_grace`] to finish and are then released.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop) = watch::channel(false);
        let work = async {
            let mut last_stats: Option<Instant> = None;
            loop {
                if *stop.borrow() {
                    break;
                }
                if let Err(error) = self.enqueue_due_slots(OffsetDateTime::now_utc()).await {
                    tracing::warn!(%error, "schedule slots not enqueued; retrying on the next poll");
                }
                if last_stats.is_none_or(|at| at.elapsed() >= self.settings.stats_every) {
                    if let Err(error) = self.record_stats().await {
                        tracing::warn!(%error, "job queue statistics not read");
                    }
                    last_stats = Some(Instant::now());
                }
                let idle = match self.step_until(Some(&stop)).await {
                    Ok(outcomes) => outcomes.is_empty(),
                    Err(error) => {
                        tracing::warn!(%error, "claiming jobs failed; retrying after a pause");
                        true
                    }
                };
                if idle {
                    let mut stop = stop.clone();
                    tokio::select! {
                        () = tokio::time::sleep(self.settings.idle_poll) => {}
                        _ = stop.wait_for(|stopped| *stopped) => {}
                    }
                }
            }
            tracing::info!("job runner stopped");
        };
        tokio::pin!(work);
        tokio::select! {
            () = &mut work => return,
            () = shutdown => {
                tracing::info!("job runner stopping: no new claims; jobs in hand finish or are released");
                let _ = stop_tx.send(true);
            }
        }
        work.await;
    }

    /// Refreshes the queue gauges (depth, oldest due job's age, running, dead) for every kind
    /// in the queue or the registry.
    ///
    /// # Errors
    /// When the queue cannot be read.
    pub async fn record_stats(&self) -> Result<(), StorageError> {
        let now = OffsetDateTime::now_utc();
        let stats = self.queue.job_stats(now).await?;
        for kind in self.registry.kinds() {
            if !stats.iter().any(|s| s.kind == kind) {
                for name in [
                    names::QUEUE_DEPTH,
                    names::OLDEST_DUE_AGE,
                    names::RUNNING,
                    names::DEAD,
                ] {
                    metrics::gauge!(name, "kind" => kind.to_owned()).set(0.0);
                }
            }
        }
        for s in stats {
            let age = s
                .oldest_due
                .map_or(0.0, |at| (now - at).as_seconds_f64().max(0.0));
            metrics::gauge!(names::QUEUE_DEPTH, "kind" => s.kind.clone()).set(s.queued as f64);
            metrics::gauge!(names::OLDEST_DUE_AGE, "kind" => s.kind.clone()).set(age);
            metrics::gauge!(names::RUNNING, "kind" => s.kind.clone()).set(s.running as f64);
            metrics::gauge!(names::DEAD, "kind" => s.kind).set(s.dead as f64);
        }
        Ok(())
    }

    /// Runs one claimed job to an outcome, renewing its lease meanwhile.
    async fn execute(&self, claimed: ClaimedJob, stop: Option<watch::Receiver<bool>>) -> Outcome {
        let ClaimedJob { job, lease } = claimed;
        let span = tracing::info_span!(
            "job",
            job.kind = %job.kind,
            job.id = %job.id,
            job.attempt = job.attempts,
            job.max_attempts = job.max_attempts,
        );
        // The job's span continues the trace of the request that enqueued it.
        hearth_observability::propagation::extract_into(&span, &job.trace_context);
        let started = Instant::now();
        let result = match self.registry.get(&job.kind) {
            None => Some(Err(JobError::Permanent(format!(
                "no handler for job kind {:?} in this worker",
                job.kind
            )))),
            Some(handler) => {
                let work = handler.run(&job).instrument(span.clone());
                tokio::pin!(work);
                let abandon = async {
                    match stop {
                        Some(mut stop) => {
                            if stop.wait_for(|stopped| *stopped).await.is_err() {
                                std::future::pending::<()>().await;
                            }
                            tokio::time::sleep(self.settings.shutdown_grace).await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::pin!(abandon);
                let mut renew = tokio::time::interval(self.settings.lease / 3);
                renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                renew.tick().await;
                loop {
                    tokio::select! {
                        result = &mut work => break Some(result),
                        () = &mut abandon => break None,
                        _ = renew.tick() => {
                            let until = OffsetDateTime::now_utc() + self.settings.lease;
                            match self.queue.renew_lease(job.id, lease, until).await {
                                Ok(true) => {}
                                Ok(false) => tracing::warn!(parent: &span, "lease lost while running; another worker may run the job too"),
                                Err(error) => tracing::warn!(parent: &span, %error, "lease not renewed"),
                            }
                        }
                    }
                }
            }
        };
        let elapsed = started.elapsed().as_secs_f64();
        metrics::histogram!(names::RUN_DURATION, "kind" => job.kind.clone()).record(elapsed);
        let outcome = self
            .record(&job, lease, result)
            .instrument(span.clone())
            .await;
        metrics::counter!(names::RUNS, "kind" => job.kind.clone(), "outcome" => outcome.label())
            .increment(1);
        outcome
    }

    async fn record(
        &self,
        job: &hearth_storage::Job,
        lease: uuid::Uuid,
        result: Option<Result<(), JobError>>,
    ) -> Outcome {
        let recorded = match result {
            None => match self.queue.release_job(job.id, lease).await {
                Ok(true) => {
                    tracing::info!("job released at shutdown");
                    Ok(Outcome::Released)
                }
                Ok(false) => Ok(Outcome::LeaseLost),
                Err(error) => Err(error),
            },
            Some(Ok(())) => match self.queue.complete_job(job.id, lease).await {
                Ok(true) => {
                    tracing::debug!("job done");
                    Ok(Outcome::Completed)
                }
                Ok(false) => Ok(Outcome::LeaseLost),
                Err(error) => Err(error),
            },
            Some(Err(error)) => {
                metrics::counter!(names::FAILURES, "kind" => job.kind.clone()).increment(1);
                let (message, retry_at) = match &error {
                    JobError::Retry(message) => {
                        let delay = self.settings.backoff.delay(job.attempts);
                        (message, Some(OffsetDateTime::now_utc() + delay))
                    }
                    JobError::Permanent(message) => (message, None),
                };
                match self.queue.fail_job(job.id, lease, message, retry_at).await {
                    Ok(FailOutcome::Retrying) => {
                        tracing::warn!(error = %message, retry_at = ?retry_at, "job attempt failed; retrying later");
                        Ok(Outcome::Retrying)
                    }
                    Ok(FailOutcome::Dead) => {
                        tracing::error!(error = %message, attempts = job.attempts, "job failed for good; kept as a dead letter");
                        Ok(Outcome::Dead)
                    }
                    Ok(FailOutcome::LeaseLost) => Ok(Outcome::LeaseLost),
                    Err(error) => Err(error),
                }
            }
        };
        match recorded {
            Ok(Outcome::LeaseLost) => {
                tracing::warn!(
                    "the job's lease expired before its outcome was recorded; another worker holds it"
                );
                Outcome::LeaseLost
            }
            Ok(outcome) => outcome,
            Err(error) => {
                // The lease will expire and the job run again: handlers are idempotent.
                tracing::error!(%error, "job outcome not recorded; it runs again after its lease");
                Outcome::LeaseLost
            }
        }
    }
}
