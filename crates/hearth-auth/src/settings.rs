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
    /// bcrypt cost factor: 12 in production; tests lower it to keep suites fast.
    pub bcrypt_cost: u32,
    /// How many bcrypt hashes may run at once. Each takes a blocking thread for its whole
    /// duration (~270 ms at cost 12), so this bounds how much CPU logins can take.
    pub max_concurrent_hashes: usize,
    /// Lifetime of access tokens in seconds.
    pub access_ttl_secs: u64,
    /// Lifetime of refresh tokens in seconds.
    pub refresh_ttl_secs: u64,
    /// The `iss` claim written and required.
    pub issuer: String,
    /// The `aud` claim written and required.
    pub audience: String,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: SecretString::from(DEV_JWT_SECRET.to_owned()),
            bcrypt_cost: 12,
            max_concurrent_hashes: 2,
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 7 * 24 * 60 * 60,
            issuer: "hearth".to_owned(),
            audience: "hearth-api".to_owned(),
        }
    }
}
