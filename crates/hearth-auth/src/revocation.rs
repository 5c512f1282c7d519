//! Revoked tokens, sessions and users, with the rotation rule for refresh tokens.
//!
//! A token is refused when its `jti` was revoked (logout), its session (`fam`) was revoked
//! (logout, or a reused refresh token), or its user revoked every session minted before a
//! moment (password change or reset). Entries expire when nothing they could refuse is still
//! alive, so the store never grows without bound.
//!
//! Two stores share one contract and one test suite: [`InProcessRevocations`] for a single
//! embedded process and [`RedisRevocations`] (feature `redis`) for a fleet, where a check is one
//! `MGET` round trip.
//!
//! Either can serve as the cache of a durable record kept elsewhere (the application keeps it
//! in its database): [`RevocationStore::fill`] loads the record into a store, and
//! [`RevocationStore::lookup`] answers a check together with whether the store still holds
//! what it was filled with ([`Lookup::Cold`] after Redis lost its contents), in the same round
//! trip.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use uuid::Uuid;

use crate::token::{Claims, now_secs};

/// The store could not answer (Redis unreachable). Callers refuse the request (fail closed).
#[derive(Debug, thiserror::Error)]
#[error("revocation store unavailable: {0}")]
pub struct StoreError(pub String);

/// One revocation, as a store is [filled](RevocationStore::fill) with it. Times are epoch
/// seconds (`until`) and epoch milliseconds (a user's cutoff), as tokens carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// One token, by `jti`, until it expires.
    Token {
        /// The token's id.
        jti: Uuid,
        /// Its expiry.
        until: u64,
    },
    /// Every token of a session.
    Family {
        /// The session id (`fam`).
        family: Uuid,
        /// The latest expiry any of its tokens can have.
        until: u64,
    },
    /// Every token of a user minted at or before `at_ms`.
    User {
        /// The user.
        user: Uuid,
        /// The cutoff, epoch milliseconds.
        at_ms: u64,
        /// The latest expiry a token minted before the cutoff can have.
        until: u64,
    },
}

/// A check's answer, with whether the store could give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The token, its session or its user's sessions were revoked.
    Revoked,
    /// Nothing the store holds refuses the token, and it holds everything it was filled with.
    Clear,
    /// Nothing the store holds refuses the token, but it lost what it was filled with (or was
    /// never filled): the answer is unknown until it is filled again.
    Cold,
}

/// Where revocations live.
#[async_trait]
pub trait RevocationStore: Send + Sync + 'static {
    /// Whether the token, its session or its user's sessions were revoked.
    async fn is_revoked(&self, claims: &Claims) -> Result<bool, StoreError>;

    /// Revokes one token until it would have expired (`exp`, epoch seconds).
    async fn revoke_token(&self, jti: Uuid, exp: u64) -> Result<(), StoreError>;

    /// Revokes a session (every token with this `fam`) until `until` (epoch seconds; the
    /// latest expiry any of its tokens can have).
    async fn revoke_family(&self, family: Uuid, until: u64) -> Result<(), StoreError>;

    /// Revokes every token of `user` minted at or before `at_ms` (epoch milliseconds), until
    /// `until` (epoch seconds). A later cutoff already stored is kept: revocations only widen.
    async fn revoke_user(&self, user: Uuid, at_ms: u64, until: u64) -> Result<(), StoreError>;

    /// Marks a refresh token as exchanged. `true` the first time; `false` if it was exchanged
    /// before, which means it was stolen or replayed.
    async fn consume_refresh(&self, jti: Uuid, exp: u64) -> Result<bool, StoreError>;

    /// [`Self::is_revoked`], plus whether the store still holds what [`Self::fill`] loaded,
    /// in the same round trip. The default is for stores that cannot lose their contents:
    /// never [`Lookup::Cold`].
    async fn lookup(&self, claims: &Claims) -> Result<Lookup, StoreError> {
        Ok(if self.is_revoked(claims).await? {
            Lookup::Revoked
        } else {
            Lookup::Clear
        })
    }

    /// Loads `entries` (a durable record's every revocation in force) and marks the store as
    /// filled, so [`Self::lookup`] answers [`Lookup::Clear`] again.
    async fn fill(&self, entries: &[Revocation]) -> Result<(), StoreError> {
        for entry in entries {
            match *entry {
                Revocation::Token { jti, until } => self.revoke_token(jti, until).await?,
                Revocation::Family { family, until } => self.revoke_family(family, until).await?,
                Revocation::User { user, at_ms, until } => {
                    self.revoke_user(user, at_ms, until).await?;
                }
            }
        }
        Ok(())
    }
}

fn jti_key(jti: Uuid) -> String {
    format!("rev:jti:{jti}")
}

fn family_key(family: Uuid) -> String {
    format!("rev:fam:{family}")
}

fn user_key(user: Uuid) -> String {
    format!("rev:user:{user}")
}

fn used_key(jti: Uuid) -> String {
    format!("rev:used:{jti}")
}

/// Present while the store holds what [`RevocationStore::fill`] loaded; without an expiry, so
/// only a restart, a flush or an eviction removes it, and each means the contents went too.
#[cfg(feature = "redis")]
const LOADED_KEY: &str = "rev:loaded";

/// Revocations in this process's memory: right for one embedded instance, wrong for a fleet
/// (another replica would not see them).
#[derive(Debug, Default)]
pub struct InProcessRevocations {
    /// key → (value, expiry in epoch seconds)
    entries: Mutex<HashMap<String, (u64, u64)>>,
}

impl InProcessRevocations {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&self, key: &str, now: u64) -> Option<u64> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(value, _)| *value)
    }

    /// Inserts unless a live entry exists (when `only_new`); returns whether it inserted.
    fn put(&self, key: String, value: u64, until: u64, only_new: bool) -> bool {
        let now = now_secs();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= 4_096 && entries.len().is_power_of_two() {
            entries.retain(|_, (_, until)| *until > now);
        }
        if only_new && entries.get(&key).is_some_and(|(_, until)| *until > now) {
            return false;
        }
        entries.insert(key, (value, until));
        true
    }
}

#[async_trait]
impl RevocationStore for InProcessRevocations {
    async fn is_revoked(&self, claims: &Claims) -> Result<bool, StoreError> {
        let now = now_secs();
        Ok(self.get(&jti_key(claims.jti), now).is_some()
            || self.get(&family_key(claims.fam), now).is_some()
            || self
                .get(&user_key(claims.sub), now)
                .is_some_and(|cutoff| claims.minted_at_ms() <= cutoff))
    }

    async fn revoke_token(&self, jti: Uuid, exp: u64) -> Result<(), StoreError> {
        self.put(jti_key(jti), 1, exp, false);
        Ok(())
    }

    async fn revoke_family(&self, family: Uuid, until: u64) -> Result<(), StoreError> {
        self.put(family_key(family), 1, until, false);
        Ok(())
    }

    async fn revoke_user(&self, user: Uuid, at_ms: u64, until: u64) -> Result<(), StoreError> {
        // A revocation only ever widens: a later cutoff already stored stays.
        let key = user_key(user);
        let cutoff = self
            .get(&key, now_secs())
            .map_or(at_ms, |stored| stored.max(at_ms));
        self.put(key, cutoff, until, false);
        Ok(())
    }

    async fn consume_refresh(&self, jti: Uuid, exp: u64) -> Result<bool, StoreError> {
        Ok(self.put(used_key(jti), 1, exp, true))
    }
}

#[cfg(feature = "redis")]
pub use self::redis_store::RedisRevocations;

#[cfg(feature = "redis")]
mod redis_store {
    use redis::AsyncCommands;
    use redis::aio::ConnectionManager;

    use super::*;

    /// Revocations in Redis, shared by every gateway. Keys are `{prefix}rev:jti:{jti}`,
    /// `{prefix}rev:fam:{fam}`, `{prefix}rev:user:{user}` (value: the cutoff in ms) and
    /// `{prefix}rev:used:{jti}`, each with a TTL of the remaining lifetime of what it refuses.
    #[derive(Clone)]
    pub struct RedisRevocations {
        conn: ConnectionManager,
        prefix: String,
    }

    impl std::fmt::Debug for RedisRevocations {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RedisRevocations")
                .field("prefix", &self.prefix)
                .finish_non_exhaustive()
        }
    }

    impl RedisRevocations {
        /// Revocations under keys starting with `prefix`, on an existing connection manager.
        pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
            Self {
                conn,
                prefix: prefix.into(),
            }
        }

        fn key(&self, key: String) -> String {
            format!("{}{key}", self.prefix)
        }

        async fn set(&self, key: String, value: u64, until: u64) -> Result<(), StoreError> {
            let ttl = ttl(until);
            let mut conn = self.conn.clone();
            conn.set_ex::<_, _, ()>(self.key(key), value, ttl)
                .await
                .map_err(store_error)
        }
    }

    /// Longest TTL written: no Hearth token lives longer, and Redis refuses absurd ones.
    const MAX_TTL_SECS: u64 = 366 * 24 * 60 * 60;

    /// Seconds from now until `until`, at least 1 and at most [`MAX_TTL_SECS`].
    fn ttl(until: u64) -> u64 {
        until.saturating_sub(now_secs()).clamp(1, MAX_TTL_SECS)
    }

    /// Sets a user's cutoff unless a later one is stored: a revocation only ever widens, as
    /// in the database, whatever order concurrent writers land in.
    const WIDEN_CUTOFF: &str = "local current = tonumber(redis.call('GET', KEYS[1]) or '-1') \
        if tonumber(ARGV[1]) > current then \
        redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end";

    fn widen_cutoff(key: String, at_ms: u64, until: u64) -> redis::Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(WIDEN_CUTOFF)
            .arg(1)
            .arg(key)
            .arg(at_ms)
            .arg(ttl(until));
        cmd
    }

    fn store_error(error: redis::RedisError) -> StoreError {
        StoreError(error.to_string())
    }

    #[async_trait]
    impl RevocationStore for RedisRevocations {
        async fn is_revoked(&self, claims: &Claims) -> Result<bool, StoreError> {
            let mut conn = self.conn.clone();
            let keys = [
                self.key(jti_key(claims.jti)),
                self.key(family_key(claims.fam)),
                self.key(user_key(claims.sub)),
            ];
            let values: Vec<Option<u64>> = conn.mget(&keys).await.map_err(store_error)?;
            Ok(match values.as_slice() {
                [jti, family, user] => {
                    jti.is_some()
                        || family.is_some()
                        || user.is_some_and(|cutoff| claims.minted_at_ms() <= cutoff)
                }
                _ => {
                    return Err(StoreError(
                        "MGET answered the wrong number of values".into(),
                    ));
                }
            })
        }

        async fn lookup(&self, claims: &Claims) -> Result<Lookup, StoreError> {
            let mut conn = self.conn.clone();
            let keys = [
                self.key(jti_key(claims.jti)),
                self.key(family_key(claims.fam)),
                self.key(user_key(claims.sub)),
                self.key(LOADED_KEY.to_owned()),
            ];
            // One MGET: the check and the sentinel that says the check can be trusted.
            let values: Vec<Option<u64>> = conn.mget(&keys).await.map_err(store_error)?;
            match values.as_slice() {
                [jti, family, user, loaded] => {
                    if jti.is_some()
                        || family.is_some()
                        || user.is_some_and(|cutoff| claims.minted_at_ms() <= cutoff)
                    {
                        Ok(Lookup::Revoked)
                    } else if loaded.is_some() {
                        Ok(Lookup::Clear)
                    } else {
                        Ok(Lookup::Cold)
                    }
                }
                _ => Err(StoreError(
                    "MGET answered the wrong number of values".into(),
                )),
            }
        }

        async fn fill(&self, entries: &[Revocation]) -> Result<(), StoreError> {
            // One atomic pipeline: the sentinel appears together with the entries, never
            // before them.
            let mut pipe = redis::pipe();
            pipe.atomic();
            for entry in entries {
                match *entry {
                    Revocation::Token { jti, until } => {
                        pipe.set_ex(self.key(jti_key(jti)), 1, ttl(until)).ignore();
                    }
                    Revocation::Family { family, until } => {
                        pipe.set_ex(self.key(family_key(family)), 1, ttl(until))
                            .ignore();
                    }
                    Revocation::User { user, at_ms, until } => {
                        // A password change made while the record was read keeps its later
                        // cutoff.
                        pipe.add_command(widen_cutoff(self.key(user_key(user)), at_ms, until))
                            .ignore();
                    }
                }
            }
            pipe.set(self.key(LOADED_KEY.to_owned()), 1).ignore();
            let mut conn = self.conn.clone();
            pipe.query_async::<()>(&mut conn).await.map_err(store_error)
        }

        async fn revoke_token(&self, jti: Uuid, exp: u64) -> Result<(), StoreError> {
            self.set(jti_key(jti), 1, exp).await
        }

        async fn revoke_family(&self, family: Uuid, until: u64) -> Result<(), StoreError> {
            self.set(family_key(family), 1, until).await
        }

        async fn revoke_user(&self, user: Uuid, at_ms: u64, until: u64) -> Result<(), StoreError> {
            let mut conn = self.conn.clone();
            widen_cutoff(self.key(user_key(user)), at_ms, until)
                .query_async::<()>(&mut conn)
                .await
                .map_err(store_error)
        }

        async fn consume_refresh(&self, jti: Uuid, exp: u64) -> Result<bool, StoreError> {
            let ttl = ttl(exp);
            let mut conn = self.conn.clone();
            let set: Option<String> = redis::cmd("SET")
                .arg(self.key(used_key(jti)))
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(ttl)
                .query_async(&mut conn)
                .await
                .map_err(store_error)?;
            Ok(set.is_some())
        }
    }
}
