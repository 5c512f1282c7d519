//! The client: providers in order, each behind its breaker, retried with backoff, all within
//! one deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::breaker::{Breaker, BreakerConfig, BreakerSnapshot, Permit};
use crate::local::LocalProvider;
use crate::metric_names;
use crate::provider::{CompletionStream, HttpProvider, Provider, ProviderError, estimated_usage};
use crate::retry::RetryPolicy;
use crate::settings::AiSettings;
use crate::wire::{ChatRequest, Completion, Usage};

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AiError {
    /// Every provider failed or was skipped (breaker open). `failures` lists each attempt.
    #[error("no AI provider answered ({} attempts)", failures.len())]
    Unavailable {
        /// Each failed or skipped attempt, in order.
        failures: Vec<AttemptFailure>,
        /// A sensible wait before trying again: until the first breaker's probe, or 1 s.
        retry_after: Duration,
    },
    /// The per-call deadline passed before any provider answered.
    #[error("the AI call's deadline passed")]
    Deadline,
    /// A stream broke after it had started (its text so far was already handed out, so no
    /// other provider can take over).
    #[error("the answer stream from {provider} broke: {error}")]
    Interrupted {
        /// The provider whose stream broke.
        provider: String,
        /// What happened.
        error: ProviderError,
    },
}

impl AiError {
    /// How long a caller should wait before trying again.
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::Unavailable { retry_after, .. } => *retry_after,
            Self::Deadline | Self::Interrupted { .. } => Duration::from_secs(1),
        }
    }
}

/// One failed or skipped attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFailure {
    /// The provider.
    pub provider: String,
    /// What went wrong; `None` when the breaker was open and the provider was skipped.
    pub error: Option<ProviderError>,
}

/// Why a client could not be built from settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A provider's settings are unusable.
    #[error("ai.providers.{index}: {reason}")]
    Provider {
        /// Its position.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// TLS could not be configured.
    #[error("configuring TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// A provider's health, for `/health/details`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderHealth {
    /// Its name.
    pub name: String,
    /// `http` or `local`.
    pub kind: &'static str,
    /// The model asked for.
    pub model: String,
    /// Its breaker.
    pub breaker: BreakerSnapshot,
}

struct Guarded {
    provider: Arc<dyn Provider>,
    breaker: Arc<Breaker>,
}

struct Inner {
    providers: Vec<Guarded>,
    retry: RetryPolicy,
    deadline: Duration,
}

/// Guarded model calls. Cheap to clone (one `Arc`); clones share breakers and connections.
#[derive(Clone)]
pub struct AiClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AiClient")
            .field(
                "providers",
                &self
                    .inner
                    .providers
                    .iter()
                    .map(|g| g.provider.name())
                    .collect::<Vec<_>>(),
            )
            .field("retry", &self.inner.retry)
            .field("deadline", &self.inner.deadline)
            .finish()
    }
}

/// Builds an [`AiClient`] from providers chosen in code.
pub struct AiClientBuilder {
    providers: Vec<Arc<dyn Provider>>,
    retry: RetryPolicy,
    breaker: BreakerConfig,
    deadline: Duration,
    local_when_empty: bool,
}

impl AiClientBuilder {
    /// Adds a provider after the ones already added.
    pub fn provider(mut self, provider: impl Provider) -> Self {
        self.providers.push(Arc::new(provider));
        self
    }

    /// Adds a shared provider after the ones already added.
    pub fn provider_arc(mut self, provider: Arc<dyn Provider>) -> Self {
        self.providers.push(provider);
        self
    }

    /// The retry policy (default: 3 attempts, 200 ms doubling to 5 s).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Every provider's breaker (default: 5 failures in 60 s, 30 s open).
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// The per-call deadline (default 30 s).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Whether a client built without providers uses the [`LocalProvider`] (the default) or
    /// has none, so that every call fails with [`AiError::Unavailable`].
    pub fn local_when_empty(mut self, local: bool) -> Self {
        self.local_when_empty = local;
        self
    }

    /// The client; with no provider added, the [`LocalProvider`] (see
    /// [`local_when_empty`](Self::local_when_empty)).
    pub fn build(self) -> AiClient {
        let mut providers = self.providers;
        if providers.is_empty() && self.local_when_empty {
            providers.push(Arc::new(LocalProvider::default()));
        }
        AiClient {
            inner: Arc::new(Inner {
                providers: providers
                    .into_iter()
                    .map(|provider| Guarded {
                        breaker: Breaker::new(provider.name(), self.breaker),
                        provider,
                    })
                    .collect(),
                retry: self.retry,
                deadline: self.deadline,
            }),
        }
    }
}

impl AiClient {
    /// A builder with the defaults and no provider.
    pub fn builder() -> AiClientBuilder {
        AiClientBuilder {
            providers: Vec::new(),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            deadline: Duration::from_secs(30),
            local_when_empty: true,
        }
    }

    /// The client the `ai` settings describe: their providers in order (the local one when
    /// none is configured), sharing one HTTPS connection pool.
    ///
    /// # Errors
    /// [`BuildError`] for a provider whose base URL is unusable, or TLS set-up failing.
    pub fn from_settings(settings: &AiSettings) -> Result<Self, BuildError> {
        let mut builder = Self::builder()
            .retry(settings.retry())
            .breaker(settings.breaker.config())
            .deadline(settings.deadline());
        let mut http = None;
        for (index, p) in settings.providers.iter().enumerate() {
            if p.is_local() {
                builder = builder.provider(LocalProvider::new(p.name.clone()));
                continue;
            }
            let client = match &http {
                Some(client) => crate::provider::HttpClient::clone(client),
                None => http.insert(crate::provider::https_client()?).clone(),
            };
            let provider = HttpProvider::new(
                p.name.clone(),
                &p.base_url,
                p.api_key.clone(),
                p.model.clone(),
                p.timeout(),
                client,
            )
            .map_err(|reason| BuildError::Provider {
                index,
                reason: format!("base_url {reason}"),
            })?;
            builder = builder.provider(provider);
        }
        Ok(builder.build())
    }

    /// Each provider's health, in order.
    pub fn health(&self) -> Vec<ProviderHealth> {
        self.inner
            .providers
            .iter()
            .map(|g| ProviderHealth {
                name: g.provider.name().to_owned(),
                kind: g.provider.kind(),
                model: g.provider.model().to_owned(),
                breaker: g.breaker.snapshot(),
            })
            .collect()
    }

    /// The per-call deadline.
    pub fn deadline(&self) -> Duration {
        self.inner.deadline
    }

    /// One whole answer: each provider in order, skipped while its breaker is open, retried
    /// on transient failures, the whole within the deadline.
    ///
    /// # Errors
    /// [`AiError::Unavailable`] when no provider answered, [`AiError::Deadline`] when time ran
    /// out first.
    pub async fn complete(&self, request: &ChatRequest) -> Result<Completion, AiError> {
        let outcome = self
            .attempt_each(request, |provider, request, timeout| {
                Box::pin(async move {
                    let started = Instant::now();
                    let mut completion = provider.complete(request, timeout).await?;
                    if !completion.usage_reported {
                        completion.usage = estimated_usage(request, &completion.text);
                    }
                    completion.provider = provider.name().to_owned();
                    Ok((completion, started))
                })
            })
            .await;
        match outcome {
            Ok(((completion, started), permit)) => {
                permit.success();
                record_success(&completion.provider, started, completion.usage);
                metrics::counter!(metric_names::REQUESTS, "outcome" => "ok").increment(1);
                Ok(completion)
            }
            Err(error) => Err(error),
        }
    }

    /// A streamed answer. Providers are tried as for [`complete`](Self::complete) until one
    /// starts streaming; from then on that provider alone answers.
    ///
    /// # Errors
    /// As [`complete`](Self::complete).
    pub async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, AiError> {
        let deadline = Instant::now() + self.inner.deadline;
        let outcome = self
            .attempt_each(request, |provider, request, timeout| {
                Box::pin(async move {
                    let started = Instant::now();
                    let stream = provider.stream(request, timeout).await?;
                    Ok((stream, started))
                })
            })
            .await;
        let ((stream, started), permit) = outcome?;
        let provider = permit.provider().to_owned();
        let idle = self
            .inner
            .providers
            .iter()
            .find(|g| g.provider.name() == provider)
            .map_or(Duration::from_secs(20), |g| g.provider.timeout());
        Ok(ChatStream {
            stream,
            permit: Some(permit),
            provider,
            request: request.clone(),
            text: String::new(),
            started,
            deadline,
            idle,
            ended: false,
        })
    }

    /// The loop both calls share: returns the first success with its breaker permit, still to
    /// be reported.
    async fn attempt_each<T, F>(
        &self,
        request: &ChatRequest,
        call: F,
    ) -> Result<(T, NamedPermit), AiError>
    where
        F: for<'a> Fn(
            &'a dyn Provider,
            &'a ChatRequest,
            Duration,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>,
        >,
    {
        let deadline = Instant::now() + self.inner.deadline;
        let retry = self.inner.retry;
        let mut failures = Vec::new();
        for guarded in &self.inner.providers {
            let name = guarded.provider.name();
            let mut attempt = 0;
            loop {
                attempt += 1;
                let Some(permit) = guarded.breaker.admit() else {
                    metrics::counter!(metric_names::CALLS, "provider" => name.to_owned(), "outcome" => "skipped")
                        .increment(1);
                    failures.push(AttemptFailure {
                        provider: name.to_owned(),
                        error: None,
                    });
                    break;
                };
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    drop(permit);
                    return Err(deadline_passed());
                }
                let timeout = guarded.provider.timeout().min(remaining);
                let result = tokio::time::timeout(
                    timeout,
                    call(guarded.provider.as_ref(), request, timeout),
                )
                .await
                .unwrap_or(Err(ProviderError::Timeout));
                let error = match result {
                    Ok(value) => return Ok((value, permit.named(name))),
                    Err(error) => error,
                };
                if error.is_provider_fault() {
                    permit.failure();
                } else {
                    permit.success();
                }
                metrics::counter!(metric_names::CALLS, "provider" => name.to_owned(), "outcome" => error.outcome())
                    .increment(1);
                tracing::warn!(provider = name, attempt, %error, "AI provider attempt failed");
                let retryable = error.is_retryable();
                let asked = error.retry_after();
                failures.push(AttemptFailure {
                    provider: name.to_owned(),
                    error: Some(error),
                });
                if !retryable || attempt >= retry.max_attempts {
                    break;
                }
                let Some(wait) = retry.backoff(attempt, asked) else {
                    break;
                };
                if Instant::now() + wait >= deadline {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
        }
        if Instant::now() >= deadline {
            return Err(deadline_passed());
        }
        metrics::counter!(metric_names::REQUESTS, "outcome" => "unavailable").increment(1);
        let retry_after = self
            .inner
            .providers
            .iter()
            .filter_map(|g| g.breaker.snapshot().probe_in)
            .min()
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_secs(1));
        Err(AiError::Unavailable {
            failures,
            retry_after,
        })
    }
}

fn deadline_passed() -> AiError {
    metrics::counter!(metric_names::REQUESTS, "outcome" => "deadline").increment(1);
    AiError::Deadline
}

fn record_success(provider: &str, started: Instant, usage: Usage) {
    metrics::counter!(metric_names::CALLS, "provider" => provider.to_owned(), "outcome" => "ok")
        .increment(1);
    metrics::histogram!(metric_names::LATENCY, "provider" => provider.to_owned())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(metric_names::TOKENS, "provider" => provider.to_owned(), "direction" => "in")
        .increment(usage.input_tokens);
    metrics::counter!(metric_names::TOKENS, "provider" => provider.to_owned(), "direction" => "out")
        .increment(usage.output_tokens);
}

/// What a stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The next piece of the answer.
    Delta(String),
    /// The answer is complete: its whole text and usage.
    Done(Completion),
}

/// A streamed answer from one provider. Its breaker learns how the stream ended.
pub struct ChatStream {
    stream: Box<dyn CompletionStream>,
    permit: Option<NamedPermit>,
    provider: String,
    request: ChatRequest,
    text: String,
    started: Instant,
    deadline: Instant,
    idle: Duration,
    ended: bool,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("provider", &self.provider)
            .field("received_chars", &self.text.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    /// The provider answering.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The next event; `None` after [`StreamEvent::Done`] or an error.
    ///
    /// # Errors
    /// [`AiError::Interrupted`] when the stream breaks or stalls; [`AiError::Deadline`] when
    /// the call's deadline passes.
    pub async fn next(&mut self) -> Option<Result<StreamEvent, AiError>> {
        if self.ended {
            return None;
        }
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let wait = self.idle.min(remaining);
        let next = match tokio::time::timeout(wait, self.stream.next_delta()).await {
            Ok(next) => next,
            Err(_) if remaining <= self.idle => {
                self.fail(ProviderError::Timeout);
                metrics::counter!(metric_names::REQUESTS, "outcome" => "deadline").increment(1);
                return Some(Err(AiError::Deadline));
            }
            Err(_) => Err(ProviderError::Timeout),
        };
        match next {
            Ok(Some(delta)) => {
                self.text.push_str(&delta);
                Some(Ok(StreamEvent::Delta(delta)))
            }
            Ok(None) => {
                self.ended = true;
                if let Some(permit) = self.permit.take() {
                    permit.success();
                }
                let usage = self
                    .stream
                    .usage()
                    .unwrap_or_else(|| estimated_usage(&self.request, &self.text));
                record_success(&self.provider, self.started, usage);
                metrics::counter!(metric_names::REQUESTS, "outcome" => "ok").increment(1);
                Some(Ok(StreamEvent::Done(Completion {
                    text: std::mem::take(&mut self.text),
                    usage,
                    usage_reported: self.stream.usage().is_some(),
                    provider: self.provider.clone(),
                    model: self.stream.model().to_owned(),
                })))
            }
            Err(error) => {
                self.fail(error.clone());
                metrics::counter!(metric_names::REQUESTS, "outcome" => "interrupted").increment(1);
                Some(Err(AiError::Interrupted {
                    provider: self.provider.clone(),
                    error,
                }))
            }
        }
    }

    fn fail(&mut self, error: ProviderError) {
        self.ended = true;
        tracing::warn!(provider = %self.provider, %error, "AI answer stream broke");
        metrics::counter!(metric_names::CALLS, "provider" => self.provider.clone(), "outcome" => error.outcome())
            .increment(1);
        if let Some(permit) = self.permit.take() {
            permit.failure();
        }
    }
}

/// A breaker permit that knows its provider's name.
pub(crate) struct NamedPermit {
    permit: Permit,
    provider: String,
}

impl Permit {
    fn named(self, provider: &str) -> NamedPermit {
        NamedPermit {
            permit: self,
            provider: provider.to_owned(),
        }
    }
}

impl NamedPermit {
    fn provider(&self) -> &str {
        &self.provider
    }
    fn success(self) {
        self.permit.success();
    }
    fn failure(self) {
        self.permit.failure();
    }
}
