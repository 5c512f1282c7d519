//! Usernames and e-mail addresses, parsed once at the edge.

use std::fmt;

/// Why an identity field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The username breaks `[A-Za-z0-9_-]{3,32}`.
    #[error("must be 3 to 32 characters of letters, digits, '_' or '-'")]
    InvalidUsername,
    /// The e-mail address is not of the form `local@domain.tld`.
    #[error("must be a valid e-mail address")]
    InvalidEmail,
}

/// A username matching `[A-Za-z0-9_-]{3,32}`. Case is kept; uniqueness is case-insensitive in
/// storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Parses a username.
    ///
    /// # Errors
    /// [`IdentityError::InvalidUsername`] when it breaks the pattern.
    pub fn parse(raw: &str) -> Result<Self, IdentityError> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if (3..=32).contains(&raw.len()) && raw.chars().all(valid_char) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdentityError::InvalidUsername)
        }
    }

    /// The username as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A normalised e-mail address: trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Normalises and checks an address: one `@`, a non-empty local part, a domain with a dot,
    /// no whitespace or control characters, at most 254 bytes.
    ///
    /// Lower-casing the local part is a deliberate choice: almost every provider treats it
    /// case-insensitively, and two accounts differing only by case are a support problem.
    ///
    /// # Errors
    /// [`IdentityError::InvalidEmail`] when the address does not have that shape.
    pub fn parse(raw: &str) -> Result<Self, IdentityError> {
        let normalised = raw.trim().to_lowercase();
        let Some((local, domain)) = normalised.split_once('@') else {
            return Err(IdentityError::InvalidEmail);
        };
        let bad_char = |c: char| c.is_whitespace() || c.is_control() || c == '@';
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if normalised.len() > 254
            || local.is_empty()
            || local.len() > 64
            || !domain_ok
            || local.chars().chain(domain.chars()).any(bad_char)
        {
            return Err(IdentityError::InvalidEmail);
        }
        Ok(Self(normalised))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_pattern() {
        for ok in ["abc", "Player_One", "a-b-c", &"x".repeat(32)] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "",
            "has space",
            "émile",
            "semi;colon",
            &"x".repeat(33),
        ] {
            assert_eq!(
                Username::parse(bad),
                Err(IdentityError::InvalidUsername),
                "{bad}"
            );
        }
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        let email = Email::parse("  Alice.Smith@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "alice.smith@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "alice@@example.com",
            "alice@.example.com",
            "alice@example..com",
        ] {
            assert_eq!(Email::parse(bad), Err(IdentityError::InvalidEmail), "{bad}");
        }
    }
}
