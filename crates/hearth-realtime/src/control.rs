//! Messages on [`crate::topics::CONTROL`], for the transports of every gateway.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `{"type":"revoked","user_id":…,"family":…}`: tokens were revoked, so every gateway closes
/// the sockets they authenticated (close 1008).
///
/// - every session of a user (password change or reset, second factor changed):
///   `user_id` set, `family` null;
/// - one session (logout, a reused refresh token): `family` set, `user_id` null, because a
///   session revocation names only the session;
/// - one token alone: `token` set (the key is absent otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    /// Every socket of this user closes.
    pub user_id: Option<Uuid>,
    /// Every socket authenticated by a token of this session (`fam` claim) closes.
    pub family: Option<Uuid>,
    /// The socket authenticated by this token (`jti` claim) closes.
    pub token: Option<Uuid>,
}

/// The JSON form: `type` first, and checked on the way in (serde does not check the tag of
/// an internally tagged struct).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    user_id: Option<Uuid>,
    family: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<Uuid>,
}

const KIND: &str = "revoked";

impl Revoked {
    /// Every session of `user`.
    pub fn user(user: Uuid) -> Self {
        Self {
            user_id: Some(user),
            family: None,
            token: None,
        }
    }

    /// One session.
    pub fn family(family: Uuid) -> Self {
        Self {
            user_id: None,
            family: Some(family),
            token: None,
        }
    }

    /// One token.
    pub fn token(jti: Uuid) -> Self {
        Self {
            user_id: None,
            family: None,
            token: Some(jti),
        }
    }

    /// Reads a control payload; `None` for anything that is not a revocation.
    pub fn parse(payload: &str) -> Option<Self> {
        let wire: Wire<'_> = serde_json::from_str(payload).ok()?;
        (wire.kind == KIND).then_some(Self {
            user_id: wire.user_id,
            family: wire.family,
            token: wire.token,
        })
    }

    /// The JSON text to publish.
    pub fn to_json(&self) -> String {
        // A struct of optional UUIDs always serialises; the fallback is never taken.
        serde_json::to_string(&Wire {
            kind: KIND,
            user_id: self.user_id,
            family: self.family,
            token: self.token,
        })
        .unwrap_or_default()
    }

    /// Whether a socket authenticated by a token of `user`, session `family`, id `jti`, must
    /// close.
    pub fn applies_to(&self, user: Uuid, family: Uuid, jti: Uuid) -> bool {
        self.user_id == Some(user) || self.family == Some(family) || self.token == Some(jti)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_serialise_to_the_documented_shape_and_back() {
        let user = Uuid::from_u128(1);
        let json = Revoked::user(user).to_json();
        assert_eq!(
            json,
            format!(r#"{{"type":"revoked","user_id":"{user}","family":null}}"#)
        );
        assert_eq!(Revoked::parse(&json), Some(Revoked::user(user)));
        let family = Uuid::from_u128(2);
        assert_eq!(
            Revoked::family(family).to_json(),
            format!(r#"{{"type":"revoked","user_id":null,"family":"{family}"}}"#)
        );
        let token = Revoked::token(Uuid::from_u128(3));
        assert_eq!(Revoked::parse(&token.to_json()), Some(token));
        assert_eq!(Revoked::parse(r#"{"type":"wallet"}"#), None);
    }

    #[test]
    fn a_revocation_applies_to_the_sockets_it_names_only() {
        let (user, family, jti) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let other = Uuid::from_u128(9);
        assert!(Revoked::user(user).applies_to(user, other, other));
        assert!(Revoked::family(family).applies_to(other, family, other));
        assert!(Revoked::token(jti).applies_to(other, other, jti));
        assert!(!Revoked::user(user).applies_to(other, family, jti));
        assert!(!Revoked::family(family).applies_to(user, other, jti));
    }
}
