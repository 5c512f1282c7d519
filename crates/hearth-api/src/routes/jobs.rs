//! The job queue for operators: list jobs by state, retry a dead one. Admin only (an `admin`
//! token, the role still held, an allowed address); anyone else gets 404.

use axum::Json;
use axum::extract::{Path, State};
use hearth_storage::JobState;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{AdminUser, ApiQuery};
use crate::state::AppState;

/// The most jobs one listing returns.
const MAX_LIMIT: u32 = 500;

/// Query of `GET /v1/admin/jobs`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobsQuery {
    state: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/admin/jobs?state=dead|queued|running&limit=`: jobs in one state (default
/// `dead`), oldest due first, with their attempts and last error. Payloads are shown; they
/// hold ids, never secrets (an e-mail job names its outbox row, not the message).
#[utoipa::path(
    get, path = "/v1/admin/jobs", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(
        ("state" = Option<String>, Query, description = "`dead` (default), `queued` or `running`."),
        ("limit" = Option<u32>, Query, description = "1 to 500; default 100.", minimum = 1, maximum = 500),
    ),
    responses(
        (status = 200, description = "`{state, items}`: jobs in that state, oldest due first.", body = Object),
        (status = 404, description = "Not an allowed admin."),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    AdminUser(admin, audit): AdminUser,
    query: Result<ApiQuery<JobsQuery>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let result: Result<Json<Value>, ApiError> = async {
        let ApiQuery(query) = query?;
        list_jobs(&state, &admin, query).await
    }
    .await;
    if result.is_ok() {
        audit.done(&state, None, json!({})).await?;
    }
    audit.settle(&state, None, result).await
}

async fn list_jobs(
    state: &AppState,
    admin: &hearth_auth::Claims,
    query: JobsQuery,
) -> Result<Json<Value>, ApiError> {
    let wanted = match query.state.as_deref() {
        None => JobState::Dead,
        Some(text) => JobState::parse(text)
            .ok_or_else(|| ApiError::field("state", "must be dead, queued or running"))?,
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let jobs = state.db.jobs_in_state(wanted, limit).await?;
    tracing::info!(admin_id = %admin.sub, state = wanted.as_str(), count = jobs.len(), "admin listed jobs");
    Ok(Json(json!({ "state": wanted, "items": jobs })))
}

/// `POST /v1/admin/jobs/{id}/retry`: queues a dead job again with its attempts reset, due
/// now. 404 when there is no dead job with this id.
#[utoipa::path(
    post, path = "/v1/admin/jobs/{id}/retry", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "`{job}`: the job, queued again.", body = Object),
        (status = 404, description = "No dead job with this id, or not an allowed admin."),
    )
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    AdminUser(admin, audit): AdminUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let result = retry_job(&state, &admin, &id).await;
    if result.is_ok() {
        audit.done(&state, None, json!({ "job_id": id })).await?;
    }
    audit.settle(&state, None, result).await
}

async fn retry_job(
    state: &AppState,
    admin: &hearth_auth::Claims,
    id: &str,
) -> Result<Json<Value>, ApiError> {
    let Ok(id) = Uuid::parse_str(id) else {
        return Err(ApiError::NotFound("no dead job with this id"));
    };
    if !state
        .db
        .retry_dead_job(id, OffsetDateTime::now_utc())
        .await?
    {
        return Err(ApiError::NotFound("no dead job with this id"));
    }
    tracing::info!(admin_id = %admin.sub, job_id = %id, "admin retried a dead job");
    let job = state.db.job(id).await?;
    Ok(Json(json!({ "job": job })))
}
