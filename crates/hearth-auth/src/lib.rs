//! Accounts, sessions and tokens for Hearth, usable on their own in any tokio service.
//!
//! # The model
//! A login starts a **session** (a token *family*, the `fam` claim) and returns a pair: a
//! short-lived **access token** (15 minutes) that authorises requests, and a long-lived
//! **refresh token** (7 days) that only exchanges for a new pair. Both are HS256 JWTs carrying
//! `sub`, `iat`, `nbf`, `exp`, `jti`, `typ`, `iss`, `aud` and a `kid` header naming the key
//! that signed them, so keys rotate (current + previous) without logging anyone out.
//!
//! Refreshing **rotates**: the presented refresh token is used up and a new pair issued in the
//! same family. Presenting a used refresh token again means it was copied, so the whole family
//! is revoked (theft detection). Logout revokes the access token and the family; a password
//! change or reset revokes every session of the user. Revocations live in a
//! [`RevocationStore`]: in this process ([`InProcessRevocations`]) or in Redis
//! (`RedisRevocations`, feature `redis`), with each entry expiring when the tokens it refuses
//! would have.
//!
//! # Layout
//! - [`identity`]: username rules and e-mail normalisation (parse, don't validate).
//! - [`password`]: the password policy with a strength score, and [`PasswordHasher`], which runs
//!   bcrypt on a few threads of its own at a lower priority, so a login storm uses the spare
//!   CPU without starving the async threads.
//! - [`token`]: [`TokenService`] issues and verifies tokens; only HS256 with a known `kid`
//!   verifies, and a refresh token is never accepted where an access token is expected.
//! - [`revocation`] and [`Authenticator`]: revoked tokens, sessions and users, and the one call
//!   that verifies a token and checks it is not revoked.
//! - [`lockout`]: login attempts reserved before they are verified, and locks, per account,
//!   per login name and per client IP.
//! - [`request`]: a request's credentials (the bearer header, else the session cookie) and the
//!   CSRF rule for cookie sessions, with [`Authenticator::authenticate_request`] running them
//!   all: the one implementation behind the Hearth gateway's extractor and the layer.
//! - [`totp`] and [`onetime`]: the optional second factor (RFC 6238) with backup codes, and
//!   password-reset tokens; stored hashed.
//! - `layer` (feature `axum`): [`RequireAuthLayer`] and the [`Authenticated`] extractor.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use hearth_auth::{AuthSettings, Authenticator, InProcessRevocations, Role, TokenService, TokenType};
//! use secrecy::SecretString;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let settings = AuthSettings {
//!     jwt_secret: SecretString::from("an-example-secret-that-is-long-enough!!".to_owned()),
//!     ..AuthSettings::default()
//! };
//! let auth = Authenticator::new(TokenService::new(&settings), Arc::new(InProcessRevocations::new()));
//! let user = uuid::Uuid::now_v7();
//! let pair = auth.tokens().issue_pair(user, "alice", Role::Player).unwrap();
//! let claims = auth.authenticate(&pair.access_token, TokenType::Access).await.unwrap();
//! assert_eq!(claims.sub, user);
//! assert!(auth.tokens().verify(&pair.refresh_token, TokenType::Access).is_err());
//!
//! // Logging out revokes the session: the access token stops working at once.
//! auth.revocations().revoke_family(claims.fam, claims.exp).await.unwrap();
//! assert!(auth.authenticate(&pair.access_token, TokenType::Access).await.is_err());
//! # });
//! ```
//!
//! # Features
//! - `axum` (default): the tower layer and extractor. Reading credentials from a request
//!   ([`request`]) needs only the `http` types and is always there.
//! - `redis` (default): the Redis stores.
//!
//! With `default-features = false` the crate needs neither axum nor Redis; it never needs a
//! database (users live in the application's storage).

pub mod identity;
pub mod lockout;
pub mod onetime;
pub mod password;
pub mod request;
pub mod revocation;
pub mod token;
pub mod totp;

mod authenticator;
#[cfg(feature = "axum")]
mod layer;
mod settings;

pub use authenticator::{AuthError, Authenticator};
pub use identity::{Email, IdentityError, Username};
#[cfg(feature = "axum")]
pub use layer::{Authenticated, RequireAuth, RequireAuthLayer};
#[cfg(feature = "redis")]
pub use lockout::RedisLockouts;
pub use lockout::{AttemptKeys, InProcessLockouts, LockoutStore, Reservation, Reserved};
pub use password::{HashError, PasswordHasher, PasswordPolicyError, Verifications, check_policy};
pub use request::{
    ACCESS_COOKIE, CSRF_COOKIE, CSRF_HEADER, MissingToken, REFRESH_COOKIE, RequestAuthError,
    TokenSource, access_token, bearer, changes_state, cookie, csrf_ok,
};
#[cfg(feature = "redis")]
pub use revocation::RedisRevocations;
pub use revocation::{InProcessRevocations, Lookup, Revocation, RevocationStore, StoreError};
pub use settings::{AuthSettings, DEV_JWT_SECRET, LockoutPolicy};
pub use token::{Claims, Role, TokenError, TokenPair, TokenService, TokenType};
pub use totp::TotpSecret;
