//! Durable revocations: the database is the record, a [`RevocationStore`] (Redis or process
//! memory) caches it.
//!
//! Every revoke is written to the database first and to the cache second; a revoke whose
//! database write fails fails (the caller answers 503), so nothing is ever revoked in the
//! cache only. A check asks the cache alone, in one round trip ([`RevocationStore::lookup`]:
//! one `MGET` with Redis, which also reads the "filled" sentinel). When the cache lost its
//! contents (Redis restarted empty, was flushed, or evicted the sentinel), or this process has
//! not filled it yet, the check refills it from the database before answering; while the
//! database cannot answer, such a check fails (the request is refused with a 503). Refresh tokens are marked used in the database
//! only, by an atomic insert-if-absent: refresh is not the hot path.
//!
//! With a hub ([`DurableRevocations::announcing`]), each revocation of a token, a session or
//! a user is then published on [`topics::CONTROL`] as a [`control::Revoked`]
//! (`{"type":"revoked","user_id":…,"family":…}`), so every gateway's WebSocket transport
//! closes the sockets those tokens opened. The announcement follows the record and the
//! cache, and is awaited (so a logout has announced before it answers); its failure is
//! logged and fails nothing: the revocation itself holds for every later check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use hearth_auth::{Claims, Lookup, Revocation, RevocationStore, StoreError};
use hearth_realtime::{Hub, control, topics};
use hearth_storage::{Database, StorageError};
use uuid::Uuid;

/// [`RevocationStore`] over the database's record and a cache of it.
pub struct DurableRevocations {
    cache: Arc<dyn RevocationStore>,
    db: Arc<dyn Database>,
    /// One refill at a time per process: a cold cache met by a burst of requests is refilled
    /// once, and the requests queued behind the refill re-check the refilled cache.
    refill: tokio::sync::Mutex<()>,
    /// Whether this process filled the cache. Until it has, no answer from the cache is
    /// trusted: memory starts empty and cannot tell, and Redis may hold a sentinel from before
    /// a lost write.
    filled: AtomicBool,
    /// Where revocations are announced; `None` announces nothing.
    hub: Option<Arc<dyn Hub>>,
}

impl std::fmt::Debug for DurableRevocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableRevocations")
            .field("database", &self.db.backend())
            .finish_non_exhaustive()
    }
}

fn unavailable(error: StorageError) -> StoreError {
    StoreError(format!("revocation record: {error}"))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn to_cache(revocation: hearth_storage::Revocation) -> Revocation {
    match revocation {
        hearth_storage::Revocation::Token { jti, until } => Revocation::Token { jti, until },
        hearth_storage::Revocation::Family { family, until } => {
            Revocation::Family { family, until }
        }
        hearth_storage::Revocation::User {
            user,
            before_ms,
            until,
        } => Revocation::User {
            user,
            at_ms: before_ms,
            until,
        },
    }
}

impl DurableRevocations {
    /// Revocations recorded in `db` and cached in `cache`. The cache is not filled here: call
    /// [`Self::refill`] (at start, so no request waits for it), or the first check will.
    pub fn new(cache: Arc<dyn RevocationStore>, db: Arc<dyn Database>) -> Self {
        Self {
            cache,
            db,
            refill: tokio::sync::Mutex::new(()),
            filled: AtomicBool::new(false),
            hub: None,
        }
    }

    /// Also announces every revocation on `hub`'s [`topics::CONTROL`] topic.
    #[must_use]
    pub fn announcing(mut self, hub: Arc<dyn Hub>) -> Self {
        self.hub = Some(hub);
        self
    }

    async fn announce(&self, revoked: control::Revoked) {
        if let Some(hub) = &self.hub
            && let Err(error) = hub.publish(topics::CONTROL, &revoked.to_json()).await
        {
            tracing::warn!(%error, "revocation recorded but not announced to the sockets");
        }
    }

    /// Loads every revocation in force from the database into the cache; returns how many.
    ///
    /// # Errors
    /// When the database cannot be read or the cache cannot be written.
    pub async fn refill(&self) -> Result<usize, StoreError> {
        let entries: Vec<Revocation> = self
            .db
            .active_revocations(now_secs())
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(to_cache)
            .collect();
        self.cache.fill(&entries).await?;
        self.filled.store(true, Ordering::Release);
        metrics::counter!(hearth_observability::metrics::names::REVOCATION_REFILLS).increment(1);
        tracing::info!(
            entries = entries.len(),
            "revocation cache filled from the database"
        );
        Ok(entries.len())
    }

    async fn record(&self, revocation: hearth_storage::Revocation) -> Result<(), StoreError> {
        self.db
            .record_revocation(revocation)
            .await
            .map_err(unavailable)
    }

    /// The cache's answer, or `None` when it cannot be trusted (this process has not filled
    /// it, or it lost its contents).
    async fn cached(&self, claims: &Claims) -> Result<Option<bool>, StoreError> {
        if !self.filled.load(Ordering::Acquire) {
            return Ok(None);
        }
        Ok(match self.cache.lookup(claims).await? {
            Lookup::Revoked => Some(true),
            Lookup::Clear => Some(false),
            Lookup::Cold => None,
        })
    }

    /// The cold path: refill (once, however many requests found the cache cold) and answer
    /// from the refilled cache.
    async fn refill_and_check(&self, claims: &Claims) -> Result<bool, StoreError> {
        let _one_at_a_time = self.refill.lock().await;
        // Another request may have refilled while this one waited.
        if let Some(answer) = self.cached(claims).await? {
            return Ok(answer);
        }
        if self.filled.load(Ordering::Acquire) {
            tracing::warn!("revocation cache lost its contents; refilling it from the database");
        }
        self.refill().await?;
        self.cache.is_revoked(claims).await
    }
}

#[async_trait]
impl RevocationStore for DurableRevocations {
    async fn is_revoked(&self, claims: &Claims) -> Result<bool, StoreError> {
        match self.cached(claims).await? {
            Some(answer) => Ok(answer),
            None => self.refill_and_check(claims).await,
        }
    }

    async fn revoke_token(&self, jti: Uuid, exp: u64) -> Result<(), StoreError> {
        self.record(hearth_storage::Revocation::Token { jti, until: exp })
            .await?;
        self.cache.revoke_token(jti, exp).await?;
        self.announce(control::Revoked::token(jti)).await;
        Ok(())
    }

    async fn revoke_family(&self, family: Uuid, until: u64) -> Result<(), StoreError> {
        self.record(hearth_storage::Revocation::Family { family, until })
            .await?;
        self.cache.revoke_family(family, until).await?;
        self.announce(control::Revoked::family(family)).await;
        Ok(())
    }

    async fn revoke_user(&self, user: Uuid, at_ms: u64, until: u64) -> Result<(), StoreError> {
        self.record(hearth_storage::Revocation::User {
            user,
            before_ms: at_ms,
            until,
        })
        .await?;
        self.cache.revoke_user(user, at_ms, until).await?;
        self.announce(control::Revoked::user(user)).await;
        Ok(())
    }

    async fn consume_refresh(&self, jti: Uuid, exp: u64) -> Result<bool, StoreError> {
        // The database alone decides: a cache that lost its "used" marks would let a copied
        // refresh token be exchanged again.
        self.db.consume_refresh(jti, exp).await.map_err(unavailable)
    }

    async fn fill(&self, entries: &[Revocation]) -> Result<(), StoreError> {
        self.cache.fill(entries).await
    }
}
