//! Provably-fair seeds and round verification.

use axum::Json;
use axum::extract::{Path, State};
use hearth_domain::fairness::{ClientSeed, ServerSeed};
use hearth_storage::{FairnessState, RoundRecord, SeedRotation, StorageError};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{ApiJson, AuthUser};
use crate::state::AppState;

/// `GET /v1/fairness`: the committed seed hash, the client seed and the next nonce.
#[utoipa::path(
    get, path = "/v1/fairness", tag = "fairness", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "The committed server seed hash, the client seed and the next nonce.", body = Object))
)]
pub(crate) async fn current(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<FairnessState>, ApiError> {
    Ok(Json(state.db.fairness(claims.sub).await?))
}

/// `PUT /v1/fairness/client-seed`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientSeedRequest {
    client_seed: String,
}

/// Sets the client seed for the following rounds.
#[utoipa::path(
    put, path = "/v1/fairness/client-seed", tag = "fairness", security(("bearer" = []), ("cookie" = [])),
    request_body = ClientSeedRequest,
    responses((status = 200, description = "The same, with the new client seed.", body = Object))
)]
pub(crate) async fn set_client_seed(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiJson(request): ApiJson<ClientSeedRequest>,
) -> Result<Json<FairnessState>, ApiError> {
    let seed = ClientSeed::parse(&request.client_seed)
        .map_err(|error| ApiError::field("client_seed", error.to_string()))?;
    Ok(Json(state.db.set_client_seed(claims.sub, &seed).await?))
}

/// `POST /v1/fairness/rotate`: reveals the current server seed and commits to a new one.
#[utoipa::path(
    post, path = "/v1/fairness/rotate", tag = "fairness", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The revealed server seed and the new commitment.", body = Object),
        (status = 409, description = "A blackjack hand is open."),
    )
)]
pub(crate) async fn rotate(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<SeedRotation>, ApiError> {
    let next = ServerSeed::from_bytes(rand::random());
    match state.db.rotate_seed(claims.sub, next).await {
        Ok(rotation) => Ok(Json(rotation)),
        Err(StorageError::Conflict { constraint }) if constraint == "open_round" => {
            Err(ApiError::Conflict(
                "finish the open round before rotating the seed".into(),
                None,
            ))
        }
        Err(other) => Err(other.into()),
    }
}

/// `GET /v1/fairness/rounds/{round_id}`: everything needed to re-derive a round; the server
/// seed appears once rotation has revealed it. Another user's round is a 404.
#[utoipa::path(
    get, path = "/v1/fairness/rounds/{round_id}", tag = "fairness", security(("bearer" = []), ("cookie" = [])),
    params(("round_id" = String, Path, description = "The round's id.")),
    responses(
        (status = 200, description = "Everything needed to re-derive the round (the server seed once revealed).", body = Object),
        (status = 404, description = "No such round (or another user's)."),
    )
)]
pub(crate) async fn round(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(round_id): Path<String>,
) -> Result<Json<RoundRecord>, ApiError> {
    const MISSING: ApiError = ApiError::NotFound("no such round");
    let round_id = uuid::Uuid::parse_str(&round_id).map_err(|_| MISSING)?;
    let record = state.db.round(claims.sub, round_id).await?.ok_or(MISSING)?;
    Ok(Json(record))
}
