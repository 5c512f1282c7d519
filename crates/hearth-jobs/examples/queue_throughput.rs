//! Jobs per second through the durable queue: `jobs` no-op jobs enqueued, then drained by
//! `workers` runners (each claims `batch` at a time under a lease, runs them, deletes them),
//! timed from the first claim to the empty queue. `bench/queue.sh` runs it beside a pgbench
//! script doing the same claim-and-delete with `FOR UPDATE SKIP LOCKED`.
//!
//! ```sh
//! HEARTH_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/hearth_jobs_bench \
//!   cargo run --release -p hearth-jobs --example queue_throughput -- 20000 2 1
//! ```

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops on the first error"
)]

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use hearth_jobs::{Handler, JobError, Registry, Runner, RunnerSettings};
use hearth_storage::{DatabaseSettings, Job, JobRepository, NewJob};

struct Nothing;

#[async_trait]
impl Handler for Nothing {
    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        Ok(())
    }
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .map_or(default, |a| a.parse().expect("a number"))
}

#[tokio::main]
async fn main() {
    let url = std::env::var("HEARTH_BENCH_DATABASE_URL").expect("HEARTH_BENCH_DATABASE_URL");
    let (jobs, workers, batch) = (arg(1, 20_000), arg(2, 1), arg(3, 1));
    let settings = DatabaseSettings {
        url: url.into(),
        max_connections: 16,
        ..DatabaseSettings::default()
    };
    let db = hearth_storage::connect(&settings).await.unwrap();
    db.migrate().await.unwrap();
    let queue: Arc<dyn JobRepository> = db.clone();
    // The table must start empty: a previous run's leftovers would be counted.
    assert!(
        queue
            .job_stats(time::OffsetDateTime::now_utc())
            .await
            .unwrap()
            .is_empty(),
        "the jobs table is not empty"
    );

    let past = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let enqueuers: Vec<_> = (0..8)
        .map(|i| {
            let queue = queue.clone();
            tokio::spawn(async move {
                for _ in (i..jobs).step_by(8) {
                    let job = NewJob::new("bench.noop", serde_json::json!({}), 3).at(past);
                    queue.enqueue_job(job).await.unwrap();
                }
            })
        })
        .collect();
    for enqueuer in enqueuers {
        enqueuer.await.unwrap();
    }

    let runner_settings = RunnerSettings {
        batch: u32::try_from(batch).unwrap(),
        ..RunnerSettings::default()
    };
    let started = Instant::now();
    let runners: Vec<_> = (0..workers)
        .map(|_| {
            let runner = Runner::new(
                queue.clone(),
                Registry::new().with("bench.noop", Arc::new(Nothing)),
                runner_settings,
            );
            tokio::spawn(async move {
                let mut done = 0usize;
                loop {
                    let outcomes = runner.step().await.unwrap();
                    if outcomes.is_empty() {
                        return done;
                    }
                    done += outcomes.len();
                }
            })
        })
        .collect();
    let mut done = 0;
    for runner in runners {
        done += runner.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(done as u64, jobs, "every job ran once");
    println!(
        "runner workers={workers} batch={batch} jobs={jobs} seconds={elapsed:.2} jobs_per_s={:.0}",
        jobs as f64 / elapsed
    );
}
