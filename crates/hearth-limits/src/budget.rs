//! Cost budgets: per user per UTC day and global per UTC hour, reserved before an expensive
//! call and settled after it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::StatusCode;

use crate::clock::{Clock, SystemClock, to_micros};
use crate::metric_names;
#[cfg(feature = "redis")]
use crate::redis_link::{LinkOptions, RedisLink, RedisTarget};
use crate::settings::BudgetSettings;
#[cfg(feature = "redis")]
use crate::settings::RedisDownPolicy;

const HOUR_US: u64 = 3_600_000_000;
const DAY_US: u64 = 24 * HOUR_US;

/// Why a reservation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// The user's daily budget cannot cover the estimate; HTTP 429.
    #[error("the user's daily budget is spent; retry after {retry_after:?}")]
    UserExhausted {
        /// Time until the user's budget renews (next UTC midnight).
        retry_after: Duration,
    },
    /// The global hourly budget cannot cover the estimate; HTTP 503.
    #[error("the global hourly budget is spent; retry after {retry_after:?}")]
    GlobalExhausted {
        /// Time until the global budget renews (next full UTC hour).
        retry_after: Duration,
    },
    /// Redis is unreachable and the policy is to refuse; HTTP 503.
    #[error("budgets are unavailable: Redis is unreachable and the policy is to refuse")]
    Unavailable,
    /// The Redis URL or client configuration is unusable.
    #[error("invalid Redis configuration: {0}")]
    Config(String),
}

impl BudgetError {
    /// The HTTP status to answer with: 429 for a user's budget, 503 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UserExhausted { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `Retry-After` to send, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::UserExhausted { retry_after } | Self::GlobalExhausted { retry_after } => {
                Some(*retry_after)
            }
            Self::Unavailable => Some(Duration::from_secs(1)),
            Self::Config(_) => None,
        }
    }
}

/// What has been spent or reserved in the current periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetUsage {
    /// The user's spending and reservations today (UTC), in micro-units.
    pub user_today: u64,
    /// Everyone's spending and reservations this hour (UTC), in micro-units.
    pub global_this_hour: u64,
}

/// Cost budgets. Cheap to clone (one `Arc`); clones share the counters.
///
/// [`reserve`](Self::reserve) atomically checks and charges the estimate against both the
/// user's daily and the global hourly budget, so concurrent callers can never together exceed
/// either; [`Reservation::settle`] then corrects the charge to the real cost. Periods follow
/// this process's clock (UTC days and hours since the UNIX epoch).
#[derive(Clone)]
pub struct Budgets {
    inner: Arc<Inner>,
}

struct Inner {
    user_daily: u64,
    global_hourly: u64,
    clock: Arc<dyn Clock>,
    local: Mutex<LocalBudgets>,
    #[cfg(feature = "redis")]
    redis: Option<RedisBudgets>,
}

impl fmt::Debug for Budgets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budgets")
            .field("user_daily", &self.inner.user_daily)
            .field("global_hourly", &self.inner.global_hourly)
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// Where a reservation was charged, so it is settled in the same place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charged {
    Local,
    #[cfg(feature = "redis")]
    Redis,
}

/// Periods are numbered from the UNIX epoch: day `d` is `[d·24h, (d+1)·24h)` UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Periods {
    day: u64,
    hour: u64,
}

impl Periods {
    fn at(now_us: u64) -> Self {
        Self {
            day: now_us / DAY_US,
            hour: now_us / HOUR_US,
        }
    }
    fn day_end_us(self) -> u64 {
        (self.day + 1) * DAY_US
    }
    fn hour_end_us(self) -> u64 {
        (self.hour + 1) * HOUR_US
    }
}

impl Budgets {
    /// Budgets kept in this process, on the system clock.
    pub fn in_process(settings: &BudgetSettings) -> Self {
        Self::in_process_with_clock(settings, Arc::new(SystemClock::new()))
    }

    /// Budgets kept in this process, on `clock`.
    pub fn in_process_with_clock(settings: &BudgetSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                user_daily: settings.user_daily,
                global_hourly: settings.global_hourly,
                clock,
                local: Mutex::default(),
                #[cfg(feature = "redis")]
                redis: None,
            }),
        }
    }

    /// Budgets kept in Redis (keys `hearth:budget:user:<day>:<user>` and
    /// `hearth:budget:global:<hour>`, expiring an hour after their period), shared by every
    /// instance. While Redis is unreachable: in-process budgets (`local`, per instance) or
    /// [`BudgetError::Unavailable`] (`refuse`).
    ///
    /// # Errors
    /// [`BudgetError::Config`] when the URL cannot be parsed; an unreachable server is not an
    /// error.
    #[cfg(feature = "redis")]
    pub async fn redis(
        target: impl Into<RedisTarget>,
        settings: &BudgetSettings,
        policy: RedisDownPolicy,
    ) -> Result<Self, BudgetError> {
        Self::redis_with(
            target,
            settings,
            policy,
            "hearth:budget:",
            Arc::new(SystemClock::new()),
        )
        .await
    }

    /// [`Budgets::redis`] with a key prefix and a clock (periods follow `clock`).
    ///
    /// # Errors
    /// As [`Budgets::redis`].
    #[cfg(feature = "redis")]
    pub async fn redis_with(
        target: impl Into<RedisTarget>,
        settings: &BudgetSettings,
        policy: RedisDownPolicy,
        key_prefix: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BudgetError> {
        let reserve = redis::Script::new(RESERVE_SCRIPT);
        let settle = redis::Script::new(SETTLE_SCRIPT);
        let link = RedisLink::connect(
            target.into(),
            policy,
            LinkOptions::default(),
            "budget",
            vec![reserve.clone(), settle.clone()],
        )
        .await
        .map_err(|e| BudgetError::Config(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                user_daily: settings.user_daily,
                global_hourly: settings.global_hourly,
                clock,
                local: Mutex::default(),
                redis: Some(RedisBudgets {
                    link,
                    reserve,
                    settle,
                    prefix: key_prefix.to_owned(),
                }),
            }),
        })
    }

    /// `"in-process"` or `"redis"`.
    pub fn backend(&self) -> &'static str {
        #[cfg(feature = "redis")]
        if self.inner.redis.is_some() {
            return "redis";
        }
        "in-process"
    }

    /// Whether Redis-backed budgets currently cannot reach Redis. Always false in-process.
    pub fn is_degraded(&self) -> bool {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.inner.redis {
            return redis.link.is_degraded();
        }
        false
    }

    /// Reserves `estimate` micro-units for `user` before an expensive call. The user's budget
    /// is checked first, then the global one; nothing is charged unless both can cover it.
    ///
    /// # Errors
    /// [`BudgetError::UserExhausted`] (429) or [`BudgetError::GlobalExhausted`] (503) with the
    /// time until the period renews; [`BudgetError::Unavailable`] when Redis is down and the
    /// policy is to refuse.
    pub async fn reserve(&self, user: &str, estimate: u64) -> Result<Reservation, BudgetError> {
        let now = to_micros(self.inner.clock.now());
        let periods = Periods::at(now);
        let charged = self.charge(user, estimate, periods).await;
        match charged {
            Ok(charged) => Ok(Reservation {
                budgets: self.clone(),
                user: user.to_owned(),
                amount: estimate,
                periods,
                charged,
                done: false,
            }),
            Err(e) => {
                let outcome = match e {
                    BudgetError::UserExhausted { .. } => "user_exhausted",
                    BudgetError::GlobalExhausted { .. } => "global_exhausted",
                    _ => "unavailable",
                };
                metrics::counter!(metric_names::BUDGET_REFUSALS, "outcome" => outcome).increment(1);
                tracing::info!(user, estimate, outcome, "budget reservation refused");
                Err(e)
            }
        }
    }

    /// The current spending (including open reservations) of `user` and of everyone.
    ///
    /// # Errors
    /// [`BudgetError::Unavailable`] when Redis is down and the policy is to refuse.
    pub async fn usage(&self, user: &str) -> Result<BudgetUsage, BudgetError> {
        let periods = Periods::at(to_micros(self.inner.clock.now()));
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.inner.redis {
            if !redis.link.is_degraded()
                && let Ok(usage) = redis.usage(user, periods).await
            {
                return Ok(usage);
            }
            if redis.link.policy() == RedisDownPolicy::Refuse {
                return Err(BudgetError::Unavailable);
            }
        }
        Ok(self.local().usage(user, periods))
    }

    fn local(&self) -> std::sync::MutexGuard<'_, LocalBudgets> {
        self.inner
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn charge(
        &self,
        user: &str,
        estimate: u64,
        periods: Periods,
    ) -> Result<Charged, BudgetError> {
        let limits = (self.inner.user_daily, self.inner.global_hourly);
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.inner.redis {
            if !redis.link.is_degraded() {
                match redis.reserve(user, estimate, periods, limits).await {
                    Ok(0) => return Ok(Charged::Redis),
                    Ok(1) => return Err(user_exhausted(self.now_us(), periods)),
                    Ok(_) => return Err(global_exhausted(self.now_us(), periods)),
                    Err(()) => {}
                }
            }
            if redis.link.policy() == RedisDownPolicy::Refuse {
                return Err(BudgetError::Unavailable);
            }
        }
        match self.local().reserve(user, estimate, periods, limits) {
            0 => Ok(Charged::Local),
            1 => Err(user_exhausted(self.now_us(), periods)),
            _ => Err(global_exhausted(self.now_us(), periods)),
        }
    }

    fn now_us(&self) -> u64 {
        to_micros(self.inner.clock.now())
    }

    async fn adjust(&self, r: &Reservation, delta: i128) -> Result<(), BudgetError> {
        match r.charged {
            Charged::Local => {
                self.local().adjust(&r.user, r.periods, delta);
                Ok(())
            }
            #[cfg(feature = "redis")]
            Charged::Redis => {
                let Some(redis) = &self.inner.redis else {
                    return Ok(());
                };
                redis
                    .settle(&r.user, r.periods, delta)
                    .await
                    .map_err(|()| BudgetError::Unavailable)
            }
        }
    }
}

fn user_exhausted(now: u64, p: Periods) -> BudgetError {
    BudgetError::UserExhausted {
        retry_after: Duration::from_micros(p.day_end_us().saturating_sub(now)),
    }
}

fn global_exhausted(now: u64, p: Periods) -> BudgetError {
    BudgetError::GlobalExhausted {
        retry_after: Duration::from_micros(p.hour_end_us().saturating_sub(now)),
    }
}

/// An amount charged ahead of an expensive call. Settle it with the real cost, or release it
/// if the call did not happen.
///
/// Dropping it unsettled releases the reservation too (in-process at once; Redis-backed from a
/// spawned task, when a Tokio runtime is running) and logs a warning, because it usually
/// means an error path forgot to settle. A reservation that could not be released at all
/// lapses with its period's counters.
#[must_use = "settle or release the reservation"]
pub struct Reservation {
    budgets: Budgets,
    user: String,
    amount: u64,
    periods: Periods,
    charged: Charged,
    done: bool,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("user", &self.user)
            .field("amount", &self.amount)
            .field("charged", &self.charged)
            .finish_non_exhaustive()
    }
}

impl Reservation {
    /// The reserved amount, in micro-units.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// Records the real cost: the difference to the estimate is released (or, if the call cost
    /// more, charged on top, even past the budget — the money is spent).
    ///
    /// # Errors
    /// [`BudgetError::Unavailable`] when the reservation was made in Redis and Redis cannot be
    /// reached now; the reserved estimate then stays charged until its period ends.
    pub async fn settle(mut self, actual: u64) -> Result<(), BudgetError> {
        self.done = true;
        let delta = i128::from(actual) - i128::from(self.amount);
        self.budgets.adjust(&self, delta).await?;
        metrics::counter!(metric_names::BUDGET_SPENT, "scope" => "user").increment(actual);
        metrics::counter!(metric_names::BUDGET_SPENT, "scope" => "global").increment(actual);
        Ok(())
    }

    /// Gives the whole reservation back (the call did not happen).
    ///
    /// # Errors
    /// As [`settle`](Self::settle).
    pub async fn release(mut self) -> Result<(), BudgetError> {
        self.done = true;
        self.budgets.adjust(&self, -i128::from(self.amount)).await
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        tracing::warn!(
            user = %self.user,
            amount = self.amount,
            "budget reservation dropped without settle or release; releasing it"
        );
        let delta = -i128::from(self.amount);
        match self.charged {
            Charged::Local => self.budgets.local().adjust(&self.user, self.periods, delta),
            #[cfg(feature = "redis")]
            Charged::Redis => {
                if let (Ok(handle), Some(_)) = (
                    tokio::runtime::Handle::try_current(),
                    self.budgets.inner.redis.as_ref(),
                ) {
                    let budgets = self.budgets.clone();
                    let user = std::mem::take(&mut self.user);
                    let periods = self.periods;
                    handle.spawn(async move {
                        if let Some(redis) = &budgets.inner.redis {
                            let _ = redis.settle(&user, periods, delta).await;
                        }
                    });
                }
            }
        }
    }
}

/// In-process counters: one mutex, because reservations guard expensive calls and are rare
/// next to rate-limit decisions.
#[derive(Debug, Default)]
struct LocalBudgets {
    users: HashMap<String, (u64, u64)>,
    global: (u64, u64),
    writes: usize,
}

impl LocalBudgets {
    fn user_used(&self, user: &str, day: u64) -> u64 {
        match self.users.get(user) {
            Some(&(d, used)) if d == day => used,
            _ => 0,
        }
    }

    fn global_used(&self, hour: u64) -> u64 {
        if self.global.0 == hour {
            self.global.1
        } else {
            0
        }
    }

    /// 0 reserved, 1 user exhausted, 2 global exhausted (as the Redis script).
    fn reserve(&mut self, user: &str, estimate: u64, p: Periods, limits: (u64, u64)) -> u8 {
        let user_used = self.user_used(user, p.day);
        if user_used.saturating_add(estimate) > limits.0 {
            return 1;
        }
        let global_used = self.global_used(p.hour);
        if global_used.saturating_add(estimate) > limits.1 {
            return 2;
        }
        self.users
            .insert(user.to_owned(), (p.day, user_used + estimate));
        self.global = (p.hour, global_used + estimate);
        self.writes += 1;
        if self.writes >= self.users.len().max(1024) {
            // Yesterday's users are zero today: drop them so memory follows active users.
            self.writes = 0;
            self.users.retain(|_, (d, _)| *d >= p.day);
        }
        0
    }

    /// Applies a settlement to the periods the reservation was charged in; a period that has
    /// already ended is left alone.
    fn adjust(&mut self, user: &str, p: Periods, delta: i128) {
        let apply = |used: u64| -> u64 {
            u64::try_from((i128::from(used) + delta).max(0)).unwrap_or(u64::MAX)
        };
        if let Some((day, used)) = self.users.get_mut(user)
            && *day == p.day
        {
            *used = apply(*used);
        }
        if self.global.0 == p.hour {
            self.global.1 = apply(self.global.1);
        }
    }

    fn usage(&self, user: &str, p: Periods) -> BudgetUsage {
        BudgetUsage {
            user_today: self.user_used(user, p.day),
            global_this_hour: self.global_used(p.hour),
        }
    }
}

/// Reserve: `KEYS[1]` user counter, `KEYS[2]` global counter; `ARGV` estimate, user limit,
/// global limit, user expiry and global expiry (ms since epoch). Returns 0 reserved, 1 user
/// exhausted, 2 global exhausted.
#[cfg(feature = "redis")]
const RESERVE_SCRIPT: &str = r"
local est = tonumber(ARGV[1])
local u = tonumber(redis.call('GET', KEYS[1]) or '0')
if u + est > tonumber(ARGV[2]) then return 1 end
local g = tonumber(redis.call('GET', KEYS[2]) or '0')
if g + est > tonumber(ARGV[3]) then return 2 end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
redis.call('INCRBY', KEYS[2], ARGV[1])
redis.call('PEXPIREAT', KEYS[2], ARGV[5])
return 0
";

/// Settle: adds `ARGV[1]` (may be negative) to both counters, never below zero, and renews
/// their expiry (`ARGV[2]`, `ARGV[3]`).
#[cfg(feature = "redis")]
const SETTLE_SCRIPT: &str = r"
for i = 1, 2 do
  local v = redis.call('INCRBY', KEYS[i], ARGV[1])
  if v < 0 then redis.call('SET', KEYS[i], 0) end
  redis.call('PEXPIREAT', KEYS[i], ARGV[i + 1])
end
return 0
";

/// Counters outlive their period by an hour so a late settlement still lands.
#[cfg(feature = "redis")]
const GRACE_MS: u64 = 3_600_000;

#[cfg(feature = "redis")]
struct RedisBudgets {
    link: RedisLink,
    reserve: redis::Script,
    settle: redis::Script,
    prefix: String,
}

#[cfg(feature = "redis")]
impl RedisBudgets {
    fn keys(&self, user: &str, p: Periods) -> (String, String) {
        (
            format!("{}user:{}:{user}", self.prefix, p.day),
            format!("{}global:{}", self.prefix, p.hour),
        )
    }

    fn expiries(p: Periods) -> (u64, u64) {
        (
            p.day_end_us() / 1000 + GRACE_MS,
            p.hour_end_us() / 1000 + GRACE_MS,
        )
    }

    async fn reserve(
        &self,
        user: &str,
        estimate: u64,
        p: Periods,
        limits: (u64, u64),
    ) -> Result<u8, ()> {
        let (user_key, global_key) = self.keys(user, p);
        let (user_exp, global_exp) = Self::expiries(p);
        let mut inv = self.reserve.prepare_invoke();
        inv.key(user_key)
            .key(global_key)
            .arg(estimate)
            .arg(limits.0)
            .arg(limits.1)
            .arg(user_exp)
            .arg(global_exp);
        self.link
            .call(|mut conn| async move { inv.invoke_async::<u8>(&mut conn).await })
            .await
            .map_err(|_| ())
    }

    async fn settle(&self, user: &str, p: Periods, delta: i128) -> Result<(), ()> {
        let (user_key, global_key) = self.keys(user, p);
        let (user_exp, global_exp) = Self::expiries(p);
        let delta = i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX });
        let mut inv = self.settle.prepare_invoke();
        inv.key(user_key)
            .key(global_key)
            .arg(delta)
            .arg(user_exp)
            .arg(global_exp);
        self.link
            .call(|mut conn| async move { inv.invoke_async::<()>(&mut conn).await })
            .await
            .map_err(|_| ())
    }

    async fn usage(&self, user: &str, p: Periods) -> Result<BudgetUsage, ()> {
        let (user_key, global_key) = self.keys(user, p);
        let (u, g): (Option<u64>, Option<u64>) = self
            .link
            .call(|mut conn| async move {
                redis::cmd("MGET")
                    .arg(&user_key)
                    .arg(&global_key)
                    .query_async(&mut conn)
                    .await
            })
            .await
            .map_err(|_| ())?;
        Ok(BudgetUsage {
            user_today: u.unwrap_or(0),
            global_this_hour: g.unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_utc_days_and_hours() {
        let p = Periods::at(DAY_US + 90 * 60 * 1_000_000);
        assert_eq!((p.day, p.hour), (1, 25));
        assert_eq!(p.day_end_us(), 2 * DAY_US);
        assert_eq!(p.hour_end_us(), 26 * HOUR_US);
    }

    #[test]
    fn errors_map_to_429_and_503() {
        let user = BudgetError::UserExhausted {
            retry_after: Duration::from_secs(5),
        };
        assert_eq!(user.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(user.retry_after(), Some(Duration::from_secs(5)));
        let global = BudgetError::GlobalExhausted {
            retry_after: Duration::from_secs(7),
        };
        assert_eq!(global.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
