//! What a job kind does: a [`Handler`], and how it reports failure ([`JobError`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use hearth_storage::Job;

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt after the backoff (a server down, a timeout).
    #[error("{0}")]
    Retry(String),
    /// No attempt can succeed (a malformed payload): the job is dead at once.
    #[error("{0}")]
    Permanent(String),
}

impl JobError {
    /// A retryable failure from any error, its source chain joined into one line.
    pub fn retry(error: &(dyn std::error::Error + 'static)) -> Self {
        Self::Retry(chain(error))
    }

    /// A permanent failure from any error.
    pub fn permanent(error: &(dyn std::error::Error + 'static)) -> Self {
        Self::Permanent(chain(error))
    }
}

/// `error: cause: cause…`, as kept in `last_error`.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Runs jobs of one kind.
///
/// Handlers must be idempotent: a worker can die after the effect and before the job is
/// marked done, and the job then runs again. Each handler makes a second run harmless (the
/// e-mail handler, for one, skips a message already marked sent).
#[async_trait]
pub trait Handler: Send + Sync {
    /// Runs one attempt of `job`.
    ///
    /// # Errors
    /// [`JobError::Retry`] to try again after the backoff, [`JobError::Permanent`] to give up.
    async fn run(&self, job: &Job) -> Result<(), JobError>;
}

/// The handlers a runner knows, by job kind.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl Registry {
    /// No handlers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the handler for `kind`.
    #[must_use]
    pub fn with(mut self, kind: impl Into<String>, handler: Arc<dyn Handler>) -> Self {
        self.handlers.insert(kind.into(), handler);
        self
    }

    /// The handler for `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Handler>> {
        self.handlers.get(kind)
    }

    /// The kinds known, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        kinds
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.kinds())
            .finish()
    }
}
