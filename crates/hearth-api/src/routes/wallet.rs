//! The caller's wallet and ledger.

use axum::Json;
use axum::extract::State;
use hearth_storage::{Cursor, LedgerEntry, LedgerQuery, Page};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{ApiQuery, AuthUser};
use crate::state::AppState;

/// `GET /v1/wallet`.
pub(crate) async fn wallet(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<Value>, ApiError> {
    let wallet = state.db.wallet(claims.sub).await?;
    Ok(Json(json!({
        "user_id": wallet.user_id,
        "balance": wallet.balance,
        "currency": "coins",
        "updated_at": wallet.updated_at.format(&time::format_description::well_known::Rfc3339).map_err(ApiError::internal)?,
    })))
}

/// Query of `GET /v1/wallet/transactions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransactionsQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The response page.
#[derive(Serialize)]
pub(crate) struct TransactionsPage {
    items: Vec<LedgerEntry>,
    next_cursor: Option<Cursor>,
}

/// Default page size.
const DEFAULT_LIMIT: u32 = 20;

/// `GET /v1/wallet/transactions?limit=&cursor=`: the ledger, newest first.
pub(crate) async fn transactions(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiQuery(query): ApiQuery<TransactionsQuery>,
) -> Result<Json<TransactionsPage>, ApiError> {
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
    let Page { items, next_cursor } = state
        .db
        .ledger_page(claims.sub, LedgerQuery { limit, after })
        .await?;
    Ok(Json(TransactionsPage { items, next_cursor }))
}
