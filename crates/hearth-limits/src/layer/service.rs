//! The [`RateLimit`] service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};

use crate::limiter::Limiter;
use crate::rule::{Check, RATELIMIT_REMAINING};

/// The future of a [`RateLimit`] call.
pub type ResponseFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

/// The middleware made by [`RateLimitLayer`](super::RateLimitLayer).
pub struct RateLimit<S, F> {
    inner: S,
    limiter: Limiter,
    classify: Arc<F>,
}

impl<S: Clone, F> Clone for RateLimit<S, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            classify: Arc::clone(&self.classify),
        }
    }
}

impl<S: std::fmt::Debug, F> std::fmt::Debug for RateLimit<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<S, F> RateLimit<S, F> {
    pub(crate) fn new(inner: S, limiter: Limiter, classify: Arc<F>) -> Self {
        Self {
            inner,
            limiter,
            classify,
        }
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
        let checks = (self.classify)(&request);
        // The service that was polled ready handles this request; its clone waits for the
        // next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if checks.is_empty() {
            return Box::pin(inner.call(request));
        }
        let limiter = self.limiter.clone();
        Box::pin(async move {
            let decision = match limiter.check(&checks).await {
                Ok(decision) => decision,
                Err(_) => return Ok(super::unavailable()),
            };
            if !decision.allowed {
                return Ok(super::too_many_requests(&decision));
            }
            let mut response = inner.call(request).await?;
            let headers = response.headers_mut();
            // With nested rate-limit layers, the tightest remaining count wins.
            let tighter_inside = headers
                .get(RATELIMIT_REMAINING)
                .and_then(|v| v.to_str().ok()?.parse::<u32>().ok())
                .is_some_and(|inner_remaining| inner_remaining <= decision.remaining);
            if !tighter_inside {
                decision.write_headers(headers);
            }
            Ok(response)
        })
    }
}
