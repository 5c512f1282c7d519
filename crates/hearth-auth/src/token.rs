//! JWT access and refresh tokens.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
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
    /// Unique token id (UUIDv7, so it also records the millisecond it was minted), the handle
    /// for revocation.
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
    /// The session ("token family"): every pair a login and its refreshes produce shares it,
    /// so logout or a detected refresh-token theft revokes them all at once.
    pub fam: Uuid,
}

impl Claims {
    /// When the token was minted, in milliseconds since the epoch (read from the UUIDv7
    /// `jti`; `iat` has only whole seconds).
    pub fn minted_at_ms(&self) -> u64 {
        self.jti
            .get_timestamp()
            .map(|ts| {
                let (secs, nanos) = ts.to_unix();
                secs * 1_000 + u64::from(nanos) / 1_000_000
            })
            .unwrap_or(self.iat * 1_000)
    }
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
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// The session both tokens belong to.
    #[serde(skip)]
    pub family: Uuid,
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
    /// The header names a key this service does not have.
    #[error("unknown signing key")]
    UnknownKey,
    /// A valid token of the other type (a refresh token used as access, or the reverse).
    #[error("wrong token type")]
    WrongType,
    /// The token, its session or every session of its user was revoked.
    #[error("token revoked")]
    Revoked,
    /// Signing failed (a misconfigured key).
    #[error("token could not be signed")]
    Signing(#[source] jsonwebtoken::errors::Error),
}

/// One verification key and what it is called.
#[derive(Clone)]
struct VerifyKey {
    kid: String,
    decoding: DecodingKey,
    /// Derived from the same secret; keys CSRF tokens of sessions signed with this key.
    csrf: [u8; 32],
}

/// Issues and verifies tokens with the configured keys, issuer, audience and lifetimes.
///
/// Tokens are signed with the current key and carry its `kid`; a token verifies with the key
/// its `kid` names, which may be the current or the previous one (key rotation without
/// logging everyone out). A token without a known `kid` is refused.
#[derive(Clone)]
pub struct TokenService {
    current_kid: String,
    encoding: EncodingKey,
    keys: Vec<VerifyKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: u64,
    refresh_ttl: u64,
    suggest_after: u64,
}

impl fmt::Debug for TokenService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are deliberately absent.
        f.debug_struct("TokenService")
            .field("current_kid", &self.current_kid)
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
        let mut keys = vec![verify_key(&settings.jwt_key_id, secret)];
        if let (Some(previous), Some(kid)) =
            (&settings.previous_jwt_secret, &settings.previous_jwt_key_id)
            && *kid != settings.jwt_key_id
        {
            keys.push(verify_key(kid, previous.expose_secret().as_bytes()));
        }
        Self {
            current_kid: settings.jwt_key_id.clone(),
            encoding: EncodingKey::from_secret(secret),
            keys,
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            access_ttl: settings.access_ttl_secs,
            refresh_ttl: settings.refresh_ttl_secs,
            suggest_after: settings.refresh_suggest_after_secs,
        }
    }

    /// Lifetime of access tokens in seconds.
    pub fn access_ttl(&self) -> u64 {
        self.access_ttl
    }

    /// Lifetime of refresh tokens in seconds.
    pub fn refresh_ttl(&self) -> u64 {
        self.refresh_ttl
    }

    /// Issues the first pair of a new session.
    ///
    /// # Errors
    /// [`TokenError::Signing`] when the key cannot sign.
    pub fn issue_pair(&self, user: Uuid, name: &str, role: Role) -> Result<TokenPair, TokenError> {
        self.issue_pair_in(Uuid::now_v7(), user, name, role)
    }

    /// Issues a pair in an existing session (refresh rotation keeps the family).
    ///
    /// # Errors
    /// [`TokenError::Signing`] when the key cannot sign.
    pub fn issue_pair_in(
        &self,
        family: Uuid,
        user: Uuid,
        name: &str,
        role: Role,
    ) -> Result<TokenPair, TokenError> {
        let now = now_secs();
        let base = Claims {
            sub: user,
            iat: now,
            nbf: now,
            exp: now + self.access_ttl,
            jti: Uuid::now_v7(),
            typ: TokenType::Access,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            role,
            name: name.to_owned(),
            fam: family,
        };
        let refresh = Claims {
            exp: now + self.refresh_ttl,
            jti: Uuid::now_v7(),
            typ: TokenType::Refresh,
            ..base.clone()
        };
        Ok(TokenPair {
            access_token: self.sign(&base)?,
            refresh_token: self.sign(&refresh)?,
            token_type: "Bearer",
            expires_in: self.access_ttl,
            refresh_expires_in: self.refresh_ttl,
            family,
        })
    }

    /// Signs arbitrary claims with the current key. Meant for tests and tools; services use
    /// [`Self::issue_pair`].
    ///
    /// # Errors
    /// [`TokenError::Signing`] when the key cannot sign.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(ALGORITHM);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.current_kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(TokenError::Signing)
    }

    /// Verifies algorithm, key id, signature, lifetime, issuer, audience and type. Revocation
    /// is not looked at: see [`crate::revocation`].
    ///
    /// # Errors
    /// A [`TokenError`] naming why the token was refused.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, TokenError> {
        // With one key (no rotation under way) the header is read once, by `decode`, and its
        // `kid` checked after; with two, it is read first to pick the key.
        let key = match self.keys.as_slice() {
            [only] => only,
            keys => {
                let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
                let kid = header.kid.ok_or(TokenError::UnknownKey)?;
                keys.iter()
                    .find(|k| k.kid == kid)
                    .ok_or(TokenError::UnknownKey)?
            }
        };
        // `decode` refuses any `alg` but the one `validation` allows, `none` included.
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation).map_err(
            |error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Invalid,
            },
        )?;
        if data.header.alg != ALGORITHM {
            return Err(TokenError::Invalid);
        }
        if data.header.kid.as_deref() != Some(key.kid.as_str()) {
            return Err(TokenError::UnknownKey);
        }
        if data.claims.typ != expected {
            return Err(TokenError::WrongType);
        }
        Ok(data.claims)
    }

    /// Whether an access token is old enough that the client should refresh it soon.
    pub fn refresh_suggested(&self, claims: &Claims) -> bool {
        now_secs().saturating_sub(claims.iat) >= self.suggest_after
    }

    /// The CSRF token of a cookie session: an HMAC of the session id under the current key,
    /// so it cannot be forged or planted from another session (signed double submit).
    pub fn csrf_token(&self, family: Uuid) -> String {
        csrf_for(&self.keys[0].csrf, family)
    }

    /// Whether `presented` is the CSRF token of the session `family` under any configured key.
    pub fn verify_csrf(&self, family: Uuid, presented: &str) -> bool {
        self.keys.iter().any(|key| {
            let expected = csrf_for(&key.csrf, family);
            constant_time_eq(expected.as_bytes(), presented.as_bytes())
        })
    }
}

fn verify_key(kid: &str, secret: &[u8]) -> VerifyKey {
    #[allow(
        clippy::expect_used,
        reason = "HMAC takes a key of any length; the error cannot occur"
    )]
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(b"hearth csrf key");
    VerifyKey {
        kid: kid.to_owned(),
        decoding: DecodingKey::from_secret(secret),
        csrf: mac.finalize().into_bytes().into(),
    }
}

fn csrf_for(key: &[u8; 32], family: Uuid) -> String {
    #[allow(
        clippy::expect_used,
        reason = "HMAC takes a key of any length; the error cannot occur"
    )]
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(family.as_bytes());
    crate::onetime::hex(&mac.finalize().into_bytes())
}

/// Compares without an early exit, so timing says nothing about where two values differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn now_secs() -> u64 {
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
        let tokens = service("a-test-secret-of-thirty-two-bytes!!");
        let pair = tokens
            .issue_pair(Uuid::nil(), "tester", Role::Player)
            .unwrap();
        let mut claims = tokens
            .verify(&pair.access_token, TokenType::Access)
            .unwrap();
        claims.exp = now_secs() - 60;
        let token = tokens.sign(&claims).unwrap();
        assert!(matches!(
            tokens.verify(&token, TokenType::Access),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn keys_rotate_by_kid() {
        let old = service("the-old-key-the-old-key-the-old-key!");
        let old_pair = old.issue_pair(Uuid::nil(), "tester", Role::Player).unwrap();
        let rotated = TokenService::new(&AuthSettings {
            jwt_secret: SecretString::from("the-new-key-the-new-key-the-new-key!".to_owned()),
            jwt_key_id: "k2".to_owned(),
            previous_jwt_secret: Some(SecretString::from(
                "the-old-key-the-old-key-the-old-key!".to_owned(),
            )),
            previous_jwt_key_id: Some("k1".to_owned()),
            ..AuthSettings::default()
        });
        // Old tokens still verify; new ones are signed with k2, which the old service lacks.
        assert!(
            rotated
                .verify(&old_pair.access_token, TokenType::Access)
                .is_ok()
        );
        let new_pair = rotated
            .issue_pair(Uuid::nil(), "tester", Role::Player)
            .unwrap();
        assert!(
            rotated
                .verify(&new_pair.access_token, TokenType::Access)
                .is_ok()
        );
        // The old service has one key: the signature fails before the kid is looked at.
        assert!(matches!(
            old.verify(&new_pair.access_token, TokenType::Access),
            Err(TokenError::Invalid | TokenError::UnknownKey)
        ));
        // A token with the right secret but a kid this service does not use is refused too.
        let mut claims = rotated
            .verify(&new_pair.access_token, TokenType::Access)
            .unwrap();
        claims.jti = Uuid::now_v7();
        let same_secret_other_kid = TokenService::new(&AuthSettings {
            jwt_secret: SecretString::from("the-old-key-the-old-key-the-old-key!".to_owned()),
            jwt_key_id: "k7".to_owned(),
            ..AuthSettings::default()
        });
        assert!(matches!(
            old.verify(
                &same_secret_other_kid.sign(&claims).unwrap(),
                TokenType::Access
            ),
            Err(TokenError::UnknownKey)
        ));
        // CSRF tokens of sessions from before the rotation stay valid too.
        let family = Uuid::now_v7();
        assert!(rotated.verify_csrf(family, &old.csrf_token(family)));
        assert!(!rotated.verify_csrf(Uuid::now_v7(), &old.csrf_token(family)));
    }

    #[test]
    fn minted_at_comes_from_the_v7_jti() {
        let tokens = service("a-test-secret-of-thirty-two-bytes!!");
        let pair = tokens
            .issue_pair(Uuid::nil(), "tester", Role::Player)
            .unwrap();
        let claims = tokens
            .verify(&pair.access_token, TokenType::Access)
            .unwrap();
        let ms = claims.minted_at_ms();
        assert!(
            ms / 1_000 == claims.iat || ms / 1_000 + 1 == claims.iat,
            "{ms} vs {}",
            claims.iat
        );
    }

    #[test]
    fn the_debug_form_does_not_show_keys() {
        let tokens = service("canary-secret-canary-secret-canary!!");
        assert!(!format!("{tokens:?}").contains("canary"));
    }

    // Fuzzing the token decoder with untrusted text (issue #23): bounded, with the unit tests.
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 300,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Arbitrary text, and three dot-separated base64url parts, never verify and never
        /// panic, as either kind of token.
        #[test]
        fn arbitrary_text_never_verifies(
            text in "\\PC{0,200}",
            parts in proptest::collection::vec("[A-Za-z0-9_-]{0,60}", 3),
        ) {
            let tokens = service("a-test-secret-of-thirty-two-bytes!!");
            let jwt_shaped = parts.join(".");
            for candidate in [text.as_str(), jwt_shaped.as_str()] {
                proptest::prop_assert!(tokens.verify(candidate, TokenType::Access).is_err());
                proptest::prop_assert!(tokens.verify(candidate, TokenType::Refresh).is_err());
            }
        }

        /// An issued token with any one character changed is refused.
        #[test]
        fn a_token_changed_anywhere_is_refused(
            position in proptest::prelude::any::<proptest::sample::Index>(),
            replacement in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
            let tokens = service("a-test-secret-of-thirty-two-bytes!!");
            let pair = tokens.issue_pair(Uuid::now_v7(), "tester", Role::Player).unwrap();
            let mut bytes = pair.access_token.into_bytes();
            let at = position.index(bytes.len());
            let new = ALPHABET[replacement.index(ALPHABET.len())];
            proptest::prop_assume!(bytes[at] != new);
            bytes[at] = new;
            let changed = String::from_utf8(bytes).unwrap();
            proptest::prop_assert!(tokens.verify(&changed, TokenType::Access).is_err());
        }
    }
}
