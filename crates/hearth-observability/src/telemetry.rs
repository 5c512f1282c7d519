//! One `init` for logs and traces: the subscriber, the OpenTelemetry layer and, when an
//! endpoint is configured, the OTLP/HTTP exporter.

use std::net::SocketAddr;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider};
use serde::Deserialize;
use tracing::Dispatch;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{EnvFilter, Registry, fmt};

use crate::ids::IdLayer;
use crate::json::JsonLayer;
use crate::logging::{LogFormat, LogSettings};

/// The `telemetry` settings section (`HEARTH__TELEMETRY__*`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Base URL of an OTLP/HTTP receiver (`http://127.0.0.1:4318`); spans go to
    /// `<endpoint>/v1/traces`. Unset: nothing is exported, though trace ids are still made,
    /// logged and propagated.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of exported spans. Unset: the program's own name (`hearth-gateway`).
    pub service_name: Option<String>,
    /// `service.instance.id`. Unset: `<hostname>-<pid>`, unique per process.
    pub instance_id: Option<String>,
    /// Share of new traces recorded, 0.0 to 1.0. A trace continued from a caller follows the
    /// caller's sampling decision instead.
    pub sample_ratio: f64,
    /// Whether responses carry a `traceparent` header naming the request's span.
    pub traceparent_response: bool,
    /// Where `/metrics` is served. Unset: on the main port, beside the API. Set: only on this
    /// separate admin address, which can stay off the public network.
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: None,
            instance_id: None,
            sample_ratio: 1.0,
            traceparent_response: false,
            metrics_addr: None,
        }
    }
}

impl TelemetrySettings {
    /// Every problem with these settings, for the start-up check (empty when all is well).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            problems.push(format!(
                "telemetry.sample_ratio (HEARTH__TELEMETRY__SAMPLE_RATIO) is {}; it must be between 0 and 1",
                self.sample_ratio
            ));
        }
        if let Some(endpoint) = &self.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            problems.push(format!(
                "telemetry.otlp_endpoint (HEARTH__TELEMETRY__OTLP_ENDPOINT) is {endpoint:?}; it must be an http:// or https:// URL"
            ));
        }
        problems
    }
}

/// What the process is, for the resource attributes of its spans.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// The default `service.name`, used when [`TelemetrySettings::service_name`] is unset.
    pub name: &'static str,
    /// `service.version`.
    pub version: &'static str,
    /// Picks JSON logs when [`LogSettings::format`] is unset.
    pub production: bool,
}

/// Errors from [`init`] and [`dispatch`].
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The level directive did not parse.
    #[error("invalid log level directive {directive:?}: {source}")]
    Filter {
        /// The directive as configured.
        directive: String,
        /// Why it did not parse.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The telemetry settings are out of range.
    #[error("invalid telemetry settings: {0}")]
    Settings(String),
    /// The OTLP exporter could not be built.
    #[error("building the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A global tracing subscriber was already installed (in tests, by an earlier call).
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Keeps the trace pipeline alive. Dropping it flushes the spans still queued and stops the
/// exporter, so binaries hold it until `main` returns.
#[must_use = "dropping the guard stops trace export"]
pub struct Guard {
    provider: SdkTracerProvider,
    exporting: bool,
    /// The batched standard output [`init`] logs to: written out and stopped on drop.
    logs: Option<crate::BatchedWriter>,
}

impl Guard {
    /// Whether spans are exported (an OTLP endpoint is configured).
    pub fn is_exporting(&self) -> bool {
        self.exporting
    }

    /// Exports every finished span now. It blocks until the receiver answers or the export
    /// times out, so async callers run it on a blocking thread.
    ///
    /// # Errors
    /// When the export fails.
    pub fn force_flush(&self) -> Result<(), opentelemetry_sdk::error::OTelSdkError> {
        self.provider.force_flush()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.exporting
            && let Err(error) = self.provider.shutdown()
        {
            tracing::warn!(%error, "trace export did not shut down cleanly");
        }
        if let Some(logs) = &self.logs {
            logs.close();
        }
    }
}

/// Installs the process-wide subscriber: logs to standard output, spans to OTLP when
/// configured.
///
/// Log lines are written by a thread of their own, in batches at most 25 ms apart
/// ([`BatchedWriter`](crate::BatchedWriter)); keep the returned [`Guard`] until exit, since
/// dropping it writes out what is still waiting.
///
/// # Errors
/// See [`InitError`].
pub fn init(
    log: &LogSettings,
    telemetry: &TelemetrySettings,
    service: Service,
) -> Result<Guard, InitError> {
    // Lines are written in batches by a thread of their own, not one system call per line on
    // the thread that logs (see `BatchedWriter`).
    let logs = crate::BatchedWriter::stdout();
    // Colours only for a terminal: not into a file, a pipe or a container's log.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let (dispatch, mut guard) = match build(log, telemetry, service, logs.clone(), false, ansi) {
        Ok(built) => built,
        Err(error) => {
            logs.close();
            return Err(error);
        }
    };
    guard.logs = Some(logs);
    if tracing::dispatcher::set_global_default(dispatch).is_err() {
        return Err(InitError::AlreadyInstalled);
    }
    Ok(guard)
}

/// Builds the subscriber without installing it, writing logs to `writer` (the pretty format
/// without colours): for tests (with `tracing::dispatcher::set_default`) and benchmarks.
///
/// Made the default of one thread only, it does not see whole traces. tracing's registry tells
/// a span's parent that the span has closed through the default subscriber of the thread that
/// drops the span's last handle, and spans reach other threads (sqlx's SQLite worker threads
/// hold the current span of each command they run). When such a thread drops one last, the
/// parent is never closed, so it is neither exported nor freed. What must see every span, as the binaries do, installs it globally ([`init`]).
///
/// # Errors
/// See [`InitError`].
pub fn dispatch<W>(
    log: &LogSettings,
    telemetry: &TelemetrySettings,
    service: Service,
    writer: W,
) -> Result<(Dispatch, Guard), InitError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    build(log, telemetry, service, writer, false, false)
}

/// As [`dispatch`], with the OpenTelemetry layer making the ids even though nothing is
/// exported: tests run propagation through both id sources.
#[cfg(test)]
pub(crate) fn dispatch_with_otel_ids<W>(
    log: &LogSettings,
    telemetry: &TelemetrySettings,
    service: Service,
    writer: W,
) -> Result<(Dispatch, Guard), InitError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    build(log, telemetry, service, writer, true, false)
}

fn build<W>(
    log: &LogSettings,
    telemetry: &TelemetrySettings,
    service: Service,
    writer: W,
    ids_from_otel: bool,
    ansi: bool,
) -> Result<(Dispatch, Guard), InitError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let (targets, env_filter) = level_filter(&log.level)?;
    if let Some(problem) = telemetry.problems().into_iter().next() {
        return Err(InitError::Settings(problem));
    }
    let name = telemetry
        .service_name
        .clone()
        .unwrap_or_else(|| service.name.to_owned());
    let instance = telemetry.instance_id.clone().unwrap_or_else(instance_id);
    let resource = Resource::builder_empty()
        .with_service_name(name.clone())
        .with_attributes([
            KeyValue::new("service.version", service.version),
            KeyValue::new("service.instance.id", instance),
        ])
        .build();
    let sampler =
        Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(telemetry.sample_ratio)));
    let mut provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler.clone());
    let exporting = telemetry.otlp_endpoint.is_some();
    if let Some(endpoint) = &telemetry.otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
            .with_timeout(Duration::from_secs(10))
            .build()?;
        // Batches on its own thread: a slow collector never holds up a request.
        provider = provider.with_span_processor(BatchSpanProcessor::builder(exporter).build());
    }
    let provider = provider.build();
    // Spans get their ids from the OpenTelemetry layer only when they are exported; otherwise
    // the id layer gives the same ids at a fraction of the cost (see `ids`).
    let (otel, ids) = if exporting || ids_from_otel {
        let otel = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(name))
            .with_threads(false)
            // A request span is entered and left on every poll: timing each of those, and
            // attaching its context to the thread each time, cost more than the span itself.
            // Nothing here reads the ambient OpenTelemetry context; propagation asks the span.
            .with_tracked_inactivity(false)
            .with_context_activation(false);
        (Some(otel), None)
    } else {
        (None, Some(IdLayer::new(sampler)))
    };

    let format = log.format.unwrap_or(if service.production {
        LogFormat::Json
    } else {
        LogFormat::Pretty
    });
    let registry = Registry::default()
        .with(targets)
        .with(env_filter)
        .with(otel)
        .with(ids);
    let dispatch = match format {
        LogFormat::Json => Dispatch::new(registry.with(JsonLayer::new(writer))),
        LogFormat::Pretty => Dispatch::new(
            registry.with(
                fmt::layer()
                    .with_target(true)
                    .with_ansi(ansi)
                    .with_writer(writer),
            ),
        ),
    };
    crate::process::mark_start();
    Ok((
        dispatch,
        Guard {
            provider,
            exporting,
            logs: None,
        },
    ))
}

/// The level filter for a `log.level` directive, as exactly one of two layers:
/// - `Targets` for levels by target only (`info,sqlx=warn`), decided once per call site, after
///   which spans cost it nothing;
/// - `EnvFilter` for directives that name spans or fields (`[http_request{route=/v1/me}]=debug`),
///   which it tracks per span, taking a lock every thread shares on each span's creation,
///   entry, exit and close.
fn level_filter(directive: &str) -> Result<(Option<Targets>, Option<Box<EnvFilter>>), InitError> {
    // EnvFilter reads every form, and its errors name the part that is wrong.
    let env_filter = EnvFilter::builder()
        .parse(directive)
        .map_err(|source| InitError::Filter {
            directive: directive.to_owned(),
            source,
        })?;
    let names_spans_or_fields = directive.contains(['[', '{']);
    Ok(match directive.parse::<Targets>() {
        Ok(targets) if !names_spans_or_fields => (Some(targets), None),
        _ => (None, Some(Box::new(env_filter))),
    })
}

/// `<hostname>-<pid>`: stable for the life of the process, distinct between processes.
fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{host}-{}", std::process::id())
}
