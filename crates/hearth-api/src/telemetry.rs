//! The gateway's side of telemetry: W3C trace context on requests and responses, and the
//! optional admin listener that serves `/metrics` away from the public port.
//!
//! Everything that does not need HTTP types (the subscriber, the exporter, the propagation
//! format) lives in `hearth-observability`.

use std::future::Future;

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::routing::get;
use hearth_observability::propagation;
use tokio::net::TcpListener;

use crate::routes::health;
use crate::state::AppState;

/// The W3C trace context header.
pub static TRACEPARENT: HeaderName = HeaderName::from_static(propagation::TRACEPARENT);

/// Makes the request span continue the caller's trace when the request carries a valid
/// `traceparent`; otherwise the span starts a new trace.
pub(crate) fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    // Most requests carry no trace context: one lookup by the prepared header name.
    if !headers.contains_key(&TRACEPARENT) {
        return;
    }
    propagation::continue_trace(span, |name| {
        headers.get(name).and_then(|value| value.to_str().ok())
    });
}

/// Names the request span in a `traceparent` response header, when settings ask for it.
pub(crate) fn answer_traceparent(span: &tracing::Span, state: &AppState, headers: &mut HeaderMap) {
    if !state.settings.telemetry.traceparent_response {
        return;
    }
    if let Some(value) = propagation::traceparent(span).and_then(|v| HeaderValue::from_str(&v).ok())
    {
        headers.insert(TRACEPARENT.clone(), value);
    }
}

/// The admin router: `/metrics` and `/health/live`, without the public stack (no rate limits,
/// no CORS).
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(health::render_metrics))
        .route("/health/live", get(health::live))
        .with_state(state)
}

/// Serves [`admin_router`] on `listener` until `shutdown` completes. The gateway runs it on
/// `telemetry.metrics_addr` when that is set.
///
/// # Errors
/// When accepting connections fails.
pub async fn serve_admin(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, admin_router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
