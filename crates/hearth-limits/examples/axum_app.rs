//! A plain axum app protected by `hearth-limits`.
//!
//! ```text
//! cargo run -p hearth-limits --example axum_app                  # serve on 127.0.0.1:3000
//! cargo run -p hearth-limits --example axum_app -- --demo        # send requests in-process, print, exit
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p hearth-limits --example axum_app -- --demo
//! ```
//!
//! The table below applies the per-IP rule to every request, the per-user rule to signed-in
//! requests, and the game and AI rules to their routes; the anomaly detector (in its default,
//! log-only setting) watches every client's request rate, as in the Hearth gateway, whose
//! admission sequence the layer runs. The log-in handler adds the per-IP-and-
//! account rule itself, because the account is in the body, which a layer does not read.
//! (Users come from an `x-demo-user` header here; a real app takes them from authentication.)

#![allow(clippy::print_stdout)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "examples fail loudly on what should not happen"
)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hearth_limits::{
    AnomalyDetector, KeyBy, LimitKeys, Limiter, LimitsSettings, RateLimitLayer, RouteClass,
    RouteLimits, Rule,
};
use serde::Deserialize;
use tower::ServiceExt;

#[derive(Clone)]
struct AppState {
    limiter: Limiter,
    login_rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct LoginForm {
    account: String,
}

/// Puts the rate-limit identities where the layer's classifier looks for them.
async fn identify(mut request: Request, next: Next) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let user = request
        .headers()
        .get("x-demo-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    request.extensions_mut().insert(LimitKeys { ip, user });
    next.run(request).await
}

async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(form): Json<LoginForm>,
) -> Response {
    let key = format!("login:{}:{}", peer.ip(), form.account.to_lowercase());
    let checks: Vec<_> = app
        .login_rules
        .iter()
        .map(|r| r.check(key.clone()))
        .collect();
    match app.limiter.check(&checks).await {
        Ok(decision) if decision.allowed => {
            let mut headers = HeaderMap::new();
            headers.extend(decision.headers());
            (headers, "welcome\n").into_response()
        }
        Ok(decision) => {
            let mut headers = HeaderMap::new();
            headers.extend(decision.headers());
            (
                StatusCode::TOO_MANY_REQUESTS,
                headers,
                "too many log-in attempts\n",
            )
                .into_response()
        }
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

fn app(limiter: Limiter, settings: &LimitsSettings) -> Router {
    #[rustfmt::skip]
    let limits = RouteLimits::new(&settings.rules)
        //     method  path                     rules              keyed by
        .route("*",    "/*",                    RouteClass::Ip,    KeyBy::Ip)
        .route("*",    "/*",                    RouteClass::User,  KeyBy::User)
        .route("POST", "/games/{id}/actions",   RouteClass::Game,  KeyBy::User)
        .route("POST", "/ai/*",                 RouteClass::Ai,    KeyBy::UserOrIp);
    println!("rate-limit table:\n{}", limits.describe());
    let state = AppState {
        limiter: limiter.clone(),
        login_rules: settings.rules.rules_for(RouteClass::Login),
    };
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/auth/login", post(login))
        .route("/games/{id}/actions", post(|| async { "moved\n" }))
        .route("/ai/chat", post(|| async { "hello from the model\n" }))
        .with_state(state)
        // Outermost last: `identify` runs first, then the rate-limit layer reads its keys.
        .layer(RateLimitLayer::with_anomaly(
            limiter,
            Arc::new(AnomalyDetector::new(settings.anomaly)),
            move |req: &Request<Body>| limits.classify(req),
        ))
        .layer(middleware::from_fn(identify))
}

async fn demo(app: Router) {
    let peer: SocketAddr = "203.0.113.7:51000".parse().unwrap();
    let send = |method: &str, path: &str, user: Option<&str>, body: &str| {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(user) = user {
            builder = builder.header("x-demo-user", user);
        }
        let mut request = builder.body(Body::from(body.to_owned())).unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    };
    let show = |label: &str, res: &Response| {
        let h = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        println!(
            "{label:32} {} limit={} remaining={} reset={} retry-after={}",
            res.status().as_u16(),
            h("ratelimit-limit"),
            h("ratelimit-remaining"),
            h("ratelimit-reset"),
            h("retry-after"),
        );
    };
    for i in 1..=6 {
        let res = send("POST", "/auth/login", None, r#"{"account":"alice"}"#)
            .await
            .unwrap();
        show(&format!("login alice #{i}"), &res);
    }
    let res = send("POST", "/auth/login", None, r#"{"account":"bob"}"#)
        .await
        .unwrap();
    show("login bob (same IP)", &res);
    for i in 1..=11 {
        let res = send("POST", "/ai/chat", Some("u-42"), "").await.unwrap();
        if i >= 10 {
            show(&format!("ai chat u-42 #{i}"), &res);
        }
    }
    let res = send("GET", "/health", Some("u-43"), "").await.unwrap();
    show("health u-43", &res);
}

#[tokio::main]
async fn main() {
    let settings = LimitsSettings::default();
    let limiter = match std::env::var("REDIS_URL") {
        Ok(url) => Limiter::redis(url.as_str(), settings.redis_down)
            .await
            .expect("a valid Redis URL"),
        Err(_) => Limiter::in_process(),
    };
    println!("limiter: {limiter:?}");
    let app = app(limiter, &settings);
    if std::env::args().any(|a| a == "--demo") {
        demo(app).await;
        return;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000")
        .await
        .unwrap();
    println!("listening on http://127.0.0.1:3000 (try: curl -i -XPOST localhost:3000/ai/chat)");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .unwrap();
}
