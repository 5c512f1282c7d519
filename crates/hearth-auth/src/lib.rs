//! Accounts and tokens for Hearth, usable on their own in any tokio service.
//!
//! # Layout
//! - [`identity`]: username rules and e-mail normalisation (parse, don't validate).
//! - [`password`]: the password policy with a strength score, and [`PasswordHasher`], which runs
//!   bcrypt on the blocking pool with bounded concurrency so a login storm cannot starve the
//!   async threads.
//! - [`token`]: [`TokenService`] issues and verifies HS256 JWT access and refresh tokens with
//!   `sub`, `iat`, `nbf`, `exp`, `jti`, `typ`, `iss` and `aud`; only the configured algorithm
//!   verifies, and a refresh token is never accepted where an access token is expected.
//! - [`AuthSettings`]: the `auth` settings section.
//!
//! # Example
//! ```
//! use hearth_auth::{AuthSettings, Role, TokenService, TokenType};
//! use secrecy::SecretString;
//!
//! let settings = AuthSettings {
//!     jwt_secret: SecretString::from("an-example-secret-that-is-long-enough!!".to_owned()),
//!     ..AuthSettings::default()
//! };
//! let tokens = TokenService::new(&settings);
//! let user = uuid::Uuid::now_v7();
//! let pair = tokens.issue_pair(user, "alice", Role::Player).unwrap();
//! let claims = tokens.verify(&pair.access_token, TokenType::Access).unwrap();
//! assert_eq!(claims.sub, user);
//! assert!(tokens.verify(&pair.refresh_token, TokenType::Access).is_err());
//! ```
//!
//! # What it does not do
//! It stores nothing: users, sessions and revocations live behind the storage crate, and the
//! HTTP wiring (extractors, status codes) lives in the application crate.

pub mod identity;
pub mod password;
pub mod token;

mod settings;

pub use identity::{Email, IdentityError, Username};
pub use password::{HashError, PasswordHasher, PasswordPolicyError, check_policy};
pub use settings::{AuthSettings, DEV_JWT_SECRET};
pub use token::{Claims, Role, TokenError, TokenPair, TokenService, TokenType};
