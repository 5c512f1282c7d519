//! The tabletop campaign manager's rules: what a valid campaign, member and child record is.
//!
//! Each input is parsed into a type that can only hold a valid value ([`Name`],
//! [`ImageUrl`], …), so storage and transports never see an unchecked one. Lengths are counted
//! in characters after trimming. Rich text (descriptions, notes, bodies) is sanitised by the
//! application layer before it is checked here; this module only bounds its length.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a campaign input was refused. `field` names the input, as the client spelled it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignError {
    /// Too short or too long (in characters, after trimming).
    #[error("{field}: must be {min} to {max} characters")]
    Length {
        /// The input.
        field: &'static str,
        /// Fewest characters.
        min: usize,
        /// Most characters.
        max: usize,
    },
    /// A number out of range.
    #[error("{field}: must be between {min} and {max}")]
    Range {
        /// The input.
        field: &'static str,
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
    },
    /// A JSON document too large once serialised.
    #[error("{field}: must be at most {max} bytes as JSON")]
    TooLarge {
        /// The input.
        field: &'static str,
        /// Largest size in bytes.
        max: usize,
    },
    /// A value of the wrong kind (not an https URL, not an object, an unknown status).
    #[error("{field}: {reason}")]
    Invalid {
        /// The input.
        field: &'static str,
        /// What is wrong, for people.
        reason: &'static str,
    },
}

impl CampaignError {
    /// The input the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Length { field, .. }
            | Self::Range { field, .. }
            | Self::TooLarge { field, .. }
            | Self::Invalid { field, .. } => field,
        }
    }

    /// The message without the field name.
    pub fn message(&self) -> String {
        let text = self.to_string();
        match text.split_once(": ") {
            Some((_, message)) => message.to_owned(),
            None => text,
        }
    }
}

/// Longest name or title, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest rich text (description, notes, body) after sanitising, in characters.
pub const MAX_RICH_TEXT_CHARS: usize = 20_000;
/// Longest in-game date text, in characters.
pub const MAX_DATE_TEXT_CHARS: usize = 100;
/// Most tags on one NPC.
pub const MAX_TAGS: usize = 32;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;
/// Largest NPC `stats` document, serialised.
pub const MAX_STATS_BYTES: usize = 16 * 1024;
/// Largest map `markers` document, serialised.
pub const MAX_MARKERS_BYTES: usize = 64 * 1024;
/// Longest image URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Largest grid size of a map, in pixels per cell.
pub const MAX_GRID_SIZE: i64 = 1_000;
/// Largest session number and absolute timeline position.
pub const MAX_ORDINAL: i64 = 1_000_000_000;

/// A trimmed text of 1 to `max` characters.
fn bounded(field: &'static str, text: &str, max: usize) -> Result<String, CampaignError> {
    let trimmed = text.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > max {
        return Err(CampaignError::Length { field, min: 1, max });
    }
    if trimmed.chars().any(char::is_control) {
        return Err(CampaignError::Invalid {
            field,
            reason: "must not contain control characters",
        });
    }
    Ok(trimmed.to_owned())
}

/// A name or title: 1 to 255 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// Parses `text` as the input `field`.
    ///
    /// # Errors
    /// [`CampaignError::Length`] or [`CampaignError::Invalid`].
    pub fn parse(field: &'static str, text: &str) -> Result<Self, CampaignError> {
        bounded(field, text, MAX_NAME_CHARS).map(Self)
    }

    /// The trimmed text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trimmed text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// An in-game date, free text ("3rd of Frostfall, 1204 AR"): 1 to 100 characters.
///
/// # Errors
/// [`CampaignError::Length`] or [`CampaignError::Invalid`].
pub fn date_text(text: &str) -> Result<String, CampaignError> {
    bounded("in_game_date", text, MAX_DATE_TEXT_CHARS)
}

/// Bounds sanitised rich text; an empty text becomes `None`.
///
/// # Errors
/// [`CampaignError::Length`] when longer than [`MAX_RICH_TEXT_CHARS`].
pub fn rich_text(field: &'static str, sanitised: String) -> Result<Option<String>, CampaignError> {
    let chars = sanitised.chars().count();
    if chars > MAX_RICH_TEXT_CHARS {
        return Err(CampaignError::Length {
            field,
            min: 0,
            max: MAX_RICH_TEXT_CHARS,
        });
    }
    Ok((!sanitised.trim().is_empty()).then_some(sanitised))
}

/// NPC tags: at most [`MAX_TAGS`], each 1 to [`MAX_TAG_CHARS`] characters, trimmed, duplicates
/// (ignoring case) dropped in order.
///
/// # Errors
/// [`CampaignError::Range`] for too many tags, [`CampaignError::Length`] for a bad one.
pub fn tags(tags: &[String]) -> Result<Vec<String>, CampaignError> {
    if tags.len() > MAX_TAGS {
        return Err(CampaignError::Range {
            field: "tags",
            min: 0,
            max: MAX_TAGS as i64,
        });
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = bounded("tags", tag, MAX_TAG_CHARS)?;
        if !out.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
            out.push(tag);
        }
    }
    Ok(out)
}

/// Checks an integer is within `min..=max`.
///
/// # Errors
/// [`CampaignError::Range`].
pub fn in_range(field: &'static str, value: i64, min: i64, max: i64) -> Result<i64, CampaignError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(CampaignError::Range { field, min, max })
    }
}

/// Checks a JSON document is no larger than `max` bytes once serialised.
///
/// # Errors
/// [`CampaignError::TooLarge`].
pub fn json_within(
    field: &'static str,
    value: &serde_json::Value,
    max: usize,
) -> Result<(), CampaignError> {
    let size = serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len());
    if size > max {
        return Err(CampaignError::TooLarge { field, max });
    }
    Ok(())
}

/// NPC stats: a JSON object of at most [`MAX_STATS_BYTES`].
///
/// # Errors
/// [`CampaignError::Invalid`] for anything but an object, [`CampaignError::TooLarge`].
pub fn stats(value: &serde_json::Value) -> Result<(), CampaignError> {
    if !value.is_object() {
        return Err(CampaignError::Invalid {
            field: "stats",
            reason: "must be a JSON object",
        });
    }
    json_within("stats", value, MAX_STATS_BYTES)
}

/// Map markers: a JSON array of at most [`MAX_MARKERS_BYTES`].
///
/// # Errors
/// [`CampaignError::Invalid`] for anything but an array, [`CampaignError::TooLarge`].
pub fn markers(value: &serde_json::Value) -> Result<(), CampaignError> {
    if !value.is_array() {
        return Err(CampaignError::Invalid {
            field: "markers",
            reason: "must be a JSON array",
        });
    }
    json_within("markers", value, MAX_MARKERS_BYTES)
}

/// An absolute `https://` URL with a host, without whitespace, quotes, angle brackets or
/// backslashes, of at most [`MAX_URL_BYTES`]. The scheme is matched case-insensitively and
/// stored lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUrl(String);

impl ImageUrl {
    /// Parses an image URL.
    ///
    /// # Errors
    /// [`CampaignError::Invalid`] for anything but an https URL with a host.
    pub fn parse(text: &str) -> Result<Self, CampaignError> {
        let invalid = |reason| CampaignError::Invalid {
            field: "image_url",
            reason,
        };
        let text = text.trim();
        if text.len() > MAX_URL_BYTES {
            return Err(CampaignError::Length {
                field: "image_url",
                min: 1,
                max: MAX_URL_BYTES,
            });
        }
        let scheme_ok = text
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        if !scheme_ok {
            return Err(invalid("must be an https:// URL"));
        }
        let rest = &text[8..];
        if rest
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'<>\\`".contains(c))
        {
            return Err(invalid("must not contain spaces, quotes or angle brackets"));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        let host = host.split(':').next().unwrap_or("");
        if host.is_empty() || host.starts_with('.') || host.contains("..") {
            return Err(invalid("must name a host"));
        }
        Ok(Self(format!("https://{rest}")))
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A member's role in a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A game master: reads and writes everything.
    Gm,
    /// A player: reads everything not marked `gm_only`, writes nothing.
    Player,
}

impl Role {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gm => "gm",
            Self::Player => "player",
        }
    }

    /// Whether this role sees `gm_only` records and may write.
    pub fn is_gm(self) -> bool {
        self == Self::Gm
    }
}

impl FromStr for Role {
    type Err = CampaignError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "gm" => Ok(Self::Gm),
            "player" => Ok(Self::Player),
            _ => Err(CampaignError::Invalid {
                field: "role",
                reason: "must be \"player\" or \"gm\"",
            }),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Not played yet.
    Planned,
    /// Being played.
    Active,
    /// Played.
    Completed,
    /// Will not be played.
    Cancelled,
}

impl SessionStatus {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl FromStr for SessionStatus {
    type Err = CampaignError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "planned" => Ok(Self::Planned),
            "active" => Ok(Self::Active),
            "completed" => Ok(Self::Completed),
            "cancelled" => Ok(Self::Cancelled),
            _ => Err(CampaignError::Invalid {
                field: "status",
                reason: "must be planned, active, completed or cancelled",
            }),
        }
    }
}

/// The four kinds of records a campaign holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildKind {
    /// Play sessions.
    Session,
    /// Non-player characters.
    Npc,
    /// Maps.
    Map,
    /// Timeline entries.
    Timeline,
}

impl ChildKind {
    /// Every kind.
    pub const ALL: [Self; 4] = [Self::Session, Self::Npc, Self::Map, Self::Timeline];

    /// The wire form (`kind` in `campaign.changed` pushes).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Npc => "npc",
            Self::Map => "map",
            Self::Timeline => "timeline",
        }
    }

    /// Whether records of this kind may be marked `gm_only`.
    pub fn has_gm_only(self) -> bool {
        matches!(self, Self::Npc | Self::Map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(Name::parse("name", "  Curse  ").unwrap().as_str(), "Curse");
        assert_eq!(Name::parse("name", "   ").unwrap_err().field(), "name");
        assert!(Name::parse("name", &"é".repeat(255)).is_ok());
        assert!(Name::parse("name", &"é".repeat(256)).is_err());
        assert!(Name::parse("title", "a\u{0}b").is_err());
    }

    #[test]
    fn only_https_urls_with_a_host_are_images() {
        assert_eq!(
            ImageUrl::parse("HTTPS://maps.example.com/a.png")
                .unwrap()
                .as_str(),
            "https://maps.example.com/a.png"
        );
        for bad in [
            "http://example.com/a.png",
            "javascript:alert(1)",
            "https://",
            "https:///a.png",
            "https://exa mple.com",
            "https://example.com/\"onerror=",
            "//example.com/a.png",
            "data:image/png;base64,AAAA",
        ] {
            assert!(ImageUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_documents_are_bounded_and_shaped() {
        assert!(stats(&serde_json::json!({"hp": 10})).is_ok());
        assert!(stats(&serde_json::json!([1])).is_err());
        let big = "x".repeat(MAX_STATS_BYTES);
        assert_eq!(
            stats(&serde_json::json!({ "a": big })).unwrap_err(),
            CampaignError::TooLarge {
                field: "stats",
                max: MAX_STATS_BYTES
            }
        );
        assert!(markers(&serde_json::json!([{"x": 1}])).is_ok());
        assert!(markers(&serde_json::json!({})).is_err());
    }

    #[test]
    fn tags_are_deduplicated_and_bounded() {
        let given = vec!["Elf".to_owned(), " elf ".to_owned(), "Mage".to_owned()];
        assert_eq!(tags(&given).unwrap(), vec!["Elf", "Mage"]);
        assert!(tags(&vec!["t".to_owned(); 33]).is_err());
        assert!(tags(&["".to_owned()]).is_err());
    }

    #[test]
    fn roles_and_statuses_have_one_spelling() {
        assert_eq!("gm".parse::<Role>().unwrap(), Role::Gm);
        assert!("GM".parse::<Role>().is_err());
        assert_eq!(
            "cancelled".parse::<SessionStatus>().unwrap().as_str(),
            "cancelled"
        );
        assert_eq!(
            "done".parse::<SessionStatus>().unwrap_err().field(),
            "status"
        );
    }

    #[test]
    fn errors_split_into_field_and_message() {
        let error = Name::parse("title", "").unwrap_err();
        assert_eq!(error.field(), "title");
        assert_eq!(error.message(), "must be 1 to 255 characters");
    }
}
