//! Login lockout that counts attempts, not completed failures: an attempt is reserved against
//! its keys before anything is verified, and at most [`LockoutPolicy::max_failures`] attempts
//! per key may be reserved or failed within the window. At the limit a failure locks the key
//! for [`LockoutPolicy::lock_secs`].
//!
//! The caller [`reserve`](LockoutStore::reserve)s, verifies only when the reservation is
//! [`Reservation::Granted`], then settles: [`fail`](LockoutStore::fail) after a wrong secret,
//! [`release`](LockoutStore::release) after a right one (the attempt gives its slot back, and
//! failures already counted stay counted). A reservation never settled (the process died)
//! still counts until the window ends. Concurrent attempts therefore cannot outrun the count:
//! the sixth of a hundred simultaneous guesses is refused before it is verified.
//!
//! Keys come in two kinds ([`AttemptKeys`]). An *open* key's lock is announced (Hearth: the
//! login as typed, the client address). A *quiet* key's budget is kept to the caller (Hearth:
//! the account behind the login): when it is spent, the attempt is still counted against the
//! open keys but comes back [`Reservation::Withheld`], and the caller fails it at the cost of
//! a wrong secret without verifying. So one account's password is checked at most
//! `max_failures` times per window whichever of its names is typed, while every name locks
//! exactly like an unknown one.
//!
//! [`InProcessLockouts`] serves one embedded process under one mutex; [`RedisLockouts`]
//! (feature `redis`) a fleet, each call one script, one round trip.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

pub use crate::revocation::StoreError;
pub use crate::settings::LockoutPolicy;

/// The keys one attempt counts against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptKeys {
    /// Keys whose lock the caller announces: when one is locked or its budget is spent, the
    /// reservation is [`Reservation::Locked`] and nothing is counted.
    pub open: Vec<String>,
    /// Keys whose budget the caller keeps to itself: when one is spent, the attempt is
    /// counted against [`Self::open`] only and comes back [`Reservation::Withheld`].
    pub quiet: Vec<String>,
}

/// The keys a reservation counted against; hand it back to settle the attempt.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a reservation must be settled with fail or release"]
pub struct Reserved {
    keys: Vec<String>,
}

impl Reserved {
    /// The keys this reservation counted against.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

/// The answer to [`LockoutStore::reserve`].
#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    /// Counted against every key: verify the secret, then `fail` or `release`.
    Granted(Reserved),
    /// Counted against the open keys only, because a quiet key's budget is spent: do not
    /// verify the secret; fail the attempt as a wrong one would (same answer, same cost).
    Withheld(Reserved),
    /// An open key is locked or its budget is spent; nothing was counted. Retry after this.
    Locked(Duration),
}

/// Where attempt counts and locks live.
#[async_trait]
pub trait LockoutStore: Send + Sync + 'static {
    /// Atomically checks and counts one attempt against `keys` (see [`Reservation`]).
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot answer; the caller must then refuse the attempt.
    async fn reserve(
        &self,
        keys: &AttemptKeys,
        policy: &LockoutPolicy,
    ) -> Result<Reservation, StoreError>;

    /// Settles a reserved attempt as failed: it stays counted, and a key that reaches the
    /// limit is locked. Returns the lock this failure started, if any.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot answer.
    async fn fail(
        &self,
        reserved: Reserved,
        policy: &LockoutPolicy,
    ) -> Result<Option<Duration>, StoreError>;

    /// Settles a reserved attempt as succeeded: its slot is given back.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot answer.
    async fn release(&self, reserved: Reserved) -> Result<(), StoreError>;
}

#[derive(Debug)]
struct Counter {
    /// Failures counted in the current window.
    failures: u32,
    window_ends: Instant,
    /// Reserved attempts not settled yet.
    pending: u32,
    /// Pending attempts are forgotten after a window without a new one (never settled).
    pending_ends: Instant,
    locked_until: Option<Instant>,
}

impl Counter {
    fn fresh(now: Instant) -> Self {
        Self {
            failures: 0,
            window_ends: now,
            pending: 0,
            pending_ends: now,
            locked_until: None,
        }
    }

    /// Drops what has expired by `now`.
    fn expire(&mut self, now: Instant) {
        if self.window_ends <= now {
            self.failures = 0;
        }
        if self.pending_ends <= now {
            self.pending = 0;
        }
        if self.locked_until.is_some_and(|until| until <= now) {
            self.locked_until = None;
        }
    }

    /// How long to wait when this key refuses an attempt now, if it does.
    fn refusal(&self, now: Instant, policy: &LockoutPolicy) -> Option<Duration> {
        if let Some(until) = self.locked_until {
            return Some(until - now);
        }
        (self.failures + self.pending >= policy.max_failures)
            .then(|| Duration::from_secs(policy.lock_secs))
    }

    fn is_idle(&self, now: Instant) -> bool {
        self.window_ends <= now
            && self.pending_ends <= now
            && self.locked_until.is_none_or(|until| until <= now)
    }
}

/// Counts and locks in this process's memory, every call under one mutex.
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
    async fn reserve(
        &self,
        keys: &AttemptKeys,
        policy: &LockoutPolicy,
    ) -> Result<Reservation, StoreError> {
        let now = Instant::now();
        let window = Duration::from_secs(policy.window_secs.max(1));
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if counters.len() >= 4_096 && counters.len().is_power_of_two() {
            counters.retain(|_, c| !c.is_idle(now));
        }
        let mut refusal = |key: &String| {
            let counter = counters.get_mut(key)?;
            counter.expire(now);
            counter.refusal(now, policy)
        };
        if let Some(retry_after) = keys.open.iter().filter_map(&mut refusal).max() {
            return Ok(Reservation::Locked(retry_after));
        }
        let withheld = keys.quiet.iter().filter_map(&mut refusal).next().is_some();
        let counted: Vec<String> = if withheld {
            keys.open.clone()
        } else {
            keys.open.iter().chain(&keys.quiet).cloned().collect()
        };
        for key in &counted {
            let counter = counters
                .entry(key.clone())
                .or_insert_with(|| Counter::fresh(now));
            counter.pending += 1;
            counter.pending_ends = now + window;
        }
        let reserved = Reserved { keys: counted };
        Ok(if withheld {
            Reservation::Withheld(reserved)
        } else {
            Reservation::Granted(reserved)
        })
    }

    async fn fail(
        &self,
        reserved: Reserved,
        policy: &LockoutPolicy,
    ) -> Result<Option<Duration>, StoreError> {
        let now = Instant::now();
        let window = Duration::from_secs(policy.window_secs.max(1));
        let lock = Duration::from_secs(policy.lock_secs.max(1));
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let mut started = None;
        for key in reserved.keys {
            let counter = counters.entry(key).or_insert_with(|| Counter::fresh(now));
            counter.expire(now);
            counter.pending = counter.pending.saturating_sub(1);
            if counter.failures == 0 {
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

    async fn release(&self, reserved: Reserved) -> Result<(), StoreError> {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        for key in &reserved.keys {
            if let Some(counter) = counters.get_mut(key) {
                counter.pending = counter.pending.saturating_sub(1);
            }
        }
        Ok(())
    }
}

#[cfg(feature = "redis")]
pub use self::redis_store::RedisLockouts;

#[cfg(feature = "redis")]
mod redis_store {
    use redis::Script;
    use redis::aio::ConnectionManager;

    use super::*;

    /// KEYS come in triples per key (lock, failures, pending): the open keys first, then the
    /// quiet ones. ARGV: max, window (s), lock (s), number of open keys. A key refuses when it
    /// is locked or its failures plus pending attempts reach max. Returns {0, 0} granted,
    /// {1, 0} withheld (counted against the open keys only), {2, ms} locked.
    const RESERVE: &str = r"
local max, window, lock, open = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local keys = #KEYS / 3
local function refusal(i)
  local base = (i - 1) * 3
  local ttl = redis.call('PTTL', KEYS[base + 1])
  if ttl > 0 then return ttl end
  local failures = tonumber(redis.call('GET', KEYS[base + 2]) or '0')
  local pending = tonumber(redis.call('GET', KEYS[base + 3]) or '0')
  if failures + pending >= max then return lock * 1000 end
  return 0
end
local retry = 0
for i = 1, open do
  local r = refusal(i)
  if r > retry then retry = r end
end
if retry > 0 then return {2, retry} end
local counted = keys
for i = open + 1, keys do
  if refusal(i) > 0 then counted = open end
end
for i = 1, counted do
  local pending = KEYS[(i - 1) * 3 + 3]
  redis.call('INCR', pending)
  redis.call('EXPIRE', pending, window)
end
if counted < keys then return {1, 0} end
return {0, 0}
";

    /// KEYS in triples as for RESERVE; ARGV: max, window (s), lock (s). Moves the attempt from
    /// pending to failed; at the limit sets the lock and restarts the count. Returns the lock
    /// started (seconds) or 0.
    const FAIL: &str = r"
local max, window, lock = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local started = 0
for i = 1, #KEYS, 3 do
  if redis.call('DECR', KEYS[i + 2]) <= 0 then redis.call('DEL', KEYS[i + 2]) end
  local failures = redis.call('INCR', KEYS[i + 1])
  if failures == 1 then redis.call('EXPIRE', KEYS[i + 1], window) end
  if failures >= max then
    redis.call('SET', KEYS[i], 1, 'EX', lock)
    redis.call('DEL', KEYS[i + 1])
    started = lock
  end
end
return started
";

    /// KEYS: the pending counters. Gives one slot back on each.
    const RELEASE: &str = r"
for i = 1, #KEYS do
  if redis.call('DECR', KEYS[i]) <= 0 then redis.call('DEL', KEYS[i]) end
end
return 0
";

    /// Counts and locks in Redis: `{prefix}lock:{key}:until` is the lock (TTL = its
    /// duration), `{prefix}lock:{key}:n` counts failures (TTL = the window) and
    /// `{prefix}lock:{key}:pending` the attempts reserved and not settled (TTL = the window,
    /// renewed by each reservation, so one never settled is forgotten in the end).
    #[derive(Clone)]
    pub struct RedisLockouts {
        conn: ConnectionManager,
        prefix: String,
        reserve: Script,
        fail: Script,
        release: Script,
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
                reserve: Script::new(RESERVE),
                fail: Script::new(FAIL),
                release: Script::new(RELEASE),
            }
        }

        fn lock_key(&self, key: &str) -> String {
            format!("{}lock:{key}:until", self.prefix)
        }

        fn count_key(&self, key: &str) -> String {
            format!("{}lock:{key}:n", self.prefix)
        }

        fn pending_key(&self, key: &str) -> String {
            format!("{}lock:{key}:pending", self.prefix)
        }

        fn triples<'a>(
            &self,
            invocation: &mut redis::ScriptInvocation<'a>,
            keys: impl IntoIterator<Item = &'a String>,
        ) {
            for key in keys {
                invocation
                    .key(self.lock_key(key))
                    .key(self.count_key(key))
                    .key(self.pending_key(key));
            }
        }
    }

    fn store_error(error: redis::RedisError) -> StoreError {
        StoreError(error.to_string())
    }

    #[async_trait]
    impl LockoutStore for RedisLockouts {
        async fn reserve(
            &self,
            keys: &AttemptKeys,
            policy: &LockoutPolicy,
        ) -> Result<Reservation, StoreError> {
            let mut invocation = self.reserve.prepare_invoke();
            self.triples(&mut invocation, keys.open.iter().chain(&keys.quiet));
            invocation
                .arg(policy.max_failures)
                .arg(policy.window_secs.max(1))
                .arg(policy.lock_secs.max(1))
                .arg(keys.open.len());
            let mut conn = self.conn.clone();
            let (outcome, retry_ms): (u8, u64) = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(store_error)?;
            Ok(match outcome {
                0 => Reservation::Granted(Reserved {
                    keys: keys.open.iter().chain(&keys.quiet).cloned().collect(),
                }),
                1 => Reservation::Withheld(Reserved {
                    keys: keys.open.clone(),
                }),
                _ => Reservation::Locked(Duration::from_millis(retry_ms)),
            })
        }

        async fn fail(
            &self,
            reserved: Reserved,
            policy: &LockoutPolicy,
        ) -> Result<Option<Duration>, StoreError> {
            let mut invocation = self.fail.prepare_invoke();
            self.triples(&mut invocation, &reserved.keys);
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

        async fn release(&self, reserved: Reserved) -> Result<(), StoreError> {
            let mut invocation = self.release.prepare_invoke();
            for key in &reserved.keys {
                invocation.key(self.pending_key(key));
            }
            let mut conn = self.conn.clone();
            invocation
                .invoke_async::<()>(&mut conn)
                .await
                .map_err(store_error)
        }
    }
}
