//! `Idempotency-Key`: a client's promise that a retry is the same request.
//!
//! The key is scoped to the user. The first request's effect and response are stored in the
//! same transaction; a retry with the same key and the same request gets that response again
//! with `Idempotent-Replayed: true`; the same key with a different request is refused (422).
//! Failed requests store nothing, so a retry after a refusal is evaluated afresh.

use axum::extract::FromRequestParts;
use axum::http::HeaderName;
use axum::http::request::Parts;
use hearth_storage::Idempotency;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The request header.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The response header marking a replay.
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The longest key accepted.
const MAX_KEY_LEN: usize = 255;

/// The optional `Idempotency-Key` header, validated.
#[derive(Debug, Clone, Default)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(&IDEMPOTENCY_KEY) else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| (1..=MAX_KEY_LEN).contains(&k.len()))
            .filter(|k| k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::field(
                    "Idempotency-Key",
                    format!("must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
                )
            })?;
        Ok(Self(Some(key.to_owned())))
    }
}

impl IdempotencyKey {
    /// Binds the key to this request: the route and its parsed body.
    ///
    /// # Errors
    /// Only if the body cannot be serialised, which the request types rule out.
    pub fn for_request(
        self,
        route: &str,
        body: &impl Serialize,
    ) -> Result<Option<Idempotency>, ApiError> {
        let Some(key) = self.0 else { return Ok(None) };
        // serde_json writes struct fields in declaration order, so equal requests serialise
        // equally whatever order the client sent them in.
        let canonical = serde_json::to_vec(body).map_err(ApiError::internal)?;
        let mut digest = Sha256::new();
        digest.update(route.as_bytes());
        digest.update(b"\n");
        digest.update(&canonical);
        let fingerprint = hearth_domain::fairness::hex_encode(&digest.finalize());
        Ok(Some(Idempotency { key, fingerprint }))
    }
}
