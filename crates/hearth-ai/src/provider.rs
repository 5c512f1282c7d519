//! Providers: what the client calls. [`HttpProvider`] speaks the OpenAI chat-completions wire
//! format over HTTP(S); [`LocalProvider`](crate::LocalProvider) answers in-process.

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use secrecy::{ExposeSecret as _, SecretString};

use crate::sse::SseParser;
use crate::wire::{
    ChatRequest, Completion, StreamOptions, Usage, WireChunk, WireRequest, WireResponse,
    estimate_tokens,
};

/// Why one attempt on one provider failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// No answer (or, in a stream, no next chunk) within the attempt's timeout.
    #[error("timed out")]
    Timeout,
    /// The connection could not be made, or broke.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The provider answered with an error status.
    #[error("HTTP {status}: {detail}")]
    Status {
        /// The status code.
        status: u16,
        /// The wait the provider asked for (`Retry-After`), if any.
        retry_after: Option<Duration>,
        /// The start of the error body, for logs (never the request or the key).
        detail: String,
    },
    /// The answer is not the chat-completions format.
    #[error("invalid answer: {0}")]
    Invalid(String),
}

impl ProviderError {
    /// Whether the same provider is worth another attempt: timeouts, connection errors, 5xx,
    /// 408 and 429. Never another 4xx: the request itself was refused.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout | Self::Connect(_) => true,
            Self::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            Self::Invalid(_) => false,
        }
    }

    /// Whether the failure says something about the provider's health (and so counts toward
    /// its breaker). A 4xx refusing this request (400, 404, 413, 422…) does not: the provider
    /// is up. 401 and 403 do: the provider cannot be used with this key.
    pub fn is_provider_fault(&self) -> bool {
        match self {
            Self::Status { status, .. } => {
                !(400..500).contains(status) || matches!(status, 401 | 403 | 408 | 429)
            }
            _ => true,
        }
    }

    /// The wait the provider asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The `outcome` label of [`CALLS`](crate::metric_names::CALLS).
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect(_) => "connect",
            Self::Status { status: 429, .. } => "rate_limited",
            Self::Status { status, .. } if *status >= 500 => "server_error",
            Self::Status { .. } => "refused",
            Self::Invalid(_) => "invalid",
        }
    }
}

/// The text of a streamed answer, piece by piece.
#[async_trait]
pub trait CompletionStream: Send {
    /// The next piece of text; `Ok(None)` once the answer is complete.
    ///
    /// # Errors
    /// [`ProviderError`] when the stream breaks, stalls past the timeout or is not the format.
    async fn next_delta(&mut self) -> Result<Option<String>, ProviderError>;

    /// The usage the provider reported, once the stream is complete.
    fn usage(&self) -> Option<Usage>;

    /// The model that answered, as reported (or the configured one).
    fn model(&self) -> &str;
}

/// Something that answers chat requests: an HTTP endpoint or the local provider.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Unique among the client's providers; labels metrics and health.
    fn name(&self) -> &str;

    /// The model asked for.
    fn model(&self) -> &str;

    /// `http` or `local`.
    fn kind(&self) -> &'static str;

    /// The most one attempt may take.
    fn timeout(&self) -> Duration;

    /// One attempt at a whole answer, within `timeout`.
    ///
    /// # Errors
    /// [`ProviderError`] for whatever went wrong.
    async fn complete(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<Completion, ProviderError>;

    /// One attempt at a streamed answer: resolves when the stream has started (headers within
    /// `timeout`); each piece then comes within `timeout` of the one before.
    ///
    /// # Errors
    /// [`ProviderError`] when the stream cannot start.
    async fn stream(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<Box<dyn CompletionStream>, ProviderError>;
}

/// A provider's base URL, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    chat: Uri,
}

impl Endpoint {
    /// Parses `https://host[:port]/path` (no query), appending `/chat/completions`.
    pub(crate) fn parse(base_url: &str) -> Result<Self, String> {
        let base = base_url.trim().trim_end_matches('/');
        let uri: Uri = format!("{base}/chat/completions")
            .parse()
            .map_err(|_| "is not a URL".to_owned())?;
        match uri.scheme_str() {
            Some("https" | "http") => {}
            _ => return Err("must start with https:// (or http:// for a local server)".to_owned()),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err("has no host".to_owned());
        }
        if uri.query().is_some() {
            return Err("must not carry a query".to_owned());
        }
        Ok(Self { chat: uri })
    }

    pub(crate) fn is_https(&self) -> bool {
        self.chat.scheme_str() == Some("https")
    }

    pub(crate) fn is_loopback(&self) -> bool {
        let host = self
            .chat
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// hyper's pooled client over rustls (ring) with the Mozilla roots, shared by every HTTP
/// provider of a client.
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds the shared HTTPS client.
///
/// # Errors
/// When rustls refuses its configuration (it does not with these defaults).
pub fn https_client() -> Result<HttpClient, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(https))
}

/// The most of an answer read: an answer to `max_tokens` tokens is far smaller.
const MAX_BODY_BYTES: usize = 4 << 20;
/// The most of an error body kept for the log.
const MAX_DETAIL_CHARS: usize = 200;

/// An OpenAI-compatible chat-completions endpoint.
pub struct HttpProvider {
    name: String,
    endpoint: Endpoint,
    api_key: Option<SecretString>,
    model: String,
    timeout: Duration,
    http: HttpClient,
}

impl fmt::Debug for HttpProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpProvider")
            .field("name", &self.name)
            .field("url", &self.endpoint.chat)
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpProvider {
    /// A provider at `base_url` (`/chat/completions` is appended), sharing `http`.
    ///
    /// # Errors
    /// A sentence saying what is wrong with `base_url`.
    pub fn new(
        name: impl Into<String>,
        base_url: &str,
        api_key: Option<SecretString>,
        model: impl Into<String>,
        timeout: Duration,
        http: HttpClient,
    ) -> Result<Self, String> {
        Ok(Self {
            name: name.into(),
            endpoint: Endpoint::parse(base_url)?,
            api_key,
            model: model.into(),
            timeout,
            http,
        })
    }

    fn request(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<Request<Full<Bytes>>, ProviderError> {
        let body = serde_json::to_vec(&WireRequest {
            model: &self.model,
            messages: &request.messages,
            max_tokens: request.max_tokens,
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        })
        .map_err(|e| ProviderError::Invalid(format!("request not serializable: {e}")))?;
        let mut builder = Request::post(self.endpoint.chat.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(
                ACCEPT,
                if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
            .header(USER_AGENT, concat!("hearth-ai/", env!("CARGO_PKG_VERSION")));
        if let Some(key) = &self.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                .map_err(|_| {
                    ProviderError::Invalid("the API key is not a valid header value".to_owned())
                })?;
            // Kept out of hyper's debug output and HPACK tables.
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ProviderError::Invalid(format!("request not buildable: {e}")))
    }

    /// Sends and waits for the head; an error status becomes [`ProviderError::Status`].
    async fn send(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<http::Response<Incoming>, ProviderError> {
        let response = tokio::time::timeout(timeout, self.http.request(request))
            .await
            .map_err(|_| ProviderError::Timeout)?
            .map_err(|e| ProviderError::Connect(error_chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = crate::retry::retry_after(response.headers());
        // The detail is best effort: a slow or broken error body does not delay the retry.
        let detail = match tokio::time::timeout(
            timeout.min(Duration::from_secs(2)),
            Limited::new(response.into_body(), 16 * 1024).collect(),
        )
        .await
        {
            Ok(Ok(body)) => String::from_utf8_lossy(&body.to_bytes())
                .chars()
                .take(MAX_DETAIL_CHARS)
                .collect(),
            _ => String::new(),
        };
        Err(ProviderError::Status {
            status: status.as_u16(),
            retry_after,
            detail,
        })
    }

    fn parse_completion(&self, body: &[u8]) -> Result<Completion, ProviderError> {
        let response: WireResponse = serde_json::from_slice(body)
            .map_err(|e| ProviderError::Invalid(format!("not a chat completion: {e}")))?;
        let text = response
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::Invalid("no choices".to_owned()))?
            .message
            .content
            .unwrap_or_default();
        let (usage, usage_reported) = match response.usage {
            Some(usage) => (usage.into(), true),
            None => (Usage::default(), false),
        };
        Ok(Completion {
            text,
            usage,
            usage_reported,
            provider: self.name.clone(),
            model: response.model.unwrap_or_else(|| self.model.clone()),
        })
    }
}

/// The error and its sources in one line (hyper's top-level message alone says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[async_trait]
impl Provider for HttpProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn kind(&self) -> &'static str {
        "http"
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn complete(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<Completion, ProviderError> {
        let started = tokio::time::Instant::now();
        let response = self.send(self.request(request, false)?, timeout).await?;
        let left = timeout.saturating_sub(started.elapsed());
        let body = tokio::time::timeout(
            left,
            Limited::new(response.into_body(), MAX_BODY_BYTES).collect(),
        )
        .await
        .map_err(|_| ProviderError::Timeout)?
        .map_err(|e| ProviderError::Connect(format!("reading the answer: {e}")))?
        .to_bytes();
        self.parse_completion(&body)
    }

    async fn stream(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<Box<dyn CompletionStream>, ProviderError> {
        let response = self.send(self.request(request, true)?, timeout).await?;
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            // A provider that ignores `stream` answers in one piece: serve it as one delta.
            let body = tokio::time::timeout(
                timeout,
                Limited::new(response.into_body(), MAX_BODY_BYTES).collect(),
            )
            .await
            .map_err(|_| ProviderError::Timeout)?
            .map_err(|e| ProviderError::Connect(format!("reading the answer: {e}")))?
            .to_bytes();
            let completion = self.parse_completion(&body)?;
            return Ok(Box::new(OnePiece {
                text: Some(completion.text),
                usage: completion.usage_reported.then_some(completion.usage),
                model: completion.model,
            }));
        }
        Ok(Box::new(SseStream {
            body: response.into_body(),
            parser: SseParser::default(),
            pending: VecDeque::new(),
            usage: None,
            model: self.model.clone(),
            idle: timeout,
            finished: false,
            done: false,
        }))
    }
}

/// A whole answer served as a stream of one piece.
struct OnePiece {
    text: Option<String>,
    usage: Option<Usage>,
    model: String,
}

#[async_trait]
impl CompletionStream for OnePiece {
    async fn next_delta(&mut self) -> Result<Option<String>, ProviderError> {
        Ok(self.text.take())
    }
    fn usage(&self) -> Option<Usage> {
        self.usage
    }
    fn model(&self) -> &str {
        &self.model
    }
}

/// A chat-completions event stream.
struct SseStream {
    body: Incoming,
    parser: SseParser,
    /// Events parsed and not yet handed out.
    pending: VecDeque<String>,
    usage: Option<Usage>,
    model: String,
    /// The longest wait for the next piece.
    idle: Duration,
    /// A choice reported its `finish_reason`: the answer is whole even if `[DONE]` never comes.
    finished: bool,
    /// `[DONE]` seen, or the body ended after a finish.
    done: bool,
}

#[async_trait]
impl CompletionStream for SseStream {
    async fn next_delta(&mut self) -> Result<Option<String>, ProviderError> {
        loop {
            while let Some(data) = self.pending.pop_front() {
                if data.trim() == "[DONE]" {
                    self.done = true;
                    self.pending.clear();
                    return Ok(None);
                }
                let chunk: WireChunk = serde_json::from_str(&data)
                    .map_err(|e| ProviderError::Invalid(format!("not a completion chunk: {e}")))?;
                if let Some(usage) = chunk.usage {
                    self.usage = Some(usage.into());
                }
                if let Some(model) = chunk.model {
                    self.model = model;
                }
                let mut text = String::new();
                for choice in chunk.choices {
                    if choice.finish_reason.is_some() {
                        self.finished = true;
                    }
                    if let Some(content) = choice.delta.content {
                        text.push_str(&content);
                    }
                }
                if !text.is_empty() {
                    return Ok(Some(text));
                }
            }
            if self.done {
                return Ok(None);
            }
            let frame = tokio::time::timeout(self.idle, self.body.frame())
                .await
                .map_err(|_| ProviderError::Timeout)?;
            match frame {
                None if self.finished => {
                    self.done = true;
                    return Ok(None);
                }
                None => {
                    return Err(ProviderError::Connect(
                        "the stream ended before the answer was complete".to_owned(),
                    ));
                }
                Some(Err(e)) => return Err(ProviderError::Connect(error_chain(&e))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let events = self
                            .parser
                            .push(&data)
                            .map_err(|e| ProviderError::Invalid(e.to_string()))?;
                        self.pending.extend(events);
                    }
                }
            }
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn model(&self) -> &str {
        &self.model
    }
}

/// The usage of an answer whose provider reported none: estimated from the text.
pub(crate) fn estimated_usage(request: &ChatRequest, text: &str) -> Usage {
    Usage {
        input_tokens: request
            .messages
            .iter()
            .map(|m| estimate_tokens(&m.content) + 4)
            .sum::<u64>()
            + 3,
        output_tokens: estimate_tokens(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_append_the_path_and_refuse_what_is_not_a_base_url() {
        let e = Endpoint::parse("https://api.example.com/v1/").unwrap();
        assert_eq!(
            e.chat.to_string(),
            "https://api.example.com/v1/chat/completions"
        );
        assert!(e.is_https() && !e.is_loopback());
        assert!(
            Endpoint::parse("http://127.0.0.1:9000")
                .unwrap()
                .is_loopback()
        );
        assert!(
            Endpoint::parse("http://[::1]:9000/v1")
                .unwrap()
                .is_loopback()
        );
        assert!(Endpoint::parse("ftp://example.com").is_err());
        assert!(Endpoint::parse("example.com/v1").is_err());
        assert!(Endpoint::parse("https://example.com/v1?x=1").is_err());
    }

    #[test]
    fn only_transient_failures_are_retried_and_request_refusals_spare_the_breaker() {
        let status = |status| ProviderError::Status {
            status,
            retry_after: None,
            detail: String::new(),
        };
        for retried in [status(500), status(503), status(429), status(408)] {
            assert!(retried.is_retryable(), "{retried}");
            assert!(retried.is_provider_fault(), "{retried}");
        }
        assert!(ProviderError::Timeout.is_retryable());
        assert!(ProviderError::Connect("reset".into()).is_retryable());
        for refused in [status(400), status(404), status(422)] {
            assert!(!refused.is_retryable(), "{refused}");
            assert!(!refused.is_provider_fault(), "{refused}");
        }
        assert!(!status(401).is_retryable() && status(401).is_provider_fault());
    }
}
