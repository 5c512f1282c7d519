//! Guarded AI calls for Hearth: the OpenAI chat-completions wire format over HTTPS, streaming
//! (server-sent events) and not, across several providers with retries, circuit breakers and
//! a per-call deadline; and a deterministic local provider so that everything runs without a
//! key or a network.
//!
//! # Layout
//! - [`AiClient`]: providers tried in order. Each attempt runs within the provider's timeout
//!   and what is left of the call's deadline; transient failures (timeouts, connection errors,
//!   5xx, 408, 429) are retried on the same provider with exponential backoff and full jitter
//!   ([`RetryPolicy`]), honouring `Retry-After` up to the backoff cap; other 4xx are not
//!   retried; then the next provider is tried. [`AiClient::stream`] starts a [`ChatStream`]
//!   the same way; once text flows, that provider alone answers.
//! - `breaker`: a circuit breaker per provider ([`BreakerState`]): closed → open after N
//!   failures in a window → half-open (one probe) after a cool-down; an open provider is
//!   skipped at once. [`AiClient::health`] reports each.
//! - [`Provider`]: [`HttpProvider`] (hyper with rustls on ring, Mozilla roots; the API key a
//!   bearer token, marked sensitive, never logged) and [`LocalProvider`].
//! - `sse`: the event-stream parser; `wire`: the request, response and chunk types.
//! - [`AiSettings`]: the `ai` settings section; [`metric_names`]: what is recorded.
//!
//! # Example
//! ```
//! use hearth_ai::{AiClient, ChatRequest, LocalProvider, Message, Role};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), hearth_ai::AiError> {
//! let client = AiClient::builder().provider(LocalProvider::default()).build();
//! let request = ChatRequest {
//!     messages: vec![Message::new(Role::User, "Hello!")],
//!     max_tokens: 64,
//! };
//! let answer = client.complete(&request).await?;
//! assert_eq!(answer.provider, "local");
//! assert!(answer.usage.output_tokens > 0);
//! # Ok(()) }
//! ```
//!
//! # What it does not do
//! No budgets, rate limits or storage: `hearth-app` wraps the client with the `ai` rule and
//! the cost budgets of `hearth-limits`, and stores conversations. No web framework. It does
//! not count tokens itself except to estimate when a provider reports none (about four
//! characters a token). HTTP/1.1 only. A stream that breaks half-way is not resumed on
//! another provider (its text is already out).

pub mod metric_names;

mod breaker;
mod client;
mod local;
mod provider;
mod retry;
mod settings;
mod sse;
mod wire;

pub use breaker::{BreakerConfig, BreakerSnapshot, BreakerState};
pub use client::{
    AiClient, AiClientBuilder, AiError, AttemptFailure, BuildError, ChatStream, ProviderHealth,
    StreamEvent,
};
pub use local::LocalProvider;
pub use provider::{
    CompletionStream, HttpClient, HttpProvider, Provider, ProviderError, https_client,
};
pub use retry::{RetryPolicy, retry_after};
pub use settings::{AiSettings, BreakerSettings, LOCAL_BASE_URL, ProviderSettings};
pub use wire::{ChatRequest, Completion, Message, Role, Usage, estimate_tokens, max_input_tokens};
