//! Admin routes: an `admin` token, the role still held, and an allowed address (see
//! [`AdminUser`]); anyone else gets 404.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::AdminUser;
use crate::state::AppState;

/// `GET /v1/admin/users/{user_id}`: an account and its wallet, for support staff.
#[utoipa::path(
    get, path = "/v1/admin/users/{user_id}", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(("user_id" = uuid::Uuid, Path, description = "The account's id.")),
    responses(
        (status = 200, description = "`{user, wallet, totp_enabled}`.", body = Object),
        (status = 404, description = "No such user, or not an allowed admin."),
        (status = 422, description = "The id is not a UUID."),
    )
)]
pub(crate) async fn user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(user_id): Path<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let user = state
        .db
        .find_user(user_id)
        .await?
        .ok_or(ApiError::NotFound("no such user"))?;
    let wallet = state.db.wallet(user_id).await?;
    let totp = state.db.totp(user_id).await?;
    tracing::info!(admin_id = %admin.sub, user_id = %user_id, "admin viewed an account");
    Ok(Json(json!({
        "user": user,
        "wallet": wallet,
        "totp_enabled": totp.enabled,
    })))
}
