//! Telemetry for Hearth services: one `init` for logs and traces, one call for the metrics
//! registry.
//!
//! Libraries only *emit* telemetry (`tracing` spans and events, `metrics` counters); this crate
//! is where a binary decides where it goes. Any tokio service can embed it on its own.
//!
//! # Layout
//! - [`init`] (in `telemetry`): the `tracing` subscriber with JSON lines in production and
//!   readable text in development, level and per-target filters from [`LogSettings`], an
//!   OpenTelemetry layer that gives every span a trace id, and the OTLP/HTTP exporter when
//!   [`TelemetrySettings::otlp_endpoint`] is set. [`dispatch`] builds the same subscriber
//!   without installing it, for tests.
//! - [`propagation`]: W3C `traceparent` in and out of requests, and into a map that a job
//!   queue stores so that a job's span joins the trace that enqueued it.
//! - [`metrics`](mod@metrics): the process-wide Prometheus recorder, the names of every `hearth_`
//!   metric and their descriptions.
//! - [`process`]: uptime and resident memory, for detailed health.
//!
//! # Example
//! ```
//! use hearth_observability::{LogFormat, LogSettings, Service, TelemetrySettings, metrics};
//!
//! let log = LogSettings { format: Some(LogFormat::Json), level: "info".into() };
//! let service = Service { name: "my-service", version: "1.0.0", production: true };
//! // A second init in the same process (tests) is reported, not a panic.
//! let _guard = hearth_observability::init(&log, &TelemetrySettings::default(), service);
//! let handle = metrics::install();
//! ::metrics::counter!(metrics::names::HTTP_REQUESTS, "route" => "/x").increment(1);
//! assert!(handle.render().contains("hearth_http_requests_total"));
//! ```
//!
//! # What it does not do
//! It opens no ports: serving `/metrics` is the HTTP layer's job, with [`metrics::install`]'s
//! handle. It does not read the environment; settings come from the binary. It exports traces
//! only: logs go to standard output and metrics are scraped.

mod json;
pub mod logging;
pub mod metrics;
pub mod process;
pub mod propagation;
mod telemetry;

pub use logging::{LogBuffer, LogFormat, LogSettings};
pub use telemetry::{Guard, InitError, Service, TelemetrySettings, dispatch, init};
/// Where [`dispatch`] writes log lines: `std::io::stdout`, or a test's buffer.
pub use tracing_subscriber::fmt::MakeWriter;

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: Service = Service {
        name: "unit",
        version: "0.0.0",
        production: true,
    };

    #[test]
    fn a_bad_level_directive_is_refused_with_the_directive_named() {
        let log = LogSettings {
            format: None,
            level: "info,=[".into(),
        };
        let error = dispatch(
            &log,
            &TelemetrySettings::default(),
            SERVICE,
            LogBuffer::default(),
        )
        .err()
        .unwrap();
        assert!(error.to_string().contains("info,=["), "{error}");
    }

    #[test]
    fn a_sample_ratio_outside_zero_to_one_is_refused() {
        let telemetry = TelemetrySettings {
            sample_ratio: 1.5,
            ..Default::default()
        };
        assert_eq!(telemetry.problems().len(), 1);
        let result = dispatch(
            &LogSettings::default(),
            &telemetry,
            SERVICE,
            LogBuffer::default(),
        );
        assert!(matches!(result, Err(InitError::Settings(_))));
    }

    #[test]
    fn json_lines_carry_the_request_and_trace_ids_of_enclosing_spans() {
        let buffer = LogBuffer::default();
        let log = LogSettings {
            format: Some(LogFormat::Json),
            level: "info".into(),
        };
        let (dispatch, _guard) =
            dispatch(&log, &TelemetrySettings::default(), SERVICE, buffer.clone()).unwrap();
        let (outer_ids, carrier) = tracing::dispatcher::with_default(&dispatch, || {
            let request = tracing::info_span!(
                "http_request",
                request_id = "req-1",
                user_id = tracing::field::Empty
            );
            let continued = propagation::continue_trace(&request, |name| {
                (name == "traceparent")
                    .then_some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            });
            assert!(continued);
            request.record("user_id", "u-9");
            let inner = tracing::info_span!(parent: &request, "play_round");
            inner.in_scope(|| tracing::info!(bet = 10, "round played"));
            (
                propagation::ids(&inner).unwrap(),
                propagation::inject(&inner),
            )
        });
        let text = buffer.text();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["message"], "round played");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["bet"], 10);
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["user_id"], "u-9");
        assert_eq!(line["trace_id"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(line["span_id"], outer_ids.1.as_str());
        assert_eq!(line["spans"][1]["name"], "play_round");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        // The context handed to a job names the inner span, in the same trace.
        assert_eq!(
            carrier["traceparent"],
            format!("00-0af7651916cd43dd8448eb211c80319c-{}-01", outer_ids.1)
        );
    }

    #[test]
    fn a_job_span_joins_the_trace_it_was_handed() {
        let log = LogSettings {
            format: Some(LogFormat::Json),
            level: "info".into(),
        };
        let (dispatch, _guard) = dispatch(
            &log,
            &TelemetrySettings::default(),
            SERVICE,
            LogBuffer::default(),
        )
        .unwrap();
        tracing::dispatcher::with_default(&dispatch, || {
            let request = tracing::info_span!("http_request");
            let carrier = propagation::inject(&request);
            let (trace, _) = propagation::ids(&request).unwrap();
            let job = tracing::info_span!(parent: None, "job");
            assert!(propagation::extract_into(&job, &carrier));
            assert_eq!(propagation::ids(&job).unwrap().0, trace);
            let unrelated = tracing::info_span!(parent: None, "other");
            assert_ne!(propagation::ids(&unrelated).unwrap().0, trace);
            assert!(!propagation::extract_into(
                &unrelated,
                &std::collections::HashMap::new()
            ));
        });
    }
}
