//! The durable job queue: a claim hands a job to one worker under a lease, an expired lease
//! lets another worker finish it (once), failures retry after their backoff and then die with
//! their error, a schedule slot is enqueued once however many workers race for it, and the
//! outbox writes an e-mail's delivery job with the change that causes it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use hearth_storage::jobs::EMAIL_JOB_KIND;
use hearth_storage::{
    Claim, FailOutcome, JobState, NewEmail, NewJob, NewPasswordReset, StorageError,
};
use hearth_test_support::{TestDb, backend_suite, new_user};
use time::OffsetDateTime;
use uuid::Uuid;

backend_suite!(
    a_due_job_is_claimed_once_and_completed_once,
    an_expired_lease_is_claimed_again_and_the_job_completes_once,
    a_failed_job_retries_after_its_backoff_then_dies_with_its_error,
    a_dead_job_retried_by_an_operator_runs_again,
    a_worker_dying_on_the_last_attempt_leaves_a_dead_job,
    a_released_job_is_due_again_without_using_an_attempt,
    concurrent_workers_never_claim_the_same_job,
    a_schedule_slot_is_enqueued_once_by_racing_workers,
    stats_count_jobs_by_kind_and_state,
    a_password_reset_enqueues_its_delivery_job_in_the_same_transaction,
);

/// A fixed moment in whole milliseconds, so round trips through the store compare equal.
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
}

fn secs(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

fn job(kind: &str, max_attempts: i32, run_at: OffsetDateTime) -> NewJob {
    NewJob::new(kind, serde_json::json!({ "n": 1 }), max_attempts).at(run_at)
}

fn claim(now: OffsetDateTime, limit: u32) -> Claim {
    Claim {
        now,
        lease: Duration::from_secs(30),
        limit,
    }
}

async fn a_due_job_is_claimed_once_and_completed_once(t: &TestDb) {
    let due = job("test.due", 3, t0());
    let later = job("test.later", 3, t0() + secs(60));
    t.db.enqueue_job(due.clone()).await.unwrap();
    t.db.enqueue_job(later).await.unwrap();

    let claimed = t.db.claim_jobs(claim(t0(), 10)).await.unwrap();
    assert_eq!(claimed.len(), 1, "only the due job is claimed");
    let first = &claimed[0];
    assert_eq!(first.job.id, due.id);
    assert_eq!(first.job.kind, "test.due");
    assert_eq!(first.job.payload, serde_json::json!({ "n": 1 }));
    assert_eq!(first.job.attempts, 1);
    assert_eq!(first.job.state, JobState::Running);
    assert_eq!(first.job.lease_until, Some(t0() + secs(30)));
    assert!(
        t.db.claim_jobs(claim(t0() + secs(1), 10))
            .await
            .unwrap()
            .is_empty(),
        "a leased job is not claimed again while its lease holds"
    );

    assert!(t.db.complete_job(due.id, first.lease).await.unwrap());
    assert!(!t.db.complete_job(due.id, first.lease).await.unwrap());
    assert_eq!(
        t.db.job(due.id).await.unwrap(),
        None,
        "done jobs are deleted"
    );
}

async fn an_expired_lease_is_claimed_again_and_the_job_completes_once(t: &TestDb) {
    let work = job("test.crash", 5, t0());
    t.db.enqueue_job(work.clone()).await.unwrap();
    // Worker A claims the job and is killed mid-job: it never completes nor releases it.
    let a = t.db.claim_jobs(claim(t0(), 1)).await.unwrap().remove(0);
    assert!(
        t.db.claim_jobs(claim(t0() + secs(29), 1))
            .await
            .unwrap()
            .is_empty()
    );
    // Past the lease, worker B claims it again.
    let b = t.db.claim_jobs(claim(t0() + secs(30), 1)).await.unwrap();
    assert_eq!(b.len(), 1);
    let b = &b[0];
    assert_eq!(b.job.id, work.id);
    assert_eq!(b.job.attempts, 2, "the crashed attempt counts");
    assert_ne!(a.lease, b.lease);

    // A stale completion (A coming back to life) changes nothing; B's completes it, once.
    assert!(!t.db.complete_job(work.id, a.lease).await.unwrap());
    assert_eq!(
        t.db.fail_job(work.id, a.lease, "late", None).await.unwrap(),
        FailOutcome::LeaseLost
    );
    assert!(t.db.complete_job(work.id, b.lease).await.unwrap());
    assert!(!t.db.complete_job(work.id, b.lease).await.unwrap());
    assert_eq!(t.db.job(work.id).await.unwrap(), None);
}

async fn a_failed_job_retries_after_its_backoff_then_dies_with_its_error(t: &TestDb) {
    let work = job("test.flaky", 2, t0());
    t.db.enqueue_job(work.clone()).await.unwrap();
    let first = t.db.claim_jobs(claim(t0(), 1)).await.unwrap().remove(0);
    assert_eq!(
        t.db.fail_job(work.id, first.lease, "smtp down", Some(t0() + secs(5)))
            .await
            .unwrap(),
        FailOutcome::Retrying
    );
    let queued = t.db.job(work.id).await.unwrap().unwrap();
    assert_eq!(queued.state, JobState::Queued);
    assert_eq!(queued.run_at, t0() + secs(5));
    assert_eq!(queued.last_error.as_deref(), Some("smtp down"));
    assert!(
        t.db.claim_jobs(claim(t0() + secs(4), 1))
            .await
            .unwrap()
            .is_empty(),
        "not before its backoff"
    );

    let second =
        t.db.claim_jobs(claim(t0() + secs(5), 1))
            .await
            .unwrap()
            .remove(0);
    assert_eq!(second.job.attempts, 2);
    assert_eq!(
        t.db.fail_job(
            work.id,
            second.lease,
            "smtp still down",
            Some(t0() + secs(20))
        )
        .await
        .unwrap(),
        FailOutcome::Dead,
        "the last attempt failed"
    );
    assert!(
        t.db.claim_jobs(claim(t0() + secs(3600), 10))
            .await
            .unwrap()
            .is_empty(),
        "dead jobs are never claimed"
    );
    let dead = t.db.jobs_in_state(JobState::Dead, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, work.id);
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(dead[0].last_error.as_deref(), Some("smtp still down"));
    assert!(
        t.db.jobs_in_state(JobState::Queued, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_dead_job_retried_by_an_operator_runs_again(t: &TestDb) {
    let work = job("test.permanent", 5, t0());
    t.db.enqueue_job(work.clone()).await.unwrap();
    let first = t.db.claim_jobs(claim(t0(), 1)).await.unwrap().remove(0);
    assert_eq!(
        t.db.fail_job(work.id, first.lease, "bad payload", None)
            .await
            .unwrap(),
        FailOutcome::Dead,
        "a permanent failure dies at once"
    );
    assert!(!t.db.retry_dead_job(Uuid::now_v7(), t0()).await.unwrap());
    assert!(t.db.retry_dead_job(work.id, t0() + secs(10)).await.unwrap());
    assert!(
        !t.db.retry_dead_job(work.id, t0() + secs(10)).await.unwrap(),
        "only dead jobs are retried"
    );
    let again = t.db.claim_jobs(claim(t0() + secs(10), 1)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].job.attempts, 1, "an operator's retry starts over");
}

async fn a_worker_dying_on_the_last_attempt_leaves_a_dead_job(t: &TestDb) {
    let work = job("test.poison", 1, t0());
    t.db.enqueue_job(work.clone()).await.unwrap();
    let _crashed = t.db.claim_jobs(claim(t0(), 1)).await.unwrap().remove(0);
    assert!(
        t.db.claim_jobs(claim(t0() + secs(60), 1))
            .await
            .unwrap()
            .is_empty(),
        "no attempt beyond the maximum"
    );
    let dead = t.db.job(work.id).await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert!(dead.last_error.unwrap().contains("lease expired"));
}

async fn a_released_job_is_due_again_without_using_an_attempt(t: &TestDb) {
    let work = job("test.release", 3, t0());
    t.db.enqueue_job(work.clone()).await.unwrap();
    let held = t.db.claim_jobs(claim(t0(), 1)).await.unwrap().remove(0);
    assert!(!t.db.release_job(work.id, Uuid::now_v7()).await.unwrap());
    assert!(
        t.db.renew_lease(work.id, held.lease, t0() + secs(90))
            .await
            .unwrap()
    );
    assert!(t.db.release_job(work.id, held.lease).await.unwrap());
    let again = t.db.claim_jobs(claim(t0(), 1)).await.unwrap().remove(0);
    assert_eq!(again.job.attempts, 1, "the released attempt is not counted");
    assert!(
        !t.db
            .renew_lease(work.id, held.lease, t0() + secs(90))
            .await
            .unwrap(),
        "the old lease is gone"
    );
}

async fn concurrent_workers_never_claim_the_same_job(t: &TestDb) {
    let mut ids = HashSet::new();
    for _ in 0..40 {
        let work = job("test.many", 3, t0());
        ids.insert(work.id);
        t.db.enqueue_job(work).await.unwrap();
    }
    let db = Arc::clone(&t.db);
    let workers = (0..4).map(|_| {
        let db = Arc::clone(&db);
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = db.claim_jobs(claim(t0(), 3)).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                for claimed in batch {
                    assert!(
                        db.complete_job(claimed.job.id, claimed.lease)
                            .await
                            .unwrap()
                    );
                    mine.push(claimed.job.id);
                }
            }
        })
    });
    let mut seen = Vec::new();
    for worker in workers.collect::<Vec<_>>() {
        seen.extend(worker.await.unwrap());
    }
    assert_eq!(seen.len(), 40, "every job ran exactly once");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), ids);
}

async fn a_schedule_slot_is_enqueued_once_by_racing_workers(t: &TestDb) {
    let slot = t0();
    let db = Arc::clone(&t.db);
    let racers = (0..2).map(|_| {
        let db = Arc::clone(&db);
        tokio::spawn(async move {
            db.enqueue_scheduled("reconcile", slot, job("reconcile", 1, slot))
                .await
                .unwrap()
        })
    });
    let mut won = 0;
    for racer in racers.collect::<Vec<_>>() {
        won += usize::from(racer.await.unwrap());
    }
    assert_eq!(won, 1, "one of two workers enqueues the slot");
    assert!(
        !t.db
            .enqueue_scheduled("reconcile", slot, job("reconcile", 1, slot))
            .await
            .unwrap(),
        "nor does a later worker"
    );
    assert!(
        t.db.enqueue_scheduled("reconcile", slot + secs(300), job("reconcile", 1, slot))
            .await
            .unwrap(),
        "the next slot is new"
    );
    let claimed = t.db.claim_jobs(claim(t0() + secs(300), 10)).await.unwrap();
    assert_eq!(claimed.len(), 2, "one job per slot");

    assert_eq!(t.db.purge_job_slots(slot + secs(1)).await.unwrap(), 1);
}

async fn stats_count_jobs_by_kind_and_state(t: &TestDb) {
    t.db.enqueue_job(job("a", 1, t0() - secs(10)))
        .await
        .unwrap();
    t.db.enqueue_job(job("a", 1, t0() + secs(10)))
        .await
        .unwrap();
    t.db.enqueue_job(job("b", 1, t0() - secs(5))).await.unwrap();
    let stats = t.db.job_stats(t0()).await.unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(
        (stats[0].kind.as_str(), stats[0].queued, stats[0].due),
        ("a", 2, 1)
    );
    assert_eq!(stats[0].oldest_due, Some(t0() - secs(10)));
    // Claim the oldest (an `a`), fail it permanently: one dead `a`.
    let claimed = t.db.claim_jobs(claim(t0(), 1)).await.unwrap().remove(0);
    t.db.fail_job(claimed.job.id, claimed.lease, "no", None)
        .await
        .unwrap();
    let running = t.db.claim_jobs(claim(t0(), 1)).await.unwrap();
    assert_eq!(running[0].job.kind, "b");
    let stats = t.db.job_stats(t0()).await.unwrap();
    assert_eq!((stats[0].queued, stats[0].due, stats[0].dead), (1, 0, 1));
    assert_eq!(stats[0].oldest_due, None);
    assert_eq!((stats[1].running, stats[1].queued), (1, 0));
}

async fn a_password_reset_enqueues_its_delivery_job_in_the_same_transaction(t: &TestDb) {
    let user = t.db.create_user(new_user("Mailed", 0)).await.unwrap();
    let context = HashMap::from([(
        "traceparent".to_owned(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
    )]);
    t.db.create_password_reset(NewPasswordReset {
        user_id: user.id,
        token_hash: "hash-1".to_owned(),
        expires_at: OffsetDateTime::now_utc() + secs(600),
        email: NewEmail {
            to: user.email.clone(),
            subject: "Reset".to_owned(),
            body: "code".to_owned(),
            html: None,
        },
        trace_context: context.clone(),
    })
    .await
    .unwrap();
    let outbox = t.db.pending_emails(10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    let queued = t.db.jobs_in_state(JobState::Queued, 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].kind, EMAIL_JOB_KIND);
    assert_eq!(
        queued[0].payload,
        serde_json::json!({ "email_id": outbox[0].id })
    );
    assert_eq!(queued[0].trace_context, context);

    // Delivery is recorded once: a second "sent" changes nothing, and the message is no
    // longer pending.
    let now = OffsetDateTime::now_utc();
    assert!(t.db.unsent_email(outbox[0].id).await.unwrap().is_some());
    assert!(
        t.db.record_email_attempt(outbox[0].id, false, now)
            .await
            .unwrap()
    );
    assert!(
        t.db.record_email_attempt(outbox[0].id, true, now)
            .await
            .unwrap()
    );
    assert!(
        !t.db
            .record_email_attempt(outbox[0].id, true, now)
            .await
            .unwrap()
    );
    assert_eq!(t.db.unsent_email(outbox[0].id).await.unwrap(), None);
    assert!(t.db.pending_emails(10).await.unwrap().is_empty());

    // A failed reset writes neither: an unknown user breaks the foreign key.
    let refused =
        t.db.create_password_reset(NewPasswordReset {
            user_id: Uuid::now_v7(),
            token_hash: "hash-2".to_owned(),
            expires_at: OffsetDateTime::now_utc() + secs(600),
            email: NewEmail {
                to: "ghost@example.com".to_owned(),
                subject: "Reset".to_owned(),
                body: "code".to_owned(),
                html: None,
            },
            trace_context: HashMap::new(),
        })
        .await;
    assert!(matches!(
        refused,
        Err(StorageError::Other(_) | StorageError::Conflict { .. })
    ));
    assert_eq!(
        t.db.jobs_in_state(JobState::Queued, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}
