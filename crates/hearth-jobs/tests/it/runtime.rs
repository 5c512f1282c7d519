//! A [`Runner`] over a real queue: what each outcome does to the job, and to the effect.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hearth_jobs::{
    Backoff, Handler, JobError, Outcome, Registry, Runner, RunnerSettings, Scheduled,
};
use hearth_storage::{Job, JobRepository, JobState, NewJob};
use hearth_test_support::{TestDb, backend_suite};
use tokio::sync::Notify;

backend_suite!(
    a_flaky_job_is_retried_until_it_succeeds,
    a_job_out_of_attempts_is_kept_dead_with_its_error,
    a_worker_killed_mid_job_leaves_it_to_another_and_it_takes_effect_once,
    a_long_job_keeps_its_lease_while_another_worker_polls,
    shutdown_waits_for_a_job_that_finishes_within_the_grace,
    shutdown_releases_a_job_that_outlives_the_grace,
    a_schedule_slot_runs_once_across_two_runners,
    a_kind_without_a_handler_dies_at_once,
    a_job_runs_in_the_trace_of_the_request_that_enqueued_it,
);

fn settings() -> RunnerSettings {
    RunnerSettings {
        lease: Duration::from_secs(30),
        batch: 4,
        idle_poll: Duration::from_millis(20),
        shutdown_grace: Duration::from_secs(5),
        // No wait between attempts, so run_once drains retries too.
        backoff: Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
        },
        stats_every: Duration::from_secs(60),
    }
}

fn queue(t: &TestDb) -> Arc<dyn JobRepository> {
    t.db.clone()
}

/// Fails its first `failures` attempts, then counts one effect per success.
struct Flaky {
    failures: usize,
    attempts: AtomicUsize,
    effects: AtomicUsize,
}

impl Flaky {
    fn new(failures: usize) -> Arc<Self> {
        Arc::new(Self {
            failures,
            attempts: AtomicUsize::new(0),
            effects: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl Handler for Flaky {
    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        if self.attempts.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(JobError::Retry("connection refused".to_owned()));
        }
        self.effects.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Waits until released by the test (or forever), then counts one effect.
struct Blocking {
    started: Notify,
    release: Notify,
    effects: AtomicUsize,
}

impl Blocking {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Notify::new(),
            release: Notify::new(),
            effects: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl Handler for Blocking {
    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        self.started.notify_one();
        self.release.notified().await;
        self.effects.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn enqueue(t: &TestDb, kind: &str, max_attempts: i32) -> NewJob {
    let job = NewJob::new(kind, serde_json::json!({}), max_attempts);
    t.db.enqueue_job(job.clone()).await.unwrap();
    job
}

async fn a_flaky_job_is_retried_until_it_succeeds(t: &TestDb) {
    let flaky = Flaky::new(2);
    let job = enqueue(t, "flaky", 5).await;
    let runner = Runner::new(
        queue(t),
        Registry::new().with("flaky", flaky.clone()),
        settings(),
    );
    let report = runner.run_once().await.unwrap();
    assert_eq!(report.count(Outcome::Retrying), 2);
    assert_eq!(report.count(Outcome::Completed), 1);
    assert_eq!(flaky.effects.load(Ordering::SeqCst), 1);
    assert_eq!(t.db.job(job.id).await.unwrap(), None);
}

async fn a_job_out_of_attempts_is_kept_dead_with_its_error(t: &TestDb) {
    let flaky = Flaky::new(usize::MAX);
    let job = enqueue(t, "flaky", 3).await;
    let runner = Runner::new(
        queue(t),
        Registry::new().with("flaky", flaky.clone()),
        settings(),
    );
    let report = runner.run_once().await.unwrap();
    assert_eq!(
        (report.count(Outcome::Retrying), report.count(Outcome::Dead)),
        (2, 1)
    );
    let dead = t.db.job(job.id).await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.attempts, 3);
    assert_eq!(dead.last_error.as_deref(), Some("connection refused"));
    assert_eq!(flaky.effects.load(Ordering::SeqCst), 0);
}

async fn a_worker_killed_mid_job_leaves_it_to_another_and_it_takes_effect_once(t: &TestDb) {
    let job = enqueue(t, "work", 5).await;
    let doomed = Blocking::new();
    let short_lease = RunnerSettings {
        lease: Duration::from_millis(600),
        ..settings()
    };
    let a = Arc::new(Runner::new(
        queue(t),
        Registry::new().with("work", doomed.clone()),
        short_lease,
    ));
    let killed = tokio::spawn({
        let a = a.clone();
        async move { a.step().await }
    });
    doomed.started.notified().await;
    // The worker dies mid-job: its task (and so its lease renewals) stop at once.
    killed.abort();
    assert!(killed.await.unwrap_err().is_cancelled());

    let survivor = Flaky::new(0);
    let b = Runner::new(
        queue(t),
        Registry::new().with("work", survivor.clone()),
        short_lease,
    );
    assert!(
        b.step().await.unwrap().is_empty(),
        "the job is not claimable while the dead worker's lease holds"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(b.step().await.unwrap(), vec![Outcome::Completed]);
    assert_eq!(survivor.effects.load(Ordering::SeqCst), 1);
    assert_eq!(doomed.effects.load(Ordering::SeqCst), 0);
    assert_eq!(t.db.job(job.id).await.unwrap(), None);
    assert!(b.step().await.unwrap().is_empty(), "nothing runs twice");
}

async fn a_long_job_keeps_its_lease_while_another_worker_polls(t: &TestDb) {
    enqueue(t, "long", 5).await;
    let long = Blocking::new();
    let short_lease = RunnerSettings {
        lease: Duration::from_millis(300),
        ..settings()
    };
    let a = Arc::new(Runner::new(
        queue(t),
        Registry::new().with("long", long.clone()),
        short_lease,
    ));
    let running = tokio::spawn({
        let a = a.clone();
        async move { a.step().await.unwrap() }
    });
    long.started.notified().await;
    let other = Flaky::new(0);
    let b = Runner::new(
        queue(t),
        Registry::new().with("long", other.clone()),
        short_lease,
    );
    // Three lease lengths pass; renewals keep the job with its worker.
    for _ in 0..9 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(b.step().await.unwrap().is_empty());
    }
    long.release.notify_one();
    assert_eq!(running.await.unwrap(), vec![Outcome::Completed]);
    assert_eq!(long.effects.load(Ordering::SeqCst), 1);
    assert_eq!(other.effects.load(Ordering::SeqCst), 0);
}

async fn shutdown_waits_for_a_job_that_finishes_within_the_grace(t: &TestDb) {
    let job = enqueue(t, "slow", 5).await;
    let slow = Blocking::new();
    let runner = Arc::new(Runner::new(
        queue(t),
        Registry::new().with("slow", slow.clone()),
        settings(),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let runner = runner.clone();
        async move {
            runner
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        }
    });
    slow.started.notified().await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!running.is_finished(), "the job in hand is waited for");
    slow.release.notify_one();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the runner stops")
        .unwrap();
    assert_eq!(slow.effects.load(Ordering::SeqCst), 1);
    assert_eq!(
        t.db.job(job.id).await.unwrap(),
        None,
        "finished, not released"
    );
}

async fn shutdown_releases_a_job_that_outlives_the_grace(t: &TestDb) {
    let job = enqueue(t, "stuck", 5).await;
    let stuck = Blocking::new();
    let quick_grace = RunnerSettings {
        shutdown_grace: Duration::from_millis(100),
        ..settings()
    };
    let runner = Arc::new(Runner::new(
        queue(t),
        Registry::new().with("stuck", stuck.clone()),
        quick_grace,
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let runner = runner.clone();
        async move {
            runner
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        }
    });
    stuck.started.notified().await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the runner stops after the grace")
        .unwrap();
    let released = t.db.job(job.id).await.unwrap().unwrap();
    assert_eq!(
        released.state,
        JobState::Queued,
        "given back for another worker"
    );
    assert_eq!(
        released.attempts, 0,
        "the interrupted attempt is not counted"
    );
    assert_eq!(stuck.effects.load(Ordering::SeqCst), 0);
    // Another worker runs it.
    let next = Flaky::new(0);
    let other = Runner::new(
        queue(t),
        Registry::new().with("stuck", next.clone()),
        settings(),
    );
    assert_eq!(other.run_once().await.unwrap().count(Outcome::Completed), 1);
    assert_eq!(next.effects.load(Ordering::SeqCst), 1);
}

async fn a_schedule_slot_runs_once_across_two_runners(t: &TestDb) {
    let tick = Flaky::new(0);
    let schedule = || vec![Scheduled::new("every-minute", "* * * * *", "tick").unwrap()];
    let runners: Vec<Arc<Runner>> = (0..2)
        .map(|_| {
            Arc::new(
                Runner::new(
                    queue(t),
                    Registry::new().with("tick", tick.clone()),
                    settings(),
                )
                .with_schedules(schedule()),
            )
        })
        .collect();
    let now = time::OffsetDateTime::now_utc();
    let (a, b) = tokio::join!(
        runners[0].enqueue_due_slots(now),
        runners[1].enqueue_due_slots(now)
    );
    assert_eq!(
        a.unwrap() + b.unwrap(),
        1,
        "one of two runners enqueues the slot"
    );
    let (a, b) = tokio::join!(runners[0].run_once(), runners[1].run_once());
    let completed = a.unwrap().count(Outcome::Completed) + b.unwrap().count(Outcome::Completed);
    // A new minute may have begun between the two calls: then its slot ran once too.
    let slots = usize::from(time::OffsetDateTime::now_utc().minute() != now.minute()) + 1;
    assert_eq!(completed, slots);
    assert_eq!(tick.effects.load(Ordering::SeqCst), slots);
}

async fn a_kind_without_a_handler_dies_at_once(t: &TestDb) {
    let job = enqueue(t, "unknown.kind", 5).await;
    let runner = Runner::new(queue(t), Registry::new(), settings());
    assert_eq!(runner.run_once().await.unwrap().count(Outcome::Dead), 1);
    let dead = t.db.job(job.id).await.unwrap().unwrap();
    assert!(dead.last_error.unwrap().contains("no handler"));
}

/// Records the trace and span ids its job runs under.
#[derive(Default)]
struct TraceProbe {
    seen: std::sync::Mutex<Option<(String, String)>>,
}

#[async_trait]
impl Handler for TraceProbe {
    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        let ids = hearth_observability::propagation::ids(&tracing::Span::current());
        *self.seen.lock().unwrap() = ids;
        Ok(())
    }
}

async fn a_job_runs_in_the_trace_of_the_request_that_enqueued_it(t: &TestDb) {
    use hearth_observability::{LogBuffer, LogFormat, LogSettings, Service, TelemetrySettings};
    use tracing::instrument::WithSubscriber;

    let log = LogSettings {
        format: Some(LogFormat::Json),
        level: "info".into(),
    };
    let service = Service {
        name: "jobs-test",
        version: "0.0.0",
        production: true,
    };
    hearth_test_support::tracing_interest::keep_global();
    let (dispatch, _guard) = hearth_observability::dispatch(
        &log,
        &TelemetrySettings::default(),
        service,
        LogBuffer::default(),
    )
    .unwrap();
    hearth_test_support::tracing_interest::refresh();
    // What a route does: the request's span hands its context to the job it enqueues.
    let (carrier, request_ids) = tracing::dispatcher::with_default(&dispatch, || {
        let request = tracing::info_span!("http_request");
        (
            hearth_observability::propagation::inject(&request),
            hearth_observability::propagation::ids(&request).unwrap(),
        )
    });
    assert!(carrier.contains_key("traceparent"), "{carrier:?}");
    let traced = NewJob::new("probe", serde_json::json!({}), 3).traced(carrier);
    t.db.enqueue_job(traced).await.unwrap();
    let untraced = Arc::new(TraceProbe::default());
    let probe = Arc::new(TraceProbe::default());
    let runner = Runner::new(
        queue(t),
        Registry::new().with("probe", probe.clone()),
        settings(),
    );
    let report = runner
        .run_once()
        .with_subscriber(dispatch.clone())
        .await
        .unwrap();
    assert_eq!(report.count(Outcome::Completed), 1);
    let (trace, span) = probe.seen.lock().unwrap().clone().unwrap();
    // The job's span is a child in the request's trace: same trace id, its own span id.
    assert_eq!(trace, request_ids.0);
    assert_ne!(span, request_ids.1);

    // A job enqueued with no context starts a trace of its own.
    t.db.enqueue_job(NewJob::new("probe", serde_json::json!({}), 3))
        .await
        .unwrap();
    let runner = Runner::new(
        queue(t),
        Registry::new().with("probe", untraced.clone()),
        settings(),
    );
    runner.run_once().with_subscriber(dispatch).await.unwrap();
    let (own_trace, _) = untraced.seen.lock().unwrap().clone().unwrap();
    assert_ne!(own_trace, request_ids.0);
}
