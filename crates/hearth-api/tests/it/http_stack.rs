//! The middleware stack: request ids, security headers, CORS, compression, panics, timeouts.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use hearth_test_support::sqlite_db;
use reqwest::{Method, StatusCode};

use crate::support::{problem, spawn_app, spawn_app_with, spawn_custom};

#[tokio::test]
async fn a_well_formed_request_id_is_echoed_and_a_bad_one_replaced() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    let response = app
        .request(Method::GET, "/nope", None)
        .header("x-request-id", "trace-abc_123.4")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc_123.4");
    let body = problem(response, StatusCode::NOT_FOUND).await;
    assert_eq!(body["request_id"], "trace-abc_123.4");

    for bad in ["has space", &"x".repeat(129), "semi;colon"] {
        let response = app
            .request(Method::GET, "/health/live", None)
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let echoed = response.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(echoed, bad);
        assert!(uuid::Uuid::parse_str(echoed).is_ok(), "{echoed}");
    }
    let response = app.get("/health/live", None).await;
    assert!(uuid::Uuid::parse_str(response.headers()["x-request-id"].to_str().unwrap()).is_ok());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    for path in ["/health/live", "/nope"] {
        let response = app.get(path, None).await;
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(
            headers["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'"
        );
        assert_eq!(headers["cache-control"], "no-store");
        assert!(
            headers.get("strict-transport-security").is_none(),
            "no HSTS in development"
        );
    }
    app.stop().await.unwrap();

    let app = spawn_app_with(&t, |s| {
        s.environment = hearth_api::settings::RunEnvironment::Production
    })
    .await;
    let response = app.get("/health/live", None).await;
    assert!(
        response.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn cors_answers_only_listed_origins() {
    let t = sqlite_db().await;
    let app = spawn_app_with(&t, |s| {
        s.server.cors_origins = vec!["https://play.example".into()]
    })
    .await;
    let preflight = |origin: &'static str| {
        app.request(Method::OPTIONS, "/v1/games/slots/spin", None)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://play.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://play.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn responses_are_compressed_when_the_client_accepts_gzip() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    let response = app
        .request(Method::GET, "/metrics", None)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert_eq!(response.headers()["vary"], "accept-encoding");
    // A client that asks for no encoding gets the plain body, and the same `Vary`, so a
    // shared cache keeps the two apart.
    let plain = app.get("/metrics", None).await;
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.headers()["vary"], "accept-encoding");
    assert!(
        plain
            .text()
            .await
            .unwrap()
            .contains("hearth_http_requests_total")
    );
    // A body too small to compress varies on nothing.
    let tiny = app.get("/health/live", None).await;
    assert!(tiny.headers().get("vary").is_none(), "{:?}", tiny.headers());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_500_problem_and_the_server_lives_on() {
    let t = sqlite_db().await;
    let app = spawn_custom(
        &t,
        |_| {},
        |state| {
            let routes = Router::new()
                .route("/boom", get(boom))
                .route("/fine", get(|| async { "fine" }));
            Some(hearth_api::with_stack(routes, state))
        },
    )
    .await;
    let body = problem(
        app.get("/boom", None).await,
        StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await;
    assert!(
        !body.to_string().contains("secret internal detail"),
        "internals leaked: {body}"
    );
    assert_eq!(app.get("/fine", None).await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_handler_past_the_timeout_is_cut_off_with_a_503_problem() {
    let t = sqlite_db().await;
    let app = spawn_custom(
        &t,
        |s| s.server.request_timeout_secs = 1,
        |state| {
            let routes = Router::new().route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    "late"
                }),
            );
            Some(hearth_api::with_stack(routes, state))
        },
    )
    .await;
    problem(
        app.get("/slow", None).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    app.stop().await.unwrap();
}

async fn boom() -> &'static str {
    panic!("secret internal detail")
}
