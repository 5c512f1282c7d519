//! E-mail verification and login alerts: the welcome mail written with a new account,
//! `POST /v1/auth/verify-email`, and the alert queued when an account logs in from an address
//! it has not used before. Mail is written to the outbox with its delivery job in the same
//! transaction as its cause; the worker sends it.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_app::mail::templates;
use hearth_auth::onetime::{hash_secret, reset_token};
use hearth_auth::{Email, Username};
use hearth_storage::{LoginAlert, NewEmail, NewVerification, User};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::limits::ClientIp;
use crate::state::AppState;

/// The welcome mail for a new account, with a fresh verification token in its link.
pub(crate) fn welcome(state: &AppState, username: &Username, email: &Email) -> NewVerification {
    let settings = &state.settings.email;
    let (token, token_hash) = reset_token();
    let link = format!(
        "{}/verify-email?token={token}",
        settings.public_url.trim_end_matches('/')
    );
    let mail = templates::welcome(username.as_str(), &link);
    NewVerification {
        token_hash,
        expires_at: OffsetDateTime::now_utc() + Duration::from_secs(settings.verification_ttl_secs),
        email: NewEmail {
            to: email.as_str().to_owned(),
            subject: mail.subject,
            body: mail.text,
            html: Some(mail.html),
        },
        // The delivery job's span continues this request's trace.
        trace_context: hearth_observability::propagation::inject(&tracing::Span::current()),
    }
}

/// Records the address of a successful login; from a new address (the account's first login
/// excepted) a login alert is queued in the same transaction.
pub(crate) async fn note_login_address(
    state: &AppState,
    user: &User,
    client: &ClientIp,
) -> Result<(), ApiError> {
    if !state.settings.email.login_alerts {
        return Ok(());
    }
    let address = client.ip.to_string();
    let when = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(ApiError::internal)?;
    let mail = templates::login_alert(&user.username, &address, &when);
    let alert = LoginAlert {
        email: NewEmail {
            to: user.email.clone(),
            subject: mail.subject,
            body: mail.text,
            html: Some(mail.html),
        },
        trace_context: hearth_observability::propagation::inject(&tracing::Span::current()),
    };
    if state
        .db
        .record_login_address(user.id, &address, alert)
        .await?
    {
        tracing::info!(user_id = %user.id, "login from a new address; alert queued");
    }
    Ok(())
}

/// `POST /v1/auth/verify-email`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyEmailRequest {
    #[schema(value_type = String)]
    token: SecretString,
}

/// Verifies the account's e-mail address with the token from its welcome mail: 204, or 422
/// naming `token` when it is unknown, used, expired or was sent to an earlier address.
#[tracing::instrument(skip_all, err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/auth/verify-email", tag = "auth",
    request_body = VerifyEmailRequest,
    responses((status = 204, description = "The address is verified."))
)]
pub(crate) async fn verify_email(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<VerifyEmailRequest>,
) -> Result<Response, ApiError> {
    let token_hash = hash_secret(request.token.expose_secret());
    let user = state
        .db
        .verify_email(&token_hash, OffsetDateTime::now_utc())
        .await?
        .ok_or_else(|| ApiError::field("token", "is invalid, expired or already used"))?;
    tracing::info!(user_id = %user, "e-mail address verified");
    Ok(StatusCode::NO_CONTENT.into_response())
}
