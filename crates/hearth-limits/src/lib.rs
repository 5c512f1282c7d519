//! Limits for Hearth services: who the client is, how fast it may go, how much it may spend,
//! and whether its traffic looks wrong.
//!
//! # Layout
//! - [`client_ip`]: the client's address behind a load balancer. The socket peer is the client
//!   unless it is a configured trusted proxy; then the right-most `X-Forwarded-For` address that
//!   is not itself a trusted proxy is. A spoofed header from an untrusted peer changes nothing.
//! - [`Rule`], [`Check`], [`Decision`]: a quota per window, a rule applied to a key
//!   (`ip:…`, `user:…`), and the all-rules verdict with its `RateLimit-*` / `Retry-After`
//!   headers.
//! - [`Limiter`]: decides a request's checks together, in-process or in Redis (one `EVALSHA`
//!   per decision), with a fallback policy for a Redis outage. [`Limiter::check_one`] is the
//!   plain API for non-HTTP callers (the worker, the AI client).
//! - [`RouteLimits`]: a per-route table of which rules apply, keyed by what.
//! - [`Admission`]: the sequence an HTTP request goes through (anomaly check → its keys → its
//!   route's checks → one limiter call → the `RateLimit-*` headers or a [`Refusal`]), written
//!   once: the Hearth gateway and `RateLimitLayer` (feature `tower`, the tower middleware
//!   answering 429 and 503) both run it, so they decide and answer alike.
//! - [`ConnectionLimiter`]: messages per WebSocket connection, owned by the connection task.
//! - [`Budgets`]: cost budgets per user per day and global per hour, reserve then settle.
//! - [`AnomalyDetector`]: per-key request-rate anomalies (EWMA baseline, z-score, spike ratio).
//! - [`LimitsSettings`]: the `limits` settings section; [`metric_names`]: what is recorded.
//!
//! Features: `redis` (default) adds the Redis backends; `tower` (default) adds the layer.
//! Without either the crate still decides everything in-process.
//!
//! # Rate limits: GCRA
//! Each (rule, key) pair keeps one number, its *theoretical arrival time* (TAT). For a rule of
//! `q` requests per window `W` the emission interval is `T = W / q` and the tolerance
//! `τ = W − T`. A request at time `t`:
//!
//! ```text
//! tat'  = max(TAT, t) + T
//! allow iff tat' − t ≤ W          (equivalently max(TAT, t) − t ≤ τ)
//! if allowed: TAT := tat'
//! remaining   = ⌊(W − (TAT − t)) / T⌋        reset = TAT − t
//! retry_after = tat' − t − W                  (when refused)
//! ```
//!
//! So `q` requests pass at once from an idle key, and then one more every `T`: 5/min allows a
//! burst of 5, then one every 12 s. Over any span `L`, at most `q + ⌊L/T⌋` requests pass, and
//! the long-run rate never exceeds `q / W`. Unlike a fixed window there is no boundary: five
//! requests at 0:59.9 leave nothing for 1:00.1 (retry after 11.8 s), where a fixed window would
//! allow five more. (The price of a burst-friendly tolerance: right after a full burst a key
//! still earns one request per `T`, so a span of one window can see up to `2q − 1` requests,
//! but only after the key was idle for a whole window.) Times are whole microseconds; `T` is
//! rounded down and at least 1 µs, so a rule can enforce at most one request per microsecond
//! (sixty million a minute), and that is the quota its decisions report.
//!
//! A request's checks are decided **all-or-nothing**: every rule is evaluated, and only if all
//! allow are all TATs written. A refused rule therefore consumes nothing from the others.
//!
//! In Redis the same arithmetic runs in one Lua script (`EVALSHA`, all keys of the request,
//! one round trip). It reads the **Redis server's `TIME`**, so N gateways with drifting clocks
//! share one timeline. Keys are `<prefix><rule>:<key>` (prefix `hearth:rl:` by default) holding
//! the TAT, with a TTL ending when the TAT passes, so idle keys vanish. In-process counters
//! live in 64 mutex-guarded shards; a decision locks the shards of its keys in index order
//! (no deadlock), and each shard periodically drops counters whose TAT has passed, so memory
//! follows the keys active within their windows.
//!
//! **Redis down.** Every Redis call has a deadline (500 ms). A connection failure or timeout
//! marks the limiter degraded: one `error` log line, `hearth_limits_degraded{component} = 1`,
//! `hearth_limits_redis_errors_total` counted. While degraded, decisions are made in-process
//! (policy `local`, per instance) or fail with [`LimitError::Unavailable`] (policy `refuse`,
//! answered 503), without waiting on Redis. A background probe pings every 500 ms and, once
//! Redis answers, reloads the scripts, logs, sets the gauge to 0 and returns to Redis.
//!
//! # Budgets
//! Amounts are integer micro-units of the currency ([`MICROS_PER_UNIT`]), with a price table in
//! the settings. [`Budgets::reserve`] checks the user's budget for today (UTC), then the global
//! one for this hour, and charges the estimate to both only if both can cover it — atomically
//! (one Lua script in Redis, one mutex in-process), so concurrent callers can never together
//! overspend. [`Reservation::settle`] replaces the estimate with the real cost;
//! [`Reservation::release`] gives it all back. A spent user budget is
//! [`BudgetError::UserExhausted`] (429), a spent global budget [`BudgetError::GlobalExhausted`]
//! (503), both with the time until the period renews.
//!
//! # Anomaly detection
//! Per key, time is cut into intervals of `Δ` seconds (10). When an interval closes, its rate
//! `x = count / Δ` updates an exponentially weighted mean and variance (Finch's recursion):
//!
//! ```text
//! d = x − μ        μ := μ + α·d        σ² := (1 − α)·(σ² + α·d²)
//! ```
//!
//! (α = 0.2: a memory of about 5 intervals.) Each request also judges the *current* interval's
//! rate so far, `r = count_so_far / Δ` — a lower bound of its final rate, so a spike is caught
//! while it happens, and judging early can only under-report:
//!
//! ```text
//! σ_eff = sqrt(max(σ², max(μ, min_rate) / Δ))     z = (r − μ) / σ_eff
//! anomalous iff  r ≥ min_rate  and  z ≥ z_threshold  and  r ≥ spike_ratio · μ
//! ```
//!
//! The variance floor is the variance of a Poisson count's rate over `Δ`, so perfectly regular
//! traffic (σ² ≈ 0) does not make every small wobble infinitely significant; `min_rate` keeps
//! low traffic from alarming at all; `spike_ratio` asks that a significant rise also be large.
//! A slow ramp moves μ along with it (the EWMA lags a linear ramp by `slope·(1 − α)/α`), so it
//! never trips. A key needs `warmup_intervals` closed intervals before it is judged. An
//! anomaly is logged and counted once per key and interval; with `block = true` the key is
//! then [`Verdict::Blocked`] for `block_secs`.
//!
//! # Examples
//! Resolving the client behind a trusted proxy:
//! ```
//! use hearth_limits::client_ip::{ClientIpResolver, Cidr};
//!
//! let resolver = ClientIpResolver::new(vec!["10.0.0.0/8".parse::<Cidr>().unwrap()]);
//! let peer = "10.1.2.3".parse().unwrap();
//! assert_eq!(resolver.resolve(peer, Some("203.0.113.7, 10.9.9.9")), "203.0.113.7".parse::<std::net::IpAddr>().unwrap());
//! // An untrusted peer cannot claim another address.
//! let stranger = "198.51.100.1".parse().unwrap();
//! assert_eq!(resolver.resolve(stranger, Some("203.0.113.7")), stranger);
//! ```
//!
//! Several rules for one request (`Limiter::in_process()` uses the system clock; a
//! [`ManualClock`] makes the numbers exact):
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use hearth_limits::{Limiter, ManualClock, Rule};
//!
//! # block_on(async {
//! let limiter = Limiter::in_process_with_clock(Arc::new(ManualClock::new(Duration::from_secs(1_000))));
//! let login = Rule::per_minute("login.minute", 5);
//! let ip = Rule::per_minute("ip.minute", 60);
//! let checks = [ip.check("ip:203.0.113.7"), login.check("login:203.0.113.7:alice")];
//! for _ in 0..5 {
//!     assert!(limiter.check(&checks).await.unwrap().allowed);
//! }
//! let refused = limiter.check(&checks).await.unwrap();
//! assert!(!refused.allowed);
//! assert_eq!(refused.rule, "login.minute");
//! assert_eq!(refused.retry_after, Some(Duration::from_secs(12)));
//! // The refusal cost the IP rule nothing: 5 of 60 used.
//! assert_eq!(limiter.check_one("ip:203.0.113.7", &ip).await.unwrap().remaining, 54);
//! # });
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```
//!
//! # What it does not do
//! - It does not read the environment or know Redis URLs: the application loads
//!   [`LimitsSettings`] and passes a Redis URL, client or connection manager.
//! - It does not parse request bodies: a limit keyed by the account named in a log-in form is
//!   checked by the handler (`check_one("login:<ip>:<account>", &rule)`).
//! - Anomaly detection and [`ConnectionLimiter`] are in-process only (each gateway judges the
//!   traffic it sees); blocks are not shared between instances.
//! - While Redis is down with policy `local`, each instance enforces the quotas alone, so N
//!   instances together allow up to N times a quota (and budgets may be overspent N-fold).
//! - A decision that times out may still have been applied in Redis; it is then also decided
//!   locally. Limits err on the side of the client for that one request.
//! - No Redis Cluster support: a request's keys are not forced into one hash slot.

pub mod client_ip;
pub mod metric_names;

mod admission;
mod anomaly;
mod budget;
mod clock;
mod gcra;
#[cfg(feature = "tower")]
mod layer;
mod limiter;
mod local;
#[cfg(feature = "redis")]
mod redis_link;
mod routes;
mod rule;
mod settings;

pub use admission::{Admission, Admitted, Arrival, ClientKey, Refusal};
pub use anomaly::{AnomalyDetector, Verdict};
pub use budget::{BudgetError, BudgetUsage, Budgets, Reservation};
pub use clock::{Clock, ManualClock, SystemClock};
pub use gcra::ConnectionLimiter;
#[cfg(feature = "tower")]
pub use layer::{RateLimit, RateLimitLayer, ResponseFuture};
pub use limiter::{LimitError, Limiter, LimiterBuilder};
#[cfg(feature = "redis")]
pub use redis_link::RedisTarget;
pub use routes::{KeyBy, LimitKeys, RouteLimits, ip_key, write_ip_key};
pub use rule::{
    Check, Decision, RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET, RouteClass, Rule,
};
pub use settings::{
    AnomalySettings, BudgetSettings, LimitsSettings, MICROS_PER_UNIT, RedisDownPolicy,
    RuleSettings, RuleTable,
};
