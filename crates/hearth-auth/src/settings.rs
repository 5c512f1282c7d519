use secrecy::SecretString;
use serde::Deserialize;

/// The secret used when none is configured. Development only: production refuses it.
pub const DEV_JWT_SECRET: &str = "hearth-development-secret-do-not-use-in-production";

/// The `auth` settings section (`HEARTH__AUTH__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HMAC key for HS256 tokens. Production requires at least 32 bytes and not the default.
    pub jwt_secret: SecretString,
    /// The `kid` written into every token's header, naming [`Self::jwt_secret`].
    pub jwt_key_id: String,
    /// The key being rotated out: tokens it signed still verify until they expire, nothing new
    /// is signed with it. Set together with [`Self::previous_jwt_key_id`].
    pub previous_jwt_secret: Option<SecretString>,
    /// The `kid` of [`Self::previous_jwt_secret`].
    pub previous_jwt_key_id: Option<String>,
    /// bcrypt cost factor: 12 in production; tests lower it to keep suites fast.
    pub bcrypt_cost: u32,
    /// How many bcrypt hashes may run at once: the number of hashing threads (at nice 10 on
    /// Linux). Each hash takes ~270–390 ms at cost 12, so this bounds how much CPU logins take.
    pub max_concurrent_hashes: usize,
    /// Lifetime of access tokens in seconds.
    pub access_ttl_secs: u64,
    /// Lifetime of refresh tokens in seconds.
    pub refresh_ttl_secs: u64,
    /// Once an access token is this old, responses carry `X-Token-Refresh-Suggested: true`.
    pub refresh_suggest_after_secs: u64,
    /// The `iss` claim written and required.
    pub issuer: String,
    /// The `aud` claim written and required.
    pub audience: String,
    /// Failed-login lockout.
    pub lockout: LockoutPolicy,
    /// How long a password-reset token may be used, in seconds.
    pub password_reset_ttl_secs: u64,
    /// Whether session cookies carry `Secure`. Only development may turn it off (plain-HTTP
    /// localhost); production refuses `false`.
    pub cookie_secure: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: SecretString::from(DEV_JWT_SECRET.to_owned()),
            jwt_key_id: "k1".to_owned(),
            previous_jwt_secret: None,
            previous_jwt_key_id: None,
            bcrypt_cost: 12,
            max_concurrent_hashes: 2,
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 7 * 24 * 60 * 60,
            refresh_suggest_after_secs: 10 * 60,
            issuer: "hearth".to_owned(),
            audience: "hearth-api".to_owned(),
            lockout: LockoutPolicy::default(),
            password_reset_ttl_secs: 30 * 60,
            cookie_secure: true,
        }
    }
}

/// The `auth.lockout` section: after `max_failures` failed logins within `window_secs`, the
/// account (and, separately, the client IP) is locked for `lock_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutPolicy {
    /// Failures that start a lock.
    pub max_failures: u32,
    /// How long failures are counted, in seconds.
    pub window_secs: u64,
    /// How long a lock lasts, in seconds.
    pub lock_secs: u64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window_secs: 15 * 60,
            lock_secs: 15 * 60,
        }
    }
}
