//! Rate limits, anomaly blocking and the route table they read from: the gateway's side of
//! [`hearth_limits::Admission`], the one admission sequence it shares with
//! `hearth_limits::RateLimitLayer`. This module adds only what is the gateway's own: where the
//! client and the user come from, and what an answer carries besides the limits.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use hearth_auth::{AuthError, Authenticator, Claims, TokenType};
use hearth_limits::{
    Admission, Arrival, ClientKey, KeyBy, LimitKeys, Refusal, RouteClass, RouteLimits, RuleTable,
};

use crate::error::ApiError;

/// The client address resolved behind trusted proxies, for every later layer.
#[derive(Debug, Clone)]
pub struct ClientIp {
    /// The address.
    pub ip: IpAddr,
    /// `ip:<addr>`, written once per request, in place.
    key: ClientKey,
    /// When the request arrived: the moment its rate limits and anomaly check are decided
    /// at, so the request reads the clock once for all of them.
    pub(crate) arrived: Instant,
}

impl ClientIp {
    pub(crate) fn new(ip: IpAddr, arrived: Instant) -> Self {
        Self {
            ip,
            key: ClientKey::new(ip),
            arrived,
        }
    }

    /// `ip:<addr>`: the address's rate-limit, anomaly and lockout key.
    pub fn key(&self) -> &str {
        self.key.as_str()
    }

    /// The address as text (the key without its `ip:` prefix).
    pub(crate) fn text(&self) -> &str {
        self.key.address()
    }
}

/// What admission learnt of the request's access token (bearer or session cookie), kept for
/// `AuthUser` so that a request verifies its token and asks the revocation store once.
/// Absent when the request has no token or its token failed verification.
#[derive(Debug, Clone)]
pub(crate) enum CheckedToken {
    /// Verified and not revoked: its user is the request's `user:<id>` key.
    Live(Claims),
    /// Verified, then refused by the revocation check: revoked, or the store could not say
    /// (shared, as extensions must be `Clone`; allocated on this path only).
    Refused(Arc<AuthError>),
}

/// Which rules apply where. Every matching row applies; a request pays all of them at once.
/// Health and metrics sit outside `/v1` and are never limited (load balancers poll them).
pub(crate) fn route_table(rules: &RuleTable) -> RouteLimits {
    use KeyBy::{Ip, User};
    use RouteClass::{Game, Login, Signup};
    RouteLimits::new(rules)
        //     method  path                  rules              keyed by
        .route("*", "/v1/*", RouteClass::Ip, Ip)
        .route("*", "/v1/*", RouteClass::User, User)
        .route("POST", "/v1/auth/login", Login, Ip)
        .route("POST", "/v1/auth/register", Signup, Ip)
        .route("POST", "/v1/auth/password-reset", Signup, Ip)
        .route("POST", "/v1/auth/password-reset/confirm", Login, Ip)
        .route("POST", "/v1/auth/refresh", Login, Ip)
        .route("POST", "/v1/games/*", Game, User)
}

/// Runs the admission sequence for a request: its access token's verification and revocation
/// check, the anomaly check of its client, its keys (the client's address, and the user of a
/// live access token), its route's checks and one limiter call. A refusal is the answer to
/// send; otherwise the [`Admitted`] request's answer goes through [`Admitted::finish`].
///
/// A token that is revoked (or that fails verification) yields no user key: the request is
/// limited by its address only, so whoever holds a refused token spends their own quota, not
/// the owner's. The revocation check therefore comes before the limiter; its outcome is kept
/// for `AuthUser`, which does not ask the store again.
pub(crate) async fn admit(
    admission: Admission<'_>,
    routes: &RouteLimits,
    auth: &Authenticator,
    request: &mut Request,
) -> Result<Admitted, Response> {
    let verified = hearth_auth::access_token(request.headers())
        .ok()
        .and_then(|(token, _)| auth.tokens().verify(token, TokenType::Access).ok());
    // Only a token with a valid signature reaches the store: a forged one costs no lookup.
    let checked = match verified {
        Some(claims) => Some(match auth.check_revocation(claims).await {
            Ok(claims) => CheckedToken::Live(claims),
            Err(error) => CheckedToken::Refused(Arc::new(error)),
        }),
        None => None,
    };
    let live = match &checked {
        Some(CheckedToken::Live(claims)) => Some(claims),
        _ => None,
    };
    let client = request.extensions().get::<ClientIp>();
    let arrival = Arrival {
        method: request.method(),
        path: request.uri().path(),
        client: client.map(ClientIp::key),
        arrived: client.map_or_else(Instant::now, |c| c.arrived),
    };
    let decided = admission.admit(routes, arrival, || LimitKeys {
        ip: client.map(|c| c.ip),
        user: live.map(|c| c.sub.to_string()),
    });
    let decided = decided.await;
    let suggest_refresh = live.is_some_and(|c| auth.tokens().refresh_suggested(c));
    if let Some(checked) = checked {
        request.extensions_mut().insert(checked);
    }
    match decided {
        Ok(limits) => Ok(Admitted {
            limits,
            suggest_refresh,
        }),
        Err(refusal) => Err(refusal_response(refusal)),
    }
}

/// The gateway's answer to a refusal: the one problem+json format.
fn refusal_response(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Blocked { retry_after } => ApiError::Blocked { retry_after },
        Refusal::Limited(decision) => ApiError::RateLimited(decision),
        Refusal::Unavailable => {
            ApiError::Unavailable("rate limiting is unavailable; retry shortly")
        }
    }
    .into_response()
}

/// What an admitted request's answer carries: the RateLimit headers, and whether to suggest a
/// token refresh.
pub(crate) struct Admitted {
    /// The limiter's decision, when any rule applied: its headers go on the answer.
    limits: hearth_limits::Admitted,
    suggest_refresh: bool,
}

impl Admitted {
    pub(crate) fn finish(self, mut response: Response) -> Response {
        self.limits.write_headers(response.headers_mut());
        if self.suggest_refresh {
            suggest(response)
        } else {
            response
        }
    }
}

/// Marks a successful answer to an aging access token: time to use the refresh token.
fn suggest(mut response: Response) -> Response {
    if response.status() != axum::http::StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            REFRESH_SUGGESTED,
            axum::http::HeaderValue::from_static("true"),
        );
    }
    response
}

/// The header telling a client its access token is old enough to refresh.
pub(crate) const REFRESH_SUGGESTED: &str = "x-token-refresh-suggested";

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::HeaderMap;
    use hearth_limits::Decision;

    use super::*;

    fn limit_headers(headers: &HeaderMap) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = headers
            .iter()
            .filter(|(name, _)| {
                name.as_str().starts_with("ratelimit-") || *name == axum::http::header::RETRY_AFTER
            })
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        found.sort();
        found
    }

    /// `RateLimitLayer` answers a refusal with its status, headers and detail; the gateway's
    /// problem documents must say the same.
    #[test]
    fn the_gateway_answers_a_refusal_as_the_published_layer_does() {
        let refused = Decision {
            allowed: false,
            limit: 5,
            remaining: 0,
            reset: Duration::from_millis(59_200),
            retry_after: Some(Duration::from_millis(11_800)),
            rule: "login.minute".into(),
        };
        for refusal in [
            Refusal::Limited(refused),
            Refusal::Blocked {
                retry_after: Duration::from_millis(299_500),
            },
            Refusal::Unavailable,
        ] {
            let response = refusal_response(refusal.clone());
            assert_eq!(response.status(), refusal.status(), "{refusal:?}");
            let mut expected = HeaderMap::new();
            refusal.write_headers(&mut expected);
            assert_eq!(
                limit_headers(response.headers()),
                limit_headers(&expected),
                "{refusal:?}"
            );
            let body = axum::body::to_bytes(response.into_body(), usize::MAX);
            let body = futures_util::FutureExt::now_or_never(body)
                .unwrap()
                .unwrap();
            let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(problem["detail"], refusal.detail(), "{refusal:?}");
            if let Some(rule) = refusal.rule() {
                assert_eq!(problem["rule"], rule);
            }
        }
    }
}
