//! [`Guard`], inside CORS and compression: it applies rate limits and the body limit, cuts off
//! slow handlers and turns a panic into a 500.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use hearth_limits::Admission;
use serde_json::Map;
use tower::{Layer, Service, ServiceExt as _};

use crate::error::{ApiError, default_detail, problem};
use crate::limits;
use crate::state::AppState;

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
    let state = &shared.state;
    let admission = Admission::new(&state.limiter).with_anomaly(&state.anomaly);
    let admitted =
        match limits::admit(admission, &state.route_limits, &state.auth, &mut request).await {
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

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
