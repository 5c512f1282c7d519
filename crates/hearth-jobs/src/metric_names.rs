//! The job runtime's metrics.

/// Gauge: queued jobs (due or not), by `kind`.
pub const QUEUE_DEPTH: &str = "hearth_jobs_queued";
/// Gauge: seconds since the oldest due job of `kind` became due (0 when none is due).
pub const OLDEST_DUE_AGE: &str = "hearth_jobs_oldest_due_age_seconds";
/// Gauge: running jobs, by `kind`.
pub const RUNNING: &str = "hearth_jobs_running";
/// Gauge: dead letters (jobs out of attempts), by `kind`.
pub const DEAD: &str = "hearth_jobs_dead";
/// Counter: attempts finished, by `kind` and `outcome` (`ok`, `retry`, `dead`, `released`,
/// `lease_lost`).
pub const RUNS: &str = "hearth_jobs_runs_total";
/// Counter: failed attempts (retried or dead), by `kind`.
pub const FAILURES: &str = "hearth_jobs_failures_total";
/// Histogram: seconds an attempt ran, by `kind`.
pub const RUN_DURATION: &str = "hearth_jobs_run_duration_seconds";
/// Counter: schedule slots this worker enqueued, by `schedule`.
pub const SLOTS: &str = "hearth_jobs_schedule_slots_total";

/// Registers help text for every metric above.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(QUEUE_DEPTH, "Queued jobs (due or not), by kind");
    describe_gauge!(
        OLDEST_DUE_AGE,
        Unit::Seconds,
        "Age of the oldest due job, by kind (0 when none is due)"
    );
    describe_gauge!(RUNNING, "Jobs running under a lease, by kind");
    describe_gauge!(DEAD, "Dead letters: jobs out of attempts, by kind");
    describe_counter!(RUNS, "Job attempts finished, by kind and outcome");
    describe_counter!(FAILURES, "Failed job attempts (retried or dead), by kind");
    describe_histogram!(RUN_DURATION, Unit::Seconds, "Job attempt run time, by kind");
    describe_counter!(SLOTS, "Schedule slots enqueued by this worker, by schedule");
}
