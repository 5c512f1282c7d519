//! The tower rate-limit middleware: [`RateLimitLayer`] holds the configuration,
//! [`RateLimit`] does the work, through the same [`Admission`](crate::Admission) sequence the
//! Hearth gateway runs.

mod service;

use std::sync::Arc;

use http::{HeaderValue, Response, header};

pub use self::service::{RateLimit, ResponseFuture};
use crate::admission::Refusal;
use crate::anomaly::AnomalyDetector;
use crate::limiter::Limiter;

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
/// A layer made [`with_anomaly`](Self::with_anomaly) first answers 429 to a client the
/// detector has blocked (keyed by the address in the request's
/// [`LimitKeys`](crate::LimitKeys)).
///
/// A request with no checks passes untouched. The sequence, the decisions, the headers and
/// the refusals' `detail` are those of the Hearth gateway: both run
/// [`Admission::admit_with`](crate::Admission::admit_with).
pub struct RateLimitLayer<F> {
    shared: Arc<Shared<F>>,
}

/// What every [`RateLimit`] of a layer shares.
pub(crate) struct Shared<F> {
    pub(crate) limiter: Limiter,
    pub(crate) anomaly: Option<Arc<AnomalyDetector>>,
    pub(crate) classify: F,
}

impl<F> Clone for RateLimitLayer<F> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<F> std::fmt::Debug for RateLimitLayer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.shared.limiter)
            .field("anomaly", &self.shared.anomaly.is_some())
            .finish_non_exhaustive()
    }
}

impl<F> RateLimitLayer<F> {
    /// A layer deciding with `limiter` the checks `classify` derives from each request.
    pub fn new(limiter: Limiter, classify: F) -> Self {
        Self {
            shared: Arc::new(Shared {
                limiter,
                anomaly: None,
                classify,
            }),
        }
    }

    /// A layer that also refuses (429) clients `anomaly` has blocked, before classifying
    /// their requests, and counts every request with an address towards its judgement, as
    /// the gateway does.
    pub fn with_anomaly(limiter: Limiter, anomaly: Arc<AnomalyDetector>, classify: F) -> Self {
        Self {
            shared: Arc::new(Shared {
                limiter,
                anomaly: Some(anomaly),
                classify,
            }),
        }
    }
}

impl<S, F> tower::Layer<S> for RateLimitLayer<F> {
    type Service = RateLimit<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, Arc::clone(&self.shared))
    }
}

/// A refusal as an answer: its status and headers, and a problem+json body with its detail
/// (and, for a rule's refusal, the rule's name).
pub(crate) fn refusal<B: From<String>>(refusal: &Refusal) -> Response<B> {
    let status = refusal.status();
    let slug = if status == http::StatusCode::SERVICE_UNAVAILABLE {
        "unavailable"
    } else {
        "too-many-requests"
    };
    let mut response = problem(status, slug, &refusal.detail(), refusal.rule());
    refusal.write_headers(response.headers_mut());
    response
}

fn problem<B: From<String>>(
    status: http::StatusCode,
    kind: &str,
    detail: &str,
    rule: Option<&str>,
) -> Response<B> {
    let rule = rule.map_or_else(String::new, |rule| {
        format!(r#","rule":"{}""#, json_escape(rule))
    });
    let body = format!(
        r#"{{"type":"urn:hearth:problem:{kind}","title":"{}","status":{},"detail":"{}"{rule}}}"#,
        status.canonical_reason().unwrap_or("Error"),
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
