//! What a client sends to create or change campaign records, and how it becomes a valid
//! record: every input type serves both `POST` (no base: required fields must be present) and
//! `PATCH` (the current record is the base: absent fields keep their value, `null` clears a
//! nullable one). Rich text is sanitised before its length is checked.

use hearth_domain::campaign::{self as rules, CampaignError, ChildKind, ImageUrl, Name, Role};
use hearth_storage::campaign::{ChildData, MapFields, NpcFields, SessionFields, TimelineFields};
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

use super::sanitize::sanitize;

/// `Some(value)` for a present field, `Some(None)` for `null`: with `#[serde(default)]`, an
/// absent field stays `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `Some(value)` for a present timestamp (RFC 3339), `Some(None)` for `null`.
fn present_time<'de, D>(deserializer: D) -> Result<Option<Option<OffsetDateTime>>, D::Error>
where
    D: Deserializer<'de>,
{
    time::serde::rfc3339::option::deserialize(deserializer).map(Some)
}

fn required(field: &'static str) -> CampaignError {
    CampaignError::Invalid {
        field,
        reason: "is required",
    }
}

/// Sanitises rich text and bounds it; `None` and empty text are `None`.
fn rich(field: &'static str, text: Option<String>) -> Result<Option<String>, CampaignError> {
    match text {
        Some(text) => rules::rich_text(field, sanitize(&text)),
        None => Ok(None),
    }
}

/// Applies a nullable rich text field of a patch to its current value.
fn rich_patch(
    field: &'static str,
    patch: Option<Option<String>>,
    current: Option<String>,
) -> Result<Option<String>, CampaignError> {
    match patch {
        Some(text) => rich(field, text),
        None => Ok(current),
    }
}

/// `POST /v1/campaigns` and `PATCH /v1/campaigns/{id}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CampaignInput {
    /// 1 to 255 characters after trimming.
    pub name: Option<String>,
    /// Rich text; `null` clears it.
    #[serde(deserialize_with = "present")]
    pub description: Option<Option<String>>,
}

impl CampaignInput {
    /// The validated name and sanitised description, over the current ones for a patch.
    ///
    /// # Errors
    /// The first invalid field.
    pub fn apply(
        self,
        current: Option<(&str, Option<&str>)>,
    ) -> Result<(String, Option<String>), CampaignError> {
        let name = match (self.name, current) {
            (Some(name), _) => Name::parse("name", &name)?.into_string(),
            (None, Some((name, _))) => name.to_owned(),
            (None, None) => return Err(required("name")),
        };
        let description = rich_patch(
            "description",
            self.description,
            current.and_then(|(_, d)| d.map(str::to_owned)),
        )?;
        Ok((name, description))
    }
}

/// `POST /v1/campaigns/{id}/members`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberInput {
    /// The user to add, by username.
    pub username: String,
    /// `player` or `gm`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "player", pattern = "^(gm|player)$"))]
    pub role: Role,
}

/// A body that creates or changes one kind of child record.
pub trait ChildInput: for<'de> Deserialize<'de> + Send + 'static {
    /// The kind it makes.
    const KIND: ChildKind;

    /// The record's fields: this input alone (creating, `current` is `None`) or this input
    /// over the current fields (patching).
    ///
    /// # Errors
    /// The first invalid or missing field.
    fn apply(self, current: Option<ChildData>) -> Result<ChildData, CampaignError>;
}

/// A session's body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionInput {
    /// Unique per campaign, 1 or more; omitted on creation: the next number.
    pub number: Option<i64>,
    /// 1 to 255 characters.
    pub title: Option<String>,
    /// `planned` (the default), `active`, `completed` or `cancelled`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^(planned|active|completed|cancelled)$"))]
    pub status: Option<rules::SessionStatus>,
    /// RFC 3339; `null` clears it.
    #[serde(deserialize_with = "present_time")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub scheduled_at: Option<Option<OffsetDateTime>>,
    /// Rich text; `null` clears it.
    #[serde(deserialize_with = "present")]
    pub notes: Option<Option<String>>,
}

impl ChildInput for SessionInput {
    const KIND: ChildKind = ChildKind::Session;

    fn apply(self, current: Option<ChildData>) -> Result<ChildData, CampaignError> {
        let current = match current {
            Some(ChildData::Session(s)) => Some(s),
            _ => None,
        };
        let number = self
            .number
            .map(|n| rules::in_range("number", n, 1, rules::MAX_ORDINAL))
            .transpose()?;
        let title = match (self.title, &current) {
            (Some(title), _) => Name::parse("title", &title)?.into_string(),
            (None, Some(c)) => c.title.clone(),
            (None, None) => return Err(required("title")),
        };
        let (old_status, old_time, old_notes, old_number) = match current {
            Some(c) => (Some(c.status), c.scheduled_at, c.notes, c.number),
            None => (None, None, None, None),
        };
        Ok(ChildData::Session(SessionFields {
            number: number.or(old_number),
            title,
            status: self
                .status
                .or(old_status)
                .unwrap_or(rules::SessionStatus::Planned),
            scheduled_at: self.scheduled_at.unwrap_or(old_time),
            notes: rich_patch("notes", self.notes, old_notes)?,
        }))
    }
}

/// An NPC's body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NpcInput {
    /// 1 to 255 characters.
    pub name: Option<String>,
    /// Rich text; `null` clears it.
    #[serde(deserialize_with = "present")]
    pub description: Option<Option<String>>,
    /// At most 32 tags of 1 to 64 characters.
    pub tags: Option<Vec<String>>,
    /// A JSON object of at most 16 KiB.
    pub stats: Option<serde_json::Value>,
    /// Hidden from players.
    pub gm_only: Option<bool>,
}

impl ChildInput for NpcInput {
    const KIND: ChildKind = ChildKind::Npc;

    fn apply(self, current: Option<ChildData>) -> Result<ChildData, CampaignError> {
        let current = match current {
            Some(ChildData::Npc(n)) => Some(n),
            _ => None,
        };
        let name = match (self.name, &current) {
            (Some(name), _) => Name::parse("name", &name)?.into_string(),
            (None, Some(c)) => c.name.clone(),
            (None, None) => return Err(required("name")),
        };
        let tags = match self.tags {
            Some(tags) => rules::tags(&tags)?,
            None => current.as_ref().map(|c| c.tags.clone()).unwrap_or_default(),
        };
        let stats = match self.stats {
            Some(stats) => {
                rules::stats(&stats)?;
                stats
            }
            None => current
                .as_ref()
                .map_or_else(|| serde_json::json!({}), |c| c.stats.clone()),
        };
        let gm_only = self
            .gm_only
            .or(current.as_ref().map(|c| c.gm_only))
            .unwrap_or(false);
        Ok(ChildData::Npc(NpcFields {
            name,
            description: rich_patch(
                "description",
                self.description,
                current.and_then(|c| c.description),
            )?,
            tags,
            stats,
            gm_only,
        }))
    }
}

/// A map's body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MapInput {
    /// 1 to 255 characters.
    pub name: Option<String>,
    /// An `https://` URL.
    pub image_url: Option<String>,
    /// Pixels per grid cell, 1 to 1000; 50 when omitted on creation.
    pub grid_size: Option<i64>,
    /// A JSON array of at most 64 KiB.
    pub markers: Option<serde_json::Value>,
    /// Hidden from players.
    pub gm_only: Option<bool>,
}

/// The grid size of a map created without one.
const DEFAULT_GRID_SIZE: i64 = 50;

impl ChildInput for MapInput {
    const KIND: ChildKind = ChildKind::Map;

    fn apply(self, current: Option<ChildData>) -> Result<ChildData, CampaignError> {
        let current = match current {
            Some(ChildData::Map(m)) => Some(m),
            _ => None,
        };
        let name = match (self.name, &current) {
            (Some(name), _) => Name::parse("name", &name)?.into_string(),
            (None, Some(c)) => c.name.clone(),
            (None, None) => return Err(required("name")),
        };
        let image_url = match (self.image_url, &current) {
            (Some(url), _) => ImageUrl::parse(&url)?.into_string(),
            (None, Some(c)) => c.image_url.clone(),
            (None, None) => return Err(required("image_url")),
        };
        let grid_size = match self.grid_size {
            Some(size) => rules::in_range("grid_size", size, 1, rules::MAX_GRID_SIZE)?,
            None => current.as_ref().map_or(DEFAULT_GRID_SIZE, |c| c.grid_size),
        };
        let markers = match self.markers {
            Some(markers) => {
                rules::markers(&markers)?;
                markers
            }
            None => current
                .as_ref()
                .map_or_else(|| serde_json::json!([]), |c| c.markers.clone()),
        };
        Ok(ChildData::Map(MapFields {
            name,
            image_url,
            grid_size,
            markers,
            gm_only: self
                .gm_only
                .or(current.as_ref().map(|c| c.gm_only))
                .unwrap_or(false),
        }))
    }
}

/// A timeline entry's body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimelineInput {
    /// The in-game date as text, 1 to 100 characters.
    pub in_game_date: Option<String>,
    /// 1 to 255 characters.
    pub title: Option<String>,
    /// Rich text; `null` clears it.
    #[serde(deserialize_with = "present")]
    pub body: Option<Option<String>>,
    /// Where the entry sits (entries are listed by position); omitted on creation: last. A
    /// `PATCH` with a new position moves the entry.
    pub position: Option<i64>,
}

impl ChildInput for TimelineInput {
    const KIND: ChildKind = ChildKind::Timeline;

    fn apply(self, current: Option<ChildData>) -> Result<ChildData, CampaignError> {
        let current = match current {
            Some(ChildData::Timeline(t)) => Some(t),
            _ => None,
        };
        let in_game_date = match (self.in_game_date, &current) {
            (Some(date), _) => rules::date_text(&date)?,
            (None, Some(c)) => c.in_game_date.clone(),
            (None, None) => return Err(required("in_game_date")),
        };
        let title = match (self.title, &current) {
            (Some(title), _) => Name::parse("title", &title)?.into_string(),
            (None, Some(c)) => c.title.clone(),
            (None, None) => return Err(required("title")),
        };
        let position = self
            .position
            .map(|p| rules::in_range("position", p, -rules::MAX_ORDINAL, rules::MAX_ORDINAL))
            .transpose()?;
        let (old_body, old_position) = match current {
            Some(c) => (c.body, c.position),
            None => (None, None),
        };
        Ok(ChildData::Timeline(TimelineFields {
            in_game_date,
            title,
            body: rich_patch("body", self.body, old_body)?,
            position: position.or(old_position),
        }))
    }
}
