//! The tower layer in an axum app: headers on allowed responses, 429 problem+json on refusal,
//! untouched requests without checks, 503 when limits cannot be decided.

#![cfg(feature = "tower")]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use hearth_limits::{
    KeyBy, LimitKeys, Limiter, ManualClock, RateLimitLayer, RouteClass, RouteLimits, RuleTable,
};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn table() -> RouteLimits {
    RouteLimits::new(&RuleTable::default())
        .route("*", "/*", RouteClass::Ip, KeyBy::Ip)
        .route("POST", "/auth/login", RouteClass::Login, KeyBy::Ip)
}

fn app(limiter: Limiter) -> Router {
    let limits = table();
    Router::new()
        .route("/auth/login", post(|| async { "welcome" }))
        .route("/health", get(|| async { "ok" }))
        .layer(RateLimitLayer::new(limiter, move |req: &Request<Body>| {
            limits.classify(req)
        }))
}

fn request(method: &str, path: &str, ip: Option<&str>) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    if let Some(ip) = ip {
        req.extensions_mut().insert(LimitKeys {
            ip: Some(ip.parse::<IpAddr>().unwrap()),
            user: None,
        });
    }
    req
}

fn header(res: &http::Response<Body>, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

fn limiter() -> Limiter {
    Limiter::in_process_with_clock(Arc::new(ManualClock::new(Duration::from_secs(1_000_000))))
}

#[tokio::test]
async fn allowed_responses_carry_the_ratelimit_headers_of_the_tightest_rule() {
    let app = app(limiter());
    let res = app
        .clone()
        .oneshot(request("POST", "/auth/login", Some("203.0.113.1")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "ratelimit-limit").as_deref(), Some("5"));
    assert_eq!(header(&res, "ratelimit-remaining").as_deref(), Some("4"));
    assert_eq!(header(&res, "ratelimit-reset").as_deref(), Some("12"));
    assert_eq!(header(&res, "retry-after"), None);
    let res = app
        .oneshot(request("GET", "/health", Some("203.0.113.1")))
        .await
        .unwrap();
    assert_eq!(header(&res, "ratelimit-limit").as_deref(), Some("60"));
    assert_eq!(header(&res, "ratelimit-remaining").as_deref(), Some("58"));
}

#[tokio::test]
async fn the_sixth_login_is_a_429_problem_with_retry_after() {
    let recorded = crate::support::metrics();
    let refusals = "hearth_rate_limit_refusals_total{rule=login.minute}";
    let decisions = "hearth_rate_limit_decisions_total{outcome=refused,rule=login.minute}";
    let (refusals_before, decisions_before) = (recorded.total(refusals), recorded.total(decisions));
    let app = app(limiter());
    for _ in 0..5 {
        let res = app
            .clone()
            .oneshot(request("POST", "/auth/login", Some("203.0.113.2")))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = app
        .clone()
        .oneshot(request("POST", "/auth/login", Some("203.0.113.2")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&res, "content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(header(&res, "retry-after").as_deref(), Some("12"));
    assert_eq!(header(&res, "ratelimit-limit").as_deref(), Some("5"));
    assert_eq!(header(&res, "ratelimit-remaining").as_deref(), Some("0"));
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["type"], "urn:hearth:problem:too-many-requests");
    assert_eq!(problem["title"], "Too Many Requests");
    assert_eq!(problem["status"], 429);
    assert!(problem["detail"].as_str().unwrap().contains("login.minute"));
    assert!(
        recorded.total(refusals) > refusals_before,
        "the refusal is counted"
    );
    assert!(recorded.total(decisions) > decisions_before);
    // Another client is unaffected.
    let res = app
        .oneshot(request("POST", "/auth/login", Some("203.0.113.3")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_request_without_checks_passes_untouched() {
    let res = app(limiter())
        .oneshot(request("GET", "/health", None))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "ratelimit-limit"), None);
}

#[tokio::test]
async fn nested_layers_keep_the_tighter_headers() {
    let limiter = limiter();
    let outer = RouteLimits::new(&RuleTable::default()).route("*", "/*", RouteClass::Ip, KeyBy::Ip);
    let inner =
        RouteLimits::new(&RuleTable::default()).route("*", "/*", RouteClass::Login, KeyBy::Ip);
    let app = Router::new()
        .route("/x", get(|| async { "x" }))
        .layer(RateLimitLayer::new(
            limiter.clone(),
            move |r: &Request<Body>| inner.classify(r),
        ))
        .layer(RateLimitLayer::new(limiter, move |r: &Request<Body>| {
            outer.classify(r)
        }));
    let res = app
        .oneshot(request("GET", "/x", Some("203.0.113.4")))
        .await
        .unwrap();
    assert_eq!(header(&res, "ratelimit-limit").as_deref(), Some("5"));
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "current_thread")]
async fn redis_down_with_the_refuse_policy_is_a_503() {
    if crate::support::redis_url().is_none() {
        return;
    }
    let _serial = crate::support::outage_lock().await;
    let mut server = crate::support::OwnRedis::start();
    server.stop();
    let limiter = Limiter::redis(server.url(), hearth_limits::RedisDownPolicy::Refuse)
        .await
        .unwrap();
    let res = app(limiter)
        .oneshot(request("POST", "/auth/login", Some("203.0.113.5")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&res, "retry-after").as_deref(), Some("1"));
}
