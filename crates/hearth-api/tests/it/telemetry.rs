//! Logs, traces and detailed health: OTLP export to a real receiver on loopback, W3C trace
//! context in and out, JSON log lines with their ids and without secrets, the admin-only
//! health page and the separate metrics port.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use hearth_api::ApiError;
use hearth_auth::Role;
use hearth_observability::{LogFormat, LogSettings, Service, TelemetrySettings};
use hearth_test_support::{TestDb, postgres_db, sqlite_db};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{TestApp, problem, spawn_app_with, spawn_custom};

const INCOMING_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const INCOMING_PARENT: &str = "00f067aa0ba902b7";

fn incoming_traceparent() -> String {
    format!("00-{INCOMING_TRACE}-{INCOMING_PARENT}-01")
}

/// Log lines collected in memory.
#[derive(Clone, Default)]
struct Captured(hearth_observability::LogBuffer);

impl Captured {
    fn text(&self) -> String {
        self.0.text()
    }

    fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
            .collect()
    }
}

/// What the gateway says it is, for every subscriber these tests build.
const SERVICE: Service = Service {
    name: "hearth-gateway",
    version: env!("CARGO_PKG_VERSION"),
    production: true,
};

fn json_log(level: &str) -> LogSettings {
    LogSettings {
        format: Some(LogFormat::Json),
        level: level.into(),
    }
}

/// The subscriber `init` would install, made the default for this (current-thread) test only,
/// so parallel tests keep their own.
///
/// Scoped to one thread, it sees what happens on that thread, not everything a request does:
/// a span whose last handle is dropped on another thread (see [`in_own_process`]) never closes
/// its parent here. Fine for log lines written on the test's thread; a test that needs whole
/// traces runs in its own process with the global subscriber instead.
fn subscriber(
    level: &str,
    telemetry: &TelemetrySettings,
) -> (
    tracing::dispatcher::DefaultGuard,
    hearth_observability::Guard,
    Captured,
) {
    hearth_test_support::tracing_interest::keep_global();
    let captured = Captured::default();
    let (dispatch, guard) =
        hearth_observability::dispatch(&json_log(level), telemetry, SERVICE, captured.0.clone())
            .unwrap();
    (tracing::dispatcher::set_default(&dispatch), guard, captured)
}

/// Set in the child process that [`in_own_process`] starts, to the test it runs there.
const OWN_PROCESS_VAR: &str = "HEARTH_TEST_OWN_PROCESS";

/// Whether the calling test, `test` in this module, runs its body in this process.
///
/// In the test binary as `cargo test` starts it, this runs `test` again, alone, in a child
/// process of this binary, asserts that it ran there and passed, and returns `false`: the
/// caller returns, its verdict being the child's. In that child it returns `true`.
///
/// Why a process: a test that follows every span of a request to the end needs its subscriber
/// installed globally, as `hearth_observability::init` does in the binaries. tracing's
/// registry closes a span's parent through the default dispatcher of whichever thread drops
/// the span's last handle, and spans are handed to other threads: sqlx's SQLite worker
/// threads keep the current span of each command they run, so `create_user` and `play_round`
/// often end there. With a subscriber scoped to the test's thread (`set_default`) those
/// threads have none, the parent is never told, and the handler span and the request span
/// above it stay open, never exported. A global subscriber is the default of every thread,
/// and a process has only one.
fn in_own_process(test: &str) -> bool {
    if std::env::var_os(OWN_PROCESS_VAR).is_some() {
        return true;
    }
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_crate, module)| module);
    let name = format!("{module}::{test}");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--test-threads=1", "--nocapture"])
        .env(OWN_PROCESS_VAR, &name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A name that matched no test would pass with nothing run.
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} failed in its own process ({}):\n{stdout}\n{stderr}",
        output.status
    );
    false
}

/// An OTLP/HTTP receiver on loopback, on its own thread and runtime, so that a blocking flush
/// in the test cannot stall it. Every decoded export arrives on the channel.
fn otlp_receiver() -> (String, mpsc::Receiver<ExportTraceServiceRequest>) {
    let (tx, rx) = mpsc::channel();
    let (addr_tx, addr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let tx = Arc::new(Mutex::new(tx));
            let app = Router::new().route(
                "/v1/traces",
                post(move |body: Bytes| {
                    let tx = tx.clone();
                    async move {
                        let request = ExportTraceServiceRequest::decode(body).unwrap();
                        let _ = tx.lock().unwrap().send(request);
                        (
                            [("content-type", "application/x-protobuf")],
                            Vec::<u8>::new(),
                        )
                    }
                }),
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = addr_rx.recv().unwrap();
    (format!("http://{addr}"), rx)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key)? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        other => Some(format!("{other:?}")),
    }
}

#[test]
fn spans_reach_an_otlp_receiver_linked_to_the_callers_trace_with_the_request_id() {
    if !in_own_process(
        "spans_reach_an_otlp_receiver_linked_to_the_callers_trace_with_the_request_id",
    ) {
        return;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(spans_reach_an_otlp_receiver());
}

/// The body of the test above, in a process of its own, with the subscriber the gateway
/// installs.
async fn spans_reach_an_otlp_receiver() {
    let (endpoint, exports) = otlp_receiver();
    let telemetry = TelemetrySettings {
        otlp_endpoint: Some(endpoint),
        service_name: Some("hearth-otlp-test".into()),
        instance_id: Some("gateway-7".into()),
        traceparent_response: true,
        ..Default::default()
    };
    let guard = hearth_observability::init(&json_log("info"), &telemetry, SERVICE)
        .expect("the only subscriber of this process");
    assert!(guard.is_exporting());
    let t = match postgres_db().await {
        Some(t) => t,
        None => sqlite_db().await,
    };
    let app = spawn_app_with(&t, |s| s.telemetry = telemetry.clone()).await;
    let token = app.player("Traced").await;

    let response = app
        .request(reqwest::Method::POST, "/v1/games/slots/spin", Some(&token))
        .header("traceparent", incoming_traceparent())
        .header("x-request-id", "otlp-request-1")
        .json(&json!({ "bet": 5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answered = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        answered.starts_with(&format!("00-{INCOMING_TRACE}-")),
        "{answered}"
    );
    app.stop().await.unwrap();
    t.cleanup().await;

    let guard = tokio::task::spawn_blocking(move || {
        guard.force_flush().unwrap();
        guard
    })
    .await
    .unwrap();

    // Gather what arrived until the request's spans are in (the batch may be split).
    let mut spans: Vec<Span> = Vec::new();
    let mut resource = Vec::new();
    let wanted = |spans: &[Span]| {
        let has = |name: &str| {
            spans
                .iter()
                .filter(|s| hex(&s.trace_id) == INCOMING_TRACE)
                .any(|s| s.name == name)
        };
        has("POST /v1/games/slots/spin") && has("spin_slots") && has("play_round")
    };
    while !wanted(&spans) {
        let export = exports
            .recv_timeout(Duration::from_secs(20))
            .expect("the request's spans are exported");
        for resource_spans in export.resource_spans {
            if let Some(r) = resource_spans.resource {
                resource = r.attributes;
            }
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans);
            }
        }
    }
    drop(guard);

    assert_eq!(
        string_attribute(&resource, "service.name").as_deref(),
        Some("hearth-otlp-test")
    );
    assert_eq!(
        string_attribute(&resource, "service.version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        string_attribute(&resource, "service.instance.id").as_deref(),
        Some("gateway-7")
    );

    let in_trace: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == INCOMING_TRACE)
        .collect();
    let server = in_trace
        .iter()
        .find(|s| s.name == "POST /v1/games/slots/spin")
        .expect("the request span, named by its route template");
    assert_eq!(hex(&server.parent_span_id), INCOMING_PARENT);
    // SpanKind::Server is 2 in the OTLP enum.
    assert_eq!(server.kind, 2);
    assert_eq!(
        string_attribute(&server.attributes, "request_id").as_deref(),
        Some("otlp-request-1")
    );
    assert_eq!(
        string_attribute(&server.attributes, "route").as_deref(),
        Some("/v1/games/slots/spin")
    );
    assert!(matches!(
        attribute(&server.attributes, "http.response.status_code"),
        Some(any_value::Value::IntValue(200))
    ));
    assert!(string_attribute(&server.attributes, "user_id").is_some());
    // The response named the request span.
    assert_eq!(
        answered,
        format!("00-{INCOMING_TRACE}-{}-01", hex(&server.span_id))
    );

    let handler = in_trace
        .iter()
        .find(|s| s.name == "spin_slots")
        .expect("the handler span");
    assert_eq!(handler.parent_span_id, server.span_id);
    assert!(matches!(
        attribute(&handler.attributes, "bet"),
        Some(any_value::Value::IntValue(5))
    ));
    // On SQLite this span ends on the connection's worker thread, and still closes its parent.
    let storage = in_trace
        .iter()
        .find(|s| s.name == "play_round")
        .expect("the storage span");
    assert_eq!(storage.parent_span_id, handler.span_id);
    // Nothing from this request escaped into another trace.
    assert!(
        !spans
            .iter()
            .filter(|s| hex(&s.trace_id) != INCOMING_TRACE)
            .any(|s| string_attribute(&s.attributes, "request_id").as_deref()
                == Some("otlp-request-1"))
    );
}

#[tokio::test]
async fn a_request_without_traceparent_starts_a_trace_and_the_header_is_optional() {
    let (_default, guard, _logs) = subscriber("info", &TelemetrySettings::default());
    assert!(!guard.is_exporting(), "no endpoint, no export");
    let t = sqlite_db().await;
    let app = spawn_app_with(&t, |s| s.telemetry.traceparent_response = true).await;
    hearth_test_support::tracing_interest::refresh();

    let fresh = app.get("/health/live", None).await;
    let fresh = fresh.headers()["traceparent"].to_str().unwrap().to_owned();
    let parts: Vec<&str> = fresh.split('-').collect();
    assert_eq!(parts.len(), 4, "{fresh}");
    assert_eq!((parts[0], parts[1].len(), parts[2].len()), ("00", 32, 16));
    assert_ne!(parts[1], INCOMING_TRACE);

    let continued = app
        .client
        .get(app.url("/health/live"))
        .header("traceparent", incoming_traceparent())
        .send()
        .await
        .unwrap();
    let continued = continued.headers()["traceparent"].to_str().unwrap();
    assert!(continued.starts_with(&format!("00-{INCOMING_TRACE}-")));
    assert!(!continued.contains(INCOMING_PARENT), "a new span id");

    // A malformed traceparent is ignored, not an error.
    let malformed = app
        .client
        .get(app.url("/health/live"))
        .header("traceparent", "00-zzzz-1-01")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::OK);
    app.stop().await.unwrap();

    // A browser page may send its trace on: CORS lets the header through.
    let cors = spawn_app_with(&t, |s| {
        s.server.cors_origins = vec!["https://play.example".into()];
    })
    .await;
    let preflight = cors
        .request(reqwest::Method::OPTIONS, "/v1/me", None)
        .header("origin", "https://play.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "traceparent")
        .send()
        .await
        .unwrap();
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allowed.contains("traceparent"), "{allowed}");
    cors.stop().await.unwrap();

    let quiet = spawn_app_with(&t, |_| {}).await;
    let response = quiet.get("/health/live", None).await;
    assert!(response.headers().get("traceparent").is_none());
    quiet.stop().await.unwrap();
}

const CANARY_SECRET: &str = "canary-jwt-secret-7f3c9a1e5b2d4c6e8a0b";
const CANARY_PASSWORD: &str = "Canary-Pa55phrase-Zq8!";

#[tokio::test]
async fn json_logs_carry_request_trace_and_user_ids_and_never_a_secret() {
    // Everything, at every level, from every crate.
    let (_default, _guard, logs) = subscriber("trace", &TelemetrySettings::default());
    let t = sqlite_db().await;
    let app = spawn_app_with(&t, |s| {
        s.auth.jwt_secret = SecretString::from(CANARY_SECRET.to_owned());
    })
    .await;
    hearth_test_support::tracing_interest::refresh();
    let register = json!({
        "username": "Canary",
        "email": "canary@example.com",
        "password": CANARY_PASSWORD,
    });
    assert_eq!(
        app.post("/v1/auth/register", None, &register)
            .await
            .status(),
        StatusCode::CREATED
    );
    let tokens: Value = app
        .post(
            "/v1/auth/login",
            None,
            &json!({ "login": "Canary", "password": CANARY_PASSWORD }),
        )
        .await
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let me: Value = app
        .request(reqwest::Method::GET, "/v1/me", Some(&access))
        .header("x-request-id", "canary-me-1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // A wrong password and a forged token go through the error paths too.
    app.post(
        "/v1/auth/login",
        None,
        &json!({ "login": "Canary", "password": format!("{CANARY_PASSWORD}x") }),
    )
    .await;
    app.get("/v1/me", Some(&format!("{access}x"))).await;
    app.stop().await.unwrap();

    let text = logs.text();
    for (what, secret) in [
        ("JWT secret", CANARY_SECRET),
        ("password", CANARY_PASSWORD),
        ("access token", access.as_str()),
        ("refresh token", refresh.as_str()),
        // The signature alone would be enough to replay a forged-then-fixed token.
        ("token signature", access.rsplit('.').next().unwrap()),
    ] {
        assert!(!text.contains(secret), "the {what} reached the logs");
    }

    let lines = logs.lines();
    let completed = lines
        .iter()
        .find(|l| l["message"] == "request completed" && l["request_id"] == "canary-me-1")
        .expect("the access log line of GET /v1/me");
    assert_eq!(completed["level"], "INFO");
    assert_eq!(completed["target"], "hearth_api::middleware");
    assert_eq!(completed["fields"]["status"], 200);
    assert_eq!(completed["user_id"], me["id"]);
    assert_eq!(completed["spans"][0]["route"], "/v1/me");
    let trace_id = completed["trace_id"].as_str().unwrap();
    let span_id = completed["span_id"].as_str().unwrap();
    assert!(trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(span_id.len() == 16 && span_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(completed["timestamp"].as_str().is_some());
}

#[tokio::test]
async fn an_internal_error_is_logged_with_its_cause_chain_counted_and_hidden_from_the_client() {
    let (_default, _guard, logs) = subscriber("info", &TelemetrySettings::default());
    let t = sqlite_db().await;
    let app = spawn_custom(
        &t,
        |_| {},
        |state| {
            let routes = Router::new().route(
                "/explode",
                get(|| async {
                    let cause = anyhow::anyhow!("disk sector 7 unreadable");
                    Err::<(), _>(ApiError::internal(cause.context("saving the round")))
                }),
            );
            Some(hearth_api::with_stack(routes, state))
        },
    )
    .await;
    hearth_test_support::tracing_interest::refresh();
    let before = counter(&app, "hearth_http_internal_errors_total");
    let response = app
        .client
        .get(app.url("/explode"))
        .header("x-request-id", "explode-1")
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert!(
        !body.to_string().contains("sector"),
        "internals leaked: {body}"
    );
    let after = counter(&app, "hearth_http_internal_errors_total");
    assert!(after > before, "{before} -> {after}");
    app.stop().await.unwrap();

    let lines = logs.lines();
    let logged = lines
        .iter()
        .find(|l| l["message"] == "internal error" && l["request_id"] == "explode-1")
        .expect("the error line, with the request id");
    assert_eq!(logged["level"], "ERROR");
    assert_eq!(
        logged["fields"]["error"],
        "saving the round: disk sector 7 unreadable"
    );
}

/// The value of an unlabelled counter in the registry `/metrics` renders (0 when absent).
fn counter(app: &TestApp, name: &str) -> f64 {
    let text = app.state.metrics.render();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn spawn_for_details(t: &TestDb) -> (TestApp, bool) {
    let redis = hearth_test_support::service_url(hearth_test_support::REDIS_URL_VAR, "Redis");
    let with_redis = redis.is_some();
    let app = spawn_app_with(t, |s| {
        if let Some(url) = redis {
            s.redis.url = Some(SecretString::from(url));
            s.redis.key_prefix = format!("hearth-test:{}:", uuid::Uuid::new_v4().simple());
        }
    })
    .await;
    (app, with_redis)
}

#[tokio::test]
async fn health_details_are_for_admins_only() {
    let t = sqlite_db().await;
    let (app, with_redis) = spawn_for_details(&t).await;

    problem(
        app.get("/health/details", None).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let player = app.player("Curious").await;
    // Hidden from players exactly as a path that does not exist.
    let hidden = problem(
        app.get("/health/details", Some(&player)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let missing = problem(
        app.get("/health/nothing", None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(hidden["detail"], missing["detail"]);

    // A token claiming admin is not enough: the role must be held in the database.
    let forged_role = app
        .state
        .tokens
        .issue_pair(uuid::Uuid::now_v7(), "root", Role::Admin)
        .unwrap()
        .access_token;
    problem(
        app.get("/health/details", Some(&forged_role)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.register("Root").await;
    t.db.set_role("root", "admin").await.unwrap();
    let login: Value = app.login("root").await.json().await.unwrap();
    let admin = login["access_token"].as_str().unwrap().to_owned();
    let response = app.get("/health/details", Some(&admin)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    app.stop().await.unwrap();

    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptime_secs"].is_u64());
    if cfg!(target_os = "linux") {
        assert!(body["rss_bytes"].as_u64().unwrap() > 1_000_000);
    }
    assert_eq!(body["database"]["status"], "ok");
    assert_eq!(body["database"]["backend"], "sqlite");
    assert!(body["database"]["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(body["database"]["pool"]["max"], t.settings.max_connections);
    assert!(body["database"]["pool"]["size"].as_u64().unwrap() >= 1);
    if with_redis {
        assert_eq!(body["redis"]["status"], "ok");
        assert!(body["redis"]["latency_ms"].as_f64().unwrap() >= 0.0);
    } else {
        assert_eq!(body["redis"]["status"], "not configured");
    }
}

#[tokio::test]
async fn metrics_move_to_the_admin_port_when_one_is_configured() {
    let t = sqlite_db().await;
    let app = spawn_app_with(&t, |s| {
        s.telemetry.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    problem(app.get("/metrics", None).await, StatusCode::NOT_FOUND).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hearth_api::telemetry::serve_admin(
        listener,
        app.state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    app.get("/health/live", None).await;
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("hearth_build_info{"), "{text}");
    assert!(text.contains("hearth_http_requests_total{"));
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    app.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_cover_the_fleet_signals_with_route_templates_only() {
    let t = sqlite_db().await;
    let app = spawn_app_with(&t, |s| s.limits.rules.login.per_minute = Some(1)).await;
    let token = app.player("Metered").await;
    let round: Value = app.spin(&token, 5).await.json().await.unwrap();
    let round_id = round["round_id"].as_str().unwrap().to_owned();
    app.get(&format!("/v1/fairness/rounds/{round_id}"), Some(&token))
        .await;
    // A second login inside the minute is refused by the login rule.
    app.login("Metered").await;
    let text = app.get("/metrics", None).await.text().await.unwrap();
    app.stop().await.unwrap();

    for family in [
        "hearth_http_requests_total{",
        "hearth_http_request_duration_seconds_bucket{",
        "hearth_http_requests_in_flight ",
        "hearth_game_rounds_total{game=\"slots\"}",
        "hearth_game_wagered_coins_total{game=\"slots\"}",
        "hearth_game_paid_coins_total{game=\"slots\"}",
        "hearth_rate_limit_refusals_total{",
        "hearth_db_pool_connections{state=\"idle\"}",
        "hearth_db_pool_max_connections ",
        // Zero on SQLite, but always exposed, so dashboards and alerts find the series.
        "hearth_db_round_statements_total 0",
        "hearth_db_round_statement_rounds_total 0",
        "hearth_db_round_statement_failures_total 0",
        "hearth_process_uptime_seconds ",
        "hearth_build_info{",
    ] {
        assert!(text.contains(family), "{family} missing from /metrics");
    }
    // The scrape itself is being served while the gauge is read.
    let in_flight: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("hearth_http_requests_in_flight "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(in_flight >= 1.0, "in flight: {in_flight}");
    assert!(text.contains("le=\"0.005\""), "sub-10 ms latency buckets");
    assert!(text.contains("route=\"/v1/fairness/rounds/{round_id}\""));
    assert!(!text.contains(&round_id), "a raw path became a label");
    assert!(
        text.contains("hearth_rate_limit_refusals_total{rule=\"login.minute\"}"),
        "refusals by rule"
    );
}
