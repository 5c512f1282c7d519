//! The [`RateLimit`] service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};

use super::Shared;
use crate::admission::{Admission, ClientKey};
use crate::routes::LimitKeys;
use crate::rule::{Check, RATELIMIT_REMAINING};

/// The future of a [`RateLimit`] call.
pub type ResponseFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

/// The middleware made by [`RateLimitLayer`](super::RateLimitLayer).
pub struct RateLimit<S, F> {
    inner: S,
    shared: Arc<Shared<F>>,
}

impl<S: Clone, F> Clone for RateLimit<S, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: std::fmt::Debug, F> std::fmt::Debug for RateLimit<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.shared.limiter)
            .finish_non_exhaustive()
    }
}

impl<S, F> RateLimit<S, F> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<F>>) -> Self {
        Self { inner, shared }
    }
}

impl<S, F, B, ResBody> tower::Service<Request<B>> for RateLimit<S, F>
where
    S: tower::Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    F: Fn(&Request<B>) -> Vec<Check> + Send + Sync + 'static,
    B: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let arrived = Instant::now();
        // The service that was polled ready handles this request; its clone waits for the
        // next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            // The client's key only matters to the anomaly check.
            let client = shared
                .anomaly
                .as_ref()
                .and_then(|_| request.extensions().get::<LimitKeys>()?.ip)
                .map(ClientKey::new);
            let mut admission = Admission::new(&shared.limiter);
            if let Some(anomaly) = &shared.anomaly {
                admission = admission.with_anomaly(anomaly);
            }
            let decided = admission
                .admit_with(client.as_ref().map(ClientKey::as_str), arrived, || {
                    (shared.classify)(&request)
                })
                .await;
            let admitted = match decided {
                Ok(admitted) => admitted,
                Err(refusal) => return Ok(super::refusal(&refusal)),
            };
            let mut response = inner.call(request).await?;
            let Some(decision) = admitted.decision() else {
                return Ok(response);
            };
            let headers = response.headers_mut();
            // With nested rate-limit layers, the tightest remaining count wins.
            let tighter_inside = headers
                .get(RATELIMIT_REMAINING)
                .and_then(|v| v.to_str().ok()?.parse::<u32>().ok())
                .is_some_and(|inner_remaining| inner_remaining <= decision.remaining);
            if !tighter_inside {
                admitted.write_headers(headers);
            }
            Ok(response)
        })
    }
}
