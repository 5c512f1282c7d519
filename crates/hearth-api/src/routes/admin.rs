//! Operators' routes (issue #25): find and view accounts, ban and unban them, adjust their
//! coins, read their ledger and rounds, the audit trail and the console's figures.
//!
//! Every handler starts from [`AdminUser`]: an `admin` token, the role still held, an allowed
//! address, and for a `POST` the admin's TOTP code; anyone else gets 404 and an audit row.
//! Each handler then appends exactly one audit row for its outcome: inside the action's
//! transaction when the action writes (ban, unban, adjustment), on its own otherwise, and a
//! `refused` row when it answers with an error.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_storage::admin::{
    ALREADY_BANNED, AuditOutcome, GameFigures, MAX_ADMIN_PAGE, NOT_BANNED, NewAdjustment,
};
use hearth_storage::campaign::KeyCursor;
use hearth_storage::{Cursor, StorageError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{AdminAudit, AdminUser, ApiJson, ApiQuery};
use crate::idempotency::{IDEMPOTENT_REPLAYED, IdempotencyKey};
use crate::routes::wallet::{TransactionsPage, TransactionsQuery, ledger_page_of};
use crate::state::AppState;

/// The longest reason accepted, in characters.
const MAX_REASON_CHARS: usize = 500;
/// The largest adjustment either way.
const MAX_ADJUSTMENT: i64 = 1_000_000_000;
/// The longest search accepted, in characters.
const MAX_QUERY_CHARS: usize = 254;

/// An operator's reason: trimmed, 1 to 500 characters, no control characters.
fn parse_reason(reason: &str) -> Result<String, ApiError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApiError::field(
            "reason",
            "is required and must not be blank",
        ));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::field(
            "reason",
            format!("must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err(ApiError::field(
            "reason",
            "must not contain control characters",
        ));
    }
    Ok(reason.to_owned())
}

/// A `{user_id}` path segment: anything but a UUID names no account.
fn parse_user_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(text).map_err(|_| ApiError::NotFound("no such user"))
}

fn parse_limit(limit: Option<u32>, default: u32) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(default);
    if (1..=MAX_ADMIN_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::field(
            "limit",
            format!("must be between 1 and {MAX_ADMIN_PAGE}"),
        ))
    }
}

fn cursor_refused() -> ApiError {
    ApiError::field("cursor", "is not a cursor this API issued")
}

/// Query of `GET /v1/admin/users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchQuery {
    query: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/admin/users?query=&cursor=&limit=`: accounts by id, or by username or e-mail
/// prefix, newest first.
#[utoipa::path(
    get, path = "/v1/admin/users", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(
        ("query" = Option<String>, Query, description = "An account id, or a username or e-mail prefix (any case)."),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, description = "Page size.", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, description = "`{items, next_cursor}`: accounts, newest first.", body = Object),
        (status = 404, description = "Not an allowed admin."),
    )
)]
pub(crate) async fn search(
    State(state): State<AppState>,
    AdminUser(_, audit): AdminUser,
    query: Result<ApiQuery<SearchQuery>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let result: Result<Json<Value>, ApiError> = async {
        let ApiQuery(query) = query?;
        let limit = parse_limit(query.limit, 20)?;
        if let Some(text) = &query.query
            && text.chars().count() > MAX_QUERY_CHARS
        {
            return Err(ApiError::field(
                "query",
                format!("must be at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        let after = query
            .cursor
            .as_deref()
            .map(KeyCursor::decode)
            .transpose()
            .map_err(|_| cursor_refused())?;
        let page = state
            .db
            .search_accounts(query.query.as_deref(), after, limit)
            .await?;
        audit
            .done(
                &state,
                None,
                json!({ "query": query.query, "found": page.items.len() }),
            )
            .await?;
        Ok(Json(
            json!({ "items": page.items, "next_cursor": page.next_cursor }),
        ))
    }
    .await;
    audit.settle(&state, None, result).await
}

/// `GET /v1/admin/users/{user_id}`: an account (banned or not), its wallet and whether it has
/// a second factor.
#[utoipa::path(
    get, path = "/v1/admin/users/{user_id}", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(("user_id" = String, Path, description = "The account's id (anything but a UUID is 404).")),
    responses(
        (status = 200, description = "`{user, wallet, totp_enabled}`, with `disabled_at` and `disabled_reason`.", body = Object),
        (status = 404, description = "No such user, or not an allowed admin."),
    )
)]
pub(crate) async fn user(
    State(state): State<AppState>,
    AdminUser(_, audit): AdminUser,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let result: Result<Json<Value>, ApiError> = async {
        let user_id = parse_user_id(&user_id)?;
        let account = state
            .db
            .account(user_id)
            .await?
            .ok_or(ApiError::NotFound("no such user"))?;
        let wallet = state.db.wallet(user_id).await?;
        let totp = state.db.totp(user_id).await?;
        audit.done(&state, None, json!({})).await?;
        Ok(Json(json!({
            "user": account,
            "wallet": wallet,
            "totp_enabled": totp.enabled,
        })))
    }
    .await;
    audit.settle(&state, None, result).await
}

/// Body of `POST /v1/admin/users/{user_id}/ban` and `/unban`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonBody {
    reason: String,
}

/// `POST /v1/admin/users/{user_id}/ban`: disables the account (with the audit row, in one
/// transaction), then ends every session of theirs through the durable revocation record, which
/// also announces it so every gateway closes their sockets (1008).
#[utoipa::path(
    post, path = "/v1/admin/users/{user_id}/ban", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    description = "Disables the account and ends every session and socket of theirs.",
    params(("user_id" = String, Path, description = "The account's id (anything but a UUID is 404)."), ("X-Hearth-TOTP" = Option<String>, Header, description = "A fresh TOTP or backup code; required when the acting admin has TOTP.")),
    request_body(content = Object, description = "`{\"reason\"}`: 1 to 500 characters."),
    responses(
        (status = 200, description = "The account after the change.", body = Object),
        (status = 401, description = "`totp-required`: the acting admin has TOTP and sent no code."),
        (status = 404, description = "No such user, or not an allowed admin."),
        (status = 409, description = "Already in that state, or the admin's own account."),
    )
)]
#[tracing::instrument(skip_all, fields(target_id = %user_id), err(level = "debug"))]
pub(crate) async fn ban(
    State(state): State<AppState>,
    AdminUser(admin, audit): AdminUser,
    Path(user_id): Path<String>,
    body: Result<ApiJson<ReasonBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let mut reason_seen = None;
    let result: Result<Json<Value>, ApiError> = async {
        let user_id = parse_user_id(&user_id)?;
        let ApiJson(body) = body?;
        let reason = parse_reason(&body.reason)?;
        reason_seen = Some(reason.clone());
        if user_id == admin.sub {
            return Err(ApiError::Conflict(
                "an admin cannot ban their own account".into(),
                None,
            ));
        }
        let entry = audit.entry(Some(&reason), AuditOutcome::Done, json!({}));
        let account = state
            .db
            .ban_account(user_id, &reason, entry)
            .await
            .map_err(|error| ban_error(error, "the account is banned already"))?;
        // After the ban is committed: a login that passed the ban check before it mints no
        // token after this cutoff.
        let cutoff = crate::routes::auth::revoke_all_sessions(&state, user_id).await?;
        tracing::warn!(admin_id = %admin.sub, user_id = %user_id, "account banned; every session revoked");
        Ok(Json(json!({ "user": account, "sessions_revoked_before_ms": cutoff })))
    }
    .await;
    audit.settle(&state, reason_seen.as_deref(), result).await
}

/// `POST /v1/admin/users/{user_id}/unban`: allows the account to log in again.
#[utoipa::path(
    post, path = "/v1/admin/users/{user_id}/unban", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    description = "Allows the account to log in again.",
    params(("user_id" = String, Path, description = "The account's id (anything but a UUID is 404)."), ("X-Hearth-TOTP" = Option<String>, Header, description = "A fresh TOTP or backup code; required when the acting admin has TOTP.")),
    request_body(content = Object, description = "`{\"reason\"}`: 1 to 500 characters."),
    responses(
        (status = 200, description = "The account after the change.", body = Object),
        (status = 401, description = "`totp-required`: the acting admin has TOTP and sent no code."),
        (status = 404, description = "No such user, or not an allowed admin."),
        (status = 409, description = "Already in that state, or the admin's own account."),
    )
)]
#[tracing::instrument(skip_all, fields(target_id = %user_id), err(level = "debug"))]
pub(crate) async fn unban(
    State(state): State<AppState>,
    AdminUser(admin, audit): AdminUser,
    Path(user_id): Path<String>,
    body: Result<ApiJson<ReasonBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let mut reason_seen = None;
    let result: Result<Json<Value>, ApiError> = async {
        let user_id = parse_user_id(&user_id)?;
        let ApiJson(body) = body?;
        let reason = parse_reason(&body.reason)?;
        reason_seen = Some(reason.clone());
        let entry = audit.entry(Some(&reason), AuditOutcome::Done, json!({}));
        let account = state
            .db
            .unban_account(user_id, entry)
            .await
            .map_err(|error| ban_error(error, "the account is not banned"))?;
        tracing::warn!(admin_id = %admin.sub, user_id = %user_id, "account unbanned");
        Ok(Json(json!({ "user": account })))
    }
    .await;
    audit.settle(&state, reason_seen.as_deref(), result).await
}

fn ban_error(error: StorageError, conflict: &'static str) -> ApiError {
    match error {
        StorageError::NotFound => ApiError::NotFound("no such user"),
        StorageError::Conflict { constraint }
            if constraint == ALREADY_BANNED || constraint == NOT_BANNED =>
        {
            ApiError::Conflict(conflict.into(), None)
        }
        other => other.into(),
    }
}

/// Body of `POST /v1/admin/users/{user_id}/adjustments`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdjustmentBody {
    amount: i64,
    reason: String,
}

/// `POST /v1/admin/users/{user_id}/adjustments`: an `adjustment` ledger entry and the new
/// balance, in one transaction with the audit row and the idempotency key (required).
#[utoipa::path(
    post, path = "/v1/admin/users/{user_id}/adjustments", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(
        ("user_id" = String, Path, description = "The account's id (anything but a UUID is 404)."), ("X-Hearth-TOTP" = Option<String>, Header, description = "A fresh TOTP or backup code; required when the acting admin has TOTP."),
        ("Idempotency-Key" = String, Header, description = "Required: the same key and body replay the first answer."),
    ),
    request_body(content = Object, description = "`{\"amount\", \"reason\"}`: a non-zero amount within ±1,000,000,000 and a reason."),
    responses(
        (status = 201, description = "The `adjustment` ledger entry and the new balance.", body = Object),
        (status = 401, description = "`totp-required`: the acting admin has TOTP and sent no code."),
        (status = 404, description = "No such user, or not an allowed admin."),
        (status = 409, description = "The admin's own wallet, or the same key in flight."),
    )
)]
#[tracing::instrument(skip_all, fields(target_id = %user_id), err(level = "debug"))]
pub(crate) async fn adjust(
    State(state): State<AppState>,
    AdminUser(admin, audit): AdminUser,
    Path(user_id): Path<String>,
    key: Result<IdempotencyKey, ApiError>,
    body: Result<ApiJson<AdjustmentBody>, ApiError>,
) -> Result<Response, ApiError> {
    let mut reason_seen = None;
    let result: Result<Response, ApiError> = async {
        let user_id = parse_user_id(&user_id)?;
        let key = key?;
        if key.0.is_none() {
            return Err(ApiError::field(
                "Idempotency-Key",
                "is required: adjustments must be safe to retry",
            ));
        }
        let ApiJson(body) = body?;
        let reason = parse_reason(&body.reason)?;
        reason_seen = Some(reason.clone());
        if body.amount == 0 || body.amount.unsigned_abs() > MAX_ADJUSTMENT.unsigned_abs() {
            return Err(ApiError::field(
                "amount",
                format!("must be a non-zero integer between -{MAX_ADJUSTMENT} and {MAX_ADJUSTMENT}"),
            ));
        }
        if user_id == admin.sub {
            return Err(ApiError::Conflict(
                "an admin cannot adjust their own wallet".into(),
                None,
            ));
        }
        // The route with the account in it: one key, one account.
        let route = format!("POST /v1/admin/users/{user_id}/adjustments");
        let normalised = AdjustmentBody {
            amount: body.amount,
            reason: reason.clone(),
        };
        let Some(idempotency) = key.for_request(&route, &normalised)? else {
            return Err(ApiError::field("Idempotency-Key", "is required"));
        };
        let played = state
            .db
            .adjust_balance(NewAdjustment {
                user_id,
                amount: body.amount,
                reason: reason.clone(),
                idempotency,
                audit: audit.entry(
                    Some(&reason),
                    AuditOutcome::Done,
                    json!({ "amount": body.amount }),
                ),
            })
            .await
            .map_err(|error| match error {
                StorageError::NotFound => ApiError::NotFound("no such user"),
                other => other.into(),
            })?;
        if played.replayed {
            // The action's own row was written with it; the retry gets a row too.
            audit
                .done(
                    &state,
                    Some(&reason),
                    json!({ "amount": body.amount, "replayed": true,
                            "entry_id": played.value.pointer("/entry/id") }),
                )
                .await?;
        } else {
            tracing::warn!(admin_id = %admin.sub, user_id = %user_id, amount = body.amount, "coins adjusted");
        }
        let mut response = (StatusCode::CREATED, Json(played.value)).into_response();
        if played.replayed {
            response.headers_mut().insert(
                IDEMPOTENT_REPLAYED.clone(),
                axum::http::HeaderValue::from_static("true"),
            );
        }
        Ok(response)
    }
    .await;
    audit.settle(&state, reason_seen.as_deref(), result).await
}

/// `GET /v1/admin/users/{user_id}/transactions`: the account's ledger, as the player sees it.
#[utoipa::path(
    get, path = "/v1/admin/users/{user_id}/transactions", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(
        ("user_id" = String, Path, description = "The account's id (anything but a UUID is 404)."),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, description = "Page size.", minimum = 1, maximum = 100),
        ("kind" = Option<String>, Query, description = "Only entries of this ledger kind."),
    ),
    responses(
        (status = 200, description = "A ledger page, as `GET /v1/wallet/transactions` answers it.", body = Object),
        (status = 404, description = "No such user, or not an allowed admin."),
    )
)]
pub(crate) async fn transactions(
    State(state): State<AppState>,
    AdminUser(_, audit): AdminUser,
    Path(user_id): Path<String>,
    query: Result<ApiQuery<TransactionsQuery>, ApiError>,
) -> Result<Json<TransactionsPage>, ApiError> {
    let result: Result<Json<TransactionsPage>, ApiError> = async {
        let user_id = parse_user_id(&user_id)?;
        let ApiQuery(query) = query?;
        if state.db.account(user_id).await?.is_none() {
            return Err(ApiError::NotFound("no such user"));
        }
        let page = ledger_page_of(&state, user_id, query).await?;
        audit.done(&state, None, json!({})).await?;
        Ok(Json(page))
    }
    .await;
    audit.settle(&state, None, result).await
}

/// Query of `GET /v1/admin/users/{user_id}/rounds`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/admin/users/{user_id}/rounds`: the account's rounds, newest first.
#[utoipa::path(
    get, path = "/v1/admin/users/{user_id}/rounds", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(
        ("user_id" = String, Path, description = "The account's id (anything but a UUID is 404)."),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, description = "Page size.", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, description = "`{items, next_cursor}`: the account's rounds, newest first.", body = Object),
        (status = 404, description = "No such user, or not an allowed admin."),
    )
)]
pub(crate) async fn rounds(
    State(state): State<AppState>,
    AdminUser(_, audit): AdminUser,
    Path(user_id): Path<String>,
    query: Result<ApiQuery<PageQuery>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let result: Result<Json<Value>, ApiError> = async {
        let user_id = parse_user_id(&user_id)?;
        let ApiQuery(query) = query?;
        let limit = parse_limit(query.limit, 20)?;
        let after = query
            .cursor
            .as_deref()
            .map(KeyCursor::decode)
            .transpose()
            .map_err(|_| cursor_refused())?;
        if state.db.account(user_id).await?.is_none() {
            return Err(ApiError::NotFound("no such user"));
        }
        let page = state.db.rounds_page(user_id, after, limit).await?;
        audit.done(&state, None, json!({})).await?;
        Ok(Json(
            json!({ "items": page.items, "next_cursor": page.next_cursor }),
        ))
    }
    .await;
    audit.settle(&state, None, result).await
}

/// Query of `GET /v1/admin/audit`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    cursor: Option<String>,
    limit: Option<u32>,
    user_id: Option<String>,
}

/// `GET /v1/admin/audit?cursor=&limit=&user_id=`: the audit trail, newest first.
#[utoipa::path(
    get, path = "/v1/admin/audit", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, description = "Page size.", minimum = 1, maximum = 100),
        ("user_id" = Option<String>, Query, description = "Only rows about this account."),
    ),
    responses(
        (status = 200, description = "`{items, next_cursor}`: audit rows, newest first.", body = Object),
        (status = 404, description = "Not an allowed admin."),
    )
)]
pub(crate) async fn audit_log(
    State(state): State<AppState>,
    AdminUser(_, audit): AdminUser,
    query: Result<ApiQuery<AuditQuery>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let result: Result<Json<Value>, ApiError> = async {
        let ApiQuery(query) = query?;
        let limit = parse_limit(query.limit, 50)?;
        let after = query
            .cursor
            .as_deref()
            .map(Cursor::decode)
            .transpose()
            .map_err(|_| cursor_refused())?;
        let target = query
            .user_id
            .as_deref()
            .map(Uuid::try_parse)
            .transpose()
            .map_err(|_| ApiError::field("user_id", "must be a user id (a UUID)"))?;
        // The page is read before this request's own row is written, so it never shows itself.
        let page = state.db.audit_page(target, after, limit).await?;
        audit
            .done(&state, None, json!({ "user_id": target }))
            .await?;
        Ok(Json(
            json!({ "items": page.items, "next_cursor": page.next_cursor }),
        ))
    }
    .await;
    audit.settle(&state, None, result).await
}

/// One game's figures over one period, with its observed return to player.
#[derive(Serialize)]
struct Period {
    rounds: i64,
    wagered: i64,
    paid: i64,
    rtp: Option<f64>,
}

impl Period {
    fn of(figures: Option<&GameFigures>) -> Self {
        let (rounds, wagered, paid) = figures.map_or((0, 0, 0), |f| (f.rounds, f.wagered, f.paid));
        Self {
            rounds,
            wagered,
            paid,
            rtp: rtp(wagered, paid),
        }
    }
}

/// `paid / wagered`, to four decimals; `None` without wagers.
fn rtp(wagered: i64, paid: i64) -> Option<f64> {
    (wagered > 0).then(|| ((paid as f64 / wagered as f64) * 10_000.0).round() / 10_000.0)
}

/// `GET /v1/admin/stats`: the console's figures.
#[utoipa::path(
    get, path = "/v1/admin/stats", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Rounds, wagered, paid and RTP by game (today, 7 days, all time, daily), active users, open hands, the last reconciliation, job queue health.", body = Object),
        (status = 404, description = "Not an allowed admin."),
    )
)]
pub(crate) async fn stats(
    State(state): State<AppState>,
    AdminUser(_, audit): AdminUser,
) -> Result<Json<Value>, ApiError> {
    let result = figures(&state, &audit).await;
    audit.settle(&state, None, result).await
}

async fn figures(state: &AppState, audit: &AdminAudit) -> Result<Json<Value>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let figures = state.db.admin_figures(now).await?;
    let mut games: Vec<&str> = figures
        .all_time
        .iter()
        .chain(&figures.last_7_days)
        .chain(&figures.today)
        .map(|f| f.game.as_str())
        .collect();
    games.sort_unstable();
    games.dedup();
    let find = |list: &[GameFigures], game: &str| list.iter().find(|f| f.game == game).cloned();
    let by_game: Vec<Value> = games
        .iter()
        .map(|game| {
            json!({
                "game": game,
                "today": Period::of(find(&figures.today, game).as_ref()),
                "last_7_days": Period::of(find(&figures.last_7_days, game).as_ref()),
                "all_time": Period::of(find(&figures.all_time, game).as_ref()),
            })
        })
        .collect();
    let jobs = state.db.job_stats(now).await?;
    let (queued, running, dead) = jobs.iter().fold((0, 0, 0), |(q, r, d), k| {
        (q + k.queued, r + k.running, d + k.dead)
    });
    let oldest_due_age_secs = jobs
        .iter()
        .filter_map(|k| k.oldest_due)
        .min()
        .map_or(0, |oldest| (now - oldest).whole_seconds().max(0));
    audit.done(state, None, json!({})).await?;
    Ok(Json(json!({
        "generated_at": now.format(&time::format_description::well_known::Rfc3339).map_err(ApiError::internal)?,
        "games": by_game,
        "daily": figures.daily,
        "active_users": {
            "today": figures.active_today,
            "last_7_days": figures.active_7_days,
            "this_gateway_last_5_minutes": state.active_users.count(),
        },
        "open_blackjack_hands": figures.open_blackjack_hands,
        "reconciliation": figures.reconciliation,
        "jobs": {
            "queued": queued,
            "running": running,
            "dead": dead,
            "oldest_due_age_secs": oldest_due_age_secs,
        },
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_trimmed_bounded_and_plain() {
        assert_eq!(parse_reason("  fraud ").ok().as_deref(), Some("fraud"));
        assert!(parse_reason("   ").is_err());
        assert!(parse_reason(&"x".repeat(501)).is_err());
        assert!(parse_reason(&"é".repeat(500)).is_ok());
        assert!(parse_reason("a\u{0}b").is_err());
    }

    #[test]
    fn rtp_is_paid_over_wagered() {
        assert_eq!(rtp(0, 0), None);
        assert_eq!(rtp(1000, 965), Some(0.965));
        assert_eq!(rtp(3, 1), Some(0.3333));
    }
}
