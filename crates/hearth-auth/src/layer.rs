//! [`RequireAuthLayer`]: a tower layer that admits only requests with a valid, unrevoked
//! Hearth access token, and [`Authenticated`], the extractor that hands handlers the claims.
//! The layer authenticates with [`Authenticator::authenticate_request`], as the Hearth
//! gateway does: the same token sources, the same checks, in the same order.
//!
//! Refusals are `401 application/problem+json` with `WWW-Authenticate: Bearer` (503 when the
//! revocation store is down: the layer fails closed; 403 for a cookie session's
//! state-changing request without its CSRF token).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::authenticator::Authenticator;
use crate::request::{MissingToken, RequestAuthError};
use crate::token::Claims;

/// Layer admitting requests whose access token verifies and is not revoked; the [`Claims`] go
/// into the request's extensions.
///
/// The token is the `Authorization: Bearer` one, or without that header the Hearth session
/// cookie ([`ACCESS_COOKIE`](crate::ACCESS_COOKIE)), with which a state-changing request must
/// also repeat the session's CSRF token in [`CSRF_HEADER`](crate::CSRF_HEADER): the sessions
/// a Hearth gateway's log-in starts work here too.
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
            let decided = auth
                .authenticate_request(request.method(), request.headers(), None)
                .await;
            match decided {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(error) => Ok(refusal_of(&error)),
            }
        })
    }
}

/// The answer to a request [`Authenticator::authenticate_request`] refused.
fn refusal_of(error: &RequestAuthError) -> Response {
    match error {
        RequestAuthError::Missing(missing) => {
            let detail = match missing {
                MissingToken::Absent => "a bearer token is required",
                MissingToken::Malformed => "the Authorization header must be 'Bearer <token>'",
            };
            refusal(StatusCode::UNAUTHORIZED, detail)
        }
        RequestAuthError::Token(error) => {
            tracing::debug!(%error, "access token refused");
            refusal(
                StatusCode::UNAUTHORIZED,
                "the access token is invalid, expired or revoked",
            )
        }
        RequestAuthError::Store(error) => {
            tracing::warn!(%error, "revocation store unavailable; refusing");
            refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "authentication is unavailable; retry shortly",
            )
        }
        RequestAuthError::Csrf => refusal(
            StatusCode::FORBIDDEN,
            "a cookie-authenticated request that changes state needs the X-CSRF-Token header from login",
        ),
    }
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

/// A problem+json refusal. `detail` is one of the fixed sentences above (no quotes to escape).
fn refusal(status: StatusCode, detail: &'static str) -> Response {
    let slug = match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "csrf",
        _ => "unavailable",
    };
    let body = format!(
        r#"{{"type":"urn:hearth:problem:{slug}","title":"{}","status":{},"detail":"{detail}"}}"#,
        status.canonical_reason().unwrap_or(""),
        status.as_u16()
    );
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body,
    )
        .into_response();
    // A 403 is not for want of credentials.
    if status != StatusCode::FORBIDDEN {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}
