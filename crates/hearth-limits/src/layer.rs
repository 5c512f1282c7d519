//! The tower rate-limit middleware: [`RateLimitLayer`] holds the configuration,
//! [`RateLimit`] does the work.

mod service;

use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode, header};

pub use self::service::{RateLimit, ResponseFuture};
use crate::limiter::Limiter;
use crate::rule::{Decision, ceil_secs};

/// The `Content-Type` of refusals.
const PROBLEM_JSON: &str = "application/problem+json";

/// Rate-limits requests: `classify` turns a request into its [`Check`](crate::Check)s (for
/// example [`RouteLimits::classify`](crate::RouteLimits::classify)), the [`Limiter`] decides
/// them together, and
///
/// - on refusal the inner service is not called; the answer is 429 with `Retry-After`, the
///   `RateLimit-*` headers and an `application/problem+json` body;
/// - when Redis is down and the policy is to refuse, the answer is 503 with `Retry-After: 1`;
/// - otherwise the response gets the `RateLimit-*` headers (unless an inner rate-limit layer
///   already set tighter ones).
///
/// A request with no checks passes untouched.
pub struct RateLimitLayer<F> {
    limiter: Limiter,
    classify: Arc<F>,
}

impl<F> Clone for RateLimitLayer<F> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            classify: Arc::clone(&self.classify),
        }
    }
}

impl<F> std::fmt::Debug for RateLimitLayer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<F> RateLimitLayer<F> {
    /// A layer deciding with `limiter` the checks `classify` derives from each request.
    pub fn new(limiter: Limiter, classify: F) -> Self {
        Self {
            limiter,
            classify: Arc::new(classify),
        }
    }
}

impl<S, F> tower::Layer<S> for RateLimitLayer<F> {
    type Service = RateLimit<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.limiter.clone(), Arc::clone(&self.classify))
    }
}

/// 429 with the decision's headers and a problem+json body.
pub(crate) fn too_many_requests<B: From<String>>(decision: &Decision) -> Response<B> {
    let retry = decision.retry_after.map_or(1, |d| ceil_secs(d).max(1));
    let detail = format!(
        "Rate limit {} exceeded ({} requests per window); retry in {retry} s.",
        decision.rule, decision.limit
    );
    let mut response = problem(
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-requests",
        "Too Many Requests",
        &detail,
    );
    decision.write_headers(response.headers_mut());
    response
}

/// 503 while limits cannot be decided (Redis down, policy refuse).
pub(crate) fn unavailable<B: From<String>>() -> Response<B> {
    let mut response = problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "service-unavailable",
        "Service Unavailable",
        "Rate limiting is temporarily unavailable; retry shortly.",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn problem<B: From<String>>(
    status: StatusCode,
    kind: &str,
    title: &str,
    detail: &str,
) -> Response<B> {
    let body = format!(
        r#"{{"type":"urn:hearth:problem:{kind}","title":"{title}","status":{},"detail":"{}"}}"#,
        status.as_u16(),
        json_escape(detail)
    );
    let mut response = Response::new(B::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

/// Escapes text for a JSON string (rule names are configuration, but may hold anything).
fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escape_handles_quotes_backslashes_and_controls() {
        assert_eq!(json_escape("a\"b\\c\nd"), "a\\\"b\\\\c\\u000ad");
    }
}
