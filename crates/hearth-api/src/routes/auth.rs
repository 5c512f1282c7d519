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
    AttemptKeys, AuthError, Claims, Email, Reservation, Role, TokenError, TokenPair, TokenSource,
    TokenType, TotpSecret, Username, check_policy,
};
use hearth_domain::fairness::{ClientSeed, ServerSeed, hex_encode};
use hearth_observability::metrics::names;
use hearth_storage::{NewEmail, NewPasswordReset, NewUser, User};
use metrics::{Unit, describe_counter};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, json};
use sha2::{Digest, Sha256};
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
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterRequest {
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_-]+$")]
    username: String,
    email: String,
    #[schema(value_type = String, min_length = 8, max_length = 72)]
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

/// The lockout key of an account, whichever of its names was typed. Kept quiet at login (see
/// [`login_keys`]); announced where the caller is already authenticated as the account.
fn account_key(user: Uuid) -> String {
    format!("account:{user}")
}

/// The lockout key of a login name as typed, normalised as storage looks it up (trimmed, lower
/// case) and hashed, so Redis holds no e-mail addresses. Its own namespace: a login typed to
/// look like an account id cannot reach that account's key.
fn login_key(login: &str) -> String {
    let normalised = login.trim().to_lowercase();
    format!(
        "login:{}",
        hearth_auth::onetime::hex(&Sha256::digest(normalised.as_bytes()))
    )
}

/// What a login attempt counts against.
///
/// Open (announced with 429): the login as typed and the client address. These exist for every
/// login, so an unknown name locks exactly like a real one, after the same failures. Quiet:
/// the account behind the name, when there is one. It caps how often one account's password
/// (or code) is checked per window, whichever of its names is typed (username and e-mail
/// alternated still get `max_failures` checks in all); once it is spent, further attempts by
/// another name are failed as wrong passwords without checking, so no answer shows that two
/// names lock together, that is, belong to one account.
fn login_keys(user: Option<Uuid>, login: &str, client: Option<&ClientIp>) -> AttemptKeys {
    let mut open = vec![login_key(login)];
    open.extend(client.map(|c| c.key().to_owned()));
    AttemptKeys {
        open,
        quiet: user.map(account_key).into_iter().collect(),
    }
}

/// Reserves an attempt before any secret is checked: 429 `locked` when an open key is locked
/// or its budget is taken by failures and attempts in flight.
async fn reserve_attempt(state: &AppState, keys: &AttemptKeys) -> Result<Reservation, ApiError> {
    let reservation = state
        .lockouts
        .reserve(keys, &state.settings.auth.lockout)
        .await
        .map_err(store_down)?;
    match reservation {
        Reservation::Locked(retry_after) => Err(ApiError::Locked { retry_after }),
        reservation => Ok(reservation),
    }
}

/// Checks a password within a reservation. A withheld attempt is verified against the dummy
/// hash instead (the same bcrypt work, never a match), so it answers like a wrong password.
async fn check_password(
    state: &AppState,
    reservation: &Reservation,
    password: SecretString,
    stored_hash: Option<String>,
) -> Result<bool, ApiError> {
    let stored_hash = match reservation {
        Reservation::Granted(_) => stored_hash,
        Reservation::Withheld(_) | Reservation::Locked(_) => None,
    };
    state
        .hasher
        .verify(password, stored_hash)
        .await
        .map_err(ApiError::internal)
}

/// Verifies `user`'s password counting toward the account's lockout: the attempt is reserved
/// against the account (and the client address) before bcrypt runs, failed when the password
/// is wrong and given back when it is right. For routes where the caller is already
/// authenticated as `user`, so the account's lock may be announced: 429 `locked` while it
/// lasts, whatever the password. `Ok(false)` is a wrong password; the caller names its field.
pub(crate) async fn verify_password_attempt(
    state: &AppState,
    user: &User,
    password: SecretString,
    client: Option<&ClientIp>,
) -> Result<bool, ApiError> {
    let mut open = vec![account_key(user.id)];
    open.extend(client.map(|c| c.key().to_owned()));
    let keys = AttemptKeys {
        open,
        quiet: Vec::new(),
    };
    let reservation = reserve_attempt(state, &keys).await?;
    let credentials = state.db.find_credentials(&user.username).await?;
    let matched = check_password(
        state,
        &reservation,
        password,
        credentials.map(|c| c.password_hash),
    )
    .await?;
    settle(state, reservation, matched).await?;
    Ok(matched)
}

/// Settles a reserved attempt: a success gives its slot back, a failure stays counted (and
/// may start a lock).
async fn settle(state: &AppState, reservation: Reservation, success: bool) -> Result<(), ApiError> {
    let (Reservation::Granted(reserved) | Reservation::Withheld(reserved)) = reservation else {
        return Ok(());
    };
    if success {
        return state.lockouts.release(reserved).await.map_err(store_down);
    }
    let lock = state
        .lockouts
        .fail(reserved, &state.settings.auth.lockout)
        .await
        .map_err(store_down)?;
    if let Some(lock) = lock {
        metrics::counter!(LOCKOUTS).increment(1);
        tracing::warn!(lock_secs = lock.as_secs(), "locked after repeated failures");
    }
    Ok(())
}

/// Creates an account with its wallet, starting bonus and fairness seeds.
#[tracing::instrument(skip_all, err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The account; its wallet holds the starting balance.", body = crate::openapi::schemas::Account,
            headers(("Location" = String, description = "`/v1/me`"))),
        (status = 409, description = "The username or e-mail is taken; `errors` names the field."),
    )
)]
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
            // The welcome mail and its verification token, with the account.
            welcome: Some(crate::routes::email::welcome(&state, &username, &email)),
        })
        .await?;
    metrics::counter!(names::REGISTRATIONS).increment(1);
    tracing::info!(user_id = %user.id, "account registered");
    Ok((StatusCode::CREATED, [("location", "/v1/me")], Json(user)))
}

/// `POST /v1/auth/login`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    /// Username or e-mail.
    login: String,
    #[schema(value_type = String)]
    password: SecretString,
    /// A code from the authenticator app, or a backup code, when the account has TOTP on.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    totp: Option<SecretString>,
    /// Browser mode: set the tokens as `HttpOnly` cookies instead of returning them.
    #[serde(default)]
    cookies: bool,
}

/// Exchanges a username or e-mail and password (and, when enabled, a TOTP code) for a token
/// pair, starting a session.
///
/// Unknown users and wrong passwords get the same answer after the same bcrypt work. Each
/// attempt is reserved against the login as typed, the client address and (quietly) the
/// account before anything is checked, and counts as a failure unless it succeeds; at the
/// limit the name and the address are locked (429). See [`login_keys`].
#[tracing::instrument(skip_all, err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A token pair (browser mode: cookies and the CSRF token).", body = crate::openapi::schemas::TokenPair),
        (status = 401, description = "Wrong login, password or code; `urn:hearth:problem:totp-required` when a code is needed."),
    )
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    client: Option<axum::Extension<ClientIp>>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let credentials = state.db.find_credentials(&request.login).await?;
    let client = client.as_ref().map(|axum::Extension(client)| client);
    let keys = login_keys(
        credentials.as_ref().map(|c| c.user.id),
        &request.login,
        client,
    );
    // Reserved before anything is checked: concurrent guesses cannot outrun the count.
    let reservation = reserve_attempt(&state, &keys).await?;
    let stored_hash = credentials.as_ref().map(|c| c.password_hash.clone());
    let matched = check_password(&state, &reservation, request.password, stored_hash).await?;
    let Some(credentials) = credentials.filter(|_| matched) else {
        return Err(failed_login(&state, reservation).await);
    };
    let user = credentials.user;

    // A banned account is told so only once the password proved who is asking; the attempt
    // gives its slot back, as a right password does.
    if state.db.ban_of(user.id).await?.is_some() {
        settle(&state, reservation, true).await?;
        tracing::info!(user_id = %user.id, "login refused: the account is disabled");
        return Err(ApiError::AccountDisabled);
    }

    let totp = state.db.totp(user.id).await?;
    if totp.enabled {
        let Some(code) = request.totp else {
            // The password was right and no code was tried: nothing to count.
            settle(&state, reservation, true).await?;
            return Err(ApiError::TotpRequired);
        };
        // The code is checked within the same reservation as the password, so codes and
        // backup codes are bounded by the same budget.
        if !second_factor(
            &state,
            user.id,
            totp.secret.as_deref(),
            code.expose_secret(),
        )
        .await?
        {
            return Err(failed_login(&state, reservation).await);
        }
    }

    settle(&state, reservation, true).await?;
    if let Some(client) = client {
        crate::routes::email::note_login_address(&state, &user, client).await?;
    }
    let role = user.role.parse::<Role>().map_err(ApiError::internal)?;
    let pair = state
        .tokens
        .issue_pair(user.id, &user.username, role)
        .map_err(ApiError::internal)?;
    metrics::counter!(SESSIONS, "event" => "login").increment(1);
    tracing::info!(user_id = %user.id, cookies = request.cookies, "logged in");
    Ok(pair_response(&state, pair, request.cookies))
}

/// Counts a failed login; the answer is the same 401 whatever failed, and so is the metric
/// (it has no label: a public `/metrics` must not tell an unknown name from a wrong password,
/// nor a wrong code from a wrong password).
async fn failed_login(state: &AppState, reservation: Reservation) -> ApiError {
    metrics::counter!(names::LOGIN_FAILURES).increment(1);
    match settle(state, reservation, false).await {
        Ok(()) => ApiError::Unauthorized("the login or password is incorrect"),
        Err(error) => error,
    }
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
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    /// The refresh token; in browser mode it comes from the cookie instead.
    #[schema(value_type = Option<String>)]
    refresh_token: Option<SecretString>,
}

/// Exchanges a refresh token for a new pair in the same session. The presented token is used
/// up; presenting it again revokes the whole session (it was copied).
#[tracing::instrument(skip_all, err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/auth/refresh", tag = "auth",
    request_body(content = RefreshRequest, description = "In browser mode the body may be empty: the refresh cookie is used, with `X-CSRF-Token`."),
    responses(
        (status = 200, description = "A new pair in the same session; the presented token is used up.", body = crate::openapi::schemas::TokenPair),
        (status = 401, description = "An expired, revoked, reused or forged refresh token, or an access token."),
    )
)]
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
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogoutRequest {
    /// A refresh token whose session should end too (if it is another one).
    #[schema(value_type = Option<String>)]
    refresh_token: Option<SecretString>,
}

/// Ends the caller's session: the access token and every token of its session stop working.
#[tracing::instrument(skip_all, err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = []), ("cookie" = [])),
    request_body(content = LogoutRequest, description = "Optional."),
    responses((status = 204, description = "Every token of the session is revoked."))
)]
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
pub(crate) async fn revoke_all_sessions(state: &AppState, user: Uuid) -> Result<u64, ApiError> {
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
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePasswordRequest {
    #[schema(value_type = String)]
    old_password: SecretString,
    #[schema(value_type = String)]
    new_password: SecretString,
}

/// Changes the caller's password (the old one is required) and ends every session, this one
/// included: the client logs in again with the new password.
#[tracing::instrument(skip_all, err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/auth/password", tag = "auth", security(("bearer" = []), ("cookie" = [])),
    request_body = ChangePasswordRequest,
    responses((status = 204, description = "Changed; every session of the account is revoked."))
)]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    client: Option<axum::Extension<ClientIp>>,
    ApiJson(request): ApiJson<ChangePasswordRequest>,
) -> Result<Response, ApiError> {
    require_policy("new_password", &request.new_password)?;
    let user = state
        .db
        .find_user(claims.sub)
        .await?
        .ok_or(ApiError::Unauthorized("the account no longer exists"))?;
    // Guessing through this route counts like guessing at login, and a locked account cannot
    // be guessed at here either.
    let client = client.as_ref().map(|axum::Extension(client)| client);
    if !verify_password_attempt(&state, &user, request.old_password, client).await? {
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
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetRequest {
    email: String,
}

/// Starts a password reset. Always 202, whether or not the address has an account; when it
/// does, a single-use token (stored hashed) is e-mailed through the outbox. The work happens
/// after the answer, so its timing says nothing either.
#[tracing::instrument(skip_all, err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/auth/password-reset", tag = "auth",
    request_body = ResetRequest,
    responses((status = 202, description = "Always, whether or not the address has an account."))
)]
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
    let mail = hearth_app::mail::templates::password_reset(&user.username, &token, minutes);
    state
        .db
        .create_password_reset(NewPasswordReset {
            user_id: user.id,
            token_hash,
            expires_at: OffsetDateTime::now_utc() + Duration::from_secs(ttl),
            email: NewEmail {
                to: user.email.clone(),
                subject: mail.subject,
                body: mail.text,
                html: Some(mail.html),
            },
            // The delivery job's span continues this request's trace.
            trace_context: hearth_observability::propagation::inject(&tracing::Span::current()),
        })
        .await?;
    tracing::info!(user_id = %user.id, "password reset queued");
    Ok(())
}

/// `POST /v1/auth/password-reset/confirm`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfirmResetRequest {
    #[schema(value_type = String)]
    token: SecretString,
    #[schema(value_type = String)]
    new_password: SecretString,
}

/// Sets a new password with a reset token and ends every session of the account.
#[tracing::instrument(skip_all, err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/auth/password-reset/confirm", tag = "auth",
    request_body = ConfirmResetRequest,
    responses((status = 204, description = "The password is changed and every session revoked."))
)]
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
/// such route checks the password here and nowhere else: the attempt is reserved against the
/// account and the client address before bcrypt runs ([`verify_password_attempt`]), a locked
/// account is refused (429), and a wrong password counts towards the lockout, as a failed login
/// does, and answers 422 naming `password`.
async fn require_password(
    state: &AppState,
    user: &User,
    password: SecretString,
    client: Option<&ClientIp>,
) -> Result<(), ApiError> {
    if verify_password_attempt(state, user, password, client).await? {
        Ok(())
    } else {
        Err(ApiError::field("password", "is incorrect"))
    }
}

/// Checks a current TOTP code or uses up a backup code of an account whose second factor is
/// on (409 otherwise). The attempt is reserved against the account and the client address
/// before the code is checked, like a password; a wrong code counts towards the lockout and
/// answers 422 naming `field` (`code` in a body, or the admin header).
pub(crate) async fn verify_code_attempt(
    state: &AppState,
    user: Uuid,
    code: &str,
    client: Option<&ClientIp>,
    field: &'static str,
) -> Result<(), ApiError> {
    let totp = state.db.totp(user).await?;
    if !totp.enabled {
        return Err(totp_conflict(false));
    }
    let mut open = vec![account_key(user)];
    open.extend(client.map(|c| c.key().to_owned()));
    let keys = AttemptKeys {
        open,
        quiet: Vec::new(),
    };
    let reservation = reserve_attempt(state, &keys).await?;
    let matched = match reservation {
        Reservation::Granted(_) => second_factor(state, user, totp.secret.as_deref(), code).await?,
        Reservation::Withheld(_) | Reservation::Locked(_) => false,
    };
    settle(state, reservation, matched).await?;
    if matched {
        return Ok(());
    }
    Err(ApiError::field(
        field,
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
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrollTotpRequest {
    /// The current password: an access token alone must not add an authenticator.
    #[schema(value_type = String)]
    password: SecretString,
}

/// Starts TOTP enrolment (the current password is required): a new secret and the
/// `otpauth://` URI for a QR code. Login does not ask for codes until `/v1/auth/totp/confirm`
/// proves the app has the secret.
#[tracing::instrument(skip_all, err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/auth/totp/enroll", tag = "auth", security(("bearer" = []), ("cookie" = [])),
    request_body = EnrollTotpRequest,
    responses(
        (status = 200, description = "A new secret, not yet enabled.", body = crate::openapi::schemas::TotpEnrollment),
        (status = 409, description = "A second factor is already enabled."),
    )
)]
pub(crate) async fn enroll_totp(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    client: Option<axum::Extension<ClientIp>>,
    OptionalJson(request): OptionalJson<EnrollTotpRequest>,
) -> Result<Response, ApiError> {
    let request = request.ok_or_else(|| ApiError::field("password", "is required"))?;
    let user = caller(&state, &claims).await?;
    require_password(&state, &user, request.password, client.as_deref()).await?;
    let secret = TotpSecret::generate();
    if !state.db.begin_totp(user.id, &secret.to_base32()).await? {
        return Err(totp_conflict(true));
    }
    let uri = secret.otpauth_uri(&state.settings.auth.issuer, &user.username);
    Ok(Json(json!({ "secret": secret.to_base32(), "otpauth_uri": uri })).into_response())
}

/// `POST /v1/auth/totp/confirm`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfirmTotpRequest {
    /// The current password.
    #[schema(value_type = String)]
    password: SecretString,
    code: String,
}

/// Confirms enrolment with the current password and a current code; from now on login needs
/// a code, and every other session of the account ends (the caller's continues with the new
/// pair in `session`). Answers the ten backup codes, shown this once (only their hashes are
/// kept).
#[tracing::instrument(skip_all, err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/auth/totp/confirm", tag = "auth", security(("bearer" = []), ("cookie" = [])),
    request_body = ConfirmTotpRequest,
    responses(
        (status = 200, description = "Enabled: `{enabled, backup_codes, session}`, the session renewed.", body = Object),
        (status = 409, description = "No enrolment to confirm, or already enabled."),
    )
)]
pub(crate) async fn confirm_totp(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    client: Option<axum::Extension<ClientIp>>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ConfirmTotpRequest>,
) -> Result<Response, ApiError> {
    let user = caller(&state, &claims).await?;
    require_password(&state, &user, request.password, client.as_deref()).await?;
    let totp = state.db.totp(user.id).await?;
    if totp.enabled {
        return Err(totp_conflict(true));
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
        return Err(totp_conflict(true));
    }
    let (session, cookies) =
        end_other_sessions(&state, &claims, &user, cookie_session(&headers)).await?;
    tracing::info!(user_id = %user.id, "two-factor authentication enabled; other sessions revoked");
    Ok(json_with_cookies(
        json!({ "enabled": true, "backup_codes": codes, "session": session }),
        cookies,
    ))
}

/// `POST /v1/auth/totp/disable` and `POST /v1/auth/totp/backup-codes`: both need the current
/// password and a second factor.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordAndCodeRequest {
    /// The current password.
    #[schema(value_type = String)]
    password: SecretString,
    /// A current code from the authenticator app, or an unused backup code.
    #[schema(value_type = String)]
    code: SecretString,
}

/// Checks both factors of the caller before a change to the second factor itself: the
/// password first, then the code, each reserved against the lockout.
async fn require_both_factors(
    state: &AppState,
    user: &User,
    request: PasswordAndCodeRequest,
    client: Option<&ClientIp>,
) -> Result<(), ApiError> {
    require_password(state, user, request.password, client).await?;
    verify_code_attempt(state, user.id, request.code.expose_secret(), client, "code").await
}

/// 409 for a change the second factor's current state does not allow.
fn totp_conflict(enabled: bool) -> ApiError {
    let detail = if enabled {
        "two-factor authentication is already enabled"
    } else {
        "two-factor authentication is not enabled"
    };
    ApiError::Conflict(detail.into(), None)
}

/// Turns the second factor off (the current password and a code or backup code are
/// required): the secret and every backup code are forgotten, and every other session of the
/// account ends (the caller's continues with the new pair in `session`).
#[tracing::instrument(skip_all, err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/auth/totp/disable", tag = "auth", security(("bearer" = []), ("cookie" = [])),
    request_body = PasswordAndCodeRequest,
    responses(
        (status = 200, description = "Disabled: `{enabled: false, session}`.", body = Object),
        (status = 409, description = "No second factor is enabled."),
    )
)]
pub(crate) async fn disable_totp(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    client: Option<axum::Extension<ClientIp>>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<PasswordAndCodeRequest>,
) -> Result<Response, ApiError> {
    let user = caller(&state, &claims).await?;
    require_both_factors(&state, &user, request, client.as_deref()).await?;
    if !state.db.disable_totp(user.id).await? {
        return Err(totp_conflict(false));
    }
    let (session, cookies) =
        end_other_sessions(&state, &claims, &user, cookie_session(&headers)).await?;
    tracing::info!(user_id = %user.id, "two-factor authentication disabled; other sessions revoked");
    Ok(json_with_cookies(
        json!({ "enabled": false, "session": session }),
        cookies,
    ))
}

/// Replaces the backup codes (the current password and a code or backup code are required):
/// answers ten new ones, shown this once; every earlier code, used or not, stops working.
#[tracing::instrument(skip_all, err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/auth/totp/backup-codes", tag = "auth", security(("bearer" = []), ("cookie" = [])),
    request_body = PasswordAndCodeRequest,
    responses(
        (status = 200, description = "Ten new backup codes: `{backup_codes}`.", body = Object),
        (status = 409, description = "No second factor is enabled."),
    )
)]
pub(crate) async fn regenerate_backup_codes(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    client: Option<axum::Extension<ClientIp>>,
    ApiJson(request): ApiJson<PasswordAndCodeRequest>,
) -> Result<Response, ApiError> {
    let user = caller(&state, &claims).await?;
    require_both_factors(&state, &user, request, client.as_deref()).await?;
    let codes = backup_codes();
    let hashes: Vec<String> = codes.iter().map(|c| hash_secret(c)).collect();
    if !state.db.replace_backup_codes(user.id, &hashes).await? {
        return Err(totp_conflict(false));
    }
    tracing::info!(user_id = %user.id, "backup codes replaced");
    Ok(Json(json!({ "backup_codes": codes })).into_response())
}

/// `GET /v1/me`: the caller's account, and whether its e-mail address is verified.
#[utoipa::path(
    get, path = "/v1/me", tag = "auth", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The caller's account.", body = crate::openapi::schemas::Account),
        (status = 404, description = "The account no longer exists."),
    )
)]
pub(crate) async fn me(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    // One read for the user and the verification state.
    let profile = state
        .db
        .find_profile(claims.sub)
        .await?
        .ok_or(ApiError::NotFound("the account no longer exists"))?;
    let mut body = serde_json::to_value(&profile.user).map_err(ApiError::internal)?;
    if let Some(fields) = body.as_object_mut() {
        fields.insert("email_verified".to_owned(), profile.email_verified.into());
    }
    Ok(Json(body))
}
