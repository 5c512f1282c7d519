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

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Dispatch, Span};

use crate::ids;

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
    // No header at all is the common case: nothing to parse.
    if !get(TRACEPARENT).is_some_and(well_formed) {
        return false;
    }
    let parent = TraceContextPropagator::new().extract(&Lookup(get, PhantomData));
    if !parent.span().span_context().is_valid() {
        return false;
    }
    ids::set_remote_parent(span, parent)
}

/// Whether `value` has the W3C layout `vv-<32 hex>-<16 hex>-ff`, with a longer tail allowed
/// only after another `-` for versions above 00. The propagator checks the values but not
/// every length, and the specification asks for a malformed header to be ignored.
fn well_formed(value: &str) -> bool {
    let value = value.trim().as_bytes();
    let hex = |part: &[u8]| part.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    value.len() >= 55
        && [2, 35, 52].iter().all(|&at| value[at] == b'-')
        && hex(&value[..2])
        && hex(&value[3..35])
        && hex(&value[36..52])
        && hex(&value[53..55])
        && match &value[..2] {
            b"00" => value.len() == 55,
            _ => value.len() == 55 || value[55] == b'-',
        }
}

/// The trace context of `span` as a string map (`traceparent`, and `tracestate` when set), to
/// store beside a job. Empty when the span has no trace context.
pub fn inject(span: &Span) -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    if let Some(context) = span_context(span) {
        let context = Context::new().with_remote_span_context(context);
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
    }
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
    span_context(span).map(|context| {
        (
            context.trace_id().to_string(),
            context.span_id().to_string(),
        )
    })
}

/// The trace and span ids of the span `id` in `dispatch`, as bytes, for the log layer.
pub(crate) fn ids_of(id: &tracing::span::Id, dispatch: &Dispatch) -> Option<([u8; 16], [u8; 8])> {
    ids::context_of(id, dispatch)
        .filter(SpanContext::is_valid)
        .map(|context| (context.trace_id().to_bytes(), context.span_id().to_bytes()))
}

/// The valid trace context of `span`, if its dispatcher gives it one.
fn span_context(span: &Span) -> Option<SpanContext> {
    span.with_subscriber(|(id, dispatch)| ids::context_of(id, dispatch))
        .flatten()
        .filter(SpanContext::is_valid)
}
