//! The caller's session: [`AuthUser`] and [`AdminUser`], over
//! [`hearth_auth::Authenticator::authenticate_request`] (the one implementation of the token
//! sources and the CSRF rule, shared with `hearth_auth::RequireAuthLayer`), with refusals in
//! the one problem+json format.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use hearth_auth::{Claims, MissingToken, RequestAuthError, Role, TokenError, TokenSource};

use crate::error::ApiError;
use crate::limits::{CheckedToken, ClientIp};
use crate::state::AppState;

pub(crate) use hearth_auth::{ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE, cookie};

/// The target of this module's log lines: the module's name before it was split, which log
/// filters name.
const LOG_TARGET: &str = "hearth_api::extract";

/// Access or refresh tokens refused, by reason: counted here, where tokens are refused.
pub(crate) const TOKEN_REFUSALS: &str = "hearth_auth_token_refusals_total";

/// Refuses a cookie-authenticated, state-changing request without the session's CSRF token.
pub(crate) fn require_csrf(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    family: uuid::Uuid,
) -> Result<(), ApiError> {
    if hearth_auth::csrf_ok(&state.tokens, method, headers, family) {
        Ok(())
    } else {
        Err(ApiError::CsrfRejected)
    }
}

/// Maps an authentication failure to its response: 401 for a refused token, 503 when the
/// revocation store cannot answer (Hearth fails closed).
pub(crate) fn auth_failure(error: &hearth_auth::AuthError) -> ApiError {
    match error {
        hearth_auth::AuthError::Token(error) => token_refused(error),
        hearth_auth::AuthError::Store(error) => store_unavailable(error),
    }
}

fn token_refused(error: &TokenError) -> ApiError {
    tracing::debug!(target: LOG_TARGET, %error, "token refused");
    metrics::counter!(TOKEN_REFUSALS, "reason" => refusal_reason(error)).increment(1);
    ApiError::Unauthorized("the access token is invalid, expired or revoked")
}

fn store_unavailable(error: &hearth_auth::StoreError) -> ApiError {
    tracing::warn!(target: LOG_TARGET, %error, "revocation store unavailable; refusing");
    ApiError::Unavailable("authentication is unavailable; retry shortly")
}

/// Maps a request's authentication failure to its response.
fn request_auth_failure(error: &RequestAuthError) -> ApiError {
    match error {
        RequestAuthError::Missing(MissingToken::Absent) => {
            ApiError::Unauthorized("a bearer token is required")
        }
        RequestAuthError::Missing(MissingToken::Malformed) => {
            ApiError::Unauthorized("the Authorization header must be 'Bearer <token>'")
        }
        RequestAuthError::Token(error) => token_refused(error),
        RequestAuthError::Store(error) => store_unavailable(error),
        RequestAuthError::Csrf => ApiError::CsrfRejected,
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
        // Admission verified the token and checked its revocation already: use its outcome
        // rather than asking the store a second time.
        let claims = match parts.extensions.get::<CheckedToken>() {
            Some(CheckedToken::Live(claims)) => {
                let claims = claims.clone();
                if let Ok((_, TokenSource::Cookie)) = hearth_auth::access_token(&parts.headers) {
                    require_csrf(state, &parts.method, &parts.headers, claims.fam)?;
                }
                claims
            }
            Some(CheckedToken::Refused(error)) => return Err(auth_failure(error)),
            None => state
                .auth
                .authenticate_request(&parts.method, &parts.headers, None)
                .await
                .map_err(|error| request_auth_failure(&error))?,
        };
        tracing::Span::current().record("user_id", tracing::field::display(claims.sub));
        state.active_users.seen(claims.sub);
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
            let ip = parts.extensions.get::<ClientIp>().map(|c| c.ip);
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
