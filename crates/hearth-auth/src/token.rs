//! JWT access and refresh tokens.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AuthSettings;

/// The only algorithm issued and accepted. A token whose header names any other (including
/// `none`) is refused before its signature is looked at.
const ALGORITHM: Algorithm = Algorithm::HS256;

/// Clock skew tolerated between gateways, in seconds.
const LEEWAY_SECS: u64 = 5;

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Short-lived; authorises API requests.
    Access,
    /// Long-lived; only exchanges for a new pair.
    Refresh,
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An ordinary account.
    Player,
    /// May use the admin routes.
    Admin,
}

impl Role {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Player => "player",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is neither `player` nor `admin`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "player" => Ok(Self::Player),
            "admin" => Ok(Self::Admin),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// The claims Hearth writes into every token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Not valid before, seconds since the epoch.
    pub nbf: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
    /// Unique token id, the handle for revocation.
    pub jti: Uuid,
    /// Access or refresh.
    pub typ: TokenType,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The user's role when the token was issued.
    pub role: Role,
    /// The username when the token was issued, for display (leaderboards, logs); never used
    /// for authorisation.
    #[serde(default)]
    pub name: String,
}

/// A freshly issued access and refresh token.
#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    /// The access token.
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Why a token was refused. Every variant means 401 to a client; they differ for logs and
/// metrics only.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// The token is not yet valid.
    #[error("token not yet valid")]
    NotYetValid,
    /// Signature, algorithm, issuer, audience or shape is wrong.
    #[error("token invalid")]
    Invalid,
    /// A valid token of the other type (a refresh token used as access, or the reverse).
    #[error("wrong token type")]
    WrongType,
    /// Signing failed (a misconfigured key).
    #[error("token could not be signed")]
    Signing(#[source] jsonwebtoken::errors::Error),
}

/// Issues and verifies tokens with the configured key, issuer, audience and lifetimes.
#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: u64,
    refresh_ttl: u64,
}

impl fmt::Debug for TokenService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are deliberately absent.
        f.debug_struct("TokenService")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// Builds the service from the `auth` settings.
    pub fn new(settings: &AuthSettings) -> Self {
        let secret = settings.jwt_secret.expose_secret().as_bytes();
        let mut validation = Validation::new(ALGORITHM);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            access_ttl: settings.access_ttl_secs,
            refresh_ttl: settings.refresh_ttl_secs,
        }
    }

    /// Lifetime of access tokens in seconds.
    pub fn access_ttl(&self) -> u64 {
        self.access_ttl
    }

    /// Issues a new access and refresh token for a user.
    ///
    /// # Errors
    /// [`TokenError::Signing`] when the key cannot sign.
    pub fn issue_pair(&self, user: Uuid, name: &str, role: Role) -> Result<TokenPair, TokenError> {
        let now = now_secs();
        Ok(TokenPair {
            access_token: self.issue(user, name, role, TokenType::Access, now)?,
            refresh_token: self.issue(user, name, role, TokenType::Refresh, now)?,
            token_type: "Bearer",
            expires_in: self.access_ttl,
        })
    }

    fn issue(
        &self,
        user: Uuid,
        name: &str,
        role: Role,
        typ: TokenType,
        now: u64,
    ) -> Result<String, TokenError> {
        let ttl = match typ {
            TokenType::Access => self.access_ttl,
            TokenType::Refresh => self.refresh_ttl,
        };
        let claims = Claims {
            sub: user,
            iat: now,
            nbf: now,
            exp: now + ttl,
            jti: Uuid::new_v4(),
            typ,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            role,
            name: name.to_owned(),
        };
        let mut header = Header::new(ALGORITHM);
        header.typ = Some("JWT".to_owned());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(TokenError::Signing)
    }

    /// Verifies signature, algorithm, lifetime, issuer, audience and type.
    ///
    /// # Errors
    /// A [`TokenError`] naming why the token was refused.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Invalid,
            })?;
        if data.claims.typ != expected {
            return Err(TokenError::WrongType);
        }
        Ok(data.claims)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn service(secret: &str) -> TokenService {
        TokenService::new(&AuthSettings {
            jwt_secret: SecretString::from(secret.to_owned()),
            ..AuthSettings::default()
        })
    }

    fn b64(bytes: &[u8]) -> String {
        // URL-safe base64 without padding, enough for hand-made test tokens.
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn an_issued_pair_verifies_as_its_own_type_only() {
        let tokens = service("a-test-secret-of-thirty-two-bytes!!");
        let user = Uuid::now_v7();
        let pair = tokens.issue_pair(user, "tester", Role::Admin).unwrap();
        let access = tokens
            .verify(&pair.access_token, TokenType::Access)
            .unwrap();
        assert_eq!(
            (access.sub, access.role, access.typ),
            (user, Role::Admin, TokenType::Access)
        );
        assert!(matches!(
            tokens.verify(&pair.refresh_token, TokenType::Access),
            Err(TokenError::WrongType)
        ));
        assert!(matches!(
            tokens.verify(&pair.access_token, TokenType::Refresh),
            Err(TokenError::WrongType)
        ));
    }

    #[test]
    fn a_token_signed_with_another_key_is_invalid() {
        let pair = service("key-one-key-one-key-one-key-one-!!")
            .issue_pair(Uuid::nil(), "tester", Role::Player)
            .unwrap();
        let result = service("key-two-key-two-key-two-key-two-!!")
            .verify(&pair.access_token, TokenType::Access);
        assert!(matches!(result, Err(TokenError::Invalid)));
    }

    #[test]
    fn alg_none_is_refused() {
        let tokens = service("a-test-secret-of-thirty-two-bytes!!");
        let pair = tokens
            .issue_pair(Uuid::nil(), "tester", Role::Player)
            .unwrap();
        let payload = pair.access_token.split('.').nth(1).unwrap();
        let forged = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
        assert!(matches!(
            tokens.verify(&forged, TokenType::Access),
            Err(TokenError::Invalid)
        ));
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let tokens = service("a-test-secret-of-thirty-two-bytes!!");
        let pair = tokens
            .issue_pair(Uuid::nil(), "tester", Role::Player)
            .unwrap();
        let parts: Vec<&str> = pair.access_token.split('.').collect();
        let claims = format!(
            r#"{{"sub":"{}","iat":1,"nbf":1,"exp":99999999999,"jti":"{}","typ":"access","iss":"hearth","aud":"hearth-api","role":"admin"}}"#,
            Uuid::nil(),
            Uuid::nil()
        );
        let forged = format!("{}.{}.{}", parts[0], b64(claims.as_bytes()), parts[2]);
        assert!(matches!(
            tokens.verify(&forged, TokenType::Access),
            Err(TokenError::Invalid)
        ));
    }

    #[test]
    fn an_expired_token_is_refused_as_expired() {
        let mut settings = AuthSettings {
            jwt_secret: SecretString::from("a-test-secret-of-thirty-two-bytes!!".to_owned()),
            ..AuthSettings::default()
        };
        settings.access_ttl_secs = 0;
        let tokens = TokenService::new(&settings);
        let token = tokens
            .issue(
                Uuid::nil(),
                "tester",
                Role::Player,
                TokenType::Access,
                now_secs() - 60,
            )
            .unwrap();
        assert!(matches!(
            tokens.verify(&token, TokenType::Access),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn the_debug_form_does_not_show_keys() {
        let tokens = service("canary-secret-canary-secret-canary!!");
        assert!(!format!("{tokens:?}").contains("canary"));
    }
}
