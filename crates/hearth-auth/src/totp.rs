//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), the
//! second factor authenticator apps speak.
//!
//! The clock is a parameter everywhere, so tests (and replay protection) work with fixed
//! times.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Steps accepted either side of the current one (clock drift between phone and server).
pub const DRIFT_STEPS: u64 = 1;

/// A shared TOTP secret (20 random bytes, as RFC 4226 recommends).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

/// A secret that is not valid base32.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the TOTP secret is not valid base32")]
pub struct InvalidSecret;

impl TotpSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        Self(rand::random::<[u8; 20]>().to_vec())
    }

    /// A secret from raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    /// Reads the base32 form (as stored and as shown to users).
    ///
    /// # Errors
    /// [`InvalidSecret`] when a character is outside the base32 alphabet.
    pub fn from_base32(text: &str) -> Result<Self, InvalidSecret> {
        let mut bits = 0u64;
        let mut count = 0u32;
        let mut out = Vec::with_capacity(text.len() * 5 / 8);
        for c in text.chars().filter(|c| *c != '=' && !c.is_whitespace()) {
            let value = match c.to_ascii_uppercase() {
                c @ 'A'..='Z' => c as u64 - 'A' as u64,
                c @ '2'..='7' => c as u64 - '2' as u64 + 26,
                _ => return Err(InvalidSecret),
            };
            bits = (bits << 5) | value;
            count += 5;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
                bits &= (1 << count) - 1;
            }
        }
        if out.is_empty() {
            return Err(InvalidSecret);
        }
        Ok(Self(out))
    }

    /// The base32 form, without padding (RFC 4648).
    pub fn to_base32(&self) -> String {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut out = String::with_capacity(self.0.len().div_ceil(5) * 8);
        let mut bits = 0u64;
        let mut count = 0u32;
        for byte in &self.0 {
            bits = (bits << 8) | u64::from(*byte);
            count += 8;
            while count >= 5 {
                count -= 5;
                out.push(ALPHABET[((bits >> count) & 31) as usize] as char);
            }
            bits &= (1 << count) - 1;
        }
        if count > 0 {
            out.push(ALPHABET[((bits << (5 - count)) & 31) as usize] as char);
        }
        out
    }

    /// The code for a step, with `digits` digits (RFC 4226 dynamic truncation).
    pub fn code_for_step(&self, step: u64, digits: u32) -> u32 {
        #[allow(
            clippy::expect_used,
            reason = "HMAC takes a key of any length; the error cannot occur"
        )]
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        mac.update(&step.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let offset = usize::from(digest[19] & 0x0f);
        let binary = u32::from_be_bytes([
            digest[offset] & 0x7f,
            digest[offset + 1],
            digest[offset + 2],
            digest[offset + 3],
        ]);
        binary % 10u32.pow(digits)
    }

    /// The 6-digit code at a time, zero-padded.
    pub fn code_at(&self, unix_secs: u64) -> String {
        format!(
            "{:0width$}",
            self.code_for_step(unix_secs / STEP_SECS, DIGITS),
            width = DIGITS as usize
        )
    }

    /// The step a code matches at `unix_secs`, allowing [`DRIFT_STEPS`] either side; `None`
    /// if it matches none. Callers refuse a step at or before the last one accepted, so a
    /// code works once.
    pub fn verify(&self, code: &str, unix_secs: u64) -> Option<u64> {
        let code = code.trim();
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = unix_secs / STEP_SECS;
        (now.saturating_sub(DRIFT_STEPS)..=now + DRIFT_STEPS).find(|step| {
            let expected = format!(
                "{:0width$}",
                self.code_for_step(*step, DIGITS),
                width = DIGITS as usize
            );
            crate::token::constant_time_eq(expected.as_bytes(), code.as_bytes())
        })
    }

    /// The `otpauth://` URI an authenticator app reads (usually from a QR code).
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            percent_encode(issuer),
            percent_encode(account),
            self.to_base32(),
            percent_encode(issuer),
        )
    }
}

fn percent_encode(text: &str) -> String {
    use std::fmt::Write as _;
    text.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 column: the secret is the ASCII "12345678901234567890".
    #[test]
    fn matches_the_rfc_6238_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890");
        for (time, expected) in [
            (59u64, 94_287_082u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(
                secret.code_for_step(time / STEP_SECS, 8),
                expected,
                "t={time}"
            );
        }
    }

    #[test]
    fn base32_round_trips() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890");
        assert_eq!(secret.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            TotpSecret::from_base32(&secret.to_base32()).unwrap(),
            secret
        );
        let random = TotpSecret::generate();
        assert_eq!(
            TotpSecret::from_base32(&random.to_base32()).unwrap(),
            random
        );
        assert!(TotpSecret::from_base32("not base32!").is_err());
    }

    #[test]
    fn verify_allows_one_step_of_drift_and_names_the_step() {
        let secret = TotpSecret::generate();
        let now = 1_700_000_000;
        let code = secret.code_at(now);
        assert_eq!(secret.verify(&code, now), Some(now / STEP_SECS));
        assert_eq!(secret.verify(&code, now + STEP_SECS), Some(now / STEP_SECS));
        assert_eq!(secret.verify(&code, now + 3 * STEP_SECS), None);
        assert_eq!(secret.verify("12345", now), None);
        assert_eq!(secret.verify("abcdef", now), None);
    }

    #[test]
    fn the_uri_is_what_authenticator_apps_read() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890");
        assert_eq!(
            secret.otpauth_uri("Hearth", "alice@example.com"),
            "otpauth://totp/Hearth:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Hearth&algorithm=SHA1&digits=6&period=30"
        );
    }
}
