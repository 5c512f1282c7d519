//! Campaigns: the tabletop campaign manager's records, their members and their four kinds of
//! children (sessions, NPCs, maps, timeline entries), behind [`CampaignRepository`].
//!
//! One implementation serves both backends: the statements are written once in the dialect
//! both accept (`$N` parameters, which sqlx also binds on SQLite by number), and a macro
//! implements the trait for [`SqliteDatabase`](crate::sqlite::SqliteDatabase) and
//! [`PostgresDatabase`](crate::postgres::PostgresDatabase), differing only in how a write
//! transaction begins (SQLite takes the write lock up front) and in the row lock PostgreSQL
//! takes on the campaign while a limit is checked.
//!
//! Every updatable row carries a `version`; updates name the version they were computed from
//! and fail with [`StorageError::Conflict`] on [`STALE_VERSION`] when another write got there
//! first. Pages are keyset pages over an index ([`KeyCursor`]), so inserts between two pages
//! neither repeat nor skip a row.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth_domain::campaign::{ChildKind, Role, SessionStatus};
use serde::Serialize;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StorageError;

/// The `constraint` of the conflict an update with a stale version gets.
pub const STALE_VERSION: &str = "stale_version";
/// The `constraint` of the conflict a user at their campaign limit gets.
pub const CAMPAIGN_LIMIT: &str = "campaigns_per_user_limit";
/// The `constraint` of the conflict a campaign at its limit for a kind of child gets.
pub const CHILD_LIMIT: &str = "children_per_campaign_limit";
/// The `constraint` of the conflict a second session with one number gets.
pub const SESSION_NUMBER: &str = "campaign_sessions_number_key";

/// A campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Campaign {
    /// Its id.
    pub id: Uuid,
    /// The user who created it: a game master who cannot be removed.
    pub owner_id: Uuid,
    /// 1 to 255 characters.
    pub name: String,
    /// Sanitised HTML.
    pub description: Option<String>,
    /// Incremented by every update: the ETag.
    pub version: i64,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A campaign to create; its owner becomes its first game master.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    /// Its id (UUIDv7, so pages in id order are in creation order).
    pub id: Uuid,
    /// The creator.
    pub owner_id: Uuid,
    /// Validated name.
    pub name: String,
    /// Sanitised description.
    pub description: Option<String>,
}

/// A member of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The user.
    pub user_id: Uuid,
    /// Their username.
    pub username: String,
    /// What they may do.
    pub role: Role,
    /// When they joined.
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
}

/// A session's fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionFields {
    /// Unique per campaign; `None` on creation takes the next number.
    pub number: Option<i64>,
    /// The title.
    pub title: String,
    /// Where it stands.
    pub status: SessionStatus,
    /// When it is to be played.
    #[serde(with = "time::serde::rfc3339::option")]
    pub scheduled_at: Option<OffsetDateTime>,
    /// Sanitised HTML.
    pub notes: Option<String>,
}

/// An NPC's fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NpcFields {
    /// The name.
    pub name: String,
    /// Sanitised HTML.
    pub description: Option<String>,
    /// Free tags.
    pub tags: Vec<String>,
    /// A JSON object of at most 16 KiB.
    pub stats: serde_json::Value,
    /// Hidden from players.
    pub gm_only: bool,
}

/// A map's fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapFields {
    /// The name.
    pub name: String,
    /// An https URL.
    pub image_url: String,
    /// Pixels per grid cell.
    pub grid_size: i64,
    /// A JSON array of at most 64 KiB.
    pub markers: serde_json::Value,
    /// Hidden from players.
    pub gm_only: bool,
}

/// A timeline entry's fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineFields {
    /// The in-game date, as free text.
    pub in_game_date: String,
    /// The title.
    pub title: String,
    /// Sanitised HTML.
    pub body: Option<String>,
    /// Entries are listed by position; `None` on creation puts the entry last.
    pub position: Option<i64>,
}

/// The fields of a child record, by kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChildData {
    /// A session.
    Session(SessionFields),
    /// An NPC.
    Npc(NpcFields),
    /// A map.
    Map(MapFields),
    /// A timeline entry.
    Timeline(TimelineFields),
}

impl ChildData {
    /// Its kind.
    pub fn kind(&self) -> ChildKind {
        match self {
            Self::Session(_) => ChildKind::Session,
            Self::Npc(_) => ChildKind::Npc,
            Self::Map(_) => ChildKind::Map,
            Self::Timeline(_) => ChildKind::Timeline,
        }
    }

    /// Whether players may not see it.
    pub fn gm_only(&self) -> bool {
        match self {
            Self::Npc(npc) => npc.gm_only,
            Self::Map(map) => map.gm_only,
            Self::Session(_) | Self::Timeline(_) => false,
        }
    }
}

/// A child record of a campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Child {
    /// Its id.
    pub id: Uuid,
    /// Its campaign.
    pub campaign_id: Uuid,
    /// Its fields.
    #[serde(flatten)]
    pub data: ChildData,
    /// Incremented by every update: the ETag.
    pub version: i64,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Child {
    /// The position in its list, as its cursor holds it: the session number, the timeline
    /// position, 0 for kinds listed by id alone.
    fn sort_key(&self) -> i64 {
        match &self.data {
            ChildData::Session(s) => s.number.unwrap_or(0),
            ChildData::Timeline(t) => t.position.unwrap_or(0),
            ChildData::Npc(_) | ChildData::Map(_) => 0,
        }
    }
}

/// An opaque keyset cursor over a list ordered by `(key, id)`: URL-safe base64 of both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCursor {
    /// The sort key of the last row served (0 where the list is ordered by id alone).
    pub key: i64,
    /// The id of the last row served.
    pub id: Uuid,
}

/// A cursor string that Hearth did not issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidKeyCursor;

impl KeyCursor {
    /// The opaque text form.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("k:{}:{}", self.key, self.id.simple()))
    }

    /// Parses a cursor issued by [`KeyCursor::encode`].
    ///
    /// # Errors
    /// [`InvalidKeyCursor`] for anything else.
    pub fn decode(text: &str) -> Result<Self, InvalidKeyCursor> {
        if text.len() > 128 {
            return Err(InvalidKeyCursor);
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| InvalidKeyCursor)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| InvalidKeyCursor)?;
        let rest = text.strip_prefix("k:").ok_or(InvalidKeyCursor)?;
        let (key, id) = rest.split_once(':').ok_or(InvalidKeyCursor)?;
        Ok(Self {
            key: key.parse().map_err(|_| InvalidKeyCursor)?,
            id: Uuid::try_parse(id).map_err(|_| InvalidKeyCursor)?,
        })
    }
}

impl Serialize for KeyCursor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

/// One page of a list and the cursor of the next.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyPage<T> {
    /// The rows, in list order.
    pub items: Vec<T>,
    /// Pass to get the next page; `None` on the last page.
    pub next_cursor: Option<KeyCursor>,
}

/// A campaign as one of its members sees it in their list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberCampaign {
    /// The campaign.
    #[serde(flatten)]
    pub campaign: Campaign,
    /// The member's role in it.
    pub role: Role,
}

/// Which page of a campaign's children to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildQuery {
    /// The kind.
    pub kind: ChildKind,
    /// Start after this cursor; `None` for the first page.
    pub after: Option<KeyCursor>,
    /// Page size, 1 to 100.
    pub limit: u32,
    /// Whether `gm_only` rows are included (game masters) or skipped (players).
    pub include_gm_only: bool,
}

/// Campaigns, their members and their children.
#[async_trait]
pub trait CampaignRepository: Send + Sync {
    /// Creates a campaign with its owner as its first game master, in one transaction,
    /// unless the owner already owns `max_owned` campaigns.
    ///
    /// # Errors
    /// [`StorageError::Conflict`] on [`CAMPAIGN_LIMIT`]; [`StorageError::NotFound`] for an
    /// unknown owner.
    async fn create_campaign(
        &self,
        new: NewCampaign,
        max_owned: u32,
    ) -> Result<Campaign, StorageError>;

    /// A campaign by id.
    ///
    /// # Errors
    /// When the query fails.
    async fn campaign(&self, id: Uuid) -> Result<Option<Campaign>, StorageError>;

    /// The user's role in the campaign; `None` when they are not a member (or there is no
    /// such campaign).
    ///
    /// # Errors
    /// When the query fails.
    async fn membership(&self, campaign: Uuid, user: Uuid) -> Result<Option<Role>, StorageError>;

    /// The campaigns the user owns or joined, in id (creation) order.
    ///
    /// # Errors
    /// When the query fails.
    async fn campaigns_of(
        &self,
        user: Uuid,
        after: Option<KeyCursor>,
        limit: u32,
    ) -> Result<KeyPage<MemberCampaign>, StorageError>;

    /// Replaces a campaign's name and description if its version is still `expected`.
    ///
    /// # Errors
    /// [`StorageError::NotFound`]; [`StorageError::Conflict`] on [`STALE_VERSION`].
    async fn update_campaign(
        &self,
        id: Uuid,
        expected: i64,
        name: &str,
        description: Option<&str>,
    ) -> Result<Campaign, StorageError>;

    /// Deletes a campaign with its members and children; `false` when there was none.
    ///
    /// # Errors
    /// When the statement fails.
    async fn delete_campaign(&self, id: Uuid) -> Result<bool, StorageError>;

    /// Adds the user with this username (case-insensitive) to the campaign, or changes the
    /// role of a member.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when there is no such user or campaign.
    async fn add_member(
        &self,
        campaign: Uuid,
        username: &str,
        role: Role,
    ) -> Result<Member, StorageError>;

    /// Removes a member; `false` when they were not one.
    ///
    /// # Errors
    /// When the statement fails.
    async fn remove_member(&self, campaign: Uuid, user: Uuid) -> Result<bool, StorageError>;

    /// Every member, in the order they joined.
    ///
    /// # Errors
    /// When the query fails.
    async fn members(&self, campaign: Uuid) -> Result<Vec<Member>, StorageError>;

    /// Creates a child record unless the campaign holds `max_per_kind` of its kind already.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for an unknown campaign; [`StorageError::Conflict`] on
    /// [`CHILD_LIMIT`] or, for a session, [`SESSION_NUMBER`].
    async fn create_child(
        &self,
        campaign: Uuid,
        id: Uuid,
        data: &ChildData,
        max_per_kind: u32,
    ) -> Result<Child, StorageError>;

    /// One child record of the campaign.
    ///
    /// # Errors
    /// When the query fails.
    async fn child(
        &self,
        campaign: Uuid,
        kind: ChildKind,
        id: Uuid,
    ) -> Result<Option<Child>, StorageError>;

    /// One page of a campaign's children of one kind: sessions by number, timeline entries by
    /// position, NPCs and maps by id (creation order).
    ///
    /// # Errors
    /// When the query fails.
    async fn children(
        &self,
        campaign: Uuid,
        query: ChildQuery,
    ) -> Result<KeyPage<Child>, StorageError>;

    /// Replaces a child's fields if its version is still `expected`.
    ///
    /// # Errors
    /// [`StorageError::NotFound`]; [`StorageError::Conflict`] on [`STALE_VERSION`] or
    /// [`SESSION_NUMBER`].
    async fn update_child(
        &self,
        campaign: Uuid,
        id: Uuid,
        expected: i64,
        data: &ChildData,
    ) -> Result<Child, StorageError>;

    /// Deletes a child record; `false` when there was none.
    ///
    /// # Errors
    /// When the statement fails.
    async fn delete_child(
        &self,
        campaign: Uuid,
        kind: ChildKind,
        id: Uuid,
    ) -> Result<bool, StorageError>;
}

/// The largest page served.
pub const MAX_PAGE: u32 = 100;

#[derive(sqlx::FromRow)]
struct MemberCampaignRow {
    id: Uuid,
    owner_id: Uuid,
    name: String,
    description: Option<String>,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    role: String,
}

impl MemberCampaignRow {
    fn into_model(self) -> Result<MemberCampaign, StorageError> {
        Ok(MemberCampaign {
            role: role(&self.role)?,
            campaign: Campaign {
                id: self.id,
                owner_id: self.owner_id,
                name: self.name,
                description: self.description,
                version: self.version,
                created_at: self.created_at,
                updated_at: self.updated_at,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    user_id: Uuid,
    username: String,
    role: String,
    added_at: OffsetDateTime,
}

impl MemberRow {
    fn into_model(self) -> Result<Member, StorageError> {
        Ok(Member {
            user_id: self.user_id,
            username: self.username,
            role: role(&self.role)?,
            added_at: self.added_at,
        })
    }
}

fn role(text: &str) -> Result<Role, StorageError> {
    text.parse()
        .map_err(|_| StorageError::Corrupt(format!("unknown campaign role {text:?}")))
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    campaign_id: Uuid,
    number: i64,
    title: String,
    status: String,
    scheduled_at: Option<OffsetDateTime>,
    notes: Option<String>,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct NpcRow {
    id: Uuid,
    campaign_id: Uuid,
    name: String,
    description: Option<String>,
    tags: Json<Vec<String>>,
    stats: Json<serde_json::Value>,
    gm_only: bool,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct MapRow {
    id: Uuid,
    campaign_id: Uuid,
    name: String,
    image_url: String,
    grid_size: i64,
    markers: Json<serde_json::Value>,
    gm_only: bool,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct TimelineRow {
    id: Uuid,
    campaign_id: Uuid,
    in_game_date: String,
    title: String,
    body: Option<String>,
    position: i64,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

/// Builds a [`Child`] from a row's common columns and its fields.
macro_rules! child_of {
    ($row:ident, $data:expr) => {
        Child {
            id: $row.id,
            campaign_id: $row.campaign_id,
            version: $row.version,
            created_at: $row.created_at,
            updated_at: $row.updated_at,
            data: $data,
        }
    };
}

impl TryFrom<SessionRow> for Child {
    type Error = StorageError;

    fn try_from(row: SessionRow) -> Result<Self, StorageError> {
        let status = row
            .status
            .parse()
            .map_err(|_| StorageError::Corrupt(format!("unknown session status {}", row.status)))?;
        Ok(child_of!(
            row,
            ChildData::Session(SessionFields {
                number: Some(row.number),
                title: row.title,
                status,
                scheduled_at: row.scheduled_at,
                notes: row.notes,
            })
        ))
    }
}

impl From<NpcRow> for Child {
    fn from(row: NpcRow) -> Self {
        child_of!(
            row,
            ChildData::Npc(NpcFields {
                name: row.name,
                description: row.description,
                tags: row.tags.0,
                stats: row.stats.0,
                gm_only: row.gm_only,
            })
        )
    }
}

impl From<MapRow> for Child {
    fn from(row: MapRow) -> Self {
        child_of!(
            row,
            ChildData::Map(MapFields {
                name: row.name,
                image_url: row.image_url,
                grid_size: row.grid_size,
                markers: row.markers.0,
                gm_only: row.gm_only,
            })
        )
    }
}

impl From<TimelineRow> for Child {
    fn from(row: TimelineRow) -> Self {
        child_of!(
            row,
            ChildData::Timeline(TimelineFields {
                in_game_date: row.in_game_date,
                title: row.title,
                body: row.body,
                position: Some(row.position),
            })
        )
    }
}

/// Cuts the extra row a page query fetched and makes the next cursor from the last row kept.
fn into_page<T>(mut items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> KeyCursor) -> KeyPage<T> {
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(cursor)
    } else {
        None
    };
    KeyPage { items, next_cursor }
}

fn child_cursor(child: &Child) -> KeyCursor {
    KeyCursor {
        key: child.sort_key(),
        id: child.id,
    }
}

/// The statements, one per kind and operation, in the dialect both backends accept. Each
/// list statement reads one index in order (see the migration).
mod sql {
    pub(super) const INSERT_CAMPAIGN: &str = "INSERT INTO campaigns (id, owner_id, name, \
         description, version, created_at, updated_at) VALUES ($1, $2, $3, $4, 1, $5, $5) \
         RETURNING id, owner_id, name, description, version, created_at, updated_at";
    pub(super) const INSERT_OWNER: &str = "INSERT INTO campaign_members (campaign_id, user_id, \
         role, added_at) VALUES ($1, $2, 'gm', $3)";
    pub(super) const COUNT_OWNED: &str = "SELECT COUNT(*) FROM campaigns WHERE owner_id = $1";
    pub(super) const CAMPAIGN: &str = "SELECT id, owner_id, name, description, version, \
         created_at, updated_at FROM campaigns WHERE id = $1";
    pub(super) const MEMBERSHIP: &str =
        "SELECT role FROM campaign_members WHERE campaign_id = $1 AND user_id = $2";
    pub(super) const CAMPAIGNS_OF: &str = "SELECT c.id, c.owner_id, c.name, c.description, \
         c.version, c.created_at, c.updated_at, m.role FROM campaign_members m \
         JOIN campaigns c ON c.id = m.campaign_id \
         WHERE m.user_id = $1 AND m.campaign_id > $2 ORDER BY m.campaign_id LIMIT $3";
    pub(super) const UPDATE_CAMPAIGN: &str = "UPDATE campaigns SET name = $3, description = $4, \
         version = version + 1, updated_at = $5 WHERE id = $1 AND version = $2 \
         RETURNING id, owner_id, name, description, version, created_at, updated_at";
    pub(super) const CAMPAIGN_VERSION: &str = "SELECT version FROM campaigns WHERE id = $1";
    pub(super) const DELETE_CAMPAIGN: &str = "DELETE FROM campaigns WHERE id = $1";
    pub(super) const UPSERT_MEMBER: &str = "INSERT INTO campaign_members (campaign_id, user_id, \
         role, added_at) SELECT $1, u.id, $3, $4 FROM users u WHERE lower(u.username) = $2 \
         ON CONFLICT (campaign_id, user_id) DO UPDATE SET role = excluded.role \
         RETURNING user_id";
    pub(super) const MEMBER: &str = "SELECT m.user_id, u.username, m.role, m.added_at \
         FROM campaign_members m JOIN users u ON u.id = m.user_id \
         WHERE m.campaign_id = $1 AND m.user_id = $2";
    pub(super) const MEMBERS: &str = "SELECT m.user_id, u.username, m.role, m.added_at \
         FROM campaign_members m JOIN users u ON u.id = m.user_id \
         WHERE m.campaign_id = $1 ORDER BY m.added_at, m.user_id";
    pub(super) const REMOVE_MEMBER: &str =
        "DELETE FROM campaign_members WHERE campaign_id = $1 AND user_id = $2";

    pub(super) const INSERT_SESSION: &str = "INSERT INTO campaign_sessions (id, campaign_id, \
         number, title, status, scheduled_at, notes, version, created_at, updated_at) \
         VALUES ($1, $2, COALESCE($3, (SELECT COALESCE(MAX(number), 0) + 1 \
         FROM campaign_sessions WHERE campaign_id = $2)), $4, $5, $6, $7, 1, $8, $8) \
         RETURNING id, campaign_id, number, title, status, scheduled_at, notes, version, \
         created_at, updated_at";
    pub(super) const INSERT_NPC: &str = "INSERT INTO campaign_npcs (id, campaign_id, name, \
         description, tags, stats, gm_only, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8) \
         RETURNING id, campaign_id, name, description, tags, stats, gm_only, version, \
         created_at, updated_at";
    pub(super) const INSERT_MAP: &str = "INSERT INTO campaign_maps (id, campaign_id, name, \
         image_url, grid_size, markers, gm_only, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8) \
         RETURNING id, campaign_id, name, image_url, grid_size, markers, gm_only, version, \
         created_at, updated_at";
    pub(super) const INSERT_TIMELINE: &str = "INSERT INTO campaign_timeline (id, campaign_id, \
         in_game_date, title, body, position, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, COALESCE($6, (SELECT COALESCE(MAX(position), 0) + 1 \
         FROM campaign_timeline WHERE campaign_id = $2)), 1, $7, $7) \
         RETURNING id, campaign_id, in_game_date, title, body, position, version, \
         created_at, updated_at";

    pub(super) const UPDATE_SESSION: &str = "UPDATE campaign_sessions SET \
         number = COALESCE($4, number), title = $5, status = $6, scheduled_at = $7, notes = $8, \
         version = version + 1, updated_at = $9 \
         WHERE campaign_id = $1 AND id = $2 AND version = $3 \
         RETURNING id, campaign_id, number, title, status, scheduled_at, notes, version, \
         created_at, updated_at";
    pub(super) const UPDATE_NPC: &str = "UPDATE campaign_npcs SET name = $4, description = $5, \
         tags = $6, stats = $7, gm_only = $8, version = version + 1, updated_at = $9 \
         WHERE campaign_id = $1 AND id = $2 AND version = $3 \
         RETURNING id, campaign_id, name, description, tags, stats, gm_only, version, \
         created_at, updated_at";
    pub(super) const UPDATE_MAP: &str = "UPDATE campaign_maps SET name = $4, image_url = $5, \
         grid_size = $6, markers = $7, gm_only = $8, version = version + 1, updated_at = $9 \
         WHERE campaign_id = $1 AND id = $2 AND version = $3 \
         RETURNING id, campaign_id, name, image_url, grid_size, markers, gm_only, version, \
         created_at, updated_at";
    pub(super) const UPDATE_TIMELINE: &str = "UPDATE campaign_timeline SET in_game_date = $4, \
         title = $5, body = $6, position = COALESCE($7, position), version = version + 1, \
         updated_at = $8 WHERE campaign_id = $1 AND id = $2 AND version = $3 \
         RETURNING id, campaign_id, in_game_date, title, body, position, version, \
         created_at, updated_at";

    pub(super) const SESSION: &str = "SELECT id, campaign_id, number, title, status, \
         scheduled_at, notes, version, created_at, updated_at FROM campaign_sessions \
         WHERE campaign_id = $1 AND id = $2";
    pub(super) const NPC: &str = "SELECT id, campaign_id, name, description, tags, stats, \
         gm_only, version, created_at, updated_at FROM campaign_npcs \
         WHERE campaign_id = $1 AND id = $2";
    pub(super) const MAP: &str = "SELECT id, campaign_id, name, image_url, grid_size, markers, \
         gm_only, version, created_at, updated_at FROM campaign_maps \
         WHERE campaign_id = $1 AND id = $2";
    pub(super) const TIMELINE: &str = "SELECT id, campaign_id, in_game_date, title, body, \
         position, version, created_at, updated_at FROM campaign_timeline \
         WHERE campaign_id = $1 AND id = $2";

    pub(super) const SESSIONS: &str = "SELECT id, campaign_id, number, title, status, \
         scheduled_at, notes, version, created_at, updated_at FROM campaign_sessions \
         WHERE campaign_id = $1 AND number > $2 ORDER BY number LIMIT $3";
    pub(super) const NPCS: &str = "SELECT id, campaign_id, name, description, tags, stats, \
         gm_only, version, created_at, updated_at FROM campaign_npcs \
         WHERE campaign_id = $1 AND id > $2 ORDER BY id LIMIT $3";
    pub(super) const NPCS_FOR_PLAYERS: &str = "SELECT id, campaign_id, name, description, tags, \
         stats, gm_only, version, created_at, updated_at FROM campaign_npcs \
         WHERE campaign_id = $1 AND id > $2 AND NOT gm_only ORDER BY id LIMIT $3";
    pub(super) const MAPS: &str = "SELECT id, campaign_id, name, image_url, grid_size, markers, \
         gm_only, version, created_at, updated_at FROM campaign_maps \
         WHERE campaign_id = $1 AND id > $2 ORDER BY id LIMIT $3";
    pub(super) const MAPS_FOR_PLAYERS: &str = "SELECT id, campaign_id, name, image_url, \
         grid_size, markers, gm_only, version, created_at, updated_at FROM campaign_maps \
         WHERE campaign_id = $1 AND id > $2 AND NOT gm_only ORDER BY id LIMIT $3";
    pub(super) const TIMELINE_PAGE: &str = "SELECT id, campaign_id, in_game_date, title, body, \
         position, version, created_at, updated_at FROM campaign_timeline \
         WHERE campaign_id = $1 AND (position, id) > ($2, $3) ORDER BY position, id LIMIT $4";

    /// `SELECT version` of a child, by kind.
    pub(super) fn version_of(kind: super::ChildKind) -> &'static str {
        match kind {
            super::ChildKind::Session => {
                "SELECT version FROM campaign_sessions WHERE campaign_id = $1 AND id = $2"
            }
            super::ChildKind::Npc => {
                "SELECT version FROM campaign_npcs WHERE campaign_id = $1 AND id = $2"
            }
            super::ChildKind::Map => {
                "SELECT version FROM campaign_maps WHERE campaign_id = $1 AND id = $2"
            }
            super::ChildKind::Timeline => {
                "SELECT version FROM campaign_timeline WHERE campaign_id = $1 AND id = $2"
            }
        }
    }

    /// `SELECT COUNT(*)` of a campaign's children, by kind.
    pub(super) fn count_of(kind: super::ChildKind) -> &'static str {
        match kind {
            super::ChildKind::Session => {
                "SELECT COUNT(*) FROM campaign_sessions WHERE campaign_id = $1"
            }
            super::ChildKind::Npc => "SELECT COUNT(*) FROM campaign_npcs WHERE campaign_id = $1",
            super::ChildKind::Map => "SELECT COUNT(*) FROM campaign_maps WHERE campaign_id = $1",
            super::ChildKind::Timeline => {
                "SELECT COUNT(*) FROM campaign_timeline WHERE campaign_id = $1"
            }
        }
    }

    /// `DELETE` of a child, by kind.
    pub(super) fn delete_of(kind: super::ChildKind) -> &'static str {
        match kind {
            super::ChildKind::Session => {
                "DELETE FROM campaign_sessions WHERE campaign_id = $1 AND id = $2"
            }
            super::ChildKind::Npc => "DELETE FROM campaign_npcs WHERE campaign_id = $1 AND id = $2",
            super::ChildKind::Map => "DELETE FROM campaign_maps WHERE campaign_id = $1 AND id = $2",
            super::ChildKind::Timeline => {
                "DELETE FROM campaign_timeline WHERE campaign_id = $1 AND id = $2"
            }
        }
    }
}

/// Every list statement by name, for the test that reads their plans (`EXPLAIN`) at scale.
/// Parameters: `$1` the campaign (or the user, for `campaigns`), then the cursor, then the
/// limit, as [`CampaignRepository`] binds them.
#[doc(hidden)]
pub const LIST_STATEMENTS: [(&str, &str); 7] = [
    ("campaigns", sql::CAMPAIGNS_OF),
    ("sessions", sql::SESSIONS),
    ("npcs", sql::NPCS),
    ("npcs_for_players", sql::NPCS_FOR_PLAYERS),
    ("maps", sql::MAPS),
    ("maps_for_players", sql::MAPS_FOR_PLAYERS),
    ("timeline", sql::TIMELINE_PAGE),
];

/// A failed conditional update: the row is gone, or its version moved on.
fn stale_or_missing(version: Option<i64>) -> StorageError {
    match version {
        Some(_) => StorageError::Conflict {
            constraint: STALE_VERSION.to_owned(),
        },
        None => StorageError::NotFound,
    }
}

/// Maps a unique violation on a session's number to [`SESSION_NUMBER`] on both backends
/// (SQLite names the index's columns instead of the constraint).
fn session_conflict(error: StorageError) -> StorageError {
    match error {
        StorageError::Conflict { constraint } if constraint.contains("number") => {
            StorageError::Conflict {
                constraint: SESSION_NUMBER.to_owned(),
            }
        }
        other => other,
    }
}

/// The largest i64 the limit checks compare with.
fn limit_of(max: u32) -> i64 {
    i64::from(max)
}

/// Implements [`CampaignRepository`] for a backend. `$begin` is the statement that opens a
/// write transaction; `$lock` is appended to the campaign (or owner) row read that guards a
/// limit check, so two concurrent creations cannot both pass it.
macro_rules! campaign_repository {
    ($backend:ty, $begin:literal, $lock_campaign:literal, $lock_user:literal) => {
        #[async_trait::async_trait]
        impl $crate::campaign::CampaignRepository for $backend {
            #[tracing::instrument(skip_all, fields(campaign_id = %new.id), err)]
            async fn create_campaign(
                &self,
                new: $crate::campaign::NewCampaign,
                max_owned: u32,
            ) -> Result<$crate::campaign::Campaign, $crate::StorageError> {
                let now = time::OffsetDateTime::now_utc();
                let mut tx = self.pool().begin_with($begin).await?;
                let owner: Option<uuid::Uuid> = sqlx::query_scalar($lock_user)
                    .bind(new.owner_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                owner.ok_or($crate::StorageError::NotFound)?;
                let owned: i64 = sqlx::query_scalar(sql::COUNT_OWNED)
                    .bind(new.owner_id)
                    .fetch_one(&mut *tx)
                    .await?;
                if owned >= limit_of(max_owned) {
                    return Err($crate::StorageError::Conflict {
                        constraint: CAMPAIGN_LIMIT.to_owned(),
                    });
                }
                let campaign: Campaign = sqlx::query_as(sql::INSERT_CAMPAIGN)
                    .bind(new.id)
                    .bind(new.owner_id)
                    .bind(&new.name)
                    .bind(new.description.as_deref())
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(sql::INSERT_OWNER)
                    .bind(new.id)
                    .bind(new.owner_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(campaign)
            }

            async fn campaign(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::campaign::Campaign>, $crate::StorageError> {
                Ok(sqlx::query_as(sql::CAMPAIGN)
                    .bind(id)
                    .fetch_optional(self.pool())
                    .await?)
            }

            async fn membership(
                &self,
                campaign: uuid::Uuid,
                user: uuid::Uuid,
            ) -> Result<Option<hearth_domain::campaign::Role>, $crate::StorageError> {
                let text: Option<String> = sqlx::query_scalar(sql::MEMBERSHIP)
                    .bind(campaign)
                    .bind(user)
                    .fetch_optional(self.pool())
                    .await?;
                text.as_deref().map(role).transpose()
            }

            async fn campaigns_of(
                &self,
                user: uuid::Uuid,
                after: Option<$crate::campaign::KeyCursor>,
                limit: u32,
            ) -> Result<
                $crate::campaign::KeyPage<$crate::campaign::MemberCampaign>,
                $crate::StorageError,
            > {
                let limit = limit.clamp(1, MAX_PAGE);
                let rows: Vec<MemberCampaignRow> = sqlx::query_as(sql::CAMPAIGNS_OF)
                    .bind(user)
                    .bind(after.map_or(uuid::Uuid::nil(), |c| c.id))
                    .bind(i64::from(limit) + 1)
                    .fetch_all(self.pool())
                    .await?;
                let items = rows
                    .into_iter()
                    .map(MemberCampaignRow::into_model)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(into_page(items, limit, |c: &MemberCampaign| KeyCursor {
                    key: 0,
                    id: c.campaign.id,
                }))
            }

            #[tracing::instrument(skip_all, fields(campaign_id = %id), err)]
            async fn update_campaign(
                &self,
                id: uuid::Uuid,
                expected: i64,
                name: &str,
                description: Option<&str>,
            ) -> Result<$crate::campaign::Campaign, $crate::StorageError> {
                let updated: Option<Campaign> = sqlx::query_as(sql::UPDATE_CAMPAIGN)
                    .bind(id)
                    .bind(expected)
                    .bind(name)
                    .bind(description)
                    .bind(time::OffsetDateTime::now_utc())
                    .fetch_optional(self.pool())
                    .await?;
                match updated {
                    Some(campaign) => Ok(campaign),
                    None => {
                        let version: Option<i64> = sqlx::query_scalar(sql::CAMPAIGN_VERSION)
                            .bind(id)
                            .fetch_optional(self.pool())
                            .await?;
                        Err(stale_or_missing(version))
                    }
                }
            }

            #[tracing::instrument(skip_all, fields(campaign_id = %id), err)]
            async fn delete_campaign(&self, id: uuid::Uuid) -> Result<bool, $crate::StorageError> {
                let done = sqlx::query(sql::DELETE_CAMPAIGN)
                    .bind(id)
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            #[tracing::instrument(skip_all, fields(campaign_id = %campaign), err)]
            async fn add_member(
                &self,
                campaign: uuid::Uuid,
                username: &str,
                role: hearth_domain::campaign::Role,
            ) -> Result<$crate::campaign::Member, $crate::StorageError> {
                let mut tx = self.pool().begin_with($begin).await?;
                let exists: Option<uuid::Uuid> = sqlx::query_scalar($lock_campaign)
                    .bind(campaign)
                    .fetch_optional(&mut *tx)
                    .await?;
                exists.ok_or($crate::StorageError::NotFound)?;
                let user: Option<uuid::Uuid> = sqlx::query_scalar(sql::UPSERT_MEMBER)
                    .bind(campaign)
                    .bind(username.trim().to_lowercase())
                    .bind(role.as_str())
                    .bind(time::OffsetDateTime::now_utc())
                    .fetch_optional(&mut *tx)
                    .await?;
                let user = user.ok_or($crate::StorageError::NotFound)?;
                let row: MemberRow = sqlx::query_as(sql::MEMBER)
                    .bind(campaign)
                    .bind(user)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                row.into_model()
            }

            #[tracing::instrument(skip_all, fields(campaign_id = %campaign), err)]
            async fn remove_member(
                &self,
                campaign: uuid::Uuid,
                user: uuid::Uuid,
            ) -> Result<bool, $crate::StorageError> {
                let done = sqlx::query(sql::REMOVE_MEMBER)
                    .bind(campaign)
                    .bind(user)
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn members(
                &self,
                campaign: uuid::Uuid,
            ) -> Result<Vec<$crate::campaign::Member>, $crate::StorageError> {
                let rows: Vec<MemberRow> = sqlx::query_as(sql::MEMBERS)
                    .bind(campaign)
                    .fetch_all(self.pool())
                    .await?;
                rows.into_iter().map(MemberRow::into_model).collect()
            }

            #[tracing::instrument(skip_all, fields(campaign_id = %campaign, child_id = %id), err)]
            async fn create_child(
                &self,
                campaign: uuid::Uuid,
                id: uuid::Uuid,
                data: &$crate::campaign::ChildData,
                max_per_kind: u32,
            ) -> Result<$crate::campaign::Child, $crate::StorageError> {
                let now = time::OffsetDateTime::now_utc();
                let kind = data.kind();
                let mut tx = self.pool().begin_with($begin).await?;
                let exists: Option<uuid::Uuid> = sqlx::query_scalar($lock_campaign)
                    .bind(campaign)
                    .fetch_optional(&mut *tx)
                    .await?;
                exists.ok_or($crate::StorageError::NotFound)?;
                let count: i64 = sqlx::query_scalar(sql::count_of(kind))
                    .bind(campaign)
                    .fetch_one(&mut *tx)
                    .await?;
                if count >= limit_of(max_per_kind) {
                    return Err($crate::StorageError::Conflict {
                        constraint: CHILD_LIMIT.to_owned(),
                    });
                }
                let child: Child = match data {
                    ChildData::Session(s) => sqlx::query_as::<_, SessionRow>(sql::INSERT_SESSION)
                        .bind(id)
                        .bind(campaign)
                        .bind(s.number)
                        .bind(&s.title)
                        .bind(s.status.as_str())
                        .bind(s.scheduled_at)
                        .bind(s.notes.as_deref())
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| session_conflict(e.into()))?
                        .try_into()?,
                    ChildData::Npc(n) => sqlx::query_as::<_, NpcRow>(sql::INSERT_NPC)
                        .bind(id)
                        .bind(campaign)
                        .bind(&n.name)
                        .bind(n.description.as_deref())
                        .bind(sqlx::types::Json(&n.tags))
                        .bind(sqlx::types::Json(&n.stats))
                        .bind(n.gm_only)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?
                        .into(),
                    ChildData::Map(m) => sqlx::query_as::<_, MapRow>(sql::INSERT_MAP)
                        .bind(id)
                        .bind(campaign)
                        .bind(&m.name)
                        .bind(&m.image_url)
                        .bind(m.grid_size)
                        .bind(sqlx::types::Json(&m.markers))
                        .bind(m.gm_only)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?
                        .into(),
                    ChildData::Timeline(t) => {
                        sqlx::query_as::<_, TimelineRow>(sql::INSERT_TIMELINE)
                            .bind(id)
                            .bind(campaign)
                            .bind(&t.in_game_date)
                            .bind(&t.title)
                            .bind(t.body.as_deref())
                            .bind(t.position)
                            .bind(now)
                            .fetch_one(&mut *tx)
                            .await?
                            .into()
                    }
                };
                tx.commit().await?;
                Ok(child)
            }

            async fn child(
                &self,
                campaign: uuid::Uuid,
                kind: hearth_domain::campaign::ChildKind,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::campaign::Child>, $crate::StorageError> {
                let pool = self.pool();
                Ok(match kind {
                    ChildKind::Session => sqlx::query_as::<_, SessionRow>(sql::SESSION)
                        .bind(campaign)
                        .bind(id)
                        .fetch_optional(pool)
                        .await?
                        .map(Child::try_from)
                        .transpose()?,
                    ChildKind::Npc => sqlx::query_as::<_, NpcRow>(sql::NPC)
                        .bind(campaign)
                        .bind(id)
                        .fetch_optional(pool)
                        .await?
                        .map(Child::from),
                    ChildKind::Map => sqlx::query_as::<_, MapRow>(sql::MAP)
                        .bind(campaign)
                        .bind(id)
                        .fetch_optional(pool)
                        .await?
                        .map(Child::from),
                    ChildKind::Timeline => sqlx::query_as::<_, TimelineRow>(sql::TIMELINE)
                        .bind(campaign)
                        .bind(id)
                        .fetch_optional(pool)
                        .await?
                        .map(Child::from),
                })
            }

            async fn children(
                &self,
                campaign: uuid::Uuid,
                query: $crate::campaign::ChildQuery,
            ) -> Result<$crate::campaign::KeyPage<$crate::campaign::Child>, $crate::StorageError>
            {
                let pool = self.pool();
                let limit = query.limit.clamp(1, MAX_PAGE);
                let fetch = i64::from(limit) + 1;
                let after_id = query.after.map_or(uuid::Uuid::nil(), |c| c.id);
                let items: Vec<Child> = match query.kind {
                    ChildKind::Session => sqlx::query_as::<_, SessionRow>(sql::SESSIONS)
                        .bind(campaign)
                        .bind(query.after.map_or(0, |c| c.key))
                        .bind(fetch)
                        .fetch_all(pool)
                        .await?
                        .into_iter()
                        .map(Child::try_from)
                        .collect::<Result<_, _>>()?,
                    ChildKind::Npc => {
                        let statement = if query.include_gm_only {
                            sql::NPCS
                        } else {
                            sql::NPCS_FOR_PLAYERS
                        };
                        sqlx::query_as::<_, NpcRow>(statement)
                            .bind(campaign)
                            .bind(after_id)
                            .bind(fetch)
                            .fetch_all(pool)
                            .await?
                            .into_iter()
                            .map(Child::from)
                            .collect()
                    }
                    ChildKind::Map => {
                        let statement = if query.include_gm_only {
                            sql::MAPS
                        } else {
                            sql::MAPS_FOR_PLAYERS
                        };
                        sqlx::query_as::<_, MapRow>(statement)
                            .bind(campaign)
                            .bind(after_id)
                            .bind(fetch)
                            .fetch_all(pool)
                            .await?
                            .into_iter()
                            .map(Child::from)
                            .collect()
                    }
                    ChildKind::Timeline => sqlx::query_as::<_, TimelineRow>(sql::TIMELINE_PAGE)
                        .bind(campaign)
                        .bind(query.after.map_or(i64::MIN, |c| c.key))
                        .bind(after_id)
                        .bind(fetch)
                        .fetch_all(pool)
                        .await?
                        .into_iter()
                        .map(Child::from)
                        .collect(),
                };
                Ok(into_page(items, limit, child_cursor))
            }

            #[tracing::instrument(skip_all, fields(campaign_id = %campaign, child_id = %id), err)]
            async fn update_child(
                &self,
                campaign: uuid::Uuid,
                id: uuid::Uuid,
                expected: i64,
                data: &$crate::campaign::ChildData,
            ) -> Result<$crate::campaign::Child, $crate::StorageError> {
                let pool = self.pool();
                let now = time::OffsetDateTime::now_utc();
                let updated: Option<Child> = match data {
                    ChildData::Session(s) => sqlx::query_as::<_, SessionRow>(sql::UPDATE_SESSION)
                        .bind(campaign)
                        .bind(id)
                        .bind(expected)
                        .bind(s.number)
                        .bind(&s.title)
                        .bind(s.status.as_str())
                        .bind(s.scheduled_at)
                        .bind(s.notes.as_deref())
                        .bind(now)
                        .fetch_optional(pool)
                        .await
                        .map_err(|e| session_conflict(e.into()))?
                        .map(Child::try_from)
                        .transpose()?,
                    ChildData::Npc(n) => sqlx::query_as::<_, NpcRow>(sql::UPDATE_NPC)
                        .bind(campaign)
                        .bind(id)
                        .bind(expected)
                        .bind(&n.name)
                        .bind(n.description.as_deref())
                        .bind(sqlx::types::Json(&n.tags))
                        .bind(sqlx::types::Json(&n.stats))
                        .bind(n.gm_only)
                        .bind(now)
                        .fetch_optional(pool)
                        .await?
                        .map(Child::from),
                    ChildData::Map(m) => sqlx::query_as::<_, MapRow>(sql::UPDATE_MAP)
                        .bind(campaign)
                        .bind(id)
                        .bind(expected)
                        .bind(&m.name)
                        .bind(&m.image_url)
                        .bind(m.grid_size)
                        .bind(sqlx::types::Json(&m.markers))
                        .bind(m.gm_only)
                        .bind(now)
                        .fetch_optional(pool)
                        .await?
                        .map(Child::from),
                    ChildData::Timeline(t) => {
                        sqlx::query_as::<_, TimelineRow>(sql::UPDATE_TIMELINE)
                            .bind(campaign)
                            .bind(id)
                            .bind(expected)
                            .bind(&t.in_game_date)
                            .bind(&t.title)
                            .bind(t.body.as_deref())
                            .bind(t.position)
                            .bind(now)
                            .fetch_optional(pool)
                            .await?
                            .map(Child::from)
                    }
                };
                match updated {
                    Some(child) => Ok(child),
                    None => {
                        let version: Option<i64> = sqlx::query_scalar(sql::version_of(data.kind()))
                            .bind(campaign)
                            .bind(id)
                            .fetch_optional(pool)
                            .await?;
                        Err(stale_or_missing(version))
                    }
                }
            }

            #[tracing::instrument(skip_all, fields(campaign_id = %campaign, child_id = %id), err)]
            async fn delete_child(
                &self,
                campaign: uuid::Uuid,
                kind: hearth_domain::campaign::ChildKind,
                id: uuid::Uuid,
            ) -> Result<bool, $crate::StorageError> {
                let done = sqlx::query(sql::delete_of(kind))
                    .bind(campaign)
                    .bind(id)
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

campaign_repository!(
    crate::sqlite::SqliteDatabase,
    "BEGIN IMMEDIATE",
    "SELECT id FROM campaigns WHERE id = $1",
    "SELECT id FROM users WHERE id = $1"
);
campaign_repository!(
    crate::postgres::PostgresDatabase,
    "BEGIN",
    "SELECT id FROM campaigns WHERE id = $1 FOR UPDATE",
    "SELECT id FROM users WHERE id = $1 FOR UPDATE"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_cursors_round_trip_and_refuse_what_was_not_issued() {
        let cursor = KeyCursor {
            key: -7,
            id: Uuid::now_v7(),
        };
        assert_eq!(KeyCursor::decode(&cursor.encode()), Ok(cursor));
        for bad in [
            "",
            "abc",
            &URL_SAFE_NO_PAD.encode("k:1"),
            &URL_SAFE_NO_PAD.encode("k:x:0190f1c2000070008000000000000000"),
            &URL_SAFE_NO_PAD.encode("k:1:nope"),
        ] {
            assert_eq!(KeyCursor::decode(bad), Err(InvalidKeyCursor), "{bad}");
        }
    }
}
