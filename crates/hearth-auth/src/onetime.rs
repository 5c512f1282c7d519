//! One-time secrets: password-reset tokens and TOTP backup codes.
//!
//! Both are random and high-entropy, so they are stored as a plain SHA-256 (no slow hash
//! needed: there is nothing to brute-force from a dictionary), and the plaintext exists only in
//! the message that delivers it.

use sha2::{Digest, Sha256};

/// How many backup codes an enrolment produces.
pub const BACKUP_CODES: usize = 10;

/// A new password-reset token: `(token for the e-mail, hash to store)`.
///
/// 32 random bytes, hex-encoded (64 characters).
pub fn reset_token() -> (String, String) {
    let token = hex(&rand::random::<[u8; 32]>());
    let hash = hash_secret(&token);
    (token, hash)
}

/// Ten backup codes such as `k4j2-9xqv-m7tp` (60 bits each), for the user to write down.
pub fn backup_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..BACKUP_CODES)
        .map(|_| {
            let bytes = rand::random::<[u8; 12]>();
            let chars: Vec<char> = bytes
                .iter()
                .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
                .collect();
            format!(
                "{}-{}-{}",
                chars[..4].iter().collect::<String>(),
                chars[4..8].iter().collect::<String>(),
                chars[8..].iter().collect::<String>()
            )
        })
        .collect()
}

/// The stored form of a one-time secret: SHA-256 hex of its normalised text (lower case,
/// without spaces or dashes, so `K4J2 9XQV M7TP` matches `k4j2-9xqv-m7tp`).
pub fn hash_secret(secret: &str) -> String {
    let normalised: String = secret
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    hex(&Sha256::digest(normalised.as_bytes()))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_tokens_are_random_and_stored_hashed() {
        let (token, hash) = reset_token();
        let (other, _) = reset_token();
        assert_eq!(token.len(), 64);
        assert_ne!(token, other);
        assert_ne!(token, hash);
        assert_eq!(hash_secret(&token), hash);
    }

    #[test]
    fn backup_codes_are_ten_distinct_and_forgiving_to_type() {
        let codes = backup_codes();
        assert_eq!(codes.len(), BACKUP_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), BACKUP_CODES);
        let code = &codes[0];
        assert_eq!(
            hash_secret(code),
            hash_secret(&code.to_uppercase().replace('-', " "))
        );
    }
}
