//! Liveness, readiness, detailed health for admins, and metrics.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_app::leaderboards::{Board, Period};
use hearth_limits::RedisDownPolicy;
use hearth_observability::metrics::names;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::error::{ApiError, problem};
use crate::extract::AdminUser;
use crate::state::AppState;

/// `GET /health/live`: the process is up and serving.
#[utoipa::path(
    get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "`{\"status\": \"ok\"}`.", body = Object))
)]
pub(crate) async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /health/ready`: 200 when this instance should get traffic; 503 naming the failing
/// check while draining, when the database is unreachable or migrations are pending.
#[utoipa::path(
    get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready: `{status, checks}`.", body = Object),
        (status = 503, description = "Not ready; `checks` names the failing one."),
    )
)]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let mut checks = Map::new();
    let mut failing = Vec::new();
    if state.is_draining() {
        checks.insert("shutdown".into(), json!("draining"));
        failing.push("shutdown");
    }
    match state.db.ping().await {
        Ok(()) => {
            checks.insert("database".into(), json!("ok"));
            match state.db.pending_migrations().await {
                Ok(pending) if pending.is_empty() => {
                    checks.insert("migrations".into(), json!("ok"));
                }
                Ok(pending) => {
                    checks.insert("migrations".into(), json!({ "pending": pending }));
                    failing.push("migrations");
                }
                Err(error) => {
                    tracing::warn!(%error, "readiness: migration check failed");
                    checks.insert("migrations".into(), json!("unknown"));
                    failing.push("migrations");
                }
            }
        }
        Err(error) => {
            tracing::warn!(%error, "readiness: database unreachable");
            checks.insert("database".into(), json!("unreachable"));
            failing.push("database");
        }
    }
    if state.limiter.backend() == "redis" {
        // Under the `local` policy a Redis outage degrades limits to per-instance ones and the
        // gateway keeps serving, so readiness stays green (failing it would drain every
        // gateway at once); under `refuse` every limited request is refused, so it fails.
        let refusing = state.settings.limits.redis_down == RedisDownPolicy::Refuse;
        match (state.limiter.is_degraded(), refusing) {
            (false, _) => {
                checks.insert("redis".into(), json!("ok"));
            }
            (true, false) => {
                checks.insert("redis".into(), json!("degraded: per-instance limits"));
            }
            (true, true) => {
                checks.insert("redis".into(), json!("unreachable"));
                failing.push("redis");
            }
        }
    }
    if failing.is_empty() {
        return Json(json!({ "status": "ready", "checks": checks })).into_response();
    }
    let mut extra = Map::new();
    extra.insert("checks".into(), Value::Object(checks));
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("not ready: {}", failing.join(", ")),
        extra,
    )
}

/// `GET /metrics` on the main port: the Prometheus exposition, unless
/// `telemetry.metrics_addr` moves it to the admin listener, in which case this is a 404.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition.", content_type = "text/plain", body = String),
        (status = 404, description = "Metrics are served on the admin port instead."),
    )
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    if state.settings.telemetry.metrics_addr.is_some() {
        return ApiError::NotFound("no resource at this path").into_response();
    }
    render_metrics(State(state)).await.into_response()
}

/// The Prometheus text exposition, with the pool gauges sampled now.
pub(crate) async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    let pool = state.db.pool_stats();
    metrics::gauge!(names::DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(pool.idle));
    metrics::gauge!(names::DB_POOL_CONNECTIONS, "state" => "in_use")
        .set(f64::from(pool.size.saturating_sub(pool.idle)));
    metrics::gauge!(names::DB_POOL_MAX).set(f64::from(state.settings.database.max_connections));
    let sent = state.db.round_statements();
    metrics::counter!(names::DB_ROUND_STATEMENTS).absolute(sent.statements);
    metrics::counter!(names::DB_ROUND_STATEMENT_ROUNDS).absolute(sent.rounds);
    metrics::counter!(names::DB_ROUND_STATEMENT_FAILURES).absolute(sent.failed);
    metrics::gauge!(names::UPTIME).set(hearth_observability::process::uptime().as_secs_f64());
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(names::HTTP_IN_FLIGHT).set(crate::middleware::requests_in_flight() as f64);
    if let Some(rss) = hearth_observability::process::rss_bytes() {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!(names::RESIDENT_MEMORY).set(rss as f64);
    }
    let mut text = hearth_observability::metrics::render(&state.metrics);
    // Written here rather than through the global recorder: the count is this gateway's
    // (this `AppState`'s), and a recorder gauge would be shared by every app in a process.
    let _ = write!(
        text,
        "# HELP {name} Distinct users with a socket or an authenticated request in the last 5 minutes\n\
         # TYPE {name} gauge\n{name} {count}\n",
        name = names::ACTIVE_USERS,
        count = state.active_users.count(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// `GET /health/details`, for admins only ([`AdminUser`]: the role, still held, from an allowed
/// address): version, uptime, memory, and the latency and state of the database and Redis.
/// Anyone else gets what a missing page gets (404), so the route does not advertise itself;
/// without a token, 401 like every protected route.
#[utoipa::path(
    get, path = "/health/details", tag = "operations", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Version, uptime, memory, database and Redis latency, pool stats.", body = Object),
        (status = 404, description = "Not an allowed admin."),
    )
)]
pub(crate) async fn details(
    State(state): State<AppState>,
    AdminUser(_, audit): AdminUser,
) -> Response {
    // Audited, but served even when the audit cannot be written: this is the page that says
    // why the database is down.
    if let Err(error) = audit.done(&state, None, serde_json::json!({})).await {
        tracing::warn!(?error, "health details served without an audit row");
    }
    let started = Instant::now();
    let database = match state.db.ping().await {
        Ok(()) => json!({ "status": "ok", "latency_ms": millis(started.elapsed()) }),
        Err(error) => {
            tracing::warn!(%error, "health details: database unreachable");
            json!({ "status": "unreachable", "latency_ms": millis(started.elapsed()) })
        }
    };
    let pool = state.db.pool_stats();
    let mut database = database;
    database["backend"] = json!(state.db.backend());
    database["pool"] = json!({
        "size": pool.size,
        "idle": pool.idle,
        "in_use": pool.size.saturating_sub(pool.idle),
        "max": state.settings.database.max_connections,
    });
    let redis = if state.leaderboards.backend() == "redis" || state.limiter.backend() == "redis" {
        // One real round trip: the cheapest read Hearth makes on Redis.
        let started = Instant::now();
        let read = state
            .leaderboards
            .top(
                Board::Balance,
                Period::AllTime,
                OffsetDateTime::now_utc(),
                1,
            )
            .await;
        let latency = millis(started.elapsed());
        let status = match (&read, state.limiter.is_degraded()) {
            (Ok(_), false) => "ok",
            (Ok(_), true) => "degraded: limits per instance",
            (Err(_), _) => "unreachable",
        };
        json!({ "status": status, "latency_ms": latency })
    } else {
        json!({ "status": "not configured" })
    };
    Json(json!({
        "status": if state.is_draining() { "draining" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "environment": if state.settings.is_production() { "production" } else { "development" },
        "uptime_secs": hearth_observability::process::uptime().as_secs(),
        "rss_bytes": hearth_observability::process::rss_bytes(),
        "database": database,
        "redis": redis,
        "limits": { "backend": state.limiter.backend(), "degraded": state.limiter.is_degraded() },
        "leaderboards": { "backend": state.leaderboards.backend() },
        "ai": ai_details(&state),
        "tracing": {
            "exporting": state.settings.telemetry.otlp_endpoint.is_some(),
            "sample_ratio": state.settings.telemetry.sample_ratio,
        },
    }))
    .into_response()
}

/// Each AI provider's circuit breaker, in the order they are tried, and where the budgets live.
fn ai_details(state: &AppState) -> Value {
    let providers: Vec<Value> = state
        .ai
        .client()
        .health()
        .into_iter()
        .map(|p| {
            json!({
                "name": p.name,
                "kind": p.kind,
                "model": p.model,
                "breaker": p.breaker.state.as_str(),
                "recent_failures": p.breaker.recent_failures,
                "total_failures": p.breaker.total_failures,
                "times_opened": p.breaker.times_opened,
                "probe_in_secs": p.breaker.probe_in.map(|d| d.as_secs_f64()),
            })
        })
        .collect();
    json!({
        "providers": providers,
        "budgets": {
            "backend": state.ai.budgets().backend(),
            "degraded": state.ai.budgets().is_degraded(),
        },
    })
}

fn millis(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}
