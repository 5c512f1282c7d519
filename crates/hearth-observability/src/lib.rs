//! Telemetry for Hearth services: one `init` for logs and traces, one call for the metrics
//! registry.
//!
//! Libraries only *emit* telemetry (`tracing` spans and events, `metrics` counters); this crate
//! is where a binary decides where it goes. Any tokio service can embed it on its own.
//!
//! # Layout
//! - [`init`] (in `telemetry`): the `tracing` subscriber with JSON lines in production and
//!   readable text in development, level and per-target filters from [`LogSettings`], W3C
//!   trace and span ids on every span, and the OpenTelemetry layer with the OTLP/HTTP exporter
//!   when [`TelemetrySettings::otlp_endpoint`] is set (without an endpoint a lighter layer
//!   makes the same ids and nothing more). [`dispatch`] builds the same subscriber without
//!   installing it, for tests.
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
//! metrics::HTTP_DURATION.series(&[("route", "/x"), ("method", "GET")]).record(0.002);
//! let text = metrics::render(&handle);
//! assert!(text.contains("hearth_http_requests_total"));
//! assert!(text.contains(r#"hearth_http_request_duration_seconds_bucket{route="/x",method="GET",le="0.0025"} 1"#));
//! ```
//!
//! # What it does not do
//! It opens no ports: serving `/metrics` is the HTTP layer's job, with [`metrics::render`] of
//! [`metrics::install`]'s handle. It does not read the environment; settings come from the binary. It exports traces
//! only: logs go to standard output and metrics are scraped.

mod batched;
mod ids;
mod json;
pub mod logging;
pub mod metrics;
pub mod process;
pub mod propagation;
mod telemetry;

pub use batched::BatchedWriter;
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

    type Build = fn(
        &LogSettings,
        &TelemetrySettings,
        Service,
        LogBuffer,
    ) -> Result<(tracing::Dispatch, Guard), InitError>;

    /// Both id sources: the id layer (nothing exported) and the OpenTelemetry layer.
    const ID_SOURCES: [Build; 2] = [dispatch, telemetry::dispatch_with_otel_ids];

    /// A JSON-logging subscriber made by `build`, writing to the returned buffer.
    fn json_logs(build: Build) -> (tracing::Dispatch, Guard, LogBuffer) {
        let buffer = LogBuffer::default();
        let log = LogSettings {
            format: Some(LogFormat::Json),
            level: "info".into(),
        };
        let (dispatch, guard) =
            build(&log, &TelemetrySettings::default(), SERVICE, buffer.clone()).unwrap();
        (dispatch, guard, buffer)
    }

    #[test]
    fn json_lines_carry_every_field_of_a_span_with_many_and_the_latest_value_of_each() {
        let (dispatch, _guard, buffer) = json_logs(dispatch);
        tracing::dispatcher::with_default(&dispatch, || {
            // Sixteen fields, recorded at creation and later, some twice.
            let span = tracing::info_span!(
                "wide",
                f1 = 1,
                f2 = 2,
                f3 = 3,
                f4 = 4,
                f5 = 5,
                f6 = 6,
                f7 = 7,
                f8 = 8,
                f9 = 9,
                f10 = 10,
                f11 = 11,
                f12 = 12,
                f13 = 13,
                name = "not the span's name",
                request_id = "",
                f14 = tracing::field::Empty,
            );
            span.record("f14", "late");
            span.record("f2", "again");
            span.record("f13", 130);
            span.record("request_id", "req-7");
            span.in_scope(|| tracing::info!("wide event"));
        });
        let text = buffer.text();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let fields = &line["spans"][0];
        assert_eq!(fields["name"], "wide");
        for n in [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] {
            assert_eq!(fields[format!("f{n}")], n, "f{n} in {text}");
        }
        assert_eq!(fields["f2"], "again");
        assert_eq!(fields["f13"], 130);
        assert_eq!(fields["f14"], "late");
        assert_eq!(line["request_id"], "req-7");
        // Each field once: a field recorded again is written with its latest value only.
        assert_eq!(text.matches("\"f2\"").count(), 1, "{text}");
    }

    #[test]
    fn json_lines_carry_the_request_and_trace_ids_of_enclosing_spans() {
        for build in ID_SOURCES {
            json_lines_carry_ids(build);
        }
    }

    fn json_lines_carry_ids(build: Build) {
        let (dispatch, _guard, buffer) = json_logs(build);
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
        for build in ID_SOURCES {
            a_job_span_joins(build);
        }
    }

    fn a_job_span_joins(build: Build) {
        let log = LogSettings {
            format: Some(LogFormat::Json),
            level: "info".into(),
        };
        let (dispatch, _guard) = build(
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

    #[test]
    fn new_traces_follow_the_sample_ratio_and_continued_ones_the_caller() {
        for build in ID_SOURCES {
            for (ratio, flags) in [(0.0, "00"), (1.0, "01")] {
                let telemetry = TelemetrySettings {
                    sample_ratio: ratio,
                    ..Default::default()
                };
                let (dispatch, _guard) = build(
                    &LogSettings::default(),
                    &telemetry,
                    SERVICE,
                    LogBuffer::default(),
                )
                .unwrap();
                tracing::dispatcher::with_default(&dispatch, || {
                    let root = tracing::info_span!("root");
                    let child = tracing::info_span!(parent: &root, "child");
                    for span in [&root, &child] {
                        let parent = propagation::traceparent(span).unwrap();
                        assert!(parent.ends_with(flags), "{ratio}: {parent}");
                    }
                    let (root_trace, root_span) = propagation::ids(&root).unwrap();
                    let (child_trace, child_span) = propagation::ids(&child).unwrap();
                    assert_eq!(root_trace, child_trace);
                    assert_ne!(root_span, child_span);
                    // The caller's decision wins over the ratio, both ways.
                    for caller in ["00", "01"] {
                        let continued = tracing::info_span!("continued");
                        let header = format!(
                            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{caller}"
                        );
                        assert!(propagation::continue_trace(&continued, |name| {
                            (name == propagation::TRACEPARENT).then_some(header.as_str())
                        }));
                        let parent = propagation::traceparent(&continued).unwrap();
                        assert!(parent.ends_with(caller), "{ratio}/{caller}: {parent}");
                    }
                });
            }
        }
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        let (dispatch, _guard) = dispatch(
            &LogSettings::default(),
            &TelemetrySettings::default(),
            SERVICE,
            LogBuffer::default(),
        )
        .unwrap();
        tracing::dispatcher::with_default(&dispatch, || {
            for bad in [
                "00-00000000000000000000000000000000-b7ad6b7169203331-01",
                "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
                "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01",
                "not a traceparent",
            ] {
                let span = tracing::info_span!("request");
                let before = propagation::ids(&span).unwrap();
                assert!(!propagation::continue_trace(&span, |_| Some(bad)), "{bad}");
                assert_eq!(propagation::ids(&span).unwrap(), before, "{bad}");
            }
        });
    }

    #[test]
    fn target_directives_filter_alike_whichever_filter_carries_them() {
        // The second directive names a span, which needs EnvFilter; the first does not, and
        // gets the lighter per-target filter. Both must pass the same events.
        let static_level = "warn,sqlx=info,hearth_storage::db=debug";
        let with_span = format!("{static_level},[no_such_span]=trace");
        let build = |level: &str| {
            let buffer = LogBuffer::default();
            let log = LogSettings {
                format: Some(LogFormat::Json),
                level: level.into(),
            };
            let (dispatch, guard) =
                dispatch(&log, &TelemetrySettings::default(), SERVICE, buffer.clone()).unwrap();
            (dispatch, guard, buffer)
        };
        // Both stay alive throughout, so every call site asks each of them.
        let (targets, _g1, targets_log) = build(static_level);
        let (env, _g2, env_log) = build(&with_span);
        for dispatch in [&targets, &env] {
            tracing::dispatcher::with_default(dispatch, || {
                tracing::info!(target: "sqlx", "sqlx info");
                tracing::debug!(target: "sqlx", "sqlx debug");
                tracing::info!(target: "sqlx::query", "sqlx::query info");
                tracing::debug!(target: "hearth_storage::db::pg", "storage debug");
                tracing::trace!(target: "hearth_storage::db", "storage trace");
                tracing::info!(target: "hearth_storage", "outer storage info");
                tracing::warn!(target: "other", "other warn");
                tracing::info!(target: "other", "other info");
            });
        }
        let messages = |buffer: &LogBuffer| -> Vec<String> {
            buffer
                .text()
                .lines()
                .map(|line| {
                    let line: serde_json::Value = serde_json::from_str(line).unwrap();
                    line["message"].as_str().unwrap().to_owned()
                })
                .collect()
        };
        let expected = [
            "sqlx info",
            "sqlx::query info",
            "storage debug",
            "other warn",
        ];
        assert_eq!(messages(&targets_log), expected);
        assert_eq!(messages(&env_log), expected);
    }
}
