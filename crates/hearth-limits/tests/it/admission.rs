//! `Admission`, the sequence the Hearth gateway runs, and `RateLimitLayer` are one code path:
//! the same requests give the same decisions, headers and refusals through both.

#![cfg(feature = "tower")]

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use hearth_limits::{
    Admission, AnomalyDetector, AnomalySettings, Arrival, Check, ClientKey, KeyBy, LimitKeys,
    Limiter, ManualClock, RateLimitLayer, Refusal, RouteClass, RouteLimits, RuleTable,
};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn table() -> RouteLimits {
    RouteLimits::new(&RuleTable::default())
        .route("*", "/*", RouteClass::Ip, KeyBy::Ip)
        .route("*", "/*", RouteClass::User, KeyBy::User)
        .route("POST", "/auth/login", RouteClass::Login, KeyBy::Ip)
}

/// A limiter on a clock of its own, stopped at the same moment as every other one here.
fn limiter() -> Limiter {
    Limiter::in_process_with_clock(Arc::new(ManualClock::new(Duration::from_secs(1_000_000))))
}

/// The app the layer protects; `served` counts the requests that reached the handler.
fn app<F>(layer: RateLimitLayer<F>, served: Arc<AtomicUsize>) -> Router
where
    F: Fn(&Request<Body>) -> Vec<Check> + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/auth/login",
            post(move || {
                served.fetch_add(1, Ordering::Relaxed);
                async { "welcome" }
            }),
        )
        .layer(layer)
}

fn request(keys: &LimitKeys) -> Request<Body> {
    let mut request = Request::builder()
        .method("POST")
        .uri("/auth/login")
        .body(Body::empty())
        .unwrap();
    request.extensions_mut().insert(keys.clone());
    request
}

/// The headers an answer or refusal of the sequence carries, as the layer would set them.
fn limit_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("ratelimit-") || *name == "retry-after")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    found.sort();
    found
}

async fn problem(response: http::Response<Body>) -> serde_json::Value {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn the_layer_decides_and_answers_as_the_gateways_sequence_does() {
    let routes = table();
    let (gateway_limiter, layer_limiter) = (limiter(), limiter());
    let classify = {
        let routes = routes.clone();
        move |request: &Request<Body>| routes.classify(request)
    };
    let served = Arc::new(AtomicUsize::new(0));
    let app = app(
        RateLimitLayer::new(layer_limiter, classify),
        Arc::clone(&served),
    );
    let keys = LimitKeys {
        ip: Some("203.0.113.20".parse().unwrap()),
        user: Some("u-7".into()),
    };
    let mut refusals = 0;
    // Five log-ins pass, the sixth and seventh are refused by `login.minute`.
    for attempt in 1..=7 {
        let arrival = Arrival {
            method: &Method::POST,
            path: "/auth/login",
            client: None,
            arrived: Instant::now(),
        };
        let decided = Admission::new(&gateway_limiter)
            .admit(&routes, arrival, || keys.clone())
            .await;
        let response = app.clone().oneshot(request(&keys)).await.unwrap();
        let mut expected = HeaderMap::new();
        match decided {
            Ok(admitted) => {
                assert_eq!(response.status(), StatusCode::OK, "attempt {attempt}");
                admitted.write_headers(&mut expected);
                assert_eq!(admitted.decision().unwrap().rule, "login.minute");
                assert_eq!(limit_headers(response.headers()), limit_headers(&expected));
            }
            Err(refusal) => {
                refusals += 1;
                assert!(matches!(refusal, Refusal::Limited(_)), "{refusal:?}");
                assert_eq!(response.status(), refusal.status(), "attempt {attempt}");
                refusal.write_headers(&mut expected);
                assert_eq!(limit_headers(response.headers()), limit_headers(&expected));
                let body = problem(response).await;
                assert_eq!(body["detail"], refusal.detail());
                assert_eq!(body["rule"], "login.minute");
                assert_eq!(body["type"], "urn:hearth:problem:too-many-requests");
            }
        }
    }
    assert_eq!(refusals, 2);
    assert_eq!(
        served.load(Ordering::Relaxed),
        5,
        "refused requests never reach the handler"
    );
}

/// Settings that judge a key after one closed one-second interval and block it for five
/// minutes once its rate is five times its baseline.
fn blocking_detector() -> Arc<AnomalyDetector> {
    Arc::new(AnomalyDetector::new(AnomalySettings {
        interval_secs: 1,
        warmup_intervals: 1,
        block: true,
        block_secs: 300,
        ..AnomalySettings::default()
    }))
}

/// Drives `key` into a block an hour from now (the detector takes the moment of each request
/// from its caller), so the block still holds for requests made now.
fn block(detector: &AnomalyDetector, key: &str) {
    let later = Instant::now() + Duration::from_secs(3_600);
    detector.observe(key, later);
    let next = later + Duration::from_secs(1);
    for _ in 0..20 {
        if detector.observe(key, next).is_blocked() {
            return;
        }
    }
    panic!("the burst did not block {key}");
}

#[tokio::test]
async fn a_blocked_client_is_refused_first_by_both_and_its_keys_are_never_looked_up() {
    let detector = blocking_detector();
    let blocked: IpAddr = "203.0.113.30".parse().unwrap();
    let key = ClientKey::new(blocked);
    block(&detector, key.as_str());

    // The gateway's sequence: refused before it asks who the user is.
    let limiter = limiter();
    let routes = table();
    let looked_up = AtomicUsize::new(0);
    let arrival = Arrival {
        method: &Method::POST,
        path: "/auth/login",
        client: Some(key.as_str()),
        arrived: Instant::now(),
    };
    let refusal = Admission::new(&limiter)
        .with_anomaly(&detector)
        .admit(&routes, arrival, || {
            looked_up.fetch_add(1, Ordering::Relaxed);
            LimitKeys::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(refusal, Refusal::Blocked { .. }), "{refusal:?}");
    assert_eq!(looked_up.load(Ordering::Relaxed), 0);
    assert_eq!(refusal.status(), StatusCode::TOO_MANY_REQUESTS);
    // About an hour and five minutes from now.
    assert!((3_895..=3_901).contains(&refusal.retry_after_secs()));

    // The layer: the same refusal, and the handler never runs.
    let classified = Arc::new(AtomicUsize::new(0));
    let classify = {
        let classified = Arc::clone(&classified);
        let routes = table();
        move |request: &Request<Body>| {
            classified.fetch_add(1, Ordering::Relaxed);
            routes.classify(request)
        }
    };
    let served = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::with_anomaly(limiter, Arc::clone(&detector), classify);
    let app = app(layer, Arc::clone(&served));
    let keys = LimitKeys {
        ip: Some(blocked),
        user: None,
    };
    let response = app.clone().oneshot(request(&keys)).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3_895..=3_901).contains(&retry));
    let body = problem(response).await;
    assert_eq!(
        body["detail"],
        format!("unusual traffic from this address; retry in {retry} s")
    );
    assert_eq!(served.load(Ordering::Relaxed), 0);
    assert_eq!(
        classified.load(Ordering::Relaxed),
        0,
        "refused before classifying"
    );

    // Another client passes the same layer, with its limits' headers.
    let other = LimitKeys {
        ip: Some("203.0.113.31".parse().unwrap()),
        user: None,
    };
    let response = app.oneshot(request(&other)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["ratelimit-limit"], "5");
    assert_eq!(served.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn no_checks_admit_without_asking_the_limiter_or_setting_headers() {
    let recorded = crate::support::metrics();
    let limiter = limiter();
    // Only anonymous-user rows: an anonymous request without an address has no checks.
    let routes =
        RouteLimits::new(&RuleTable::default()).route("*", "/*", RouteClass::Ai, KeyBy::User);
    let decisions = "hearth_rate_limit_decisions_total{outcome=allowed,rule=ai.minute}";
    let before = recorded.total(decisions);
    let arrival = Arrival {
        method: &Method::GET,
        path: "/anything",
        client: None,
        arrived: Instant::now(),
    };
    let admitted = Admission::new(&limiter)
        .admit(&routes, arrival, LimitKeys::default)
        .await
        .unwrap();
    assert_eq!(admitted.decision(), None);
    let mut headers = HeaderMap::new();
    admitted.write_headers(&mut headers);
    assert!(headers.is_empty());
    assert_eq!(
        recorded.total(decisions),
        before,
        "the limiter was not asked"
    );
    // The same keys for a signed-in user are decided and counted.
    let signed_in = LimitKeys {
        ip: None,
        user: Some("u-8".into()),
    };
    let admitted = Admission::new(&limiter)
        .admit(&routes, arrival, || &signed_in)
        .await
        .unwrap();
    assert_eq!(admitted.decision().unwrap().rule, "ai.minute");
    assert!(recorded.total(decisions) > before);
}
