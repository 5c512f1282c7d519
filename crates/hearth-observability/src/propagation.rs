//! W3C trace context (`traceparent`, `tracestate`): continuing a trace that arrives with a
//! request or a job, and handing the current one on.
//!
//! A job queue stores [`inject`]'s map with the job; the worker that runs it calls
//! [`extract_into`] on its job span, which then joins the trace of the request that enqueued it.
//!
//! ```
//! use hearth_observability::propagation;
//!
//! let request = tracing::info_span!("http_request");
//! let carrier = propagation::inject(&request); // stored with the job
//! let job = tracing::info_span!("job");
//! propagation::extract_into(&job, &carrier);
//! ```
//! Without [`init`](crate::init)'s subscriber, spans carry no trace context: the map is empty
//! and extracting is a no-op.

use std::collections::HashMap;
use std::marker::PhantomData;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Dispatch, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The request header that carries the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

struct Lookup<'a, F>(F, PhantomData<&'a ()>);

impl<'a, F: Fn(&str) -> Option<&'a str>> Extractor for Lookup<'a, F> {
    fn get(&self, key: &str) -> Option<&str> {
        (self.0)(key)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, "tracestate"]
    }
}

/// Makes `span` continue the trace named by a `traceparent` (and `tracestate`) that `get`
/// returns for a header name. Returns whether a valid parent was found; without one the span
/// starts a new trace.
///
/// Call it right after creating the span, before it is entered.
pub fn continue_trace<'a>(span: &Span, get: impl Fn(&str) -> Option<&'a str>) -> bool {
    let parent = TraceContextPropagator::new().extract(&Lookup(get, PhantomData));
    if !parent.span().span_context().is_valid() {
        return false;
    }
    span.set_parent(parent).is_ok()
}

/// The trace context of `span` as a string map (`traceparent`, and `tracestate` when set), to
/// store beside a job. Empty when the span has no trace context.
pub fn inject(span: &Span) -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier
}

/// Makes `span` a child of the context in `carrier` (from [`inject`]). Returns whether the
/// carrier held a valid context.
pub fn extract_into(span: &Span, carrier: &HashMap<String, String>) -> bool {
    continue_trace(span, |key| carrier.get(key).map(String::as_str))
}

/// The `traceparent` value naming `span`, to send on a response or an outgoing call.
pub fn traceparent(span: &Span) -> Option<String> {
    inject(span).remove(TRACEPARENT)
}

/// The trace id and span id of `span` as lowercase hex, when it has a valid trace context.
pub fn ids(span: &Span) -> Option<(String, String)> {
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    span_context.is_valid().then(|| {
        (
            span_context.trace_id().to_string(),
            span_context.span_id().to_string(),
        )
    })
}

/// The trace and span ids of the span `id` in `dispatch`, as bytes, for the log layer.
pub(crate) fn ids_of(id: &tracing::span::Id, dispatch: &Dispatch) -> Option<([u8; 16], [u8; 8])> {
    let context = tracing_opentelemetry::get_otel_context(id, dispatch)?;
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    span_context.is_valid().then(|| {
        (
            span_context.trace_id().to_bytes(),
            span_context.span_id().to_bytes(),
        )
    })
}
