//! Middleware written for Hearth: HTTP metrics and the problem+json guarantee.

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use hearth_observability::metrics::names;
use serde_json::Map;
use tracing::Instrument;

use crate::error::{PROBLEM_JSON, default_detail, problem};
use crate::request_id::RequestId;
use crate::state::AppState;

/// The route label for requests no route matched, so raw paths never become labels.
const UNMATCHED: &str = "unmatched";

/// One span per request (method, route template, request id, client IP, later the user id),
/// a completion log line, and the HTTP metrics: requests by route, method and status, latency,
/// and in-flight requests.
pub(crate) async fn observe(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let method = request.method().clone();
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    let client_ip =
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| {
                let forwarded = request
                    .headers()
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok());
                state.client_ip.resolve(peer.ip(), forwarded)
            });
    if let Some(ip) = client_ip {
        request.extensions_mut().insert(crate::limits::ClientIp(ip));
    }
    let span = tracing::info_span!(
        "http_request",
        method = %method,
        route = %route,
        request_id = %request_id,
        client_ip = client_ip.map(tracing::field::display),
        user_id = tracing::field::Empty,
        // For the OpenTelemetry layer: a server span named by method and route template.
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    // Continue the caller's W3C trace if it sent one; otherwise this span starts a trace.
    crate::telemetry::continue_trace(&span, request.headers());

    let started = Instant::now();
    let in_flight = metrics::gauge!(names::HTTP_IN_FLIGHT);
    in_flight.increment(1.0);
    // Decrements even if the client disconnects and this future is dropped mid-request.
    let _in_flight = OnDrop(move || in_flight.decrement(1.0));

    let mut response = next.run(request).instrument(span.clone()).await;

    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    // As i64: the OpenTelemetry layer keeps integers only when they come as signed.
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    crate::telemetry::answer_traceparent(&span, &state, response.headers_mut());
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "request completed"
        );
    });
    let method = method.as_str().to_owned();
    metrics::histogram!(names::HTTP_DURATION, "route" => route.clone(), "method" => method.clone())
        .record(elapsed.as_secs_f64());
    metrics::counter!(names::HTTP_REQUESTS, "route" => route, "method" => method, "status" => status.to_string())
        .increment(1);
    response
}

struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Turns any error response that is not already problem+json (axum's 404 and 405, tower-http's
/// 413 and timeouts) into the one error format, keeping its status and headers such as `Allow`.
pub(crate) async fn problem_json(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let replacement = problem(status, default_detail(status), Map::new());
    let (new_parts, body) = replacement.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    for (name, value) in &new_parts.headers {
        if name != header::CONTENT_TYPE {
            parts.headers.insert(name.clone(), value.clone());
        }
    }
    Response::from_parts(parts, Body::new(body))
}
