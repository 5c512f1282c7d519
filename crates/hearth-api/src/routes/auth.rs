//! Registration, login and the caller's own account.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hearth_auth::{Email, Role, TokenPair, Username, check_policy};
use hearth_domain::fairness::{ClientSeed, ServerSeed, hex_encode};
use hearth_observability::metrics::names;
use hearth_storage::{NewUser, User};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, json};

use crate::error::{ApiError, FieldError};
use crate::extract::{ApiJson, AuthUser};
use crate::state::AppState;

/// `POST /v1/auth/register`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterRequest {
    username: String,
    email: String,
    password: SecretString,
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
    if let Err(refusal) = check_policy(request.password.expose_secret()) {
        errors.push(FieldError::new("password", refusal.feedback.join("; ")));
        extra.insert(
            "password_strength".into(),
            json!({ "score": refusal.score, "feedback": refusal.feedback }),
        );
    }
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
            id: uuid::Uuid::now_v7(),
            username: username.as_str().to_owned(),
            email: email.as_str().to_owned(),
            password_hash,
            role: Role::Player.as_str().to_owned(),
            starting_balance: state.settings.wallet.starting_balance,
            server_seed: ServerSeed::from_bytes(rand::random()),
            client_seed: ClientSeed::parse(&hex_encode(&rand::random::<[u8; 8]>()))
                .expect("16 hex digits are a valid client seed"),
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
}

/// Exchanges a username or e-mail and password for a token pair.
///
/// Unknown users and wrong passwords get the same answer after the same bcrypt work.
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let credentials = state.db.find_credentials(&request.login).await?;
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
        metrics::counter!(names::LOGIN_FAILURES, "reason" => reason).increment(1);
        return Err(ApiError::Unauthorized("the login or password is incorrect"));
    };
    let role = credentials
        .user
        .role
        .parse::<Role>()
        .map_err(ApiError::internal)?;
    let pair = state
        .tokens
        .issue_pair(credentials.user.id, &credentials.user.username, role)
        .map_err(ApiError::internal)?;
    tracing::info!(user_id = %credentials.user.id, "logged in");
    Ok(Json(pair))
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
