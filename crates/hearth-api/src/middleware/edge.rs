//! [`Edge`], the outermost layer: it settles the request id, opens the request span, answers
//! with the security headers, turns any bare error into problem+json, writes the access log
//! and records the HTTP metrics.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use hearth_observability::metrics::FixedHistogram;
use hearth_observability::metrics::names;
use metrics::Counter;
use serde_json::Map;
use tower::{Layer, Service};

use super::in_flight::InFlight;
use crate::error::{PROBLEM_JSON, default_detail, problem};
use crate::limits::ClientIp;
use crate::request_id::{self, X_REQUEST_ID};
use crate::state::AppState;

/// The target of the request span and the access log: the module's name before it was split
/// into one file per layer, which log filters (`hearth_api::middleware=warn`) name.
const LOG_TARGET: &str = "hearth_api::middleware";

/// The route label for requests no route matched, so raw paths never become labels.
const UNMATCHED: &str = "unmatched";

/// Request id, span, security headers, problem+json, access log and metrics.
pub(crate) struct Edge {
    state: AppState,
    /// Set on every response that does not set its own.
    security_headers: Vec<(HeaderName, HeaderValue)>,
    metrics: HttpMetrics,
    /// Whether spans are exported: only then do they need an OpenTelemetry name.
    exporting: bool,
}

impl Edge {
    pub(crate) fn layer(state: AppState) -> EdgeLayer {
        let mut security_headers = vec![
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; frame-ancestors 'none'",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ];
        if state.settings.is_production() {
            security_headers.push((
                header::STRICT_TRANSPORT_SECURITY,
                "max-age=63072000; includeSubDomains",
            ));
        }
        let security_headers = security_headers
            .into_iter()
            .map(|(name, value)| (name, HeaderValue::from_static(value)))
            .collect();
        let exporting = state.settings.telemetry.otlp_endpoint.is_some();
        EdgeLayer(Arc::new(Self {
            state,
            security_headers,
            metrics: HttpMetrics::default(),
            exporting,
        }))
    }
}

/// Applies [`Edge`].
#[derive(Clone)]
pub(crate) struct EdgeLayer(Arc<Edge>);

impl<S> Layer<S> for EdgeLayer {
    type Service = EdgeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EdgeService {
            inner,
            edge: Arc::clone(&self.0),
        }
    }
}

/// The service of an [`EdgeLayer`]. Everything `Edge` does before the rest of the stack is
/// synchronous, so it calls the inner service it was readied with, rather than a clone of it
/// made for the request's future (cloning and dropping the whole stack below on every request
/// was a measurable share of its cost).
#[derive(Clone)]
pub(crate) struct EdgeService<S> {
    inner: S,
    edge: Arc<Edge>,
}

impl<S> Service<Request> for EdgeService<S>
where
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = Instant::now();
        let observed = self.edge.observe(&mut request, started);
        // Services below only build their futures here; their work runs when it is polled,
        // inside the request's span and request id.
        EdgeFuture {
            inner: Some(self.inner.call(request)),
            edge: Arc::clone(&self.edge),
            observed: Some(observed),
            started,
        }
    }
}

/// The future of an [`EdgeService`]: the rest of the stack's answer, polled inside the
/// request's span and with its request id, then finished by `Edge::finish`. A named type
/// rather than a boxed `async` block: axum boxes the route's future already, and this one
/// lives in that box rather than in an allocation of its own. (The stack below boxes its own
/// future, so `inner` is `Unpin`.)
pub(crate) struct EdgeFuture<F> {
    /// `None` once answered.
    inner: Option<F>,
    edge: Arc<Edge>,
    /// `None` once answered.
    observed: Option<Observed>,
    started: Instant,
}

impl<F, R> Future for EdgeFuture<F>
where
    F: Future<Output = Result<R, Infallible>> + Unpin,
    R: IntoResponse,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let (Some(observed), Some(inner)) = (&this.observed, &mut this.inner) else {
            panic!("EdgeFuture polled after it answered");
        };
        let polled = {
            let _entered = observed.span.enter();
            request_id::sync_scope(Arc::clone(&observed.request_id), || {
                match std::pin::Pin::new(inner).poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(never)) => match never {},
                    // Inside the request id's scope, so a problem document carries it.
                    Poll::Ready(Ok(response)) => {
                        Poll::Ready(as_problem_if_error(response.into_response()))
                    }
                }
            })
        };
        let Poll::Ready(response) = polled else {
            return Poll::Pending;
        };
        this.inner = None;
        #[allow(
            clippy::expect_used,
            reason = "polling a future again after it completed is a caller's bug, as everywhere"
        )]
        let observed = this.observed.take().expect("present until answered");
        Poll::Ready(Ok(this.edge.finish(response, observed, this.started)))
    }
}

impl<F> Drop for EdgeFuture<F> {
    /// A request given up on (the client went away, or the server shuts down) drops the rest
    /// of the stack inside its span and request id, as it ran.
    fn drop(&mut self) {
        if let (Some(observed), Some(inner)) = (&self.observed, self.inner.take()) {
            let _entered = observed.span.enter();
            request_id::sync_scope(Arc::clone(&observed.request_id), || drop(inner));
        }
    }
}

/// What `Edge` settled about a request before passing it on.
struct Observed {
    request_id: Arc<str>,
    request_id_header: HeaderValue,
    route: Option<MatchedPath>,
    method: Method,
    span: tracing::Span,
    in_flight: InFlight,
}

impl Edge {
    /// Settles the request id and the client address, opens the request span and counts the
    /// request in flight.
    fn observe(&self, request: &mut Request, arrived: Instant) -> Observed {
        let (request_id, request_id_header) = request_id::settle(request);
        let matched = request.extensions().get::<MatchedPath>().cloned();
        let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
        let method = request.method().clone();
        let client_ip =
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| {
                    // Every X-Forwarded-For line counts, joined in order.
                    let ip = self
                        .state
                        .client_ip
                        .resolve_headers(peer.ip(), request.headers());
                    ClientIp::new(ip, arrived)
                });
        let span = tracing::info_span!(
            target: LOG_TARGET,
            "http_request",
            method = method.as_str(),
            route,
            request_id = &*request_id,
            client_ip = client_ip.as_ref().map(ClientIp::text),
            user_id = tracing::field::Empty,
            // For the OpenTelemetry layer: a server span named by method and route template.
            otel.name = tracing::field::Empty,
            otel.kind = "server",
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        if self.exporting {
            span.record("otel.name", format!("{method} {route}"));
        }
        if let Some(client_ip) = client_ip {
            request.extensions_mut().insert(client_ip);
        }
        // Continue the caller's W3C trace if it sent one; otherwise this span starts a trace.
        crate::telemetry::continue_trace(&span, request.headers());

        Observed {
            request_id,
            request_id_header,
            route: matched,
            method,
            span,
            in_flight: InFlight::start(),
        }
    }

    /// Finishes the answer of the rest of the stack: security headers, the request id, the
    /// access log and the metrics.
    fn finish(&self, mut response: Response, observed: Observed, started: Instant) -> Response {
        let Observed {
            request_id: _,
            request_id_header,
            route,
            method,
            span,
            in_flight: _in_flight,
        } = observed;
        let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
        let span = &span;

        let elapsed = started.elapsed();
        let status = response.status().as_u16();
        // For the exported span; the log line has the status among its own fields.
        if self.exporting {
            // As i64: the OpenTelemetry layer keeps integers only when they come as signed.
            span.record("http.response.status_code", i64::from(status));
            if status >= 500 {
                span.record("otel.status_code", "ERROR");
            }
        }
        let headers = response.headers_mut();
        crate::telemetry::answer_traceparent(span, &self.state, headers);
        for (name, value) in &self.security_headers {
            // One lookup: set unless the response has its own.
            headers.entry(name).or_insert_with(|| value.clone());
        }
        headers.insert(X_REQUEST_ID.clone(), request_id_header);
        // A child of the span without entering it: the line carries the same ids and fields.
        tracing::info!(
            target: LOG_TARGET,
            parent: span,
            status,
            latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "request completed"
        );
        self.metrics
            .record(route, &method, status, elapsed.as_secs_f64());
        response
    }
}

/// [`as_problem`] for an error status, the response as it is otherwise.
fn as_problem_if_error(response: Response) -> Response {
    if response.status().is_client_error() || response.status().is_server_error() {
        as_problem(response)
    } else {
        response
    }
}

/// Turns an error response that is not already problem+json (axum's 404 and 405, an
/// extractor's 413) into the one error format, keeping its status and headers such as `Allow`.
fn as_problem(response: Response) -> Response {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let status = parts.status;
    let replacement = problem(status, default_detail(status), Map::new());
    let (new_parts, body) = replacement.into_parts();
    // The old body is gone, and with it whatever its length and encoding were.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_ENCODING);
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

/// The HTTP metrics' handles, looked up once per route, method and status rather than on
/// every request (a registry lookup builds and hashes a labelled key each time).
#[derive(Default)]
struct HttpMetrics {
    /// By route template; a route sees few (method, status) pairs, so a list is enough.
    by_route: RwLock<HashMap<String, Vec<RouteHandles>>>,
}

struct RouteHandles {
    method: Method,
    status: u16,
    duration: Arc<FixedHistogram>,
    requests: Counter,
}

impl HttpMetrics {
    fn record(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        // Methods are client input: any but the standard ones share one label, so a client
        // cannot grow the label set (or this cache) without bound.
        let standard = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
        ];
        let other;
        let method = if standard.contains(method) {
            method
        } else {
            #[allow(clippy::expect_used, reason = "OTHER is a valid method token")]
            let parsed = Method::from_bytes(b"OTHER").expect("a valid method token");
            other = parsed;
            &other
        };
        let matches = |h: &&RouteHandles| h.status == status && h.method == method;
        // Recorded under the read lock: cloning the handles out would cost more atomic
        // operations on lines every worker shares.
        let recorded = self.by_route.read().ok().is_some_and(|by_route| {
            by_route
                .get(route)
                .and_then(|handles| handles.iter().find(matches))
                .map(|handles| handles.record(seconds))
                .is_some()
        });
        if recorded {
            return;
        }
        let handles = RouteHandles {
            method: method.clone(),
            status,
            duration: hearth_observability::metrics::HTTP_DURATION
                .series(&[("route", route), ("method", method.as_str())]),
            requests: metrics::counter!(names::HTTP_REQUESTS,
                "route" => route.to_owned(), "method" => method.to_string(),
                "status" => status.to_string()),
        };
        handles.record(seconds);
        if let Ok(mut by_route) = self.by_route.write() {
            by_route.entry(route.to_owned()).or_default().push(handles);
        }
    }
}

impl RouteHandles {
    fn record(&self, seconds: f64) {
        self.duration.record(seconds);
        self.requests.increment(1);
    }
}
