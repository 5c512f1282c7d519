//! Telemetry for Hearth services: one call to set up logs, one to get the metrics registry.
//!
//! Libraries only *emit* telemetry (`tracing` spans and events, `metrics` counters); this crate
//! is where a binary decides where it goes. Any tokio service can embed it on its own.
//!
//! # Layout
//! - [`logging`]: the `tracing` subscriber, JSON lines in production and readable text in
//!   development, level and per-target filters from [`LogSettings`].
//! - [`metrics`](mod@metrics): the process-wide Prometheus recorder, the names of every `hearth_`
//!   metric and their descriptions.
//!
//! # Example
//! ```
//! use hearth_observability::{LogFormat, LogSettings, logging, metrics};
//!
//! let settings = LogSettings { format: Some(LogFormat::Pretty), level: "info".into() };
//! // A second init in the same process (tests) is reported, not a panic.
//! let _ = logging::init(&settings, false);
//! let handle = metrics::install();
//! ::metrics::counter!(metrics::names::HTTP_REQUESTS, "route" => "/x").increment(1);
//! assert!(handle.render().contains("hearth_http_requests_total"));
//! ```
//!
//! # What it does not do
//! It opens no ports: serving `/metrics` is the HTTP layer's job, with [`metrics::install`]'s
//! handle. It does not read the environment; settings come from the binary.

pub mod logging;
pub mod metrics;

pub use logging::{LogFormat, LogSettings};
