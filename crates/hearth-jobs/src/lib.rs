//! Hearth's job runtime: runs the durable queue that `hearth-storage` keeps.
//!
//! Jobs are rows written in the same transaction as the change that causes them (a password
//! reset writes its e-mail's job), so a job exists if and only if its cause was committed. A
//! [`Runner`] claims due jobs under a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite:
//! its single writer), runs each kind's [`Handler`] inside a span that continues the trace of
//! the request that enqueued it, renews the lease while the handler runs, and records the
//! outcome: done jobs are deleted, failures are retried after an exponential [`Backoff`] with
//! jitter, and a job out of attempts is kept as a dead letter with its last error. A worker
//! that dies mid-job loses its lease, and another worker runs the job again; handlers are
//! written to be idempotent so the effect happens once.
//!
//! # Layout
//! - [`Runner`] and [`RunnerSettings`]: [`Runner::run`] until shutdown, [`Runner::run_once`]
//!   to drain what is due (tests, cron, `hearth-worker run-once`), [`Runner::step`] for one
//!   batch.
//! - [`Handler`], [`JobError`] and [`Registry`]: what each job kind does.
//! - [`Scheduled`]: cron-scheduled jobs; each slot is enqueued once across N workers.
//! - [`Backoff`]: the delay between attempts.
//! - [`metric_names`]: queue depth, oldest due job, run time, failures, dead letters.
//!
//! # Example
//! ```no_run
//! # async fn example(db: std::sync::Arc<dyn hearth_storage::Database>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use hearth_jobs::{Handler, JobError, Registry, Runner, RunnerSettings, Scheduled};
//!
//! struct Hello;
//!
//! #[async_trait]
//! impl Handler for Hello {
//!     async fn run(&self, job: &hearth_storage::Job) -> Result<(), JobError> {
//!         tracing::info!(payload = %job.payload, "hello");
//!         Ok(())
//!     }
//! }
//!
//! let registry = Registry::new().with("hello", Arc::new(Hello));
//! let runner = Runner::new(db, registry, RunnerSettings::default())
//!     .with_schedules(vec![Scheduled::new("hourly-hello", "0 * * * *", "hello")?]);
//! let report = runner.run_once().await?;
//! println!("{} attempts", report.attempts());
//! # Ok(()) }
//! ```
//!
//! # What it does not do
//! No SQL (the queue's statements are in `hearth-storage`) and no job of its own: the
//! application registers the handlers (`hearth-app`'s `jobs`). Delivery is at least once:
//! exactly-once effects are the handlers' business.

mod backoff;
mod handler;
pub mod metric_names;
mod runner;
mod schedule;

pub use backoff::Backoff;
pub use handler::{Handler, JobError, Registry};
pub use runner::{Outcome, RunReport, Runner, RunnerSettings};
pub use schedule::{ScheduleError, Scheduled};
