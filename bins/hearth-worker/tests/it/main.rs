//! The worker's admin port over real HTTP. The jobs' own suite is in `hearth-app`.

#![allow(unreachable_pub)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on what should not happen"
)]

#[tokio::test]
async fn the_admin_port_serves_metrics_and_liveness() {
    let metrics = hearth_observability::metrics::install();
    hearth_observability::metrics::record_build_info("hearth-worker", "test");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(hearth_worker::serve_admin(
        listener,
        metrics,
        std::future::pending(),
    ));
    let live = reqwest::get(format!("http://{addr}/health/live"))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("hearth_build_info{service=\"hearth-worker\""),
        "{text}"
    );
    server.abort();
}

#[tokio::test]
async fn the_admin_port_refuses_other_paths_and_methods() {
    let metrics = hearth_observability::metrics::install();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hearth_worker::serve_admin(listener, metrics, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let missing = client
        .get(format!("http://{addr}/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let posted = client
        .post(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 405);
    assert_eq!(posted.headers()["allow"], "GET, HEAD");
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("the admin port stops on shutdown")
        .unwrap()
        .unwrap();
}

/// `hearth-worker run-once` as an operator runs it: against a SQLite file with a reset mail
/// in its outbox, it enqueues the due schedule slots (reconciliation, clean-up, backup), runs
/// everything due, writes the mail and a verified backup, prints its summary and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_drains_what_is_due_and_exits() {
    let t = hearth_test_support::sqlite_db().await;
    let user =
        t.db.create_user(hearth_test_support::new_user("Operator", 100))
            .await
            .unwrap();
    t.db.create_password_reset(hearth_storage::NewPasswordReset {
        user_id: user.id,
        token_hash: "hash".to_owned(),
        expires_at: time::OffsetDateTime::now_utc() + time::Duration::minutes(10),
        email: hearth_storage::NewEmail {
            to: user.email.clone(),
            subject: "Reset your Hearth password".to_owned(),
            body: "code 42".to_owned(),
            html: None,
        },
        trace_context: Default::default(),
    })
    .await
    .unwrap();
    let url = secrecy::ExposeSecret::expose_secret(&t.settings.url).to_owned();
    let scratch = tempfile::tempdir().unwrap();
    let mail = scratch.path().join("mail");
    let backups = scratch.path().join("backups");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth-worker"))
        .arg("run-once")
        .current_dir(scratch.path())
        .env("HEARTH__DATABASE__URL", &url)
        .env("HEARTH__EMAIL__DIR", &mail)
        .env("HEARTH__BACKUP__DIR", &backups)
        .env("HEARTH__WORKER__ADMIN_ADDR", "")
        .env("HEARTH__LOG__LEVEL", "warn")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("slots enqueued: 3, attempts: 4, completed: 4, retrying: 0, dead: 0"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_dir(&mail).unwrap().count(),
        1,
        "the mail file"
    );
    let backup: Vec<_> = std::fs::read_dir(&backups).unwrap().collect();
    assert_eq!(backup.len(), 1, "one verified backup");
    assert!(t.db.pending_emails(10).await.unwrap().is_empty());
    t.cleanup().await;
}
