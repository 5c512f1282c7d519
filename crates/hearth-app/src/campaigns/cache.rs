//! The read cache for campaign pages: rendered JSON keyed by campaign, view (`gm` or
//! `player`) and page, under the campaign's invalidation generation.
//!
//! A read takes the generation first, then the page stored under it; on a miss it renders the
//! page from the database and stores it under the generation it read *before* the database.
//! Every write bumps the generation after it commits, so a page rendered from data older than
//! a write is stored under a generation no later read asks for: a slow reader can never put a
//! stale page back. The view is part of every key, so a player is never served a page
//! rendered for a game master.
//!
//! [`InProcessPageCache`] (embedded mode) holds pages in memory, bounded; [`RedisPageCache`]
//! shares them between gateways, with a TTL on each page. A Redis failure is logged and read
//! as a miss: the database answers instead.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use uuid::Uuid;

/// Counter: campaign page reads served from the cache.
pub const CACHE_HITS: &str = "hearth_campaign_cache_hits_total";
/// Counter: campaign page reads the cache could not serve (rendered from the database).
pub const CACHE_MISSES: &str = "hearth_campaign_cache_misses_total";

/// Describes the cache's metrics to the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        CACHE_HITS,
        "Campaign page reads served from the read cache."
    );
    metrics::describe_counter!(
        CACHE_MISSES,
        "Campaign page reads rendered from the database (not cached, or the cache was down)."
    );
}

/// A rendered page: its JSON and, for a single resource, its version (the ETag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The response body.
    pub json: String,
    /// The resource's version; `None` for a list.
    pub version: Option<i64>,
}

impl Rendered {
    /// The form stored in Redis: the version (or `-`), a newline, the JSON.
    fn encode(&self) -> String {
        match self.version {
            Some(v) => format!("{v}\n{}", self.json),
            None => format!("-\n{}", self.json),
        }
    }

    fn decode(text: &str) -> Option<Self> {
        let (version, json) = text.split_once('\n')?;
        let version = match version {
            "-" => None,
            v => Some(v.parse().ok()?),
        };
        Some(Self {
            json: json.to_owned(),
            version,
        })
    }
}

/// Where campaign pages are cached.
#[async_trait::async_trait]
pub trait PageCache: Send + Sync {
    /// The campaign's current invalidation generation.
    async fn generation(&self, campaign: Uuid) -> u64;

    /// The page stored under `key` at `generation`.
    async fn get(&self, campaign: Uuid, generation: u64, key: &str) -> Option<Rendered>;

    /// Stores a page rendered after `generation` was read.
    async fn put(&self, campaign: Uuid, generation: u64, key: &str, page: &Rendered);

    /// Moves the campaign to a new generation: every page stored so far is never read again.
    async fn invalidate(&self, campaign: Uuid);

    /// `"memory"` or `"redis"`.
    fn backend(&self) -> &'static str;
}

/// Pages in this process's memory.
#[derive(Debug)]
pub struct InProcessPageCache {
    /// Campaign → its generation and the pages rendered at it. One lock: every operation is
    /// a map lookup, far shorter than the database read a miss costs.
    campaigns: Mutex<HashMap<Uuid, Generation>>,
    /// Most campaigns holding pages; past it the map is emptied (generations included, so
    /// they restart at 0 — safe, since no page survives the clearing either).
    max_campaigns: usize,
}

#[derive(Debug, Default)]
struct Generation {
    number: u64,
    pages: HashMap<String, Rendered>,
}

/// Most pages kept for one campaign; past it that campaign's pages are dropped.
const MAX_PAGES_PER_CAMPAIGN: usize = 256;

impl InProcessPageCache {
    /// A cache holding pages of at most `max_campaigns` campaigns.
    pub fn new(max_campaigns: usize) -> Self {
        Self {
            campaigns: Mutex::new(HashMap::new()),
            max_campaigns: max_campaigns.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Generation>> {
        self.campaigns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl PageCache for InProcessPageCache {
    async fn generation(&self, campaign: Uuid) -> u64 {
        self.lock().get(&campaign).map_or(0, |g| g.number)
    }

    async fn get(&self, campaign: Uuid, generation: u64, key: &str) -> Option<Rendered> {
        let campaigns = self.lock();
        let entry = campaigns.get(&campaign)?;
        (entry.number == generation)
            .then(|| entry.pages.get(key).cloned())
            .flatten()
    }

    async fn put(&self, campaign: Uuid, generation: u64, key: &str, page: &Rendered) {
        let mut campaigns = self.lock();
        if !campaigns.contains_key(&campaign) && campaigns.len() >= self.max_campaigns {
            campaigns.clear();
        }
        let entry = campaigns.entry(campaign).or_default();
        // A write came in since this page's read began: the page may be stale.
        if entry.number != generation {
            return;
        }
        if entry.pages.len() >= MAX_PAGES_PER_CAMPAIGN {
            entry.pages.clear();
        }
        entry.pages.insert(key.to_owned(), page.clone());
    }

    async fn invalidate(&self, campaign: Uuid) {
        let mut campaigns = self.lock();
        let entry = campaigns.entry(campaign).or_default();
        entry.number += 1;
        entry.pages.clear();
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

/// Pages in Redis, shared by every gateway: `<prefix>campaign:<id>:gen` holds the generation
/// (no TTL; a few bytes per campaign written to), `<prefix>campaign:<id>:<gen>:<key>` a page
/// (with a TTL, so pages of old generations expire on their own).
#[derive(Clone)]
pub struct RedisPageCache {
    conn: ConnectionManager,
    prefix: String,
    ttl: Duration,
}

impl std::fmt::Debug for RedisPageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPageCache")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl RedisPageCache {
    /// Pages under `prefix` on the shared connection, each kept for `ttl`.
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>, ttl: Duration) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            ttl,
        }
    }

    fn generation_key(&self, campaign: Uuid) -> String {
        format!("{}campaign:{}:gen", self.prefix, campaign.simple())
    }

    fn page_key(&self, campaign: Uuid, generation: u64, key: &str) -> String {
        format!(
            "{}campaign:{}:{generation}:{key}",
            self.prefix,
            campaign.simple()
        )
    }
}

#[async_trait::async_trait]
impl PageCache for RedisPageCache {
    async fn generation(&self, campaign: Uuid) -> u64 {
        let mut conn = self.conn.clone();
        match conn
            .get::<_, Option<u64>>(self.generation_key(campaign))
            .await
        {
            Ok(generation) => generation.unwrap_or(0),
            Err(error) => {
                tracing::warn!(%error, "campaign cache: reading the generation failed");
                // No page is ever stored under this generation (see `put`).
                u64::MAX
            }
        }
    }

    async fn get(&self, campaign: Uuid, generation: u64, key: &str) -> Option<Rendered> {
        if generation == u64::MAX {
            return None;
        }
        let mut conn = self.conn.clone();
        match conn
            .get::<_, Option<String>>(self.page_key(campaign, generation, key))
            .await
        {
            Ok(page) => page.as_deref().and_then(Rendered::decode),
            Err(error) => {
                tracing::warn!(%error, "campaign cache: reading a page failed");
                None
            }
        }
    }

    async fn put(&self, campaign: Uuid, generation: u64, key: &str, page: &Rendered) {
        if generation == u64::MAX {
            return;
        }
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<()> = conn
            .set_ex(
                self.page_key(campaign, generation, key),
                page.encode(),
                self.ttl.as_secs().max(1),
            )
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, "campaign cache: storing a page failed");
        }
    }

    async fn invalidate(&self, campaign: Uuid) {
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<u64> = conn.incr(self.generation_key(campaign), 1).await;
        if let Err(error) = result {
            // Pages of the old generation may be served until their TTL runs out.
            tracing::error!(%error, %campaign, "campaign cache: invalidation failed");
        }
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(json: &str) -> Rendered {
        Rendered {
            json: json.to_owned(),
            version: Some(3),
        }
    }

    #[tokio::test]
    async fn a_page_rendered_before_a_write_is_never_stored() {
        let cache = InProcessPageCache::new(10);
        let campaign = Uuid::now_v7();
        let before = cache.generation(campaign).await;
        cache.invalidate(campaign).await;
        cache
            .put(campaign, before, "gm:campaign", &page("old"))
            .await;
        let now = cache.generation(campaign).await;
        assert_eq!(cache.get(campaign, now, "gm:campaign").await, None);
        cache.put(campaign, now, "gm:campaign", &page("new")).await;
        assert_eq!(
            cache.get(campaign, now, "gm:campaign").await,
            Some(page("new"))
        );
        assert_eq!(cache.get(campaign, now, "player:campaign").await, None);
    }

    #[test]
    fn stored_pages_round_trip() {
        for rendered in [
            page("{\"a\":\"b\\nc\"}"),
            Rendered {
                json: "[]".into(),
                version: None,
            },
        ] {
            assert_eq!(Rendered::decode(&rendered.encode()), Some(rendered));
        }
    }
}
