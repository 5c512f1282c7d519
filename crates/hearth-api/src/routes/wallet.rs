//! The caller's wallet, ledger, history and stats.

use axum::Json;
use axum::extract::State;
use hearth_domain::ledger::EntryKind;
use hearth_storage::{Cursor, DailyBalance, LedgerEntry, LedgerQuery, Page, PlayerStats};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{ApiQuery, AuthUser};
use crate::state::AppState;

/// `GET /v1/wallet`.
#[utoipa::path(
    get, path = "/v1/wallet", tag = "wallet", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "The wallet.", body = crate::openapi::schemas::Wallet))
)]
pub(crate) async fn wallet(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<Value>, ApiError> {
    let wallet = state.db.wallet(claims.sub).await?;
    let updated_at = wallet
        .updated_at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(ApiError::internal)?;
    Ok(Json(json!({
        "user_id": wallet.user_id,
        "balance": wallet.balance,
        "currency": "coins",
        "updated_at": updated_at,
    })))
}

/// Query of `GET /v1/wallet/transactions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransactionsQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    kind: Option<EntryKind>,
    game: Option<String>,
}

/// The response page.
#[derive(Serialize)]
pub(crate) struct TransactionsPage {
    items: Vec<LedgerEntry>,
    next_cursor: Option<Cursor>,
}

/// Default page size.
const DEFAULT_LIMIT: u32 = 20;

/// `GET /v1/wallet/transactions?limit=&cursor=&kind=&game=`: the ledger, newest first.
#[utoipa::path(
    get, path = "/v1/wallet/transactions", tag = "wallet", security(("bearer" = []), ("cookie" = [])),
    params(
        ("limit" = Option<u32>, Query, description = "1 to 100; default 20.", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
        ("kind" = Option<String>, Query, description = "Only entries of this kind.", pattern = "^(bet|win|deposit|bonus|adjustment|refund)$"),
        ("game" = Option<String>, Query, description = "Only entries of this game.", min_length = 1, max_length = 32),
    ),
    responses((status = 200, description = "A page of the ledger, newest first.", body = crate::openapi::schemas::LedgerPage))
)]
pub(crate) async fn transactions(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiQuery(query): ApiQuery<TransactionsQuery>,
) -> Result<Json<TransactionsPage>, ApiError> {
    Ok(Json(ledger_page_of(&state, claims.sub, query).await?))
}

/// One page of a user's ledger for a transactions query: the caller's own, or for operators
/// (`GET /v1/admin/users/{user_id}/transactions`) anyone's.
pub(crate) async fn ledger_page_of(
    state: &AppState,
    user: uuid::Uuid,
    query: TransactionsQuery,
) -> Result<TransactionsPage, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=LedgerQuery::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("must be between 1 and {}", LedgerQuery::MAX_LIMIT),
        ));
    }
    let after = query
        .cursor
        .map(|c| Cursor::decode(&c))
        .transpose()
        .map_err(|_| ApiError::field("cursor", "is not a cursor this API issued"))?;
    if let Some(game) = &query.game
        && !(1..=32).contains(&game.len())
    {
        return Err(ApiError::field("game", "must be 1 to 32 characters"));
    }
    let ledger_query = LedgerQuery {
        limit,
        after,
        kind: query.kind,
        game: query.game,
    };
    let Page { items, next_cursor } = state.db.ledger_page(user, ledger_query).await?;
    Ok(TransactionsPage { items, next_cursor })
}

/// Query of `GET /v1/wallet/history`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    days: Option<u32>,
}

/// The longest history served, in days.
const MAX_HISTORY_DAYS: u32 = 365;

/// `GET /v1/wallet/history?days=N`: daily closing balances, oldest first (UTC days).
#[utoipa::path(
    get, path = "/v1/wallet/history", tag = "wallet", security(("bearer" = []), ("cookie" = [])),
    params(("days" = Option<u32>, Query, description = "1 to 365; default 30.", minimum = 1, maximum = 365)),
    responses((status = 200, description = "Daily closing balances, oldest first.", body = crate::openapi::schemas::History))
)]
pub(crate) async fn history(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let days = query.days.unwrap_or(30);
    if !(1..=MAX_HISTORY_DAYS).contains(&days) {
        return Err(ApiError::field(
            "days",
            format!("must be between 1 and {MAX_HISTORY_DAYS}"),
        ));
    }
    let history: Vec<DailyBalance> = state.db.balance_history(claims.sub, days).await?;
    Ok(Json(json!({ "days": history })))
}

/// `GET /v1/stats`: totals over the caller's settled rounds.
#[utoipa::path(
    get, path = "/v1/stats", tag = "wallet", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "Totals over the caller's settled rounds.", body = Object))
)]
pub(crate) async fn stats(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<PlayerStats>, ApiError> {
    Ok(Json(state.db.stats(claims.sub).await?))
}
