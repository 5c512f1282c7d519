//! The `tracing` subscriber.

use serde::Deserialize;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, with the fields of the current span (request id, route).
    Json,
    /// Human-readable, coloured when the output is a terminal.
    Pretty,
}

/// The `log` settings section (`HEARTH__LOG__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `json` or `pretty`; when unset, JSON in production and pretty in development.
    pub format: Option<LogFormat>,
    /// An `EnvFilter` directive: a level (`info`) or per-target filters
    /// (`info,hearth_storage=debug,sqlx=warn`).
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: None,
            level: "info,sqlx=warn,tower_http=info".to_owned(),
        }
    }
}

/// Errors from [`init`].
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
    /// A global subscriber was already installed (in tests, by an earlier call).
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Installs the global subscriber.
///
/// `production` picks the format when [`LogSettings::format`] is unset.
///
/// # Errors
/// [`InitError::Filter`] for a bad level directive; [`InitError::AlreadyInstalled`] when called
/// twice in one process.
pub fn init(settings: &LogSettings, production: bool) -> Result<(), InitError> {
    let filter = EnvFilter::builder()
        .parse(&settings.level)
        .map_err(|source| InitError::Filter {
            directive: settings.level.clone(),
            source,
        })?;
    let format = settings.format.unwrap_or(if production {
        LogFormat::Json
    } else {
        LogFormat::Pretty
    });
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    // The whole span list, so an event inside a handler or repository still
                    // carries the request span's request id and route.
                    .with_current_span(true)
                    .with_span_list(true),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_target(true)).try_init(),
    };
    result.map_err(|_| InitError::AlreadyInstalled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_level_directive_is_refused_with_the_directive_named() {
        let settings = LogSettings {
            format: None,
            level: "info,=[".into(),
        };
        let error = init(&settings, false).unwrap_err();
        assert!(error.to_string().contains("info,=["), "{error}");
    }

    #[test]
    fn formats_parse_from_lowercase_names() {
        let format: LogFormat = serde_json_like("\"json\"");
        assert_eq!(format, LogFormat::Json);
    }

    fn serde_json_like(text: &str) -> LogFormat {
        // A tiny deserializer round trip without pulling serde_json into this crate.
        use serde::de::{IntoDeserializer, value::StrDeserializer};
        let inner = text.trim_matches('"');
        let de: StrDeserializer<'_, serde::de::value::Error> = inner.into_deserializer();
        LogFormat::deserialize(de).unwrap()
    }
}
