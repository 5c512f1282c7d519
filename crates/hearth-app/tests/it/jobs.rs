//! The worker's jobs against both backends.

use std::time::Duration;

use hearth_app::{Hearth, Settings};
use hearth_jobs::Outcome;
use hearth_storage::{NewEmail, NewPasswordReset};
use hearth_test_support::{TestDb, backend_suite, new_user};

async fn a_clean_ledger_reconciles_with_no_mismatch(t: &TestDb) {
    t.db.create_user(new_user("Ann", 100)).await.unwrap();
    t.db.create_user(new_user("Ben", 0)).await.unwrap();
    let report = hearth_app::jobs::reconcile_once(t.db.as_ref())
        .await
        .unwrap();
    assert_eq!(report.wallets, 2);
    assert!(report.mismatches.is_empty());
}

async fn a_tampered_balance_is_reported_with_its_figures(t: &TestDb) {
    // Metrics emitted before a recorder exists are dropped; install it first.
    let metrics = hearth_observability::metrics::install();
    let user = t.db.create_user(new_user("Cat", 250)).await.unwrap();
    t.execute_raw("UPDATE wallets SET balance = 999")
        .await
        .unwrap();
    let report = hearth_app::jobs::reconcile_once(t.db.as_ref())
        .await
        .unwrap();
    assert_eq!(report.mismatches.len(), 1);
    let mismatch = &report.mismatches[0];
    assert_eq!(
        (mismatch.user_id, mismatch.balance, mismatch.ledger_sum),
        (user.id, 999, 250)
    );

    let metrics = metrics.render();
    assert!(
        metrics.contains("hearth_reconciliation_runs_total{outcome=\"mismatch\"}"),
        "{metrics}"
    );
}

async fn the_runner_runs_the_scheduled_jobs_and_a_reset_mail(t: &TestDb) {
    // Metrics emitted before a recorder exists are dropped; install it first.
    let metrics = hearth_observability::metrics::install();
    t.db.create_user(new_user("Dan", 10)).await.unwrap();
    let mut settings = Settings::default();
    let dir = tempfile::tempdir().unwrap();
    settings.email.dir = dir.path().join("mail");
    settings.backup.dir = dir.path().join("backups");
    // Yearly slots: the first run catches up the last one of each, once, and no new slot can
    // fall due between the two runs (with the defaults, a run that straddles a five-minute
    // boundary enqueued a fresh reconciliation slot and the "runs once" check failed).
    let yearly = "0 0 1 1 *".to_owned();
    settings.jobs.reconcile_schedule = yearly.clone();
    settings.jobs.cleanup_schedule = yearly.clone();
    settings.backup.schedule = yearly;
    let hearth = Hearth::wire(t.db.clone(), settings, "test").await.unwrap();
    let user =
        t.db.find_user_by_email("dan@example.com")
            .await
            .unwrap()
            .unwrap();
    t.db.create_password_reset(NewPasswordReset {
        user_id: user.id,
        token_hash: "h".to_owned(),
        expires_at: time::OffsetDateTime::now_utc() + time::Duration::minutes(5),
        email: NewEmail {
            to: user.email.clone(),
            subject: "Reset".to_owned(),
            body: "the code is 123".to_owned(),
            html: Some("<p>the code is 123</p>".to_owned()),
        },
        trace_context: Default::default(),
    })
    .await
    .unwrap();

    let mailer = hearth_app::mail::from_settings(&hearth.settings.email).unwrap();
    let runner = hearth_app::jobs::runner(&hearth, mailer).unwrap();
    let report = runner.run_once().await.unwrap();
    // Reconciliation, clean-up and a backup (embedded: no leaderboard schedule), and the
    // e-mail.
    assert_eq!(report.slots, 3, "{report:?}");
    assert_eq!(report.count(Outcome::Completed), 4, "{report:?}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("backups"))
            .unwrap()
            .count(),
        1,
        "one verified backup"
    );
    let again = runner.run_once().await.unwrap();
    assert_eq!(
        (again.slots, again.attempts()),
        (0, 0),
        "each slot runs once"
    );

    let files: Vec<_> = std::fs::read_dir(dir.path().join("mail"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1, "one message written");
    let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(text.contains("To: dan@example.com"), "{text}");
    assert!(text.contains("Subject: Reset"), "{text}");
    assert!(text.contains("the code is 123"), "{text}");
    assert!(text.contains("text/html"), "{text}");
    assert!(
        t.db.pending_emails(10).await.unwrap().is_empty(),
        "marked sent"
    );

    let metrics = metrics.render();
    for expected in [
        "hearth_reconciliation_wallets_checked",
        "hearth_idempotency_keys_purged_total",
        "hearth_jobs_runs_total{kind=\"email.send\",outcome=\"ok\"}",
        "hearth_jobs_queued{kind=\"reconcile\"}",
    ] {
        assert!(metrics.contains(expected), "{expected} in {metrics}");
    }
}

async fn the_worker_stops_on_shutdown(t: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.email.dir = dir.path().join("mail");
    settings.backup.dir = dir.path().join("backups");
    // Yearly slots: the first run catches up the last one of each, once, and no new slot can
    // fall due between the two runs (with the defaults, a run that straddles a five-minute
    // boundary enqueued a fresh reconciliation slot and the "runs once" check failed).
    let yearly = "0 0 1 1 *".to_owned();
    settings.jobs.reconcile_schedule = yearly.clone();
    settings.jobs.cleanup_schedule = yearly.clone();
    settings.backup.schedule = yearly;
    let hearth = Hearth::wire(t.db.clone(), settings, "test").await.unwrap();
    let mailer = hearth_app::mail::from_settings(&hearth.settings.email).unwrap();
    let runner = hearth_app::jobs::runner(&hearth, mailer).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(async move {
        runner
            .run(async {
                let _ = stopped.await;
            })
            .await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), worker)
        .await
        .expect("the worker stops")
        .unwrap();
}

backend_suite!(
    a_clean_ledger_reconciles_with_no_mismatch,
    a_tampered_balance_is_reported_with_its_figures,
    the_runner_runs_the_scheduled_jobs_and_a_reset_mail,
    the_worker_stops_on_shutdown,
);

#[tokio::test]
async fn only_the_newest_backups_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "hearth-20261201T033000Z.dump",
        "hearth-20261203T033000Z.dump",
        "hearth-20261202T033000Z.sqlite3",
        "hearth-20261204T033000Z.dump",
        "notes.txt",
    ] {
        std::fs::write(dir.path().join(name), b"x").unwrap();
    }
    assert_eq!(
        hearth_app::jobs::prune_backups(dir.path(), 2)
            .await
            .unwrap(),
        2
    );
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "hearth-20261203T033000Z.dump",
            "hearth-20261204T033000Z.dump",
            "notes.txt"
        ]
    );
}
