//! Extractors whose rejections speak the one problem+json format and name the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use hearth_auth::{Claims, Role, TokenError, TokenType};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};
use crate::state::AppState;

/// A JSON body. Refuses a non-JSON content type (415), an oversized body (413), malformed JSON
/// (400, with line and column) and a body of the wrong shape (422, naming the field).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest("the request body could not be read".into())
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON, mapping serde's errors to field-naming API errors.
///
/// Every Hearth request body is an object; serde would also accept an array for a struct, so
/// anything else is refused up front.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::Validation(
            vec![FieldError::new("", "the body must be a JSON object")],
            Default::default(),
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return ApiError::BadRequest(format!(
                "malformed JSON at line {} column {}",
                inner.line(),
                inner.column()
            ));
        }
        let (field, message) = field_and_message(&path, &strip_position(&inner.to_string()));
        ApiError::Validation(vec![FieldError::new(field, message)], Default::default())
    })?;
    deserializer
        .end()
        .map_err(|_| ApiError::BadRequest("trailing characters after the JSON value".into()))?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// For "unknown field `x`" and "missing field `x`", serde reports the enclosing object's path;
/// the field itself is the useful name.
fn field_and_message(path: &str, message: &str) -> (String, String) {
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match named {
        Some(name) => {
            // For an unknown field the path already ends at it; for a missing one it stops at
            // the enclosing object.
            let field = if path == "." || path.is_empty() {
                name.to_owned()
            } else if path == name || path.ends_with(&format!(".{name}")) {
                path.to_owned()
            } else {
                format!("{path}.{name}")
            };
            let message = if message.starts_with("unknown") {
                "is not a known field".to_owned()
            } else {
                "is required".to_owned()
            };
            (field, message)
        }
        None => {
            let field = if path == "." {
                String::new()
            } else {
                path.to_owned()
            };
            (field, message.to_owned())
        }
    }
}

/// Query parameters, refused with 422 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|error| {
                let path = error.path().to_string();
                let (field, message) = field_and_message(&path, &error.into_inner().to_string());
                ApiError::Validation(vec![FieldError::new(field, message)], Default::default())
            })
    }
}

/// The token of an `Authorization: Bearer <token>` header.
///
/// # Errors
/// A 401 saying whether the header is missing or malformed.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    if headers.get(AUTHORIZATION).is_none() {
        return Err(ApiError::Unauthorized("a bearer token is required"));
    }
    hearth_auth::bearer(headers).ok_or(ApiError::Unauthorized(
        "the Authorization header must be 'Bearer <token>'",
    ))
}

/// The cookie holding the access token in browser mode.
pub(crate) const ACCESS_COOKIE: &str = "hearth_access";
/// The cookie holding the refresh token (sent to `/v1/auth` only).
pub(crate) const REFRESH_COOKIE: &str = "hearth_refresh";
/// The cookie holding the CSRF token, readable by the page's script.
pub(crate) const CSRF_COOKIE: &str = "hearth_csrf";
/// The header a cookie-authenticated, state-changing request repeats the CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// Where a request's credentials came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenSource {
    /// `Authorization: Bearer`: no CSRF token needed (a browser never adds it by itself).
    Bearer,
    /// A session cookie: state-changing requests must carry the CSRF token.
    Cookie,
}

/// The value of cookie `name`, if the request carries it.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// The access token of a request: the bearer token if there is an `Authorization` header,
/// else the session cookie.
pub(crate) fn access_token(headers: &HeaderMap) -> Option<(&str, TokenSource)> {
    if headers.contains_key(AUTHORIZATION) {
        return hearth_auth::bearer(headers).map(|t| (t, TokenSource::Bearer));
    }
    cookie(headers, ACCESS_COOKIE).map(|t| (t, TokenSource::Cookie))
}

/// Whether a method changes state (everything but GET, HEAD and OPTIONS).
pub(crate) fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuses a cookie-authenticated, state-changing request without the session's CSRF token.
pub(crate) fn require_csrf(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    family: uuid::Uuid,
) -> Result<(), ApiError> {
    if !changes_state(method) {
        return Ok(());
    }
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if state.tokens.verify_csrf(family, presented) {
        Ok(())
    } else {
        Err(ApiError::CsrfRejected)
    }
}

/// Maps an authentication failure to its response: 401 for a refused token, 503 when the
/// revocation store cannot answer (Hearth fails closed).
pub(crate) fn auth_failure(error: &hearth_auth::AuthError) -> ApiError {
    match error {
        hearth_auth::AuthError::Token(error) => {
            tracing::debug!(%error, "token refused");
            metrics::counter!(crate::routes::auth::TOKEN_REFUSALS, "reason" => refusal_reason(error))
                .increment(1);
            ApiError::Unauthorized("the access token is invalid, expired or revoked")
        }
        hearth_auth::AuthError::Store(error) => {
            tracing::warn!(%error, "revocation store unavailable; refusing");
            ApiError::Unavailable("authentication is unavailable; retry shortly")
        }
    }
}

fn refusal_reason(error: &TokenError) -> &'static str {
    match error {
        TokenError::Expired => "expired",
        TokenError::NotYetValid => "not_yet_valid",
        TokenError::Invalid | TokenError::Signing(_) => "invalid",
        TokenError::UnknownKey => "unknown_key",
        TokenError::WrongType => "wrong_type",
        TokenError::Revoked => "revoked",
    }
}

/// The authenticated caller: a valid, unrevoked access token from `Authorization: Bearer`
/// or, in browser mode, the session cookie (then state-changing requests also need the CSRF
/// token).
#[derive(Debug, Clone)]
pub struct AuthUser(pub Claims);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (token, source) = match access_token(&parts.headers) {
            Some(found) => found,
            None => {
                bearer_token(&parts.headers)?;
                return Err(ApiError::Unauthorized("a bearer token is required"));
            }
        };
        // The rate limiter verified the signature already; the revocation check is still due.
        let verified = parts
            .extensions
            .get::<crate::limits::VerifiedClaims>()
            .map(|v| v.0.clone());
        let result = match verified {
            Some(claims) => state.auth.check_revocation(claims).await,
            None => state.auth.authenticate(token, TokenType::Access).await,
        };
        let claims = result.map_err(|error| auth_failure(&error))?;
        if source == TokenSource::Cookie {
            require_csrf(state, &parts.method, &parts.headers, claims.fam)?;
        }
        tracing::Span::current().record("user_id", tracing::field::display(claims.sub));
        Ok(Self(claims))
    }
}

/// An administrator: an access token with the `admin` role, the role still held in the
/// database, and a client address on `admin.allowed_ips` (when set). Anyone else gets 404, as
/// if admin routes did not exist.
#[derive(Debug, Clone)]
pub struct AdminUser(pub Claims);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        const HIDDEN: ApiError = ApiError::NotFound("no resource at this path");
        let allowed = &state.settings.admin.allowed_ips;
        if !allowed.is_empty() {
            let ip = parts
                .extensions
                .get::<crate::limits::ClientIp>()
                .map(|c| c.ip);
            if !ip.is_some_and(|ip| allowed.iter().any(|cidr| cidr.contains(ip))) {
                return Err(HIDDEN);
            }
        }
        let AuthUser(claims) = AuthUser::from_request_parts(parts, state).await?;
        if claims.role != Role::Admin {
            return Err(HIDDEN);
        }
        // Tokens live 15 minutes; a demotion takes effect at once.
        let user = state.db.find_user(claims.sub).await?;
        if user.is_none_or(|u| u.role != Role::Admin.as_str()) {
            return Err(HIDDEN);
        }
        Ok(Self(claims))
    }
}

/// A JSON body that may be absent: an empty body is `None`; anything else is read as
/// [`ApiJson`] would.
#[derive(Debug, Clone, Default)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_body = request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.trim() != "0");
        if !has_body || !request.headers().contains_key(CONTENT_TYPE) {
            let bytes = Bytes::from_request(request, state)
                .await
                .map_err(|_| ApiError::BadRequest("the request body could not be read".into()))?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Self(None));
            }
            return Err(ApiError::UnsupportedMediaType);
        }
        ApiJson::from_request(request, state)
            .await
            .map(|ApiJson(value)| Self(Some(value)))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        bet: i64,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        amount: u32,
    }

    fn error_of(json: &str) -> (StatusCode, Vec<FieldError>) {
        match parse_json::<Body>(json.as_bytes()).unwrap_err() {
            ApiError::Validation(errors, _) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, vec![]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn only_objects_are_accepted() {
        assert_eq!(error_of("[1]").0, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error_of("1").0, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(parse_json::<Body>(br#" {"bet": 1}"#).is_ok());
    }

    #[test]
    fn malformed_json_is_a_400() {
        assert_eq!(error_of("{\"bet\": ").0, StatusCode::BAD_REQUEST);
        assert_eq!(error_of("{\"bet\": 1} x").0, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn the_offending_field_is_named() {
        let (_, errors) = error_of(r#"{"bet": "ten"}"#);
        assert_eq!(errors[0].field, "bet");
        assert!(
            errors[0].message.contains("invalid type"),
            "{}",
            errors[0].message
        );

        let (_, errors) = error_of(r#"{"bet": 1, "bonus": true}"#);
        assert_eq!(errors[0], FieldError::new("bonus", "is not a known field"));

        let (_, errors) = error_of(r#"{}"#);
        assert_eq!(errors[0], FieldError::new("bet", "is required"));

        let (_, errors) = error_of(r#"{"bet": 1, "inner": {"amount": -1}}"#);
        assert_eq!(errors[0].field, "inner.amount");
    }
}
