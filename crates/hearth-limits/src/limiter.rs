//! The rate limiter: in-process, or Redis-backed with an in-process fallback.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
#[cfg(feature = "redis")]
use std::time::Duration;
use std::time::Instant;

use metrics::Counter;

use crate::clock::{Clock, SystemClock};
use crate::local::LocalStore;
use crate::metric_names;
#[cfg(feature = "redis")]
use crate::redis_link::{LinkOptions, RedisLink, RedisTarget};
use crate::rule::{AsCheck, Check, Decision, Rule};
#[cfg(feature = "redis")]
use crate::settings::RedisDownPolicy;

/// Why a decision could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// Redis is unreachable and the policy is [`RedisDownPolicy::Refuse`](crate::RedisDownPolicy::Refuse); answer 503.
    #[error("rate limiting is unavailable: Redis is unreachable and the policy is to refuse")]
    Unavailable,
    /// The Redis URL or client configuration is unusable.
    #[cfg(feature = "redis")]
    #[error("invalid Redis configuration")]
    Config(#[source] redis::RedisError),
}

/// Decides whether requests may proceed. Cheap to clone (one `Arc`); clones share counters.
///
/// `Limiter::in_process()` keeps counters in this process. `Limiter::redis(…)` keeps them in
/// Redis, shared by every gateway, and decides each request with one `EVALSHA`; while Redis
/// is unreachable it falls back to in-process counters or refuses, per [`RedisDownPolicy`](crate::RedisDownPolicy).
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

struct Inner {
    local: LocalStore,
    metrics: DecisionMetrics,
    #[cfg(feature = "redis")]
    redis: Option<RedisGcra>,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("backend", &self.backend())
            .field("degraded", &self.is_degraded())
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// Counters in this process, on the system clock.
    pub fn in_process() -> Self {
        Self::in_process_with_clock(Arc::new(SystemClock::new()))
    }

    /// Counters in this process, on `clock` (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn in_process_with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                local: LocalStore::new(clock),
                metrics: DecisionMetrics::default(),
                #[cfg(feature = "redis")]
                redis: None,
            }),
        }
    }

    /// Counters in Redis under the default key prefix `hearth:rl:`, with `policy` while
    /// Redis is unreachable. Use [`Limiter::builder`] to change the prefix or timeouts.
    ///
    /// An unreachable server is not an error: the limiter starts degraded and returns to
    /// Redis once it answers.
    ///
    /// # Errors
    /// [`LimitError::Config`] when the URL cannot be parsed.
    #[cfg(feature = "redis")]
    pub async fn redis(
        target: impl Into<RedisTarget>,
        policy: RedisDownPolicy,
    ) -> Result<Self, LimitError> {
        Self::builder().redis(target, policy).build().await
    }

    /// A builder for the less common options.
    pub fn builder() -> LimiterBuilder {
        LimiterBuilder::default()
    }

    /// `"in-process"` or `"redis"`: where counters live when all is well.
    pub fn backend(&self) -> &'static str {
        #[cfg(feature = "redis")]
        if self.inner.redis.is_some() {
            return "redis";
        }
        "in-process"
    }

    /// Whether a Redis-backed limiter currently cannot reach Redis (and applies its policy).
    /// Always false in-process.
    pub fn is_degraded(&self) -> bool {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.inner.redis {
            return redis.link.is_degraded();
        }
        false
    }

    /// Checks all of a request's rules at once. The request is allowed only if every rule
    /// allows it, and only then is every rule charged: a refusal consumes nothing. No checks
    /// means [`Decision::unlimited`].
    ///
    /// Rules are identified by name within a key: pass each (rule, key) pair once; a repeated
    /// pair is charged twice.
    ///
    /// # Errors
    /// [`LimitError::Unavailable`] when Redis is unreachable and the policy is
    /// [`RedisDownPolicy::Refuse`](crate::RedisDownPolicy::Refuse).
    pub async fn check(&self, checks: &[Check]) -> Result<Decision, LimitError> {
        self.decide(checks).await
    }

    /// [`check`](Self::check) without a future, when the counters are in-process: the same
    /// decision, counted in the same metrics. `None` when Redis holds the counters (then use
    /// `check`). For callers that keep their own futures small.
    pub fn check_now(&self, checks: &[Check]) -> Option<Decision> {
        self.check_at(checks, Instant::now())
    }

    /// [`check_now`](Self::check_now) as of `at`, a moment the caller has just read (a
    /// request's arrival), so that one clock reading serves the request's every decision.
    /// The in-process clock maps it to wall time; a [`ManualClock`](crate::ManualClock)
    /// ignores it.
    pub fn check_at(&self, checks: &[Check], at: Instant) -> Option<Decision> {
        #[cfg(feature = "redis")]
        if self.inner.redis.is_some() {
            return None;
        }
        if checks.is_empty() {
            return Some(Decision::unlimited());
        }
        let decision = self.inner.local.decide_at_instant(checks, at);
        self.inner.metrics.record(&decision, checks);
        Some(decision)
    }

    /// Checks one rule for one key: the plain API for non-HTTP callers (the worker, the AI
    /// client).
    ///
    /// # Errors
    /// As [`check`](Self::check).
    pub async fn check_one(&self, key: &str, rule: &Rule) -> Result<Decision, LimitError> {
        self.decide(&[(rule, key)]).await
    }

    async fn decide<C: AsCheck + Sync>(&self, checks: &[C]) -> Result<Decision, LimitError> {
        if checks.is_empty() {
            return Ok(Decision::unlimited());
        }
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.inner.redis {
            if !redis.link.is_degraded()
                && let Ok(decision) = redis.decide(checks).await
            {
                self.inner.metrics.record(&decision, checks);
                return Ok(decision);
            }
            if redis.link.policy() == RedisDownPolicy::Refuse {
                return Err(LimitError::Unavailable);
            }
        }
        let decision = self.inner.local.decide(checks);
        self.inner.metrics.record(&decision, checks);
        Ok(decision)
    }
}

/// The decision counters' handles by rule, looked up once per rule rather than on every
/// decision (a registry lookup builds and hashes a labelled key each time).
#[derive(Default)]
struct DecisionMetrics {
    /// Per rule name: decisions allowed, decisions refused, refusals.
    by_rule: RwLock<HashMap<String, [Counter; 3]>>,
}

impl DecisionMetrics {
    fn record<C: AsCheck>(&self, decision: &Decision, checks: &[C]) {
        // The deciding rule's label comes from the rule itself, so `&'static` names cost nothing.
        let Some(rule) = checks
            .iter()
            .map(AsCheck::rule)
            .find(|r| r.name == decision.rule.as_ref())
        else {
            return;
        };
        // Counted under the read lock: cloning the handles out would cost six more atomic
        // operations on lines every worker shares.
        let counted = self.by_rule.read().ok().is_some_and(|map| {
            map.get(rule.name.as_ref())
                .map(|counters| Self::count(counters, decision))
                .is_some()
        });
        if !counted {
            let counters = [
                metrics::counter!(metric_names::DECISIONS, "rule" => rule.name.clone(), "outcome" => "allowed"),
                metrics::counter!(metric_names::DECISIONS, "rule" => rule.name.clone(), "outcome" => "refused"),
                metrics::counter!(metric_names::REFUSALS, "rule" => rule.name.clone()),
            ];
            Self::count(&counters, decision);
            if let Ok(mut map) = self.by_rule.write() {
                map.insert(rule.name.to_string(), counters);
            }
        }
        if !decision.allowed {
            tracing::debug!(
                rule = %decision.rule,
                retry_after_ms = decision.retry_after.map(|d| d.as_millis()),
                "rate limit refused"
            );
        }
    }

    fn count([allowed, refused, refusals]: &[Counter; 3], decision: &Decision) {
        if decision.allowed {
            allowed.increment(1);
        } else {
            refused.increment(1);
            refusals.increment(1);
        }
    }
}

/// Options of a [`Limiter`]. Defaults: in-process, system clock, key prefix `hearth:rl:`,
/// Redis call timeout 500 ms, probe every 500 ms while Redis is down.
#[derive(Debug)]
pub struct LimiterBuilder {
    clock: Arc<dyn Clock>,
    #[cfg(feature = "redis")]
    key_prefix: String,
    #[cfg(feature = "redis")]
    redis: Option<(RedisTarget, RedisDownPolicy)>,
    #[cfg(feature = "redis")]
    link: LinkOptions,
}

impl Default for LimiterBuilder {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock::new()),
            #[cfg(feature = "redis")]
            key_prefix: "hearth:rl:".to_owned(),
            #[cfg(feature = "redis")]
            redis: None,
            #[cfg(feature = "redis")]
            link: LinkOptions::default(),
        }
    }
}

impl LimiterBuilder {
    /// The clock of in-process decisions (including the fallback while Redis is down).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Keep counters in Redis; `policy` says what to do while it is unreachable.
    #[cfg(feature = "redis")]
    pub fn redis(mut self, target: impl Into<RedisTarget>, policy: RedisDownPolicy) -> Self {
        self.redis = Some((target.into(), policy));
        self
    }

    /// Prefix of every Redis key (default `hearth:rl:`); a counter's key is
    /// `<prefix><rule name>:<check key>`.
    #[cfg(feature = "redis")]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Deadline of one Redis decision (default 500 ms); past it, the decision falls back per
    /// the policy and Redis counts as down.
    #[cfg(feature = "redis")]
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.link.timeout = timeout;
        self
    }

    /// How often a degraded limiter probes Redis (default 500 ms).
    #[cfg(feature = "redis")]
    pub fn probe_interval(mut self, every: Duration) -> Self {
        self.link.probe_every = every;
        self
    }

    /// Builds the limiter, connecting to Redis if asked to.
    ///
    /// # Errors
    /// `LimitError::Config` when the Redis URL cannot be parsed. An unreachable server is
    /// not an error (the limiter starts degraded).
    pub async fn build(self) -> Result<Limiter, LimitError> {
        let local = LocalStore::new(self.clock);
        #[cfg(feature = "redis")]
        let redis = match self.redis {
            None => None,
            Some((target, policy)) => {
                let script = redis::Script::new(GCRA_SCRIPT);
                let link = RedisLink::connect(
                    target,
                    policy,
                    self.link,
                    "rate_limit",
                    vec![script.clone()],
                )
                .await
                .map_err(LimitError::Config)?;
                Some(RedisGcra {
                    link,
                    script,
                    prefix: self.key_prefix,
                })
            }
        };
        Ok(Limiter {
            inner: Arc::new(Inner {
                local,
                metrics: DecisionMetrics::default(),
                #[cfg(feature = "redis")]
                redis,
            }),
        })
    }
}

/// GCRA over all of a request's rules in one atomic script.
///
/// `KEYS[i]` is rule i's counter; `ARGV[2i-1]`, `ARGV[2i]` its emission interval and window in
/// microseconds. Time is the Redis server's `TIME`, so every gateway shares one clock. Returns
/// a flat array of (allowed, debt µs, retry µs) per rule; TATs are written (as integer text,
/// with a TTL until they expire) only when every rule allows.
#[cfg(feature = "redis")]
pub(crate) const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pending = {}
local out = {}
local ok = true
for i = 1, #KEYS do
  local key = KEYS[i]
  local interval = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  local tat = pending[key]
  if tat == nil then
    tat = tonumber(redis.call('GET', key)) or now
  end
  if tat < now then tat = now end
  local new_tat = tat + interval
  if new_tat - now > window then
    ok = false
    out[3 * i - 2] = 0
    out[3 * i - 1] = tat - now
    out[3 * i] = new_tat - now - window
  else
    pending[key] = new_tat
    out[3 * i - 2] = 1
    out[3 * i - 1] = new_tat - now
    out[3 * i] = 0
  end
end
if ok then
  for key, tat in pairs(pending) do
    local ttl = math.ceil((tat - now) / 1000)
    if ttl < 1 then ttl = 1 end
    redis.call('SET', key, string.format('%d', tat), 'PX', ttl)
  end
end
return out
";

#[cfg(feature = "redis")]
struct RedisGcra {
    link: RedisLink,
    script: redis::Script,
    prefix: String,
}

#[cfg(feature = "redis")]
impl RedisGcra {
    async fn decide<C: AsCheck>(&self, checks: &[C]) -> Result<Decision, ()> {
        use crate::gcra::{Params, RuleResult};

        let mut invocation = self.script.prepare_invoke();
        for c in checks {
            let rule = c.rule();
            let p = Params::of(rule);
            let mut key =
                String::with_capacity(self.prefix.len() + rule.name.len() + 1 + c.key().len());
            key.push_str(&self.prefix);
            key.push_str(&rule.name);
            key.push(':');
            key.push_str(c.key());
            // Quota 0 never allows: an interval longer than the window says so in Lua.
            let interval = if rule.quota == 0 {
                p.window.saturating_add(1)
            } else {
                p.interval
            };
            invocation.key(key).arg(interval).arg(p.window);
        }
        let raw: Vec<i64> = self
            .link
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
            .map_err(|_| ())?;
        if raw.len() != 3 * checks.len() {
            tracing::error!(
                len = raw.len(),
                "unexpected reply from the rate-limit script"
            );
            return Err(());
        }
        let to_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
        let results: Vec<RuleResult> = raw
            .chunks_exact(3)
            .zip(checks)
            .map(|(r, c)| RuleResult {
                allowed: r[0] == 1,
                debt: to_u64(r[1]),
                retry: if c.rule().quota == 0 {
                    Params::of(c.rule()).window
                } else {
                    to_u64(r[2])
                },
            })
            .collect();
        Ok(crate::gcra::decision(checks, &results))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_future_is_send_so_it_fits_a_tower_service() {
        fn assert_send<T: Send>(_: &T) {}
        let limiter = Limiter::in_process();
        let checks = [Rule::per_minute("r", 1).check("k")];
        assert_send(&limiter.check(&checks));
        let rule = Rule::per_minute("r", 1);
        assert_send(&limiter.check_one("k", &rule));
    }
}
