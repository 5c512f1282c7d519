//! Log settings: the format and the level filter that [`crate::init`] applies.

use serde::Deserialize;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`, the event's
    /// `fields`, the request's `request_id`, `trace_id`, `span_id` and `user_id` when known,
    /// and the chain of enclosing `spans` with their fields.
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

#[cfg(test)]
mod tests {
    use super::*;

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

/// Log lines kept in memory: a writer for [`dispatch`](crate::dispatch) in tests and
/// examples that want to read back what was logged. Clones share one buffer.
#[derive(Debug, Clone, Default)]
pub struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything written so far, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
