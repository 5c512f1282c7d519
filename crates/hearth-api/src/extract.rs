//! Extractors whose rejections speak the one problem+json format: the body and the query
//! ([`body`]: [`ApiJson`], [`OptionalJson`], [`ApiQuery`]) and the caller's session
//! ([`session`]: [`AuthUser`], [`AdminUser`]). The two do not use each other.

pub mod body;
pub mod session;

pub use body::{ApiJson, ApiQuery, OptionalJson};
pub(crate) use session::{
    ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE, TOKEN_REFUSALS, auth_failure, cookie, require_csrf,
};
pub use session::{AdminAudit, AdminUser, AuthUser, TOTP_HEADER};
