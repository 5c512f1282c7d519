//! Failed-login lockout: after [`LockoutPolicy::max_failures`] failures within the window, a
//! key (an account, a client IP) is locked for [`LockoutPolicy::lock_secs`].
//!
//! The caller picks the keys (Hearth uses `account:{id or login}` and `ip:{address}`), checks
//! [`LockoutStore::locked`] before verifying a password, records failures, and clears the
//! account key after a success. [`InProcessLockouts`] serves one embedded process;
//! [`RedisLockouts`] (feature `redis`) a fleet, each call one round trip.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

pub use crate::revocation::StoreError;
pub use crate::settings::LockoutPolicy;

/// Where failure counts and locks live.
#[async_trait]
pub trait LockoutStore: Send + Sync + 'static {
    /// The longest lock in force among `keys`, if any.
    async fn locked(&self, keys: &[String]) -> Result<Option<Duration>, StoreError>;

    /// Counts one failure against each key; returns the lock this failure started, if any.
    async fn record_failure(
        &self,
        keys: &[String],
        policy: &LockoutPolicy,
    ) -> Result<Option<Duration>, StoreError>;

    /// Forgets the failures counted against `key` (after a successful login).
    async fn clear(&self, key: &str) -> Result<(), StoreError>;
}

#[derive(Debug)]
struct Counter {
    failures: u32,
    window_ends: Instant,
    locked_until: Option<Instant>,
}

/// Locks in this process's memory.
#[derive(Debug, Default)]
pub struct InProcessLockouts {
    counters: Mutex<HashMap<String, Counter>>,
}

impl InProcessLockouts {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl LockoutStore for InProcessLockouts {
    async fn locked(&self, keys: &[String]) -> Result<Option<Duration>, StoreError> {
        let now = Instant::now();
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        Ok(keys
            .iter()
            .filter_map(|key| counters.get(key)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max())
    }

    async fn record_failure(
        &self,
        keys: &[String],
        policy: &LockoutPolicy,
    ) -> Result<Option<Duration>, StoreError> {
        let now = Instant::now();
        let window = Duration::from_secs(policy.window_secs);
        let lock = Duration::from_secs(policy.lock_secs);
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if counters.len() >= 4_096 && counters.len().is_power_of_two() {
            counters.retain(|_, c| c.window_ends > now || c.locked_until.is_some_and(|u| u > now));
        }
        let mut started = None;
        for key in keys {
            let counter = counters.entry(key.clone()).or_insert(Counter {
                failures: 0,
                window_ends: now + window,
                locked_until: None,
            });
            if counter.window_ends <= now {
                counter.failures = 0;
                counter.window_ends = now + window;
            }
            counter.failures += 1;
            if counter.failures >= policy.max_failures {
                counter.failures = 0;
                counter.locked_until = Some(now + lock);
                started = Some(lock);
            }
        }
        Ok(started)
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(counter) = counters.get_mut(key) {
            counter.failures = 0;
        }
        Ok(())
    }
}

#[cfg(feature = "redis")]
pub use self::redis_store::RedisLockouts;

#[cfg(feature = "redis")]
mod redis_store {
    use redis::aio::ConnectionManager;
    use redis::{Script, pipe};

    use super::*;

    /// For each (count key, lock key) pair: count the failure, start the window on the first,
    /// and on reaching the limit set the lock and reset the count. Returns the lock started
    /// (seconds) or 0.
    const RECORD: &str = r"
local max, window, lock = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local started = 0
for i = 1, #KEYS, 2 do
  local n = redis.call('INCR', KEYS[i])
  if n == 1 then redis.call('EXPIRE', KEYS[i], window) end
  if n >= max then
    redis.call('SET', KEYS[i + 1], 1, 'EX', lock)
    redis.call('DEL', KEYS[i])
    started = lock
  end
end
return started
";

    /// Locks in Redis: `{prefix}lock:{key}:n` counts failures (TTL = the window) and
    /// `{prefix}lock:{key}:until` is the lock (TTL = its duration).
    #[derive(Clone)]
    pub struct RedisLockouts {
        conn: ConnectionManager,
        prefix: String,
        record: Script,
    }

    impl std::fmt::Debug for RedisLockouts {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RedisLockouts")
                .field("prefix", &self.prefix)
                .finish_non_exhaustive()
        }
    }

    impl RedisLockouts {
        /// Locks under keys starting with `prefix`, on an existing connection manager.
        pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
            Self {
                conn,
                prefix: prefix.into(),
                record: Script::new(RECORD),
            }
        }

        fn count_key(&self, key: &str) -> String {
            format!("{}lock:{key}:n", self.prefix)
        }

        fn lock_key(&self, key: &str) -> String {
            format!("{}lock:{key}:until", self.prefix)
        }
    }

    fn store_error(error: redis::RedisError) -> StoreError {
        StoreError(error.to_string())
    }

    #[async_trait]
    impl LockoutStore for RedisLockouts {
        async fn locked(&self, keys: &[String]) -> Result<Option<Duration>, StoreError> {
            let mut pipeline = pipe();
            for key in keys {
                pipeline.cmd("PTTL").arg(self.lock_key(key));
            }
            let mut conn = self.conn.clone();
            let ttls: Vec<i64> = pipeline.query_async(&mut conn).await.map_err(store_error)?;
            Ok(ttls
                .into_iter()
                .filter(|ms| *ms > 0)
                .max()
                .map(|ms| Duration::from_millis(ms.unsigned_abs())))
        }

        async fn record_failure(
            &self,
            keys: &[String],
            policy: &LockoutPolicy,
        ) -> Result<Option<Duration>, StoreError> {
            let mut invocation = self.record.prepare_invoke();
            for key in keys {
                invocation.key(self.count_key(key)).key(self.lock_key(key));
            }
            invocation
                .arg(policy.max_failures)
                .arg(policy.window_secs.max(1))
                .arg(policy.lock_secs.max(1));
            let mut conn = self.conn.clone();
            let started: u64 = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(store_error)?;
            Ok((started > 0).then(|| Duration::from_secs(started)))
        }

        async fn clear(&self, key: &str) -> Result<(), StoreError> {
            let mut conn = self.conn.clone();
            redis::cmd("DEL")
                .arg(self.count_key(key))
                .query_async::<()>(&mut conn)
                .await
                .map_err(store_error)
        }
    }
}
