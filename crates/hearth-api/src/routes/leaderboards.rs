//! Public leaderboards.

use axum::Json;
use axum::extract::{Path, State};
use hearth_app::leaderboards::{Board, LeaderboardError, MAX_LIMIT, Period};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// Query of `GET /v1/leaderboards/{board}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeaderboardQuery {
    period: Option<Period>,
    limit: Option<u32>,
}

/// `GET /v1/leaderboards/{board}?period=daily|weekly|all_time&limit=`: the top players.
/// Boards: `balance` (all-time only), `biggest_win`, `net_won`. Periods are UTC days and ISO
/// weeks.
#[utoipa::path(
    get, path = "/v1/leaderboards/{board}", tag = "leaderboards",
    params(
        ("board" = String, Path, description = "`balance`, `biggest_win` or `net_won`.", pattern = "^(balance|biggest_win|net_won)$"),
        ("period" = Option<String>, Query, description = "`daily`, `weekly` or `all_time` (default); `balance` is all-time only.", pattern = "^(daily|weekly|all_time)$"),
        ("limit" = Option<u32>, Query, description = "1 to 100; default 10.", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, description = "The top players.", body = crate::openapi::schemas::Leaderboard),
        (status = 404, description = "No such board."),
    )
)]
pub(crate) async fn top(
    State(state): State<AppState>,
    Path(board): Path<String>,
    ApiQuery(query): ApiQuery<LeaderboardQuery>,
) -> Result<Json<Value>, ApiError> {
    let board: Board = board
        .parse()
        .map_err(|_| ApiError::NotFound("no such leaderboard"))?;
    let period = query.period.unwrap_or(Period::AllTime);
    let limit = query.limit.unwrap_or(10);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let now = time::OffsetDateTime::now_utc();
    let entries = state
        .leaderboards
        .top(board, period, now, limit)
        .await
        .map_err(|error| match error {
            LeaderboardError::NoSuchPeriod => {
                let periods: Vec<&str> = board.periods().iter().map(|p| p.as_str()).collect();
                ApiError::field(
                    "period",
                    format!("the {board} board has only: {}", periods.join(", ")),
                )
            }
            other => {
                tracing::warn!(error = %other, "leaderboard read failed");
                ApiError::Unavailable("leaderboards are unavailable; retry shortly")
            }
        })?;
    Ok(Json(json!({
        "board": board.as_str(),
        "period": period.as_str(),
        "period_id": period.id(now),
        "entries": entries,
    })))
}
