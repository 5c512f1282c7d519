//! The tabletop campaign manager's use-cases: who may do what to a campaign, the read cache,
//! and the `campaign.changed` pushes.
//!
//! Every call names its actor. A campaign's members are its owner and the users added to it;
//! game masters (`gm`, the owner among them) read and write everything, players read
//! everything not marked `gm_only` and write nothing (403), and anyone else is told the
//! campaign does not exist (404), on every call. Only the owner deletes the campaign; nobody
//! removes or demotes the owner; any member may leave.
//!
//! Reads of a campaign, a child and a page of children are rendered to JSON once per view
//! (`gm` or `player`) and cached ([`cache`]); every write invalidates the campaign's pages
//! before it answers, and then pushes `{"type":"campaign.changed","campaign_id","kind","id"}`
//! to the members' sockets (a change to a `gm_only` record only to game masters).
//!
//! # Layout
//! - [`input`]: the request bodies and how they become valid records (with [`sanitize`]).
//! - [`cache`]: [`cache::PageCache`], in process or in Redis, with hit and miss counters.

pub mod cache;
pub mod input;
pub mod sanitize;

use std::sync::Arc;

use hearth_domain::campaign::{CampaignError, ChildKind, Role};
use hearth_realtime::{Hub, topics};
use hearth_storage::campaign::{
    CAMPAIGN_LIMIT, CHILD_LIMIT, ChildQuery, KeyCursor, MemberCampaign, NewCampaign,
    SESSION_NUMBER, STALE_VERSION,
};
use hearth_storage::{Database, StorageError};
use serde::Serialize;
use uuid::Uuid;

use self::cache::{CACHE_HITS, CACHE_MISSES, PageCache, Rendered};
use self::input::{CampaignInput, ChildInput, MemberInput};

/// Why a campaign call was refused.
#[derive(Debug, thiserror::Error)]
pub enum CampaignFailure {
    /// No such campaign or record, or the actor may not know it exists.
    #[error("not found")]
    NotFound,
    /// A member asked for something their role does not allow.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// An input is invalid; the error names it.
    #[error(transparent)]
    Invalid(#[from] CampaignError),
    /// The `If-Match` version is not the record's current one.
    #[error("the record changed since that version")]
    Stale,
    /// The write conflicts with another record (`field` names the input).
    #[error("{field}: {message}")]
    Conflict {
        /// The input.
        field: &'static str,
        /// What is wrong, for people.
        message: &'static str,
    },
    /// A limit from the `campaigns` settings is reached.
    #[error("limit reached: {0}")]
    Limit(&'static str),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Which version an update was computed from (`If-Match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// `*`: whatever version is current.
    Any,
    /// This version only.
    Version(i64),
}

impl Precondition {
    fn check(self, current: i64) -> Result<i64, CampaignFailure> {
        match self {
            Self::Any => Ok(current),
            Self::Version(v) if v == current => Ok(v),
            Self::Version(_) => Err(CampaignFailure::Stale),
        }
    }
}

/// The `campaigns` limits the use-cases enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignLimits {
    /// Campaigns one user may own.
    pub max_campaigns_per_user: u32,
    /// Records of each kind one campaign may hold.
    pub max_children_per_campaign: u32,
}

/// The campaign use-cases. Cheap to clone.
#[derive(Clone)]
pub struct Campaigns {
    db: Arc<dyn Database>,
    /// `None`: every read goes to the database.
    cache: Option<Arc<dyn PageCache>>,
    /// `None`: nothing is pushed.
    hub: Option<Arc<dyn Hub>>,
    limits: CampaignLimits,
}

impl std::fmt::Debug for Campaigns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Campaigns")
            .field("cache", &self.cache.as_ref().map(|c| c.backend()))
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Which view of a campaign a member gets, as the cache keys it.
fn view(role: Role) -> &'static str {
    if role.is_gm() { "gm" } else { "player" }
}

fn json<T: Serialize>(value: &T) -> Result<String, CampaignFailure> {
    serde_json::to_string(value).map_err(|e| StorageError::Corrupt(e.to_string()).into())
}

/// Maps the storage conflicts the use-cases expect to failures.
fn conflict(error: StorageError) -> CampaignFailure {
    match error {
        StorageError::NotFound => CampaignFailure::NotFound,
        StorageError::Conflict { constraint } => match constraint.as_str() {
            STALE_VERSION => CampaignFailure::Stale,
            SESSION_NUMBER => CampaignFailure::Conflict {
                field: "number",
                message: "is taken by another session of this campaign",
            },
            CAMPAIGN_LIMIT => CampaignFailure::Limit("you own as many campaigns as allowed"),
            CHILD_LIMIT => CampaignFailure::Limit(
                "this campaign holds as many records of this kind as allowed",
            ),
            _ => CampaignFailure::Storage(StorageError::Conflict { constraint }),
        },
        other => CampaignFailure::Storage(other),
    }
}

/// A page of rendered items.
#[derive(Serialize)]
struct PageBody<T> {
    items: Vec<T>,
    next_cursor: Option<KeyCursor>,
}

impl Campaigns {
    /// Campaigns stored in `db`, without cache or pushes.
    pub fn new(db: Arc<dyn Database>, limits: CampaignLimits) -> Self {
        Self {
            db,
            cache: None,
            hub: None,
            limits,
        }
    }

    /// Also caches rendered pages in `cache`.
    #[must_use]
    pub fn caching(mut self, cache: Arc<dyn PageCache>) -> Self {
        cache::describe();
        self.cache = Some(cache);
        self
    }

    /// Also pushes `campaign.changed` to members on `hub`.
    #[must_use]
    pub fn announcing(mut self, hub: Arc<dyn Hub>) -> Self {
        self.hub = Some(hub);
        self
    }

    /// The cache's backend, `None` when reads are not cached.
    pub fn cache_backend(&self) -> Option<&'static str> {
        self.cache.as_ref().map(|c| c.backend())
    }

    /// The actor's role, or 404 for anyone who is not a member.
    async fn role(&self, actor: Uuid, campaign: Uuid) -> Result<Role, CampaignFailure> {
        self.db
            .membership(campaign, actor)
            .await?
            .ok_or(CampaignFailure::NotFound)
    }

    /// The actor's role when it is `gm`: 403 for a player, 404 for anyone else.
    async fn gm(&self, actor: Uuid, campaign: Uuid) -> Result<(), CampaignFailure> {
        match self.role(actor, campaign).await? {
            Role::Gm => Ok(()),
            Role::Player => Err(CampaignFailure::Forbidden(
                "only the campaign's game masters may change it",
            )),
        }
    }

    /// Serves `key` of the campaign for `role` from the cache, or renders it with `render`
    /// and caches it.
    async fn cached<F, Fut>(
        &self,
        campaign: Uuid,
        role: Role,
        key: &str,
        render: F,
    ) -> Result<Rendered, CampaignFailure>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Rendered, CampaignFailure>>,
    {
        let Some(cache) = &self.cache else {
            return render().await;
        };
        let key = format!("{}:{key}", view(role));
        let generation = cache.generation(campaign).await;
        if let Some(page) = cache.get(campaign, generation, &key).await {
            metrics::counter!(CACHE_HITS).increment(1);
            return Ok(page);
        }
        metrics::counter!(CACHE_MISSES).increment(1);
        let page = render().await?;
        cache.put(campaign, generation, &key, &page).await;
        Ok(page)
    }

    /// After a committed write: drops the campaign's cached pages (before the caller answers,
    /// so the writer reads its write), then pushes the change in the background.
    async fn changed(&self, change: Change) {
        if let Some(cache) = &self.cache {
            cache.invalidate(change.campaign).await;
        }
        let Some(hub) = self.hub.clone() else {
            return;
        };
        let db = self.db.clone();
        tokio::spawn(async move {
            let members = match change.members {
                Some(members) => members,
                None => match db.members(change.campaign).await {
                    Ok(members) => members.into_iter().map(|m| (m.user_id, m.role)).collect(),
                    Err(error) => {
                        tracing::warn!(%error, "campaign push lost: members unreadable");
                        return;
                    }
                },
            };
            let payload = serde_json::json!({
                "type": "campaign.changed",
                "campaign_id": change.campaign,
                "kind": change.kind,
                "id": change.id,
            })
            .to_string();
            let recipients = members
                .into_iter()
                .filter(|(_, role)| role.is_gm() || !change.gm_only)
                .map(|(user, _)| user)
                .chain(change.also);
            for user in recipients {
                let topic = topics::user(&user);
                if let Err(error) = hub.publish(&topic, &payload).await {
                    tracing::warn!(%error, topic, "realtime push lost");
                }
            }
        });
    }

    /// Creates a campaign owned by the actor.
    ///
    /// # Errors
    /// [`CampaignFailure::Invalid`], [`CampaignFailure::Limit`], or the database.
    pub async fn create(
        &self,
        actor: Uuid,
        input: CampaignInput,
    ) -> Result<Rendered, CampaignFailure> {
        let (name, description) = input.apply(None)?;
        let campaign = self
            .db
            .create_campaign(
                NewCampaign {
                    id: Uuid::now_v7(),
                    owner_id: actor,
                    name,
                    description,
                },
                self.limits.max_campaigns_per_user,
            )
            .await
            .map_err(conflict)?;
        let version = campaign.version;
        let body = json(&MemberCampaign {
            campaign,
            role: Role::Gm,
        })?;
        Ok(Rendered {
            json: body,
            version: Some(version),
        })
    }

    /// One page of the campaigns the actor owns or joined, in creation order.
    ///
    /// # Errors
    /// The database.
    pub async fn list(
        &self,
        actor: Uuid,
        after: Option<KeyCursor>,
        limit: u32,
    ) -> Result<Rendered, CampaignFailure> {
        let page = self.db.campaigns_of(actor, after, limit).await?;
        Ok(Rendered {
            json: json(&PageBody {
                items: page.items,
                next_cursor: page.next_cursor,
            })?,
            version: None,
        })
    }

    /// A campaign, with the actor's role in it.
    ///
    /// # Errors
    /// [`CampaignFailure::NotFound`] for a non-member, or the database.
    pub async fn get(&self, actor: Uuid, campaign: Uuid) -> Result<Rendered, CampaignFailure> {
        let role = self.role(actor, campaign).await?;
        self.cached(campaign, role, "campaign", || async move {
            let found = self
                .db
                .campaign(campaign)
                .await?
                .ok_or(CampaignFailure::NotFound)?;
            let version = found.version;
            Ok(Rendered {
                json: json(&MemberCampaign {
                    campaign: found,
                    role,
                })?,
                version: Some(version),
            })
        })
        .await
    }

    /// Changes a campaign's name or description.
    ///
    /// # Errors
    /// As [`Campaigns::get`], and [`CampaignFailure::Forbidden`], [`CampaignFailure::Stale`],
    /// [`CampaignFailure::Invalid`].
    pub async fn update(
        &self,
        actor: Uuid,
        campaign: Uuid,
        precondition: Precondition,
        input: CampaignInput,
    ) -> Result<Rendered, CampaignFailure> {
        self.gm(actor, campaign).await?;
        let current = self
            .db
            .campaign(campaign)
            .await?
            .ok_or(CampaignFailure::NotFound)?;
        let expected = precondition.check(current.version)?;
        let (name, description) =
            input.apply(Some((&current.name, current.description.as_deref())))?;
        let updated = self
            .db
            .update_campaign(campaign, expected, &name, description.as_deref())
            .await
            .map_err(conflict)?;
        self.changed(Change::of(campaign, "campaign", campaign))
            .await;
        let version = updated.version;
        Ok(Rendered {
            json: json(&MemberCampaign {
                campaign: updated,
                role: Role::Gm,
            })?,
            version: Some(version),
        })
    }

    /// Deletes a campaign with everything in it; the owner only.
    ///
    /// # Errors
    /// As [`Campaigns::get`], and [`CampaignFailure::Forbidden`] for anyone but the owner.
    pub async fn delete(&self, actor: Uuid, campaign: Uuid) -> Result<(), CampaignFailure> {
        self.role(actor, campaign).await?;
        let found = self
            .db
            .campaign(campaign)
            .await?
            .ok_or(CampaignFailure::NotFound)?;
        if found.owner_id != actor {
            return Err(CampaignFailure::Forbidden(
                "only the campaign's owner may delete it",
            ));
        }
        let members = self
            .db
            .members(campaign)
            .await?
            .into_iter()
            .map(|m| (m.user_id, m.role))
            .collect();
        if !self.db.delete_campaign(campaign).await? {
            return Err(CampaignFailure::NotFound);
        }
        let mut change = Change::of(campaign, "campaign", campaign);
        change.members = Some(members);
        self.changed(change).await;
        Ok(())
    }

    /// The campaign's members.
    ///
    /// # Errors
    /// As [`Campaigns::get`].
    pub async fn members(&self, actor: Uuid, campaign: Uuid) -> Result<Rendered, CampaignFailure> {
        self.role(actor, campaign).await?;
        let members = self.db.members(campaign).await?;
        Ok(Rendered {
            json: json(&serde_json::json!({ "items": members }))?,
            version: None,
        })
    }

    /// Adds a member, or changes a member's role.
    ///
    /// # Errors
    /// As [`Campaigns::update`]; [`CampaignFailure::Invalid`] naming `username` for an
    /// unknown user or the owner.
    pub async fn add_member(
        &self,
        actor: Uuid,
        campaign: Uuid,
        input: MemberInput,
    ) -> Result<Rendered, CampaignFailure> {
        self.gm(actor, campaign).await?;
        let found = self
            .db
            .campaign(campaign)
            .await?
            .ok_or(CampaignFailure::NotFound)?;
        let username = input.username.trim();
        if username.is_empty() || username.chars().count() > 64 {
            return Err(CampaignError::Length {
                field: "username",
                min: 1,
                max: 64,
            }
            .into());
        }
        let owner = self.db.find_user(found.owner_id).await?;
        if owner.is_some_and(|o| o.username.eq_ignore_ascii_case(username)) {
            return Err(CampaignError::Invalid {
                field: "username",
                reason: "is the campaign's owner, always a game master",
            }
            .into());
        }
        let member = match self.db.add_member(campaign, username, input.role).await {
            Ok(member) => member,
            Err(StorageError::NotFound) => {
                return Err(CampaignError::Invalid {
                    field: "username",
                    reason: "names no user",
                }
                .into());
            }
            Err(other) => return Err(conflict(other)),
        };
        self.changed(Change::of(campaign, "member", member.user_id))
            .await;
        Ok(Rendered {
            json: json(&member)?,
            version: None,
        })
    }

    /// Removes a member: a game master removes anyone but the owner, any member removes
    /// themselves.
    ///
    /// # Errors
    /// As [`Campaigns::update`]; [`CampaignFailure::NotFound`] for a user who is not a member.
    pub async fn remove_member(
        &self,
        actor: Uuid,
        campaign: Uuid,
        user: Uuid,
    ) -> Result<(), CampaignFailure> {
        if actor != user {
            self.gm(actor, campaign).await?;
        } else {
            self.role(actor, campaign).await?;
        }
        let found = self
            .db
            .campaign(campaign)
            .await?
            .ok_or(CampaignFailure::NotFound)?;
        if found.owner_id == user {
            return Err(CampaignFailure::Conflict {
                field: "user_id",
                message: "is the campaign's owner, who cannot leave it",
            });
        }
        if !self.db.remove_member(campaign, user).await? {
            return Err(CampaignFailure::NotFound);
        }
        let mut change = Change::of(campaign, "member", user);
        change.also = Some(user);
        self.changed(change).await;
        Ok(())
    }

    /// Creates a child record.
    ///
    /// # Errors
    /// As [`Campaigns::update`], and [`CampaignFailure::Limit`] or
    /// [`CampaignFailure::Conflict`] (a session number taken).
    pub async fn create_child<I: ChildInput>(
        &self,
        actor: Uuid,
        campaign: Uuid,
        input: I,
    ) -> Result<Rendered, CampaignFailure> {
        self.gm(actor, campaign).await?;
        let data = input.apply(None)?;
        let child = self
            .db
            .create_child(
                campaign,
                Uuid::now_v7(),
                &data,
                self.limits.max_children_per_campaign,
            )
            .await
            .map_err(conflict)?;
        let mut change = Change::of(campaign, I::KIND.as_str(), child.id);
        change.gm_only = child.data.gm_only();
        self.changed(change).await;
        Ok(Rendered {
            json: json(&child)?,
            version: Some(child.version),
        })
    }

    /// One page of a campaign's children of a kind; players' pages skip `gm_only` records.
    ///
    /// # Errors
    /// As [`Campaigns::get`].
    pub async fn list_children(
        &self,
        actor: Uuid,
        campaign: Uuid,
        kind: ChildKind,
        after: Option<KeyCursor>,
        limit: u32,
    ) -> Result<Rendered, CampaignFailure> {
        let role = self.role(actor, campaign).await?;
        let key = format!(
            "{}:list:{}:{limit}",
            kind.as_str(),
            after.map_or_else(String::new, KeyCursor::encode)
        );
        self.cached(campaign, role, &key, || async move {
            let page = self
                .db
                .children(
                    campaign,
                    ChildQuery {
                        kind,
                        after,
                        limit,
                        include_gm_only: role.is_gm(),
                    },
                )
                .await?;
            Ok(Rendered {
                json: json(&PageBody {
                    items: page.items,
                    next_cursor: page.next_cursor,
                })?,
                version: None,
            })
        })
        .await
    }

    /// One child record; a `gm_only` one is not found for players.
    ///
    /// # Errors
    /// As [`Campaigns::get`].
    pub async fn get_child(
        &self,
        actor: Uuid,
        campaign: Uuid,
        kind: ChildKind,
        id: Uuid,
    ) -> Result<Rendered, CampaignFailure> {
        let role = self.role(actor, campaign).await?;
        let key = format!("{}:{}", kind.as_str(), id.simple());
        self.cached(campaign, role, &key, || async move {
            let child = self
                .db
                .child(campaign, kind, id)
                .await?
                .filter(|c| role.is_gm() || !c.data.gm_only())
                .ok_or(CampaignFailure::NotFound)?;
            Ok(Rendered {
                json: json(&child)?,
                version: Some(child.version),
            })
        })
        .await
    }

    /// Changes a child record (a timeline entry moves with a new `position`).
    ///
    /// # Errors
    /// As [`Campaigns::create_child`], and [`CampaignFailure::Stale`].
    pub async fn update_child<I: ChildInput>(
        &self,
        actor: Uuid,
        campaign: Uuid,
        id: Uuid,
        precondition: Precondition,
        input: I,
    ) -> Result<Rendered, CampaignFailure> {
        self.gm(actor, campaign).await?;
        let current = self
            .db
            .child(campaign, I::KIND, id)
            .await?
            .ok_or(CampaignFailure::NotFound)?;
        let expected = precondition.check(current.version)?;
        let was_gm_only = current.data.gm_only();
        let data = input.apply(Some(current.data))?;
        let child = self
            .db
            .update_child(campaign, id, expected, &data)
            .await
            .map_err(conflict)?;
        let mut change = Change::of(campaign, I::KIND.as_str(), id);
        // Players hear of a record they could see before or can see now.
        change.gm_only = was_gm_only && child.data.gm_only();
        self.changed(change).await;
        Ok(Rendered {
            json: json(&child)?,
            version: Some(child.version),
        })
    }

    /// Deletes a child record.
    ///
    /// # Errors
    /// As [`Campaigns::update`].
    pub async fn delete_child(
        &self,
        actor: Uuid,
        campaign: Uuid,
        kind: ChildKind,
        id: Uuid,
    ) -> Result<(), CampaignFailure> {
        self.gm(actor, campaign).await?;
        let current = self
            .db
            .child(campaign, kind, id)
            .await?
            .ok_or(CampaignFailure::NotFound)?;
        if !self.db.delete_child(campaign, kind, id).await? {
            return Err(CampaignFailure::NotFound);
        }
        let mut change = Change::of(campaign, kind.as_str(), id);
        change.gm_only = current.data.gm_only();
        self.changed(change).await;
        Ok(())
    }
}

/// A committed change, as pushed.
struct Change {
    campaign: Uuid,
    kind: &'static str,
    id: Uuid,
    /// Told to game masters only.
    gm_only: bool,
    /// The members to tell, when they can no longer be read (a deleted campaign).
    members: Option<Vec<(Uuid, Role)>>,
    /// Someone else to tell (a member just removed).
    also: Option<Uuid>,
}

impl Change {
    fn of(campaign: Uuid, kind: &'static str, id: Uuid) -> Self {
        Self {
            campaign,
            kind,
            id,
            gm_only: false,
            members: None,
            also: None,
        }
    }
}

/// The use-cases as the `campaigns` settings ask: cached in Redis when `redis` is given,
/// in process otherwise, or not at all when `settings.cache` is off; pushing on `hub`.
pub fn wired(
    db: Arc<dyn Database>,
    settings: &crate::settings::CampaignSettings,
    redis: Option<(redis::aio::ConnectionManager, &str)>,
    hub: Arc<dyn Hub>,
) -> Campaigns {
    let campaigns = Campaigns::new(
        db,
        CampaignLimits {
            max_campaigns_per_user: settings.max_campaigns_per_user,
            max_children_per_campaign: settings.max_children_per_campaign,
        },
    )
    .announcing(hub);
    if !settings.cache {
        return campaigns;
    }
    let ttl = std::time::Duration::from_secs(settings.cache_ttl_secs);
    let cache: Arc<dyn PageCache> = match redis {
        Some((conn, prefix)) => Arc::new(cache::RedisPageCache::new(conn, prefix, ttl)),
        None => Arc::new(cache::InProcessPageCache::new(settings.cache_max_campaigns)),
    };
    campaigns.caching(cache)
}
