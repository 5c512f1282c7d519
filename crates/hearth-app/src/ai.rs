//! AI calls under limits and budgets, and the chat of the AI-chat seed.
//!
//! Every call ([`Ai::call`], [`Ai::call_streaming`]) runs the same sequence:
//! 1. the `ai` rate rule (`limits.rules.ai`) for the user (`user:<id>`): a refusal is
//!    [`AiCallError::RateLimited`];
//! 2. the worst-case cost reserved from the user's daily and the global hourly budget
//!    ([`Ai::worst_case_cost`]: `ai_call` plus every prompt byte as a token at
//!    `ai_1k_input_tokens` plus `max_output_tokens` at `ai_1k_output_tokens`): a refusal is
//!    [`AiCallError::Budget`] (429 for the user's, 503 for the global one);
//! 3. the call through [`hearth_ai::AiClient`] (providers, retries, breakers, deadline);
//! 4. settled with the real cost of the usage the provider reported ([`Ai::cost`]), or
//!    released in full when no provider answered. A stream cut off half-way is charged for its
//!    prompt and the text received, estimated (the provider may bill it).
//!
//! Because the reservation is the worst case and reserving is atomic, concurrent calls can
//! never together spend past a budget.
//!
//! [`Ai::reply_or_fallback`] is the life simulation's entry: it never fails, answering with
//! `ai.fallback_line` when no provider answers or a limit or budget says no.

use std::sync::Arc;

use hearth_ai::{
    AiClient, AiError, AiSettings, ChatRequest, ChatStream, Completion, Message, Role, StreamEvent,
    Usage, estimate_tokens, max_input_tokens, metric_names,
};
use hearth_domain::chat::ChatText;
use hearth_limits::{
    BudgetError, BudgetSettings, Budgets, Check, Decision, LimitError, Limiter, Reservation,
    RouteClass, RuleTable,
};
use hearth_storage::{
    ChatMessage, ChatRole, Conversation, Cursor, Database, NewChatMessage, Page, StorageError,
};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Why an AI call did not happen or got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AiCallError {
    /// The `ai` rate rule refused the call (429, with the decision's headers).
    #[error("the ai rate limit refused the call")]
    RateLimited(Decision),
    /// Rate limiting is unavailable (Redis down, policy `refuse`): 503.
    #[error("rate limiting is unavailable")]
    LimiterUnavailable,
    /// A budget is spent (user: 429, global: 503) or unavailable.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// No provider answered, or the deadline passed (503).
    #[error(transparent)]
    Provider(#[from] AiError),
}

impl From<LimitError> for AiCallError {
    fn from(_: LimitError) -> Self {
        Self::LimiterUnavailable
    }
}

impl AiCallError {
    /// A short label for metrics and fallbacks: `rate_limited`, `user_budget`,
    /// `global_budget`, `unavailable`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::RateLimited(_) => "rate_limited",
            Self::Budget(BudgetError::UserExhausted { .. }) => "user_budget",
            Self::Budget(BudgetError::GlobalExhausted { .. }) => "global_budget",
            Self::Budget(_) | Self::LimiterUnavailable | Self::Provider(_) => "unavailable",
        }
    }
}

/// An answer and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charged {
    /// The answer.
    pub completion: Completion,
    /// Its cost in budget micro-units, as settled.
    pub cost: u64,
}

/// What [`Ai::reply_or_fallback`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The line to show.
    pub text: String,
    /// `None` for a real answer; why the fallback line was used otherwise
    /// ([`AiCallError::reason`], or `empty` for an empty answer).
    pub fallback: Option<&'static str>,
}

/// A user's spending today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageReport {
    /// Spent today (UTC), open reservations included, in micro-units.
    pub spent_today: u64,
    /// The daily budget.
    pub daily_budget: u64,
    /// What is left today.
    pub remaining_today: u64,
    /// When the budget renews (next UTC midnight).
    pub resets_at: OffsetDateTime,
}

/// A question and its answer, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The user's message.
    pub question: ChatMessage,
    /// The assistant's message (its usage and cost included).
    pub answer: ChatMessage,
}

/// Why a chat message got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// No such conversation of this user.
    #[error("no such conversation")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Storage(StorageError),
    /// The call did not happen or got no answer.
    #[error(transparent)]
    Call(#[from] AiCallError),
}

impl From<StorageError> for ChatError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => Self::NotFound,
            other => Self::Storage(other),
        }
    }
}

/// What a streamed chat answer yields.
#[derive(Debug)]
pub enum ChatEvent {
    /// The next piece of the answer.
    Delta(String),
    /// The answer is complete and stored.
    Done(Box<Exchange>),
    /// The answer broke off (nothing is stored); the reason.
    Failed(ChatError),
}

/// AI calls under the `ai` rule and the budgets, and the chat. Cheap to clone.
#[derive(Clone)]
pub struct Ai(Arc<Inner>);

struct Inner {
    client: AiClient,
    limiter: Limiter,
    rules: Vec<hearth_limits::Rule>,
    budgets: Budgets,
    prices: BudgetSettings,
    settings: AiSettings,
    db: Arc<dyn Database>,
}

impl std::fmt::Debug for Ai {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ai")
            .field("client", &self.0.client)
            .field("budgets", &self.0.budgets)
            .finish_non_exhaustive()
    }
}

impl Ai {
    /// The use-case over its parts: `rules` gives the `ai` rule, `prices` the price table and
    /// `settings` the call's shape (system prompt, history, `max_output_tokens`, fallback).
    pub fn new(
        client: AiClient,
        limiter: Limiter,
        rules: &RuleTable,
        budgets: Budgets,
        prices: BudgetSettings,
        settings: AiSettings,
        db: Arc<dyn Database>,
    ) -> Self {
        metric_names::describe();
        Self(Arc::new(Inner {
            client,
            limiter,
            rules: rules.rules_for(RouteClass::Ai),
            budgets,
            prices,
            settings,
            db,
        }))
    }

    /// The guarded client (its providers' health).
    pub fn client(&self) -> &AiClient {
        &self.0.client
    }

    /// The budgets calls are charged to.
    pub fn budgets(&self) -> &Budgets {
        &self.0.budgets
    }

    /// The `ai` settings.
    pub fn settings(&self) -> &AiSettings {
        &self.0.settings
    }

    /// The cost of `usage` by the price table: `ai_call` + `ai_1k_input_tokens` per thousand
    /// prompt tokens + `ai_1k_output_tokens` per thousand completion tokens, each rounded up
    /// to a whole micro-unit. A price missing from the table counts as 0.
    pub fn cost(&self, usage: Usage) -> u64 {
        let price = |item: &str| u128::from(self.0.prices.price(item).unwrap_or(0));
        let per_k = |tokens: u64, item: &str| (u128::from(tokens) * price(item)).div_ceil(1000);
        let total = price("ai_call")
            + per_k(usage.input_tokens, "ai_1k_input_tokens")
            + per_k(usage.output_tokens, "ai_1k_output_tokens");
        u64::try_from(total).unwrap_or(u64::MAX)
    }

    /// The most a call with these messages can cost: every prompt byte a token, and the full
    /// `max_output_tokens`.
    pub fn worst_case_cost(&self, messages: &[Message]) -> u64 {
        self.cost(Usage {
            input_tokens: max_input_tokens(messages),
            output_tokens: u64::from(self.0.settings.max_output_tokens),
        })
    }

    /// Steps 1 and 2: the rate rule, then the reservation.
    async fn admit(&self, user: Uuid, messages: &[Message]) -> Result<Reservation, AiCallError> {
        let key = format!("user:{user}");
        let checks: Vec<Check> = self
            .0
            .rules
            .iter()
            .map(|rule| rule.check(key.clone()))
            .collect();
        let decision = self.0.limiter.check(&checks).await.inspect_err(|_| {
            refused("unavailable");
        })?;
        if !decision.allowed {
            refused("rate");
            return Err(AiCallError::RateLimited(decision));
        }
        let estimate = self.worst_case_cost(messages);
        self.0
            .budgets
            .reserve(&user.to_string(), estimate)
            .await
            .map_err(|error| {
                refused(match error {
                    BudgetError::UserExhausted { .. } => "user",
                    BudgetError::GlobalExhausted { .. } => "global",
                    _ => "unavailable",
                });
                AiCallError::Budget(error)
            })
    }

    fn request(&self, messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            messages,
            max_tokens: self.0.settings.max_output_tokens,
        }
    }

    /// One whole answer for `user`, under the `ai` rule and the budgets.
    ///
    /// # Errors
    /// [`AiCallError`]: a rate limit, a spent budget, or no provider answering (the
    /// reservation is then released).
    #[tracing::instrument(skip_all, fields(user_id = %user), err)]
    pub async fn call(&self, user: Uuid, messages: Vec<Message>) -> Result<Charged, AiCallError> {
        let reservation = self.admit(user, &messages).await?;
        match self.0.client.complete(&self.request(messages)).await {
            Ok(completion) => {
                let cost = self.cost(completion.usage);
                settle(reservation, cost, &completion.provider).await;
                Ok(Charged { completion, cost })
            }
            Err(error) => {
                release(reservation).await;
                Err(error.into())
            }
        }
    }

    /// A streamed answer for `user`, under the `ai` rule and the budgets; the budget is settled
    /// when the stream ends (see [`BudgetedStream`]).
    ///
    /// # Errors
    /// As [`call`](Self::call), for what happens before the stream starts.
    #[tracing::instrument(skip_all, fields(user_id = %user), err)]
    pub async fn call_streaming(
        &self,
        user: Uuid,
        messages: Vec<Message>,
    ) -> Result<BudgetedStream, AiCallError> {
        let reservation = self.admit(user, &messages).await?;
        let request = self.request(messages);
        match self.0.client.stream(&request).await {
            Ok(stream) => Ok(BudgetedStream {
                ai: self.clone(),
                stream,
                reservation: Some(reservation),
                request,
                text: String::new(),
                settled: None,
            }),
            Err(error) => {
                release(reservation).await;
                Err(error.into())
            }
        }
    }

    /// A line for an in-game character: the answer when there is one, otherwise
    /// `ai.fallback_line` (no provider answered, the `ai` rule or a budget said no, or the
    /// answer was empty). Never fails.
    pub async fn reply_or_fallback(&self, user: Uuid, messages: Vec<Message>) -> Reply {
        let reason = match self.call(user, messages).await {
            Ok(charged) if !charged.completion.text.trim().is_empty() => {
                return Reply {
                    text: charged.completion.text,
                    fallback: None,
                };
            }
            Ok(_) => "empty",
            Err(error) => error.reason(),
        };
        metrics::counter!(metric_names::FALLBACKS, "reason" => reason).increment(1);
        Reply {
            text: self.0.settings.fallback_line.clone(),
            fallback: Some(reason),
        }
    }

    /// `user`'s spending today and what is left.
    ///
    /// # Errors
    /// [`BudgetError::Unavailable`] when Redis is down and the policy is to refuse.
    pub async fn usage(&self, user: Uuid) -> Result<UsageReport, BudgetError> {
        let usage = self.0.budgets.usage(&user.to_string()).await?;
        let daily_budget = self.0.prices.user_daily;
        let now = OffsetDateTime::now_utc();
        let resets_at = (now.date().next_day().unwrap_or(now.date()))
            .midnight()
            .assume_utc();
        Ok(UsageReport {
            spent_today: usage.user_today,
            daily_budget,
            remaining_today: daily_budget.saturating_sub(usage.user_today),
            resets_at,
        })
    }

    /// Starts a conversation for `user`.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn start_conversation(&self, user: Uuid) -> Result<Conversation, StorageError> {
        self.0.db.create_conversation(user).await
    }

    /// One page of a conversation's messages, oldest first.
    ///
    /// # Errors
    /// [`ChatError::NotFound`] for a conversation that is not `user`'s.
    pub async fn messages(
        &self,
        user: Uuid,
        conversation: Uuid,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<ChatMessage>, ChatError> {
        Ok(self
            .0
            .db
            .chat_messages(user, conversation, after, limit)
            .await?)
    }

    /// The call's messages: the system prompt, the recent history, the new text.
    async fn context(
        &self,
        user: Uuid,
        conversation: Uuid,
        text: &ChatText,
    ) -> Result<Vec<Message>, ChatError> {
        let history = self
            .0
            .db
            .recent_chat_messages(user, conversation, self.0.settings.history_messages)
            .await?;
        let mut messages = Vec::with_capacity(history.len() + 2);
        if !self.0.settings.system_prompt.trim().is_empty() {
            messages.push(Message::new(
                Role::System,
                self.0.settings.system_prompt.clone(),
            ));
        }
        messages.extend(history.into_iter().map(|m| {
            let role = match m.role {
                ChatRole::User => Role::User,
                ChatRole::Assistant => Role::Assistant,
            };
            Message::new(role, m.content)
        }));
        messages.push(Message::new(Role::User, text.as_str()));
        Ok(messages)
    }

    async fn store(
        &self,
        user: Uuid,
        conversation: Uuid,
        text: &ChatText,
        completion: &Completion,
        cost: u64,
    ) -> Result<Exchange, ChatError> {
        let answer = NewChatMessage {
            role: ChatRole::Assistant,
            content: if completion.text.is_empty() {
                // Stored text is never empty; an empty answer says so.
                "…".to_owned()
            } else {
                completion.text.clone()
            },
            provider: Some(completion.provider.clone()),
            model: Some(completion.model.clone()),
            input_tokens: completion.usage.input_tokens,
            output_tokens: completion.usage.output_tokens,
            cost_micros: cost,
        };
        let mut stored = self
            .0
            .db
            .append_chat_messages(
                user,
                conversation,
                &[NewChatMessage::user(text.as_str()), answer],
            )
            .await?
            .into_iter();
        match (stored.next(), stored.next()) {
            (Some(question), Some(answer)) => Ok(Exchange { question, answer }),
            _ => Err(ChatError::Storage(StorageError::Corrupt(
                "an exchange was not stored whole".to_owned(),
            ))),
        }
    }

    /// Sends `text` in `user`'s conversation and stores it with the answer.
    ///
    /// # Errors
    /// [`ChatError::NotFound`] for a conversation that is not `user`'s; [`ChatError::Call`]
    /// when the call was refused or got no answer (nothing is stored then).
    #[tracing::instrument(skip_all, fields(user_id = %user, conversation_id = %conversation), err)]
    pub async fn send(
        &self,
        user: Uuid,
        conversation: Uuid,
        text: ChatText,
    ) -> Result<Exchange, ChatError> {
        let messages = self.context(user, conversation, &text).await?;
        let Charged { completion, cost } = self.call(user, messages).await?;
        self.store(user, conversation, &text, &completion, cost)
            .await
    }

    /// As [`send`](Self::send), streaming the answer: refusals come back at once; then the
    /// events arrive on the receiver. The answer is driven to its end, settled and stored even
    /// if the receiver is dropped (a client that disconnects still spent the call).
    ///
    /// # Errors
    /// As [`send`](Self::send), for what happens before the stream starts.
    pub async fn send_streaming(
        &self,
        user: Uuid,
        conversation: Uuid,
        text: ChatText,
    ) -> Result<mpsc::Receiver<ChatEvent>, ChatError> {
        let messages = self.context(user, conversation, &text).await?;
        let mut stream = self.call_streaming(user, messages).await?;
        let (tx, rx) = mpsc::channel(64);
        let ai = self.clone();
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(StreamEvent::Delta(delta)) => ChatEvent::Delta(delta),
                    Ok(StreamEvent::Done(completion)) => {
                        let cost = stream.cost().unwrap_or(0);
                        match ai.store(user, conversation, &text, &completion, cost).await {
                            Ok(exchange) => ChatEvent::Done(Box::new(exchange)),
                            Err(error) => ChatEvent::Failed(error),
                        }
                    }
                    Err(error) => ChatEvent::Failed(ChatError::Call(AiCallError::Provider(error))),
                };
                // A receiver gone (the client left) does not stop the answer: it is settled
                // and stored all the same.
                let _ = tx.send(event).await;
            }
        });
        Ok(rx)
    }
}

fn refused(scope: &'static str) {
    metrics::counter!(metric_names::BUDGET_REFUSALS, "scope" => scope).increment(1);
}

async fn settle(reservation: Reservation, cost: u64, provider: &str) {
    metrics::counter!(metric_names::SPEND, "provider" => provider.to_owned()).increment(cost);
    if let Err(error) = reservation.settle(cost).await {
        // The estimate stays charged until its period ends: the budget errs on the safe side.
        tracing::warn!(%error, cost, "AI spending could not be settled; the reservation stays");
    }
}

async fn release(reservation: Reservation) {
    if let Err(error) = reservation.release().await {
        tracing::warn!(%error, "an AI reservation could not be released; it lapses with its period");
    }
}

/// A streamed answer whose reservation is settled when it ends: with the reported usage when
/// it completes, with the estimated prompt and received text when it breaks off. Dropped
/// half-way, the reservation is released (see [`Reservation`]).
pub struct BudgetedStream {
    ai: Ai,
    stream: ChatStream,
    reservation: Option<Reservation>,
    request: ChatRequest,
    /// The text received so far (what a broken-off stream is charged for).
    text: String,
    /// The cost settled when the stream completed.
    settled: Option<u64>,
}

impl std::fmt::Debug for BudgetedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetedStream")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl BudgetedStream {
    /// The cost settled, once the stream has completed.
    pub fn cost(&self) -> Option<u64> {
        self.settled
    }

    /// The next event, as [`ChatStream::next`]; the budget is settled on the last one.
    pub async fn next(&mut self) -> Option<Result<StreamEvent, AiError>> {
        let event = self.stream.next().await?;
        match &event {
            Ok(StreamEvent::Delta(delta)) => self.text.push_str(delta),
            Ok(StreamEvent::Done(completion)) => {
                let cost = self.ai.cost(completion.usage);
                if let Some(reservation) = self.reservation.take() {
                    settle(reservation, cost, &completion.provider).await;
                }
                self.settled = Some(cost);
            }
            Err(_) => {
                let usage = Usage {
                    input_tokens: self
                        .request
                        .messages
                        .iter()
                        .map(|m| estimate_tokens(&m.content) + 4)
                        .sum(),
                    output_tokens: estimate_tokens(&self.text),
                };
                let cost = self.ai.cost(usage);
                if let Some(reservation) = self.reservation.take() {
                    settle(reservation, cost, self.stream.provider()).await;
                }
            }
        }
        Some(event)
    }
}
