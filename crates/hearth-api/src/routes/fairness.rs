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
pub(crate) async fn current(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<FairnessState>, ApiError> {
    Ok(Json(state.db.fairness(claims.sub).await?))
}

/// `PUT /v1/fairness/client-seed`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientSeedRequest {
    client_seed: String,
}

/// Sets the client seed for the following rounds.
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
