//! A request's credentials, written once for the Hearth gateway's `AuthUser` extractor and for
//! `RequireAuthLayer`: where the access token is (an `Authorization: Bearer` header, else the
//! session cookie), and the CSRF rule for cookie sessions.
//!
//! Plain `http` inputs (a method and the headers), so it needs no web framework.

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, Method};

use crate::authenticator::{AuthError, Authenticator};
use crate::revocation::StoreError;
use crate::token::{Claims, TokenError, TokenService, TokenType};

/// The cookie holding the access token in browser mode.
pub const ACCESS_COOKIE: &str = "hearth_access";
/// The cookie holding the refresh token (sent to `/v1/auth` only).
pub const REFRESH_COOKIE: &str = "hearth_refresh";
/// The cookie holding the CSRF token, readable by the page's script.
pub const CSRF_COOKIE: &str = "hearth_csrf";
/// The header a cookie-authenticated, state-changing request repeats the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Where a request's access token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer`: no CSRF token needed (a browser never adds it by itself).
    Bearer,
    /// The session cookie: state-changing requests must carry the CSRF token.
    Cookie,
}

/// Why a request has no access token to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MissingToken {
    /// No `Authorization` header and no session cookie.
    #[error("a bearer token is required")]
    Absent,
    /// An `Authorization` header that is not `Bearer <token>` (the cookie is then not read).
    #[error("the Authorization header must be 'Bearer <token>'")]
    Malformed,
}

/// Why a request was not authenticated by [`Authenticator::authenticate_request`].
#[derive(Debug, thiserror::Error)]
pub enum RequestAuthError {
    /// No token to verify (a 401).
    #[error(transparent)]
    Missing(#[from] MissingToken),
    /// The token was refused (a 401).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The revocation store could not answer (a 503: Hearth fails closed).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A cookie session's state-changing request without its CSRF token (a 403).
    #[error("a cookie-authenticated request that changes state needs the CSRF token")]
    Csrf,
}

impl From<AuthError> for RequestAuthError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Token(error) => Self::Token(error),
            AuthError::Store(error) => Self::Store(error),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The value of cookie `name`, if the request carries it (and it is not empty).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// The access token of a request: the bearer token if there is an `Authorization` header,
/// else the [`ACCESS_COOKIE`].
///
/// # Errors
/// [`MissingToken`]: neither is there, or the `Authorization` header is not a bearer token.
pub fn access_token(headers: &HeaderMap) -> Result<(&str, TokenSource), MissingToken> {
    if headers.contains_key(AUTHORIZATION) {
        return bearer(headers)
            .map(|t| (t, TokenSource::Bearer))
            .ok_or(MissingToken::Malformed);
    }
    cookie(headers, ACCESS_COOKIE)
        .map(|t| (t, TokenSource::Cookie))
        .ok_or(MissingToken::Absent)
}

/// Whether a method changes state (everything but GET, HEAD and OPTIONS).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether a request of cookie session `family` may go ahead: it does not change state, or
/// its [`CSRF_HEADER`] holds the session's CSRF token.
pub fn csrf_ok(
    tokens: &TokenService,
    method: &Method,
    headers: &HeaderMap,
    family: uuid::Uuid,
) -> bool {
    if !changes_state(method) {
        return true;
    }
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tokens.verify_csrf(family, presented)
}

impl Authenticator {
    /// Authenticates a request: its [`access_token`], verified as an access token (unless
    /// `verified` holds the claims of that same token, verified earlier in the request), not
    /// revoked, and for a cookie session's state-changing request, its CSRF token.
    ///
    /// # Errors
    /// [`RequestAuthError`]: no token, a refused or revoked one, an unreachable revocation
    /// store, or a missing or wrong CSRF token, checked in that order.
    pub async fn authenticate_request(
        &self,
        method: &Method,
        headers: &HeaderMap,
        verified: Option<Claims>,
    ) -> Result<Claims, RequestAuthError> {
        let (token, source) = access_token(headers)?;
        let claims = match verified {
            Some(claims) => self.check_revocation(claims).await?,
            None => self.authenticate(token, TokenType::Access).await?,
        };
        if source == TokenSource::Cookie && !csrf_ok(self.tokens(), method, headers, claims.fam) {
            return Err(RequestAuthError::Csrf);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_bearer_header_wins_over_the_cookie_and_a_bad_one_is_not_replaced_by_it() {
        let both = headers(&[
            ("authorization", "Bearer abc"),
            ("cookie", "hearth_access=xyz"),
        ]);
        assert_eq!(access_token(&both), Ok(("abc", TokenSource::Bearer)));
        let bad = headers(&[
            ("authorization", "Basic abc"),
            ("cookie", "hearth_access=xyz"),
        ]);
        assert_eq!(access_token(&bad), Err(MissingToken::Malformed));
        let cookie_only = headers(&[("cookie", "a=1; hearth_access=xyz"), ("cookie", "b=2")]);
        assert_eq!(access_token(&cookie_only), Ok(("xyz", TokenSource::Cookie)));
        assert_eq!(access_token(&HeaderMap::new()), Err(MissingToken::Absent));
        let empty = headers(&[("cookie", "hearth_access=")]);
        assert_eq!(access_token(&empty), Err(MissingToken::Absent));
    }

    #[test]
    fn only_state_changing_methods_need_the_csrf_token() {
        let tokens = TokenService::new(&crate::AuthSettings::default());
        let family = uuid::Uuid::now_v7();
        let none = HeaderMap::new();
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(csrf_ok(&tokens, &method, &none, family));
        }
        assert!(!csrf_ok(&tokens, &Method::POST, &none, family));
        let mut right = HeaderMap::new();
        right.insert(
            CSRF_HEADER,
            HeaderValue::from_str(&tokens.csrf_token(family)).unwrap(),
        );
        assert!(csrf_ok(&tokens, &Method::DELETE, &right, family));
        let other = tokens.csrf_token(uuid::Uuid::now_v7());
        right.insert(CSRF_HEADER, HeaderValue::from_str(&other).unwrap());
        assert!(!csrf_ok(&tokens, &Method::POST, &right, family));
    }
}
