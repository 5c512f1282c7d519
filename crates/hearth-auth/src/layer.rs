//! [`RequireAuthLayer`]: a tower layer that admits only requests with a valid, unrevoked
//! Hearth access token, and [`Authenticated`], the extractor that hands handlers the claims.
//!
//! Refusals are `401 application/problem+json` with `WWW-Authenticate: Bearer` (503 when the
//! revocation store is down: the layer fails closed).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::authenticator::{AuthError, Authenticator};
use crate::token::{Claims, TokenType};

/// Layer admitting requests whose `Authorization: Bearer` access token verifies and is not
/// revoked; the [`Claims`] go into the request's extensions.
#[derive(Debug, Clone)]
pub struct RequireAuthLayer {
    auth: Authenticator,
}

impl RequireAuthLayer {
    /// Protects with `auth`.
    pub fn new(auth: Authenticator) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for RequireAuthLayer {
    type Service = RequireAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireAuth {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service [`RequireAuthLayer`] makes.
#[derive(Debug, Clone)]
pub struct RequireAuth<S> {
    inner: S,
    auth: Authenticator,
}

impl<S> Service<Request<Body>> for RequireAuth<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let Some(token) = bearer(request.headers()) else {
                return Ok(refusal(
                    StatusCode::UNAUTHORIZED,
                    "a bearer token is required",
                ));
            };
            match auth.authenticate(token, TokenType::Access).await {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(AuthError::Token(error)) => {
                    tracing::debug!(%error, "access token refused");
                    Ok(refusal(
                        StatusCode::UNAUTHORIZED,
                        "the access token is invalid, expired or revoked",
                    ))
                }
                Err(AuthError::Store(error)) => {
                    tracing::warn!(%error, "revocation store unavailable; refusing");
                    Ok(refusal(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "authentication is unavailable; retry shortly",
                    ))
                }
            }
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The claims [`RequireAuthLayer`] verified. Without the layer in front, every request is
/// refused with 401 (never silently admitted).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Claims>()
            .cloned()
            .map(Self)
            .ok_or_else(|| refusal(StatusCode::UNAUTHORIZED, "authentication is required"))
    }
}

fn refusal(status: StatusCode, detail: &'static str) -> Response {
    let slug = if status == StatusCode::UNAUTHORIZED {
        "unauthorized"
    } else {
        "unavailable"
    };
    let body = format!(
        r#"{{"type":"urn:hearth:problem:{slug}","title":"{}","status":{},"detail":"{detail}"}}"#,
        status.canonical_reason().unwrap_or(""),
        status.as_u16()
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "application/problem+json"),
            (header::WWW_AUTHENTICATE, "Bearer"),
        ],
        body,
    )
        .into_response()
}
