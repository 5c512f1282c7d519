//! The worker's jobs against both backends.

use std::time::Duration;

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

async fn the_schedule_runs_until_shutdown(t: &TestDb) {
    // Metrics emitted before a recorder exists are dropped; install it first.
    let metrics = hearth_observability::metrics::install();
    t.db.create_user(new_user("Dan", 10)).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let schedule = hearth_app::jobs::Schedule {
        reconcile_every: Duration::from_millis(20),
        purge_every: Duration::from_millis(20),
        idempotency_retention: Duration::from_secs(3600),
        leaderboards: Some((
            std::sync::Arc::new(hearth_app::leaderboards::InProcessLeaderboards::new()),
            Duration::from_millis(20),
        )),
    };
    let worker = tokio::spawn(hearth_app::jobs::run(t.db.clone(), schedule, async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("the worker stops")
        .unwrap();
    let metrics = metrics.render();
    assert!(
        metrics.contains("hearth_reconciliation_wallets_checked"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hearth_idempotency_keys_purged_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hearth_leaderboard_rebuilds_total{outcome=\"ok\"}"),
        "{metrics}"
    );
}

backend_suite!(
    a_clean_ledger_reconciles_with_no_mismatch,
    a_tampered_balance_is_reported_with_its_figures,
    the_schedule_runs_until_shutdown,
);
