//! The AI chat: conversations, messages (whole or streamed as server-sent events) and the
//! caller's spending. The use-case is `hearth_app::ai`; this module maps HTTP to it and back.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_app::ai::{AiCallError, ChatError, ChatEvent, Exchange};
use hearth_domain::chat::{ChatText, ChatTextError};
use hearth_limits::BudgetError;
use hearth_storage::{ChatMessage, Cursor, MAX_MESSAGE_PAGE, Page};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::error::{ApiError, problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser};
use crate::state::AppState;

const MISSING: ApiError = ApiError::NotFound("no such conversation");

/// `POST /v1/ai/conversations`: starts a conversation; 201 with its id.
#[utoipa::path(
    post, path = "/v1/ai/conversations", tag = "ai", security(("bearer" = []), ("cookie" = [])),
    responses((status = 201, description = "`{id, created_at}`.", body = Object,
        headers(("Location" = String, description = "The conversation's messages."))))
)]
pub(crate) async fn start(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Response, ApiError> {
    let conversation = state.ai.start_conversation(claims.sub).await?;
    let created_at = conversation
        .created_at
        .format(&Rfc3339)
        .map_err(ApiError::internal)?;
    let location = format!("/v1/ai/conversations/{}/messages", conversation.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(json!({ "id": conversation.id, "created_at": created_at })),
    )
        .into_response())
}

/// The body of `POST /v1/ai/conversations/{id}/messages`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendBody {
    content: String,
}

/// What an answered message returns.
#[derive(Serialize)]
struct Answered<'a> {
    /// The assistant's message.
    message: &'a ChatMessage,
    /// Its usage and cost.
    usage: Value,
    /// The user's message as stored (markup stripped).
    question: &'a ChatMessage,
}

fn answered(exchange: &Exchange) -> Answered<'_> {
    let a = &exchange.answer;
    Answered {
        message: a,
        usage: json!({
            "input_tokens": a.input_tokens,
            "output_tokens": a.output_tokens,
            "cost_micros": a.cost_micros,
        }),
        question: &exchange.question,
    }
}

fn conversation_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| MISSING)
}

fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            item.split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// `POST /v1/ai/conversations/{id}/messages {"content"}`: the answer (201 with the assistant
/// message and its usage), or with `Accept: text/event-stream` the answer as server-sent
/// events: `delta` (`{"content"}`) pieces, then `done` (as the JSON answer) or `error` (a
/// problem object).
#[utoipa::path(
    post, path = "/v1/ai/conversations/{id}/messages", tag = "ai", security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "The conversation's id.")),
    request_body = SendBody,
    responses(
        (status = 201, description = "The assistant's answer and its usage.", body = Object),
        (status = 200, description = "With `Accept: text/event-stream`: `delta`, then `done` or `error` events.", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such conversation (or another user's)."),
    )
)]
pub(crate) async fn send(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SendBody>,
) -> Result<Response, AiRefusal> {
    let conversation = conversation_id(&id)?;
    let text = ChatText::parse(&body.content).map_err(|error| {
        ApiError::field(
            "content",
            match error {
                ChatTextError::Empty => "must contain text (markup is removed)".to_owned(),
                other => other.to_string(),
            },
        )
    })?;
    if wants_event_stream(&headers) {
        let events = state
            .ai
            .send_streaming(claims.sub, conversation, text)
            .await?;
        return Ok(event_stream(events));
    }
    let exchange = state.ai.send(claims.sub, conversation, text).await?;
    Ok((StatusCode::CREATED, Json(answered(&exchange))).into_response())
}

fn sse(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

fn event_stream(events: tokio::sync::mpsc::Receiver<ChatEvent>) -> Response {
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        let event = events.recv().await?;
        let bytes = match event {
            ChatEvent::Delta(content) => sse("delta", &json!({ "content": content })),
            ChatEvent::Done(exchange) => sse("done", &json!(answered(&exchange))),
            ChatEvent::Failed(error) => {
                let (status, detail) = stream_failure(&error);
                sse(
                    "error",
                    &json!({
                        "type": "urn:hearth:problem:unavailable",
                        "status": status.as_u16(),
                        "detail": detail,
                    }),
                )
            }
        };
        Some((Ok::<_, Infallible>(bytes), events))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx would otherwise buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn stream_failure(error: &ChatError) -> (StatusCode, &'static str) {
    match error {
        ChatError::Call(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the answer broke off; nothing was stored, send the message again",
        ),
        ChatError::NotFound | ChatError::Storage(_) => {
            tracing::error!(%error, "an answered AI message could not be stored");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the answer could not be stored",
            )
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "the answer failed"),
    }
}

/// Query of `GET /v1/ai/conversations/{id}/messages`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MessagesQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/ai/conversations/{id}/messages?cursor=&limit=`: the messages, oldest first.
#[utoipa::path(
    get, path = "/v1/ai/conversations/{id}/messages", tag = "ai", security(("bearer" = []), ("cookie" = [])),
    params(
        ("id" = String, Path, description = "The conversation's id."),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, description = "Page size.", minimum = 1),
    ),
    responses(
        (status = 200, description = "A page of messages, oldest first.", body = crate::openapi::schemas::Page),
        (status = 404, description = "No such conversation (or another user's)."),
    )
)]
pub(crate) async fn messages(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<MessagesQuery>,
) -> Result<Json<Page<ChatMessage>>, AiRefusal> {
    let conversation = conversation_id(&id)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_MESSAGE_PAGE).contains(&limit) {
        return Err(
            ApiError::field("limit", format!("must be between 1 and {MAX_MESSAGE_PAGE}")).into(),
        );
    }
    let after = query
        .cursor
        .map(|c| Cursor::decode(&c))
        .transpose()
        .map_err(|_| ApiError::field("cursor", "is not a cursor this API issued"))?;
    Ok(Json(
        state
            .ai
            .messages(claims.sub, conversation, after, limit)
            .await?,
    ))
}

/// `GET /v1/ai/usage`: today's spending (UTC day, open reservations included) and what is
/// left, in budget micro-units.
#[utoipa::path(
    get, path = "/v1/ai/usage", tag = "ai", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "Today's AI spending and what is left, in micro-units.", body = Object))
)]
pub(crate) async fn usage(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<Value>, AiRefusal> {
    let usage = state
        .ai
        .usage(claims.sub)
        .await
        .map_err(|e| AiRefusal::Call(AiCallError::Budget(e)))?;
    let resets_at = usage
        .resets_at
        .format(&Rfc3339)
        .map_err(ApiError::internal)?;
    Ok(Json(json!({
        "unit": "micros",
        "micros_per_unit": hearth_limits::MICROS_PER_UNIT,
        "spent_today": usage.spent_today,
        "daily_budget": usage.daily_budget,
        "remaining_today": usage.remaining_today,
        "resets_at": resets_at,
    })))
}

/// Every refusal of the AI routes, in the one problem+json format.
#[derive(Debug)]
pub(crate) enum AiRefusal {
    /// Any other error.
    Api(ApiError),
    /// The call was refused or got no answer.
    Call(AiCallError),
}

impl From<ApiError> for AiRefusal {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<ChatError> for AiRefusal {
    fn from(error: ChatError) -> Self {
        match error {
            ChatError::NotFound => Self::Api(MISSING),
            ChatError::Storage(error) => Self::Api(error.into()),
            ChatError::Call(error) => Self::Call(error),
            other => Self::Api(ApiError::internal(other)),
        }
    }
}

fn with_retry_after(
    status: StatusCode,
    slug_detail: &str,
    wait: Duration,
    extra: Map<String, Value>,
) -> Response {
    let mut response = problem(status, slug_detail, extra);
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

impl IntoResponse for AiRefusal {
    fn into_response(self) -> Response {
        let error = match self {
            Self::Api(error) => return error.into_response(),
            Self::Call(error) => error,
        };
        match error {
            AiCallError::RateLimited(decision) => ApiError::RateLimited(decision).into_response(),
            AiCallError::Budget(budget) => {
                let status = budget.status();
                let wait = budget.retry_after().unwrap_or(Duration::from_secs(1));
                let (detail, scope) = match budget {
                    BudgetError::UserExhausted { .. } => {
                        ("your AI budget for today is spent", "user")
                    }
                    BudgetError::GlobalExhausted { .. } => (
                        "the AI budget for this hour is spent; retry later",
                        "global",
                    ),
                    _ => ("AI budgets are unavailable; retry shortly", "unavailable"),
                };
                let mut extra = Map::new();
                extra.insert("budget".into(), json!(scope));
                with_retry_after(status, detail, wait, extra)
            }
            AiCallError::LimiterUnavailable => {
                ApiError::Unavailable("rate limiting is unavailable; retry shortly").into_response()
            }
            AiCallError::Provider(error) => {
                let wait = error.retry_after();
                with_retry_after(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no AI provider answered; retry shortly",
                    wait,
                    Map::new(),
                )
            }
            other => ApiError::internal(other).into_response(),
        }
    }
}
