//! Health probes and metrics.

use hearth_test_support::sqlite_db;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{problem, spawn_app};

#[tokio::test]
async fn live_and_ready_answer_200_when_all_is_well() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    assert_eq!(app.get("/health/live", None).await.status(), StatusCode::OK);
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(
        body["checks"],
        json!({"database": "ok", "migrations": "ok"})
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn readiness_turns_503_when_draining_but_liveness_does_not() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    app.state.begin_drain();
    let body = problem(
        app.get("/health/ready", None).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(body["checks"]["shutdown"], "draining");
    assert_eq!(app.get("/health/live", None).await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn readiness_names_pending_migrations() {
    // A database that was never migrated.
    let dir = tempfile::tempdir().unwrap();
    let settings = hearth_storage::DatabaseSettings {
        url: format!("sqlite://{}", dir.path().join("bare.db").display()).into(),
        ..Default::default()
    };
    let db = hearth_storage::connect(&settings).await.unwrap();
    let app_settings = hearth_api::Settings {
        database: settings,
        ..Default::default()
    };
    let app = hearth_api::build_with(db, app_settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(hearth_api::serve(listener, app, std::future::pending()));
    let response = reqwest::get(format!("http://{addr}/health/ready"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("migrations"),
        "{body}"
    );
    assert!(
        body["checks"]["migrations"]["pending"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
    server.abort();
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_games_and_login_failures() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    let token = app.player("Metered").await;
    assert_eq!(app.spin(&token, 5).await.status(), StatusCode::OK);
    let bad = json!({"login": "Metered", "password": "Wrong-pass1!"});
    assert_eq!(
        app.post("/v1/auth/login", None, &bad).await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.get("/v1/users/12345/secret", None).await;

    let response = app.get("/metrics", None).await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for needle in [
        r#"hearth_http_requests_total{route="/v1/games/slots/spin",method="POST",status="200"}"#,
        r#"hearth_http_request_duration_seconds_bucket{route="/v1/games/slots/spin",method="POST",le="0.005"}"#,
        r#"hearth_game_rounds_total{game="slots"}"#,
        r#"hearth_game_wagered_coins_total{game="slots"}"#,
        "\nhearth_auth_login_failures_total ",
        r#"route="unmatched""#,
        "hearth_http_requests_in_flight",
        "hearth_db_pool_connections",
        "hearth_build_info",
    ] {
        assert!(text.contains(needle), "{needle} missing from /metrics");
    }
    assert!(!text.contains("12345"), "a raw path became a label");
    assert!(
        !text.contains("hearth_auth_login_failures_total{"),
        "login failures are one series: a label could tell unknown names from wrong passwords"
    );
    app.stop().await.unwrap();
}

/// `promtool` from Debian's `prometheus` package, if installed (`.ci/run` installs it).
fn promtool() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| std::path::Path::new(dir).join("promtool"))
        .find(|path| path.is_file())
}

#[tokio::test]
async fn the_metrics_exposition_passes_promtool() {
    let Some(promtool) = promtool() else {
        assert!(
            !hearth_test_support::in_ci(),
            "promtool is required under CI (Debian package prometheus)"
        );
        hearth_test_support::skip_suites(
            "the promtool check",
            "install Debian's prometheus package to run it",
        );
        return;
    };
    let t = sqlite_db().await;
    let app =
        crate::support::spawn_app_with(&t, |s| s.limits.rules.login.per_minute = Some(1)).await;
    // Touch every family: a round, a failed login, a refusal, an unmatched route.
    let token = app.player("Scraped").await;
    app.spin(&token, 5).await;
    let bad = json!({"login": "Scraped", "password": "Wrong-pass1!"});
    app.post("/v1/auth/login", None, &bad).await;
    app.post("/v1/auth/login", None, &bad).await;
    app.get("/nope", None).await;
    let text = app.get("/metrics", None).await.text().await.unwrap();
    app.stop().await.unwrap();

    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool check metrics:\n{report}");
}
