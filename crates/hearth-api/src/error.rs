//! One error shape for every route: RFC 9457 `application/problem+json` with the request id.

use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_domain::games::GameError;
use hearth_storage::StorageError;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::request_id;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's path in the request (`bet`, `items[2].amount`), or the query parameter.
    pub field: String,
    /// What is wrong, for a human.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every error a handler or extractor returns.
///
/// 4xx variants carry a client-safe detail; [`ApiError::Internal`] carries the cause, which is
/// logged once with its chain and never shown.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request cannot be read at all (malformed JSON).
    BadRequest(String),
    /// 422: well-formed but invalid; one entry per field.
    Validation(Vec<FieldError>, Map<String, Value>),
    /// 401: no credentials, or credentials refused.
    Unauthorized(&'static str),
    /// 404: no such resource (also used where saying "forbidden" would leak existence).
    NotFound(&'static str),
    /// 409: conflicts with existing state.
    Conflict(String, Option<FieldError>),
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 413: the body is larger than allowed.
    PayloadTooLarge,
    /// 422: the wallet cannot cover the bet.
    InsufficientBalance {
        /// Coins needed.
        needed: i64,
        /// Coins available.
        available: i64,
    },
    /// 503: a dependency is down; try again shortly.
    Unavailable(&'static str),
    /// 429: a rate limit refused the request.
    RateLimited(hearth_limits::Decision),
    /// 429: the client is blocked for anomalous traffic.
    Blocked {
        /// How long the block lasts.
        retry_after: std::time::Duration,
    },
    /// 401: the password was right but the account needs a second-factor code.
    TotpRequired,
    /// 401: an admin action by an admin with a second factor, without `X-Hearth-TOTP`.
    AdminTotpRequired,
    /// 403: the right password for an account an operator banned.
    AccountDisabled,
    /// 403: a cookie-authenticated request without a valid CSRF token.
    CsrfRejected,
    /// 403: refused for who is asking, not for what they sent (a WebSocket upgrade carrying
    /// the session cookie from an origin not allowed).
    Forbidden(&'static str),
    /// 429: too many failed logins for this account or address.
    Locked {
        /// How long the lock lasts.
        retry_after: std::time::Duration,
    },
    /// 412: the `If-Match` version is not the resource's current one.
    PreconditionFailed(&'static str),
    /// 428: an update without `If-Match`.
    PreconditionRequired(&'static str),
    /// 500: a bug or an unexpected failure.
    Internal(anyhow::Error),
}

impl ApiError {
    /// A 422 for one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)], Map::new())
    }

    /// A 500 from any error, keeping its chain for the log.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(..) | Self::InsufficientBalance { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Unauthorized(_) | Self::TotpRequired | Self::AdminTotpRequired => {
                StatusCode::UNAUTHORIZED
            }
            Self::CsrfRejected | Self::Forbidden(_) | Self::AccountDisabled => {
                StatusCode::FORBIDDEN
            }
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(..) => StatusCode::CONFLICT,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited(_) | Self::Blocked { .. } | Self::Locked { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status())
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => Self::NotFound("the resource does not exist"),
            StorageError::InsufficientBalance { needed, available } => {
                Self::InsufficientBalance { needed, available }
            }
            StorageError::Conflict { constraint } => {
                let field = ["username", "email"]
                    .into_iter()
                    .find(|f| constraint.contains(f));
                match field {
                    Some(field) => Self::Conflict(
                        format!("that {field} is already registered"),
                        Some(FieldError::new(field, "is already registered")),
                    ),
                    None => Self::Conflict("the request conflicts with existing data".into(), None),
                }
            }
            // A stored round that no longer restores is our fault, not the request's.
            StorageError::Game(error @ GameError::CorruptState) => Self::Internal(error.into()),
            StorageError::Game(error) => Self::field("bet", error.to_string()),
            StorageError::IdempotencyMismatch => Self::Validation(
                vec![FieldError::new(
                    "Idempotency-Key",
                    "was already used with a different request",
                )],
                Map::new(),
            ),
            StorageError::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
                Self::Unavailable("the database is unavailable; retry shortly")
            }
            other => Self::Internal(other.into()),
        }
    }
}

/// The stable problem `type` URI for a status (and optional refinement).
fn problem_type(slug: &str) -> String {
    format!("urn:hearth:problem:{slug}")
}

fn slug(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad-request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not-found",
        405 => "method-not-allowed",
        408 => "request-timeout",
        409 => "conflict",
        412 => "precondition-failed",
        428 => "precondition-required",
        413 => "payload-too-large",
        415 => "unsupported-media-type",
        422 => "validation",
        429 => "too-many-requests",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "client-error",
    }
}

/// A safe default detail for a status when the code that produced it gave none.
pub(crate) fn default_detail(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "the request could not be read",
        401 => "authentication is required",
        403 => "you may not do this",
        404 => "no resource at this path",
        405 => "this method is not allowed on this path",
        408 | 504 => "the request took too long",
        413 => "the request body is too large",
        415 => "the body must be JSON with content-type: application/json",
        503 => "the service is unavailable; retry shortly",
        s if s >= 500 => "an internal error occurred; quote the request id when reporting it",
        _ => "the request was refused",
    }
}

/// Builds a problem+json response. `extra` members are added at the top level.
pub fn problem(status: StatusCode, detail: &str, extra: Map<String, Value>) -> Response {
    typed_problem(status, slug(status), detail, extra)
}

/// Like [`problem`], with a `type` more specific than the status's.
fn typed_problem(
    status: StatusCode,
    slug: &str,
    detail: &str,
    extra: Map<String, Value>,
) -> Response {
    let mut body = json!({
        "type": problem_type(slug),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "request_id": request_id::current(),
    });
    if let Value::Object(map) = &mut body {
        map.extend(extra);
    }
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            Self::BadRequest(detail) => problem(status, &detail, Map::new()),
            Self::Validation(errors, mut extra) => {
                let detail = match errors.as_slice() {
                    [one] => format!("{}: {}", one.field, one.message),
                    _ => format!("{} fields are invalid", errors.len()),
                };
                extra.insert("errors".into(), json!(errors));
                problem(status, &detail, extra)
            }
            Self::Unauthorized(detail) => {
                let mut response = problem(status, detail, Map::new());
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            Self::NotFound(detail)
            | Self::Forbidden(detail)
            | Self::PreconditionFailed(detail)
            | Self::PreconditionRequired(detail) => problem(status, detail, Map::new()),
            Self::Conflict(detail, field) => {
                let mut extra = Map::new();
                if let Some(field) = field {
                    extra.insert("errors".into(), json!([field]));
                }
                problem(status, &detail, extra)
            }
            Self::UnsupportedMediaType | Self::PayloadTooLarge => {
                problem(status, default_detail(status), Map::new())
            }
            Self::InsufficientBalance { needed, available } => {
                let mut extra = Map::new();
                extra.insert("needed".into(), json!(needed));
                extra.insert("available".into(), json!(available));
                typed_problem(
                    status,
                    "insufficient-balance",
                    &format!("the balance of {available} cannot cover {needed}"),
                    extra,
                )
            }
            Self::Unavailable(detail) => {
                let mut response = problem(status, detail, Map::new());
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            Self::RateLimited(decision) => {
                let wait = decision
                    .retry_after
                    .map_or(1, |d| d.as_secs_f64().ceil() as u64);
                let detail = format!("rate limit {} exceeded; retry in {wait} s", decision.rule);
                let mut extra = Map::new();
                extra.insert("rule".into(), json!(decision.rule));
                let mut response = problem(status, &detail, extra);
                for (name, value) in decision.headers() {
                    response.headers_mut().insert(name, value);
                }
                response
            }
            Self::Blocked { retry_after } => {
                let wait = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                let detail = format!("unusual traffic from this address; retry in {wait} s");
                let mut response = problem(status, &detail, Map::new());
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(wait));
                response
            }
            Self::TotpRequired => {
                let mut extra = Map::new();
                extra.insert("totp_required".into(), json!(true));
                typed_problem(
                    status,
                    "totp-required",
                    "this account needs a code from its authenticator app (or a backup code) in \"totp\"",
                    extra,
                )
            }
            Self::AdminTotpRequired => {
                let mut extra = Map::new();
                extra.insert("totp_required".into(), json!(true));
                typed_problem(
                    status,
                    "totp-required",
                    "this admin action needs a code from your authenticator app (or a backup code) in the X-Hearth-TOTP header",
                    extra,
                )
            }
            Self::AccountDisabled => typed_problem(
                status,
                "account-disabled",
                "this account has been disabled by an operator",
                Map::new(),
            ),
            Self::CsrfRejected => typed_problem(
                status,
                "csrf",
                "a cookie-authenticated request that changes state needs the X-CSRF-Token header from login",
                Map::new(),
            ),
            Self::Locked { retry_after } => {
                let wait = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                let detail = format!("too many failed logins; retry in {wait} s");
                let mut response = typed_problem(status, "locked", &detail, Map::new());
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(wait));
                response
            }
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                metrics::counter!(hearth_observability::metrics::names::INTERNAL_ERRORS)
                    .increment(1);
                problem(status, default_detail(status), Map::new())
            }
        }
    }
}
