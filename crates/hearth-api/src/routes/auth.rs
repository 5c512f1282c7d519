//! Accounts and sessions: registration, login (with lockout and the optional second factor),
//! refresh rotation, logout, password change and reset, the second factor (enrolment,
//! confirmation, disabling, new backup codes; each needs the current password), and the
//! caller's own account.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hearth_auth::onetime::{backup_codes, hash_secret, reset_token};
use hearth_auth::{
    AuthError, Claims, Email, Role, TokenError, TokenPair, TokenSource, TokenType, TotpSecret,
    Username, check_policy,
};
use hearth_domain::fairness::{ClientSeed, ServerSeed, hex_encode};
use hearth_observability::metrics::names;
use hearth_storage::{NewEmail, NewPasswordReset, NewUser, User};
use metrics::{Unit, describe_counter};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{ApiError, FieldError};
use crate::extract::{
    ACCESS_COOKIE, ApiJson, AuthUser, CSRF_COOKIE, OptionalJson, REFRESH_COOKIE, TOKEN_REFUSALS,
    auth_failure, cookie, require_csrf,
};
use crate::limits::ClientIp;
use crate::state::AppState;

/// Accounts or addresses locked after repeated failed logins.
pub(crate) const LOCKOUTS: &str = "hearth_auth_lockouts_total";
/// Refresh tokens presented a second time (their session is revoked).
pub(crate) const REFRESH_REUSE: &str = "hearth_auth_refresh_reuse_total";
/// Sessions started (logins) and refreshed.
pub(crate) const SESSIONS: &str = "hearth_auth_sessions_total";

/// Gives the auth metrics their help text.
pub(crate) fn describe_metrics() {
    describe_counter!(
        LOCKOUTS,
        Unit::Count,
        "Login lockouts started, by scope (account, ip)"
    );
    describe_counter!(
        REFRESH_REUSE,
        Unit::Count,
        "Refresh tokens presented again after rotation (the session is revoked)"
    );
    describe_counter!(TOKEN_REFUSALS, Unit::Count, "Tokens refused, by reason");
    describe_counter!(
        SESSIONS,
        Unit::Count,
        "Token pairs issued, by event (login, refresh, renewal)"
    );
}

/// `POST /v1/auth/register`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterRequest {
    username: String,
    email: String,
    password: SecretString,
}

/// Checks a new password against the policy, naming `field` and adding the strength score.
fn policy_errors(
    field: &str,
    password: &SecretString,
    errors: &mut Vec<FieldError>,
    extra: &mut Map<String, serde_json::Value>,
) {
    if let Err(refusal) = check_policy(password.expose_secret()) {
        errors.push(FieldError::new(field, refusal.feedback.join("; ")));
        extra.insert(
            "password_strength".into(),
            json!({ "score": refusal.score, "feedback": refusal.feedback }),
        );
    }
}

/// Refuses a new password the policy rejects: 422 naming `field`, with the strength score.
fn require_policy(field: &str, password: &SecretString) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let mut extra = Map::new();
    policy_errors(field, password, &mut errors, &mut extra);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors, extra))
    }
}

/// The lockout key of an account: its id when it exists, else the login as typed (lower case),
/// so an unknown login locks exactly like a real one.
fn account_key(user: Option<Uuid>, login: &str) -> String {
    match user {
        Some(id) => format!("account:{id}"),
        None => format!("account:{}", login.trim().to_lowercase()),
    }
}

/// Creates an account with its wallet, starting bonus and fairness seeds.
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn register(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = Vec::new();
    let mut extra = Map::new();
    let username = Username::parse(&request.username)
        .map_err(|e| errors.push(FieldError::new("username", e.to_string())))
        .ok();
    let email = Email::parse(&request.email)
        .map_err(|e| errors.push(FieldError::new("email", e.to_string())))
        .ok();
    policy_errors("password", &request.password, &mut errors, &mut extra);
    let (Some(username), Some(email), true) = (username, email, errors.is_empty()) else {
        return Err(ApiError::Validation(errors, extra));
    };

    let password_hash = state
        .hasher
        .hash(request.password)
        .await
        .map_err(ApiError::internal)?;
    let user = state
        .db
        .create_user(NewUser {
            id: Uuid::now_v7(),
            username: username.as_str().to_owned(),
            email: email.as_str().to_owned(),
            password_hash,
            role: Role::Player.as_str().to_owned(),
            starting_balance: state.settings.wallet.starting_balance,
            server_seed: ServerSeed::from_bytes(rand::random()),
            client_seed: ClientSeed::parse(&hex_encode(&rand::random::<[u8; 8]>()))
                .map_err(|error| ApiError::internal(anyhow::anyhow!("client seed: {error}")))?,
        })
        .await?;
    metrics::counter!(names::REGISTRATIONS).increment(1);
    tracing::info!(user_id = %user.id, "account registered");
    Ok((StatusCode::CREATED, [("location", "/v1/me")], Json(user)))
}

/// `POST /v1/auth/login`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    /// Username or e-mail.
    login: String,
    password: SecretString,
    /// A code from the authenticator app, or a backup code, when the account has TOTP on.
    #[serde(default)]
    totp: Option<SecretString>,
    /// Browser mode: set the tokens as `HttpOnly` cookies instead of returning them.
    #[serde(default)]
    cookies: bool,
}

/// Exchanges a username or e-mail and password (and, when enabled, a TOTP code) for a token
/// pair, starting a session.
///
/// Unknown users and wrong passwords get the same answer after the same bcrypt work. Failures
/// count against the account and the client address; at the limit both are locked (429).
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn login(
    State(state): State<AppState>,
    client: Option<axum::Extension<ClientIp>>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let credentials = state.db.find_credentials(&request.login).await?;
    // An unknown login is locked just like a real one, so locks reveal nothing.
    let account_key = account_key(credentials.as_ref().map(|c| c.user.id), &request.login);
    let mut keys = vec![account_key.clone()];
    if let Some(axum::Extension(client)) = client {
        keys.push(client.key().to_owned());
    }
    if let Some(retry_after) = state.lockouts.locked(&keys).await.map_err(store_down)? {
        return Err(ApiError::Locked { retry_after });
    }

    let stored_hash = credentials.as_ref().map(|c| c.password_hash.clone());
    let matched = state
        .hasher
        .verify(request.password, stored_hash)
        .await
        .map_err(ApiError::internal)?;
    let reason = if credentials.is_some() {
        "bad_password"
    } else {
        "unknown_user"
    };
    let Some(credentials) = credentials.filter(|_| matched) else {
        return Err(failed_login(&state, &keys, reason).await);
    };
    let user = credentials.user;

    let totp = state.db.totp(user.id).await?;
    if totp.enabled {
        let Some(code) = request.totp else {
            return Err(ApiError::TotpRequired);
        };
        if !second_factor(
            &state,
            user.id,
            totp.secret.as_deref(),
            code.expose_secret(),
        )
        .await?
        {
            return Err(failed_login(&state, &keys, "bad_totp").await);
        }
    }

    state
        .lockouts
        .clear(&account_key)
        .await
        .map_err(store_down)?;
    let role = user.role.parse::<Role>().map_err(ApiError::internal)?;
    let pair = state
        .tokens
        .issue_pair(user.id, &user.username, role)
        .map_err(ApiError::internal)?;
    metrics::counter!(SESSIONS, "event" => "login").increment(1);
    tracing::info!(user_id = %user.id, cookies = request.cookies, "logged in");
    Ok(pair_response(&state, pair, request.cookies))
}

/// Counts a failed login; the answer is the same 401 whatever failed.
async fn failed_login(state: &AppState, keys: &[String], reason: &'static str) -> ApiError {
    metrics::counter!(names::LOGIN_FAILURES, "reason" => reason).increment(1);
    match count_failure(state, keys).await {
        Ok(()) => ApiError::Unauthorized("the login or password is incorrect"),
        Err(error) => error,
    }
}

/// Counts a failed password (or code) against `keys`, starting a lock at the limit.
async fn count_failure(state: &AppState, keys: &[String]) -> Result<(), ApiError> {
    let lock = state
        .lockouts
        .record_failure(keys, &state.settings.auth.lockout)
        .await
        .map_err(store_down)?;
    if let Some(lock) = lock {
        metrics::counter!(LOCKOUTS).increment(1);
        tracing::warn!(lock_secs = lock.as_secs(), "locked after repeated failures");
    }
    Ok(())
}

/// Checks a TOTP code (each step works once) or, failing that, uses up a backup code.
async fn second_factor(
    state: &AppState,
    user: Uuid,
    secret: Option<&str>,
    code: &str,
) -> Result<bool, ApiError> {
    let secret = secret
        .map(TotpSecret::from_base32)
        .transpose()
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("TOTP enabled without a secret")))?;
    if let Some(step) = secret.verify(code, unix_now()) {
        let step = i64::try_from(step).map_err(ApiError::internal)?;
        return Ok(state.db.use_totp_step(user, step).await?);
    }
    Ok(state.db.use_backup_code(user, &hash_secret(code)).await?)
}

fn store_down(error: hearth_auth::StoreError) -> ApiError {
    tracing::warn!(%error, "session store unavailable");
    ApiError::Unavailable("authentication is unavailable; retry shortly")
}

fn unix_now() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0)
}

fn unix_now_ms() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// The answer to a login or refresh: the pair as JSON, or in browser mode the tokens as
/// `HttpOnly` cookies and only the CSRF token (and lifetimes) in the body.
fn pair_response(state: &AppState, pair: TokenPair, cookies: bool) -> Response {
    if !cookies {
        return Json(pair).into_response();
    }
    let csrf = state.tokens.csrf_token(pair.family);
    let mut response = Json(json!({
        "token_type": "Cookie",
        "expires_in": pair.expires_in,
        "refresh_expires_in": pair.refresh_expires_in,
        "csrf_token": csrf,
    }))
    .into_response();
    for cookie in session_cookies(state, &pair, &csrf) {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// The `Set-Cookie` lines of a browser-mode session: the access and refresh tokens
/// (`HttpOnly`) and the CSRF token (readable by script).
fn session_cookies(state: &AppState, pair: &TokenPair, csrf: &str) -> Vec<HeaderValue> {
    let secure = if state.settings.auth.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    let mut cookies = Vec::with_capacity(3);
    for (name, value, path, ttl, http_only) in [
        (
            ACCESS_COOKIE,
            pair.access_token.as_str(),
            "/",
            pair.expires_in,
            true,
        ),
        (
            REFRESH_COOKIE,
            pair.refresh_token.as_str(),
            "/v1/auth",
            pair.refresh_expires_in,
            true,
        ),
        (CSRF_COOKIE, csrf, "/", pair.refresh_expires_in, false),
    ] {
        let http_only = if http_only { "; HttpOnly" } else { "" };
        let cookie = format!(
            "{name}={value}; Path={path}; Max-Age={ttl}{http_only}; SameSite=Strict{secure}"
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            cookies.push(value);
        }
    }
    cookies
}

/// `Set-Cookie` lines that delete the session cookies.
fn clear_cookies(state: &AppState, headers: &mut HeaderMap) {
    let secure = if state.settings.auth.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    for (name, path) in [
        (ACCESS_COOKIE, "/"),
        (REFRESH_COOKIE, "/v1/auth"),
        (CSRF_COOKIE, "/"),
    ] {
        let cookie = format!("{name}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Strict{secure}");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(SET_COOKIE, value);
        }
    }
}

/// `POST /v1/auth/refresh`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    /// The refresh token; in browser mode it comes from the cookie instead.
    refresh_token: Option<SecretString>,
}

/// Exchanges a refresh token for a new pair in the same session. The presented token is used
/// up; presenting it again revokes the whole session (it was copied).
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let from_body = body.and_then(|b| b.refresh_token);
    let (token, from_cookie) = match &from_body {
        Some(token) => (token.expose_secret().to_owned(), false),
        None => match cookie(&headers, REFRESH_COOKIE) {
            Some(token) => (token.to_owned(), true),
            None => return Err(ApiError::field("refresh_token", "is required")),
        },
    };
    let claims = state
        .auth
        .authenticate(&token, TokenType::Refresh)
        .await
        .map_err(|error| refresh_refused(&error))?;
    if from_cookie {
        require_csrf(&state, &Method::POST, &headers, claims.fam)?;
    }
    let first_use = state
        .auth
        .revocations()
        .consume_refresh(claims.jti, claims.exp)
        .await
        .map_err(store_down)?;
    if !first_use {
        revoke_session(&state, &claims).await?;
        metrics::counter!(REFRESH_REUSE).increment(1);
        tracing::warn!(user_id = %claims.sub, session = %claims.fam,
            "a used refresh token was presented again; the session is revoked");
        return Err(ApiError::Unauthorized(
            "the refresh token was already used; the session has been revoked",
        ));
    }
    let user = state
        .db
        .find_user(claims.sub)
        .await?
        .ok_or(ApiError::Unauthorized("the account no longer exists"))?;
    let role = user.role.parse::<Role>().map_err(ApiError::internal)?;
    let pair = state
        .tokens
        .issue_pair_in(claims.fam, user.id, &user.username, role)
        .map_err(ApiError::internal)?;
    metrics::counter!(SESSIONS, "event" => "refresh").increment(1);
    Ok(pair_response(&state, pair, from_cookie))
}

fn refresh_refused(error: &AuthError) -> ApiError {
    match error {
        AuthError::Token(TokenError::WrongType) => {
            auth_failure(error);
            ApiError::Unauthorized("an access token cannot be used to refresh")
        }
        AuthError::Token(_) => {
            auth_failure(error);
            ApiError::Unauthorized("the refresh token is invalid, expired or revoked")
        }
        AuthError::Store(_) => auth_failure(error),
    }
}

/// Revokes every token of a session until the latest of them could expire.
async fn revoke_session(state: &AppState, claims: &Claims) -> Result<(), ApiError> {
    let until = unix_now() + state.tokens.refresh_ttl();
    state
        .auth
        .revocations()
        .revoke_family(claims.fam, until)
        .await
        .map_err(store_down)
}

/// `POST /v1/auth/logout`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogoutRequest {
    /// A refresh token whose session should end too (if it is another one).
    refresh_token: Option<SecretString>,
}

/// Ends the caller's session: the access token and every token of its session stop working.
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    OptionalJson(body): OptionalJson<LogoutRequest>,
) -> Result<Response, ApiError> {
    let revocations = state.auth.revocations();
    revocations
        .revoke_token(claims.jti, claims.exp)
        .await
        .map_err(store_down)?;
    revoke_session(&state, &claims).await?;
    if let Some(token) = body.and_then(|b| b.refresh_token) {
        // Only the caller's own refresh token ends another session.
        if let Ok(other) = state
            .tokens
            .verify(token.expose_secret(), TokenType::Refresh)
            && other.sub == claims.sub
        {
            revoke_session(&state, &other).await?;
        }
    }
    tracing::info!(user_id = %claims.sub, "logged out");
    let mut response = StatusCode::NO_CONTENT.into_response();
    clear_cookies(&state, response.headers_mut());
    Ok(response)
}

/// Revokes every session of a user (password change or reset, a second factor turned on or
/// off) and returns the cutoff: every token minted at or before that millisecond is refused.
async fn revoke_all_sessions(state: &AppState, user: Uuid) -> Result<u64, ApiError> {
    let until = unix_now() + state.tokens.refresh_ttl();
    let cutoff = unix_now_ms();
    state
        .auth
        .revocations()
        .revoke_user(user, cutoff, until)
        .await
        .map_err(store_down)?;
    Ok(cutoff)
}

/// `POST /v1/auth/password`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePasswordRequest {
    old_password: SecretString,
    new_password: SecretString,
}

/// Changes the caller's password (the old one is required) and ends every session, this one
/// included: the client logs in again with the new password.
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiJson(request): ApiJson<ChangePasswordRequest>,
) -> Result<Response, ApiError> {
    require_policy("new_password", &request.new_password)?;
    let user = state
        .db
        .find_user(claims.sub)
        .await?
        .ok_or(ApiError::Unauthorized("the account no longer exists"))?;
    // A locked account cannot be guessed at through this route either.
    let keys = [account_key(Some(user.id), "")];
    if let Some(retry_after) = state.lockouts.locked(&keys).await.map_err(store_down)? {
        return Err(ApiError::Locked { retry_after });
    }
    let credentials = state.db.find_credentials(&user.username).await?;
    let matched = state
        .hasher
        .verify(request.old_password, credentials.map(|c| c.password_hash))
        .await
        .map_err(ApiError::internal)?;
    if !matched {
        // Guessing through this route counts like guessing at login.
        count_failure(&state, &keys).await?;
        return Err(ApiError::field("old_password", "is incorrect"));
    }
    let hash = state
        .hasher
        .hash(request.new_password)
        .await
        .map_err(ApiError::internal)?;
    state.db.set_password(user.id, &hash).await?;
    revoke_all_sessions(&state, user.id).await?;
    tracing::info!(user_id = %user.id, "password changed; every session revoked");
    let mut response = StatusCode::NO_CONTENT.into_response();
    clear_cookies(&state, response.headers_mut());
    Ok(response)
}

/// `POST /v1/auth/password-reset`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetRequest {
    email: String,
}

/// Starts a password reset. Always 202, whether or not the address has an account; when it
/// does, a single-use token (stored hashed) is e-mailed through the outbox. The work happens
/// after the answer, so its timing says nothing either.
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn request_password_reset(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ResetRequest>,
) -> Result<Response, ApiError> {
    let email =
        Email::parse(&request.email).map_err(|e| ApiError::field("email", e.to_string()))?;
    tokio::spawn(async move {
        if let Err(error) = queue_reset(&state, email.as_str()).await {
            tracing::error!(
                error = format!("{error:#}"),
                "password reset could not be queued"
            );
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "detail": "if an account uses this address, a reset code is on its way"
        })),
    )
        .into_response())
}

async fn queue_reset(state: &AppState, email: &str) -> anyhow::Result<()> {
    let Some(user) = state.db.find_user_by_email(email).await? else {
        return Ok(());
    };
    let ttl = state.settings.auth.password_reset_ttl_secs;
    let (token, token_hash) = reset_token();
    let minutes = ttl.div_ceil(60);
    state
        .db
        .create_password_reset(NewPasswordReset {
            user_id: user.id,
            token_hash,
            expires_at: OffsetDateTime::now_utc() + Duration::from_secs(ttl),
            email: NewEmail {
                to: user.email.clone(),
                subject: "Reset your Hearth password".to_owned(),
                body: format!(
                    "Hello {},\n\nSomeone asked to reset the password of your account. To choose a \
                     new one, send this code with your new password to \
                     POST /v1/auth/password-reset/confirm:\n\n    {token}\n\nIt works once, for \
                     {minutes} minutes. If you did not ask, ignore this message: your password \
                     has not changed.\n",
                    user.username
                ),
            },
        })
        .await?;
    tracing::info!(user_id = %user.id, "password reset queued");
    Ok(())
}

/// `POST /v1/auth/password-reset/confirm`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfirmResetRequest {
    token: SecretString,
    new_password: SecretString,
}

/// Sets a new password with a reset token and ends every session of the account.
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn confirm_password_reset(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ConfirmResetRequest>,
) -> Result<Response, ApiError> {
    require_policy("new_password", &request.new_password)?;
    let token_hash = hash_secret(request.token.expose_secret());
    let hash = state
        .hasher
        .hash(request.new_password)
        .await
        .map_err(ApiError::internal)?;
    let user = state
        .db
        .complete_password_reset(&token_hash, &hash, OffsetDateTime::now_utc())
        .await?
        .ok_or_else(|| ApiError::field("token", "is invalid, expired or already used"))?;
    revoke_all_sessions(&state, user).await?;
    tracing::info!(user_id = %user, "password reset; every session revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Checks the caller's current password before a change to the account's second factor. Every
/// such route checks the password here and nowhere else: a locked account is refused (429), and
/// a wrong password counts towards the account's lockout, as a failed login does, and answers
/// 422 naming `password`.
async fn verify_password_attempt(
    state: &AppState,
    user: &User,
    password: SecretString,
) -> Result<(), ApiError> {
    let keys = [account_key(Some(user.id), "")];
    if let Some(retry_after) = state.lockouts.locked(&keys).await.map_err(store_down)? {
        return Err(ApiError::Locked { retry_after });
    }
    let credentials = state.db.find_credentials(&user.username).await?;
    let matched = state
        .hasher
        .verify(password, credentials.map(|c| c.password_hash))
        .await
        .map_err(ApiError::internal)?;
    if !matched {
        count_failure(state, &keys).await?;
        return Err(ApiError::field("password", "is incorrect"));
    }
    Ok(())
}

/// Checks a current TOTP code or uses up a backup code of an account whose second factor is
/// on (409 otherwise). A wrong code counts towards the account's lockout, as at login, and
/// answers 422 naming `code`.
async fn verify_code_attempt(state: &AppState, user: Uuid, code: &str) -> Result<(), ApiError> {
    let totp = state.db.totp(user).await?;
    if !totp.enabled {
        return Err(ApiError::Conflict(
            "two-factor authentication is not enabled".into(),
            None,
        ));
    }
    if second_factor(state, user, totp.secret.as_deref(), code).await? {
        return Ok(());
    }
    count_failure(state, &[account_key(Some(user), "")]).await?;
    Err(ApiError::field(
        "code",
        "matches neither the authenticator app nor an unused backup code",
    ))
}

/// The caller's account, or 401 when it no longer exists.
async fn caller(state: &AppState, claims: &Claims) -> Result<User, ApiError> {
    state
        .db
        .find_user(claims.sub)
        .await?
        .ok_or(ApiError::Unauthorized("the account no longer exists"))
}

/// Whether the request authenticated with the session cookie (browser mode).
fn cookie_session(headers: &HeaderMap) -> bool {
    matches!(
        hearth_auth::access_token(headers),
        Ok((_, TokenSource::Cookie))
    )
}

/// Ends every session of the user but the caller's, after a change to how the account logs
/// in. The revocation refuses every token minted until now, the caller's included, so the
/// caller's session continues with a new pair minted after it (same session id, so the same
/// CSRF token): as JSON in the login shape, or in browser mode as new cookies. Returns the
/// body's `session` member and the cookies to set.
async fn end_other_sessions(
    state: &AppState,
    claims: &Claims,
    user: &User,
    cookies: bool,
) -> Result<(serde_json::Value, Vec<HeaderValue>), ApiError> {
    let cutoff = revoke_all_sessions(state, user.id).await?;
    // A cutoff covers its own millisecond: mint the caller's new pair after it.
    for _ in 0..100 {
        if unix_now_ms() > cutoff {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let role = user.role.parse::<Role>().map_err(ApiError::internal)?;
    let pair = state
        .tokens
        .issue_pair_in(claims.fam, user.id, &user.username, role)
        .map_err(ApiError::internal)?;
    metrics::counter!(SESSIONS, "event" => "renewal").increment(1);
    if cookies {
        let csrf = state.tokens.csrf_token(pair.family);
        let body = json!({
            "token_type": "Cookie",
            "expires_in": pair.expires_in,
            "refresh_expires_in": pair.refresh_expires_in,
            "csrf_token": csrf,
        });
        Ok((body, session_cookies(state, &pair, &csrf)))
    } else {
        let body = serde_json::to_value(&pair).map_err(ApiError::internal)?;
        Ok((body, Vec::new()))
    }
}

/// A JSON answer with `Set-Cookie` lines.
fn json_with_cookies(body: serde_json::Value, cookies: Vec<HeaderValue>) -> Response {
    let mut response = Json(body).into_response();
    for cookie in cookies {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// `POST /v1/auth/totp/enroll`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrollTotpRequest {
    /// The current password: an access token alone must not add an authenticator.
    password: SecretString,
}

/// Starts TOTP enrolment (the current password is required): a new secret and the
/// `otpauth://` URI for a QR code. Login does not ask for codes until `/v1/auth/totp/confirm`
/// proves the app has the secret.
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn enroll_totp(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    OptionalJson(request): OptionalJson<EnrollTotpRequest>,
) -> Result<Response, ApiError> {
    let request = request.ok_or_else(|| ApiError::field("password", "is required"))?;
    let user = caller(&state, &claims).await?;
    verify_password_attempt(&state, &user, request.password).await?;
    let secret = TotpSecret::generate();
    if !state.db.begin_totp(user.id, &secret.to_base32()).await? {
        return Err(ApiError::Conflict(
            "two-factor authentication is already enabled".into(),
            None,
        ));
    }
    let uri = secret.otpauth_uri(&state.settings.auth.issuer, &user.username);
    Ok(Json(json!({ "secret": secret.to_base32(), "otpauth_uri": uri })).into_response())
}

/// `POST /v1/auth/totp/confirm`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfirmTotpRequest {
    /// The current password.
    password: SecretString,
    code: String,
}

/// Confirms enrolment with the current password and a current code; from now on login needs
/// a code, and every other session of the account ends (the caller's continues with the new
/// pair in `session`). Answers the ten backup codes, shown this once (only their hashes are
/// kept).
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn confirm_totp(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ConfirmTotpRequest>,
) -> Result<Response, ApiError> {
    let user = caller(&state, &claims).await?;
    verify_password_attempt(&state, &user, request.password).await?;
    let totp = state.db.totp(user.id).await?;
    if totp.enabled {
        return Err(ApiError::Conflict(
            "two-factor authentication is already enabled".into(),
            None,
        ));
    }
    let Some(secret) = totp.secret else {
        return Err(ApiError::Conflict(
            "enrolment has not begun: POST /v1/auth/totp/enroll first".into(),
            None,
        ));
    };
    let secret = TotpSecret::from_base32(&secret).map_err(ApiError::internal)?;
    let step = secret
        .verify(&request.code, unix_now())
        .ok_or_else(|| ApiError::field("code", "does not match the authenticator app"))?;
    let codes = backup_codes();
    let hashes: Vec<String> = codes.iter().map(|c| hash_secret(c)).collect();
    let step = i64::try_from(step).map_err(ApiError::internal)?;
    if !state.db.enable_totp(user.id, step, &hashes).await? {
        return Err(ApiError::Conflict(
            "two-factor authentication is already enabled".into(),
            None,
        ));
    }
    let (session, cookies) =
        end_other_sessions(&state, &claims, &user, cookie_session(&headers)).await?;
    tracing::info!(user_id = %user.id, "two-factor authentication enabled; other sessions revoked");
    Ok(json_with_cookies(
        json!({ "enabled": true, "backup_codes": codes, "session": session }),
        cookies,
    ))
}

/// `POST /v1/auth/totp/disable`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DisableTotpRequest {
    /// The current password.
    password: SecretString,
    /// A current code from the authenticator app, or an unused backup code.
    code: SecretString,
}

/// Turns the second factor off (the current password and a code or backup code are
/// required): the secret and every backup code are forgotten, and every other session of the
/// account ends (the caller's continues with the new pair in `session`).
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn disable_totp(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    headers: HeaderMap,
    ApiJson(request): ApiJson<DisableTotpRequest>,
) -> Result<Response, ApiError> {
    let user = caller(&state, &claims).await?;
    verify_password_attempt(&state, &user, request.password).await?;
    verify_code_attempt(&state, user.id, request.code.expose_secret()).await?;
    if !state.db.disable_totp(user.id).await? {
        return Err(ApiError::Conflict(
            "two-factor authentication is not enabled".into(),
            None,
        ));
    }
    let (session, cookies) =
        end_other_sessions(&state, &claims, &user, cookie_session(&headers)).await?;
    tracing::info!(user_id = %user.id, "two-factor authentication disabled; other sessions revoked");
    Ok(json_with_cookies(
        json!({ "enabled": false, "session": session }),
        cookies,
    ))
}

/// `POST /v1/auth/totp/backup-codes`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupCodesRequest {
    /// The current password.
    password: SecretString,
    /// A current code from the authenticator app, or an unused backup code.
    code: SecretString,
}

/// Replaces the backup codes (the current password and a code or backup code are required):
/// answers ten new ones, shown this once; every earlier code, used or not, stops working.
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn regenerate_backup_codes(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiJson(request): ApiJson<BackupCodesRequest>,
) -> Result<Response, ApiError> {
    let user = caller(&state, &claims).await?;
    verify_password_attempt(&state, &user, request.password).await?;
    verify_code_attempt(&state, user.id, request.code.expose_secret()).await?;
    let codes = backup_codes();
    let hashes: Vec<String> = codes.iter().map(|c| hash_secret(c)).collect();
    if !state.db.replace_backup_codes(user.id, &hashes).await? {
        return Err(ApiError::Conflict(
            "two-factor authentication is not enabled".into(),
            None,
        ));
    }
    tracing::info!(user_id = %user.id, "backup codes replaced");
    Ok(Json(json!({ "backup_codes": codes })).into_response())
}

/// `GET /v1/me`: the caller's account.
pub(crate) async fn me(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<User>, ApiError> {
    let user = state
        .db
        .find_user(claims.sub)
        .await?
        .ok_or(ApiError::NotFound("the account no longer exists"))?;
    Ok(Json(user))
}
