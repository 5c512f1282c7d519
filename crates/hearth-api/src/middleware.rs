//! Hearth's own middleware, as two hand-written services rather than a tower of small layers.
//!
//! [`Edge`] (outermost) settles the request id, opens the request span, answers with the
//! security headers, turns any bare error into problem+json, writes the access log and records
//! the HTTP metrics. [`Guard`] (inside CORS and compression) applies rate limits and the body
//! limit, cuts off slow handlers and turns a panic into a 500. Each is one future per request:
//! a stack of `from_fn` and `SetResponseHeader` layers cloned the whole inner stack and boxed a
//! future at every level, which cost more than the work the layers did (see
//! docs/benchmarks.md).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use hearth_observability::metrics::FixedHistogram;
use hearth_observability::metrics::names;
use metrics::Counter;
use serde_json::Map;
use tower::{Layer, Service, ServiceExt as _};
use tower_http::compression::predicate::DefaultPredicate;
use tower_http::compression::{Compression, CompressionBody};

use crate::error::{ApiError, PROBLEM_JSON, default_detail, problem};
use crate::request_id::{self, X_REQUEST_ID};
use crate::state::AppState;

/// Requests between `Edge` and their answer, in every app of the process (as the metric
/// registry is). A plain counter: the gauge's own increment and decrement are compare-and-swap
/// loops, plus a generation count, on lines every worker shares; `/metrics` sets the gauge
/// from this when it renders.
static IN_FLIGHT: AtomicI64 = AtomicI64::new(0);

/// The number of requests being served now, for the `hearth_http_requests_in_flight` gauge.
pub(crate) fn requests_in_flight() -> i64 {
    IN_FLIGHT.load(Ordering::Relaxed)
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

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

/// Counts a request in flight until dropped, even if the client disconnects and the answer is
/// dropped mid-request.
struct InFlight;

impl InFlight {
    fn start() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
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
                    let forwarded = request
                        .headers()
                        .get(&X_FORWARDED_FOR)
                        .and_then(|v| v.to_str().ok());
                    let ip = self.state.client_ip.resolve(peer.ip(), forwarded);
                    crate::limits::ClientIp::new(ip, arrived)
                });
        let span = tracing::info_span!(
            "http_request",
            method = method.as_str(),
            route,
            request_id = &*request_id,
            client_ip = client_ip.as_ref().map(crate::limits::ClientIp::text),
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
            other = Method::from_bytes(b"OTHER").expect("a valid method token");
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

/// Rate limits, the body limit, the request timeout and panic recovery.
pub(crate) struct Guard {
    state: AppState,
    timeout: Duration,
    body_limit: usize,
}

impl Guard {
    pub(crate) fn layer(state: AppState) -> GuardLayer {
        let timeout = Duration::from_secs(state.settings.server.request_timeout_secs);
        let body_limit = state.settings.server.body_limit_bytes;
        GuardLayer(Arc::new(Self {
            state,
            timeout,
            body_limit,
        }))
    }
}

/// Applies [`Guard`].
#[derive(Clone)]
pub(crate) struct GuardLayer(Arc<Guard>);

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            guard: Arc::clone(&self.0),
        }
    }
}

/// The service of a [`GuardLayer`]. Admission may wait for Redis before the rest of the stack
/// is called, so the request's future takes the service readied for it and leaves a clone.
#[derive(Clone)]
pub(crate) struct GuardService<S> {
    inner: S,
    guard: Arc<Guard>,
}

impl<S> Service<Request> for GuardService<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(guard(inner, Arc::clone(&self.guard), request).map(Ok))
    }
}

async fn guard<S>(inner: S, shared: Arc<Guard>, mut request: Request) -> Response
where
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
{
    let admitted = match crate::limits::admit(&shared.state, &mut request).await {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal,
    };
    let Ok(()) = limit_body(&mut request, shared.body_limit) else {
        let refusal = problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            default_detail(StatusCode::PAYLOAD_TOO_LARGE),
            Map::new(),
        );
        return admitted.finish(refusal);
    };
    // A panicking handler becomes a 500 with the request id, not a dropped connection.
    let answer = AssertUnwindSafe(inner.oneshot(request)).catch_unwind();
    let response = match within(shared.timeout, answer).await {
        Some(Ok(Ok(response))) => response.into_response(),
        Some(Ok(Err(never))) => match never {},
        Some(Err(panic)) => panic_response(&*panic),
        // A slow handler is cut off rather than holding a connection forever.
        None => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            default_detail(StatusCode::SERVICE_UNAVAILABLE),
            Map::new(),
        ),
    };
    admitted.finish(response)
}

/// A request body declared larger than the limit.
struct TooLarge;

/// Refuses a body declared larger than `limit` bytes before it is read, and makes a body of
/// unknown length fail when read past `limit`, which extractors answer with 413. A request
/// without a body (most of them) is left as it is. In place: a request is a few hundred
/// bytes, and every move copies them.
fn limit_body(request: &mut Request, limit: usize) -> Result<(), TooLarge> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(TooLarge);
    }
    if axum::body::HttpBody::is_end_stream(request.body()) {
        return Ok(());
    }
    let body = std::mem::take(request.body_mut());
    *request.body_mut() = Body::new(http_body_util::Limited::new(body, limit));
    Ok(())
}

/// `future`'s output, or `None` when it is still pending `limit` after it first had to wait.
///
/// Like `tokio::time::timeout`, except that the timer is made only when the future does not
/// finish on its first poll: most requests never wait, and registering and removing a timer
/// cost more than the rest of their trip through the stack.
async fn within<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        timer
            // From the first time it waits: the first poll ran without yielding.
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)))
            .as_mut()
            .poll(cx)
            .map(|()| None)
    })
    .await
}

fn panic_response(panic: &(dyn std::any::Any + Send)) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    ApiError::internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}

/// Response compression for the clients that ask for it (`Accept-Encoding`), by tower-http's
/// `Compression`. That layer alone wraps every response body, and looks for an encoding to
/// use, even when the request accepts none, as most API clients' requests do; those requests
/// go straight to the service it wraps, and their answer gets only the `Vary: accept-encoding`
/// that `Compression` would have added (to a body it would compress for another client).
#[derive(Clone)]
pub(crate) struct CompressWhenAsked<S>(Compression<S>);

/// Applies [`CompressWhenAsked`].
#[derive(Clone, Copy)]
pub(crate) struct CompressWhenAskedLayer;

impl<S> Layer<S> for CompressWhenAskedLayer {
    type Service = CompressWhenAsked<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CompressWhenAsked(Compression::new(inner))
    }
}

type Compressed<F> = futures_util::future::MapOk<
    tower_http::compression::ResponseFuture<F, DefaultPredicate>,
    fn(axum::http::Response<CompressionBody<Body>>) -> Response,
>;

impl<S> Service<Request> for CompressWhenAsked<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = futures_util::future::Either<
        Compressed<S::Future>,
        futures_util::future::MapOk<S::Future, fn(Response) -> Response>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The same inner service either way: `Compression` only asks it.
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        use futures_util::TryFutureExt as _;

        if request.headers().contains_key(header::ACCEPT_ENCODING) {
            let boxed: fn(axum::http::Response<CompressionBody<Body>>) -> Response =
                |response| response.map(Body::new);
            futures_util::future::Either::Left(self.0.call(request).map_ok(boxed))
        } else {
            let vary: fn(Response) -> Response = vary_on_accept_encoding;
            futures_util::future::Either::Right(self.0.get_mut().call(request).map_ok(vary))
        }
    }
}

/// Adds `Vary: accept-encoding` where `Compression` would have: the body is one it compresses
/// for a client that accepts gzip, and nothing below has said so already.
fn vary_on_accept_encoding(mut response: Response) -> Response {
    use tower_http::compression::Predicate as _;

    let said = response
        .headers()
        .get_all(header::VARY)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"accept-encoding"));
    if !said
        && !response.headers().contains_key(header::CONTENT_ENCODING)
        && DefaultPredicate::new().should_compress(&response)
    {
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn within_answers_what_finishes_in_time_and_none_after_the_limit() {
        let limit = Duration::from_millis(50);
        assert_eq!(within(limit, async { 7 }).await, Some(7));
        // Pending on the first poll, done well before the limit.
        let yielded = async {
            tokio::task::yield_now().await;
            8
        };
        assert_eq!(within(limit, yielded).await, Some(8));
        let stuck = tokio::time::sleep(Duration::from_secs(30));
        let started = Instant::now();
        assert_eq!(within(limit, stuck).await, None);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn bodies_are_limited_only_when_there_is_one() {
        let declared = Request::builder()
            .header(header::CONTENT_LENGTH, "2048")
            .body(Body::from(vec![b' '; 2048]))
            .unwrap();
        let mut declared = declared;
        assert!(limit_body(&mut declared, 1024).is_err());
        let mut empty = Request::builder().body(Body::empty()).unwrap();
        assert!(limit_body(&mut empty, 1024).is_ok());
        let mut small = Request::builder()
            .header(header::CONTENT_LENGTH, "2")
            .body(Body::from("{}"))
            .unwrap();
        assert!(limit_body(&mut small, 1024).is_ok());
        // The body is still there, behind the limit.
        let bytes = axum::body::to_bytes(small.into_body(), usize::MAX);
        let bytes = futures_util::FutureExt::now_or_never(bytes)
            .unwrap()
            .unwrap();
        assert_eq!(&bytes[..], b"{}");
    }
}
