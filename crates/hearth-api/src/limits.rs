//! Rate limits, anomaly blocking and the route table they read from.

use std::net::IpAddr;
use std::time::Instant;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use hearth_auth::{Claims, TokenType};
use hearth_limits::{Decision, KeyBy, LimitKeys, RouteClass, RouteLimits, RuleTable, Verdict};

use crate::error::ApiError;
use crate::extract::access_token;
use crate::state::AppState;

/// The client address resolved behind trusted proxies, for every later layer.
#[derive(Debug, Clone)]
pub struct ClientIp {
    /// The address.
    pub ip: IpAddr,
    /// `ip:<addr>`, written once per request, in place.
    key: IpKey,
    /// When the request arrived: the moment its rate limits and anomaly check are decided
    /// at, so the request reads the clock once for all of them.
    pub(crate) arrived: Instant,
}

impl ClientIp {
    pub(crate) fn new(ip: IpAddr, arrived: Instant) -> Self {
        let mut key = IpKey {
            bytes: [0; IpKey::CAPACITY],
            len: 0,
        };
        hearth_limits::write_ip_key(ip, &mut key);
        Self { ip, key, arrived }
    }

    /// `ip:<addr>`: the address's rate-limit, anomaly and lockout key.
    pub fn key(&self) -> &str {
        // Only whole `&str`s are ever written into it.
        std::str::from_utf8(&self.key.bytes[..self.key.len]).unwrap_or_default()
    }

    /// The address as text (the key without its `ip:` prefix).
    pub(crate) fn text(&self) -> &str {
        let key = self.key();
        key.strip_prefix("ip:").unwrap_or(key)
    }
}

/// An address's key kept inline: every request has one, and a `String` would be an
/// allocation each.
#[derive(Debug, Clone, Copy)]
struct IpKey {
    bytes: [u8; Self::CAPACITY],
    len: usize,
}

impl IpKey {
    /// `ip:` and the longest IPv6 text there is (45 bytes, with an embedded IPv4 address;
    /// the standard library writes at most 39).
    const CAPACITY: usize = 48;
}

impl std::fmt::Write for IpKey {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len + text.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Claims of a bearer token the limiter already verified, so handlers do not verify twice.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedClaims(pub(crate) Claims);

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

/// Blocks anomalous clients (when configured), then decides every rule of the request in one
/// limiter call. A refusal is the answer to send; otherwise the [`Admitted`] request's answer
/// goes through [`Admitted::finish`].
pub(crate) async fn admit(state: &AppState, request: &mut Request) -> Result<Admitted, Response> {
    let client = request.extensions().get::<ClientIp>();
    let ip = client.map(|c| c.ip);
    let arrived = client.map_or_else(Instant::now, |c| c.arrived);
    if let Some(client) = client
        && let Verdict::Blocked { until } = state.anomaly.observe(client.key(), arrived)
    {
        let wait = until.saturating_duration_since(Instant::now());
        return Err(ApiError::Blocked { retry_after: wait }.into_response());
    }
    let claims = access_token(request.headers())
        .and_then(|(token, _)| state.tokens.verify(token, TokenType::Access).ok());
    let suggest_refresh = claims
        .as_ref()
        .is_some_and(|c| state.tokens.refresh_suggested(c));
    let keys = LimitKeys {
        ip,
        user: claims.as_ref().map(|c| c.sub.to_string()),
    };
    if let Some(claims) = claims {
        request.extensions_mut().insert(VerifiedClaims(claims));
    }
    let checks = state
        .route_limits
        .checks(request.method(), request.uri().path(), &keys);
    let decision = if checks.is_empty() {
        None
    } else {
        let decided = match state.limiter.check_at(&checks, arrived) {
            Some(decision) => Ok(decision),
            // Redis: its call's future is large, so it is boxed, on this path only.
            None => Box::pin(state.limiter.check(&checks)).await,
        };
        match decided {
            Ok(decision) if decision.allowed => Some(decision),
            Ok(decision) => return Err(ApiError::RateLimited(decision).into_response()),
            Err(error) => {
                tracing::warn!(%error, "rate limiter unavailable; refusing per policy");
                return Err(
                    ApiError::Unavailable("rate limiting is unavailable; retry shortly")
                        .into_response(),
                );
            }
        }
    };
    Ok(Admitted {
        decision,
        suggest_refresh,
    })
}

/// What an admitted request's answer carries: the RateLimit headers, and whether to suggest a
/// token refresh.
pub(crate) struct Admitted {
    /// The limiter's decision, when any rule applied: its headers go on the answer.
    decision: Option<Decision>,
    suggest_refresh: bool,
}

impl Admitted {
    pub(crate) fn finish(self, mut response: Response) -> Response {
        if let Some(decision) = &self.decision {
            decision.write_headers(response.headers_mut());
        }
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
    use super::*;

    #[test]
    fn client_keys_are_written_in_place_as_the_limiter_writes_them() {
        for ip in [
            "0.0.0.0",
            "203.0.113.7",
            "255.255.255.255",
            "::1",
            "::ffff:255.255.255.255",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db8:85a3::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let client = ClientIp::new(ip, Instant::now());
            assert_eq!(client.key(), hearth_limits::ip_key(ip));
            assert_eq!(client.text(), ip.to_string());
        }
    }
}
