//! The life simulation's read routes: the caller's life and its history. Commands arrive over
//! the WebSocket (`life.*`); the use-case is `hearth_app::life`.

use axum::Json;
use axum::extract::State;
use hearth_app::life::{HistoryEntry, LifeReadError, LifeSnapshot, MAX_HISTORY_PAGE};
use hearth_storage::{Cursor, Page};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{ApiQuery, AuthUser};
use crate::state::AppState;

const MISSING: ApiError = ApiError::NotFound("no life; start one with life.start on the socket");

impl From<LifeReadError> for ApiError {
    fn from(error: LifeReadError) -> Self {
        match error {
            LifeReadError::Storage(error) => error.into(),
            other => Self::internal(other),
        }
    }
}

/// `GET /v1/life`: the caller's life as they see it (status, speed, age, stats, relationships,
/// waiting questions); 404 when they have none.
#[utoipa::path(
    get, path = "/v1/life", tag = "life", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The caller's life: status, speed, age, stats, relationships, questions waiting.", body = Object),
        (status = 404, description = "The caller has no life."),
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<LifeSnapshot>, ApiError> {
    state
        .lives
        .snapshot(claims.sub)
        .await?
        .map(Json)
        .ok_or(MISSING)
}

/// Query of `GET /v1/life/history`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/life/history?cursor=&limit=`: the history, oldest first, in keyset pages; a
/// cursor the API did not issue is a 400 naming `cursor`.
#[utoipa::path(
    get, path = "/v1/life/history", tag = "life", security(("bearer" = []), ("cookie" = [])),
    params(
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, description = "1 to 200; default 50.", minimum = 1, maximum = 200),
    ),
    responses(
        (status = 200, description = "`{items, next_cursor}`: the history, oldest first.", body = Object),
        (status = 400, description = "A cursor this API did not issue."),
        (status = 404, description = "The caller has no life."),
    )
)]
pub(crate) async fn history(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Page<HistoryEntry>>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_HISTORY_PAGE).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("must be between 1 and {MAX_HISTORY_PAGE}"),
        ));
    }
    let after = query
        .cursor
        .map(|c| Cursor::decode(&c))
        .transpose()
        // 400, as issue #19 specifies for this route (the older list routes answer 422).
        .map_err(|_| ApiError::BadRequest("`cursor` is not a cursor this API issued".to_owned()))?;
    state
        .lives
        .history(claims.sub, after, limit)
        .await?
        .map(Json)
        .ok_or(MISSING)
}
