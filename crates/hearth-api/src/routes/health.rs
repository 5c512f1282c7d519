//! Liveness, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_limits::RedisDownPolicy;
use hearth_observability::metrics::names;
use serde_json::{Map, Value, json};

use crate::error::problem;
use crate::state::AppState;

/// `GET /health/live`: the process is up and serving.
pub(crate) async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /health/ready`: 200 when this instance should get traffic; 503 naming the failing
/// check while draining, when the database is unreachable or migrations are pending.
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

/// `GET /metrics`: Prometheus text exposition.
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let pool = state.db.pool_stats();
    metrics::gauge!(names::DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(pool.idle));
    metrics::gauge!(names::DB_POOL_CONNECTIONS, "state" => "in_use")
        .set(f64::from(pool.size.saturating_sub(pool.idle)));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
