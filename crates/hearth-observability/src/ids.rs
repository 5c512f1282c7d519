//! Trace and span ids without the OpenTelemetry pipeline, for a process that exports nothing.
//!
//! Logs and propagation need every span's W3C ids even when no OTLP endpoint is set. The
//! OpenTelemetry layer would make them too, but it also builds a full SDK span per `tracing`
//! span (attributes, events, timestamps) only to drop it at the end: on a request that does
//! little, that was the largest single cost of the request span. [`IdLayer`] keeps just the
//! [`SpanContext`] in the span's extensions. [`crate::init`] uses it when nothing is exported
//! and the OpenTelemetry layer otherwise; [`context_of`] and [`set_remote_parent`] read and
//! write ids through whichever of the two the span's dispatcher has.

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanKind, TraceContextExt as _, TraceFlags, TraceState};
use opentelemetry_sdk::trace::{
    IdGenerator as _, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample as _,
};
use tracing::span::{Attributes, Id};
use tracing::{Dispatch, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::registry::{Extensions, LookupSpan, SpanData as _};

/// Gives every new span a [`SpanContext`]: a child shares its parent's trace and sampling
/// decision, a root starts a trace sampled by the configured sampler.
#[derive(Debug)]
pub(crate) struct IdLayer {
    ids: RandomIdGenerator,
    sampler: Sampler,
}

impl IdLayer {
    pub(crate) fn new(sampler: Sampler) -> Self {
        Self {
            ids: RandomIdGenerator::default(),
            sampler,
        }
    }

    fn root(&self) -> SpanContext {
        let trace_id = self.ids.new_trace_id();
        let decision = self
            .sampler
            .should_sample(None, trace_id, "", &SpanKind::Internal, &[], &[])
            .decision;
        let flags = if decision == SamplingDecision::RecordAndSample {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            trace_id,
            self.ids.new_span_id(),
            flags,
            false,
            TraceState::default(),
        )
    }
}

/// A span's ids, in its extensions.
struct Ids(SpanContext);

impl<S> Layer<S> for IdLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let inherited = span
            .parent()
            .and_then(|parent| parent.extensions().get::<Ids>().map(|ids| ids.0.clone()));
        let context = match inherited {
            Some(parent) => SpanContext::new(
                parent.trace_id(),
                self.ids.new_span_id(),
                parent.trace_flags(),
                false,
                parent.trace_state().clone(),
            ),
            None => self.root(),
        };
        span.extensions_mut().insert(Ids(context));
    }
}

/// The valid ids the id layer keeps in a span's `extensions`, as bytes, for the log layer.
pub(crate) fn in_extensions(extensions: &Extensions<'_>) -> Option<([u8; 16], [u8; 8])> {
    let Ids(context) = extensions.get::<Ids>()?;
    context
        .is_valid()
        .then(|| (context.trace_id().to_bytes(), context.span_id().to_bytes()))
}

/// The ids of span `id`, from whichever id source `dispatch` has.
///
/// No extension lock of the span may be held by the caller (the OpenTelemetry layer takes
/// one).
pub(crate) fn context_of(id: &Id, dispatch: &Dispatch) -> Option<SpanContext> {
    if dispatch.is::<IdLayer>() {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let data = registry.span_data(id)?;
        let context = data.extensions().get::<Ids>().map(|ids| ids.0.clone());
        return context;
    }
    let context = tracing_opentelemetry::get_otel_context(id, dispatch)?;
    Some(context.span().span_context().clone())
}

/// Makes `span` continue the remote trace `parent`: same trace id, sampling decision and
/// trace state, its own span id. Returns whether the span's dispatcher recorded it.
pub(crate) fn set_remote_parent(span: &tracing::Span, parent: Context) -> bool {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    let own = span.with_subscriber(|(id, dispatch)| {
        dispatch
            .is::<IdLayer>()
            .then(|| replace_trace(id, dispatch, &parent))
    });
    match own {
        Some(Some(recorded)) => recorded,
        // The OpenTelemetry layer, or no subscriber at all (then this is a no-op).
        _ => span.set_parent(parent).is_ok(),
    }
}

fn replace_trace(id: &Id, dispatch: &Dispatch, parent: &Context) -> bool {
    let Some(data) = dispatch
        .downcast_ref::<Registry>()
        .and_then(|registry| registry.span_data(id))
    else {
        return false;
    };
    let mut extensions = data.extensions_mut();
    let Some(ids) = extensions.get_mut::<Ids>() else {
        return false;
    };
    let remote = parent.span();
    let remote = remote.span_context();
    ids.0 = SpanContext::new(
        remote.trace_id(),
        ids.0.span_id(),
        remote.trace_flags(),
        false,
        remote.trace_state().clone(),
    );
    true
}
