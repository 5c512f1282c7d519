//! The caller's session: [`AuthUser`] and [`AdminUser`], over
//! [`hearth_auth::Authenticator::authenticate_request`] (the one implementation of the token
//! sources and the CSRF rule, shared with `hearth_auth::RequireAuthLayer`), with refusals in
//! the one problem+json format.

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use hearth_auth::{Claims, MissingToken, RequestAuthError, Role, TokenError, TokenSource};
use hearth_storage::admin::{AuditOutcome, NewAudit};

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
/// database, and a client address on `admin.allowed_ips` (when set); for a request that
/// changes state, also a fresh code in [`TOTP_HEADER`] when the admin has a second factor.
/// Anyone else gets 404, as if admin routes did not exist (a missing token from an allowed
/// address, 401; a missing or wrong code, 401 or 422).
///
/// Every refusal is appended to the audit trail here, before it is answered; the handler
/// records the outcome of an allowed request through the [`AdminAudit`] it is given.
#[derive(Debug, Clone)]
pub struct AdminUser(pub Claims, pub AdminAudit);

/// The header carrying an admin's second-factor code on admin requests that change state.
pub static TOTP_HEADER: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-hearth-totp");

/// Who asked what, from where: the audit row's columns that every admin request shares.
#[derive(Debug, Clone)]
pub struct AdminAudit {
    /// The caller, when a valid token named one.
    pub actor: Option<uuid::Uuid>,
    /// `users.ban`, `jobs.list`, … (see [`action_of`]).
    pub action: String,
    /// The `{user_id}` of the path, when it is a UUID.
    pub target: Option<uuid::Uuid>,
    /// The client address.
    pub client_ip: Option<String>,
    /// The request id.
    pub request_id: String,
}

impl AdminAudit {
    fn of(parts: &Parts) -> Self {
        let template = parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| parts.uri.path().to_owned(), |m| m.as_str().to_owned());
        let actor = match parts.extensions.get::<CheckedToken>() {
            Some(CheckedToken::Live(claims)) => Some(claims.sub),
            _ => None,
        };
        let target = parts.extensions.get::<UserIdParam>().and_then(|p| p.0);
        Self {
            actor,
            action: action_of(&parts.method, &template),
            target,
            client_ip: parts.extensions.get::<ClientIp>().map(|c| c.ip.to_string()),
            request_id: crate::request_id::current(),
        }
    }

    /// The audit row of this request with its outcome.
    pub fn entry(
        &self,
        reason: Option<&str>,
        outcome: AuditOutcome,
        detail: serde_json::Value,
    ) -> NewAudit {
        NewAudit {
            actor_id: self.actor,
            action: self.action.clone(),
            target_user_id: self.target,
            reason: reason.map(str::to_owned),
            client_ip: self.client_ip.clone(),
            request_id: Some(self.request_id.clone()).filter(|id| !id.is_empty()),
            outcome,
            detail,
        }
    }

    /// Appends a `done` row on its own (reads, and actions without a transaction). The answer
    /// waits for it: an admin request is not served unaudited.
    ///
    /// # Errors
    /// When the row cannot be written.
    pub async fn done(
        &self,
        state: &AppState,
        reason: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        state
            .db
            .append_audit(self.entry(reason, AuditOutcome::Done, detail))
            .await?;
        Ok(())
    }

    /// Appends a `refused` row saying why. A failure to write it is logged, and the refusal
    /// is answered anyway.
    pub async fn refused(
        &self,
        state: &AppState,
        reason: Option<&str>,
        why: &str,
        detail: serde_json::Value,
    ) {
        let entry = self.entry(reason, AuditOutcome::Refused(why.to_owned()), detail);
        if let Err(error) = state.db.append_audit(entry).await {
            tracing::error!(%error, action = %self.action, why, "admin refusal could not be audited");
        }
    }

    /// Passes `result` through, appending a `refused` row first when it is an error.
    pub async fn settle<T>(
        &self,
        state: &AppState,
        reason: Option<&str>,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        if let Err(error) = &result {
            self.refused(state, reason, refusal_of(error), serde_json::json!({}))
                .await;
        }
        result
    }
}

/// A short name for why a handler refused an admin request, for the audit row.
pub(crate) fn refusal_of(error: &ApiError) -> &'static str {
    match error {
        ApiError::Validation(..) | ApiError::BadRequest(_) => "invalid_request",
        ApiError::NotFound(_) => "not_found",
        ApiError::Conflict(..) => "conflict",
        ApiError::InsufficientBalance { .. } => "insufficient_balance",
        ApiError::Unavailable(_) => "unavailable",
        ApiError::Internal(_) => "error",
        _ => "refused",
    }
}

/// The audit action of an admin route: stable names the console and operators filter on.
pub(crate) fn action_of(method: &Method, template: &str) -> String {
    let name = match (method.as_str(), template) {
        ("GET" | "HEAD", "/v1/admin/users") => "users.search",
        ("GET" | "HEAD", "/v1/admin/users/{user_id}") => "users.view",
        ("POST", "/v1/admin/users/{user_id}/ban") => "users.ban",
        ("POST", "/v1/admin/users/{user_id}/unban") => "users.unban",
        ("POST", "/v1/admin/users/{user_id}/adjustments") => "users.adjust",
        ("GET" | "HEAD", "/v1/admin/users/{user_id}/transactions") => "users.transactions",
        ("GET" | "HEAD", "/v1/admin/users/{user_id}/rounds") => "users.rounds",
        ("GET" | "HEAD", "/v1/admin/audit") => "audit.read",
        ("GET" | "HEAD", "/v1/admin/stats") => "stats.read",
        ("GET" | "HEAD", "/v1/admin/jobs") => "jobs.list",
        ("POST", "/v1/admin/jobs/{id}/retry") => "jobs.retry",
        ("GET" | "HEAD", "/health/details") => "health.details",
        (method, template) => {
            let mut text = format!("{method} {template}");
            text.truncate(64);
            return text;
        }
    };
    name.to_owned()
}

/// The `{user_id}` path parameter of an admin route, read once by [`AdminUser`].
#[derive(Debug, Clone, Copy)]
struct UserIdParam(Option<uuid::Uuid>);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        const HIDDEN: ApiError = ApiError::NotFound("no resource at this path");
        let target = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(name, _)| *name == "user_id")
                    .and_then(|(_, value)| uuid::Uuid::try_parse(value).ok())
            });
        parts.extensions.insert(UserIdParam(target));
        let mut audit = AdminAudit::of(parts);

        let allowed = &state.settings.admin.allowed_ips;
        if !allowed.is_empty() {
            let ip = parts.extensions.get::<ClientIp>().map(|c| c.ip);
            if !ip.is_some_and(|ip| allowed.iter().any(|cidr| cidr.contains(ip))) {
                audit
                    .refused(state, None, "not_allowlisted", serde_json::json!({}))
                    .await;
                return Err(HIDDEN);
            }
        }
        let claims = match AuthUser::from_request_parts(parts, state).await {
            Ok(AuthUser(claims)) => claims,
            Err(error) => {
                let why = if matches!(error, ApiError::CsrfRejected) {
                    "csrf"
                } else {
                    "unauthenticated"
                };
                audit.refused(state, None, why, serde_json::json!({})).await;
                return Err(error);
            }
        };
        audit.actor = Some(claims.sub);
        if claims.role != Role::Admin {
            audit
                .refused(state, None, "not_admin", serde_json::json!({}))
                .await;
            return Err(HIDDEN);
        }
        // Tokens live 15 minutes; a demotion takes effect at once.
        let user = state.db.find_user(claims.sub).await?;
        let Some(user) = user.filter(|u| u.role == Role::Admin.as_str()) else {
            audit
                .refused(state, None, "not_admin", serde_json::json!({}))
                .await;
            return Err(HIDDEN);
        };
        if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            second_factor(parts, state, &user, &audit).await?;
        }
        Ok(Self(claims, audit))
    }
}

/// Checks the acting admin's code in [`TOTP_HEADER`] when they have a second factor: a
/// missing header is 401 `totp-required`; a wrong or used code counts toward the account's
/// lockout and is 422 naming the header. Both are audited.
async fn second_factor(
    parts: &Parts,
    state: &AppState,
    user: &hearth_storage::User,
    audit: &AdminAudit,
) -> Result<(), ApiError> {
    let totp = state.db.totp(user.id).await?;
    if !totp.enabled {
        return Ok(());
    }
    let code = parts
        .headers
        .get(&TOTP_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let Some(code) = code else {
        audit
            .refused(state, None, "totp_missing", serde_json::json!({}))
            .await;
        return Err(ApiError::AdminTotpRequired);
    };
    let client = parts.extensions.get::<ClientIp>();
    let checked =
        crate::routes::auth::verify_code_attempt(state, user.id, code, client, "X-Hearth-TOTP")
            .await;
    if let Err(error) = &checked {
        let why = match error {
            ApiError::Validation(..) => "totp_invalid",
            ApiError::Locked { .. } => "totp_locked",
            _ => "totp_unchecked",
        };
        audit.refused(state, None, why, serde_json::json!({})).await;
    }
    checked
}
