//! Rules, the checks a request asks for, and the decision with its HTTP headers.

use std::borrow::Cow;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

/// A quota: at most `quota` requests per `window`, spread by GCRA (see the crate docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Identifies the counter together with the check's key, and labels metrics: two rules
    /// with the same name and key share one counter, so names must be unique per key.
    pub name: Cow<'static, str>,
    /// Requests allowed per window; 0 refuses every request.
    pub quota: u32,
    /// The window the quota refers to.
    pub window: Duration,
}

impl Rule {
    /// A rule named `name` allowing `quota` requests per `window`.
    pub fn new(name: impl Into<Cow<'static, str>>, quota: u32, window: Duration) -> Self {
        Self {
            name: name.into(),
            quota,
            window,
        }
    }

    /// `quota` requests per minute.
    pub fn per_minute(name: impl Into<Cow<'static, str>>, quota: u32) -> Self {
        Self::new(name, quota, Duration::from_secs(60))
    }

    /// `quota` requests per hour.
    pub fn per_hour(name: impl Into<Cow<'static, str>>, quota: u32) -> Self {
        Self::new(name, quota, Duration::from_secs(3600))
    }

    /// This rule applied to `key`.
    pub fn check(&self, key: impl Into<String>) -> Check {
        Check::new(self.clone(), key)
    }
}

/// One rule applied to one key, e.g. rule `ip.minute` for key `ip:203.0.113.7`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Check {
    /// The rule.
    pub rule: Rule,
    /// Who is counted: `ip:<addr>`, `user:<id>`, `conn:<id>`… The counter is the pair
    /// (rule name, key).
    pub key: String,
}

impl Check {
    /// `rule` applied to `key`.
    pub fn new(rule: Rule, key: impl Into<String>) -> Self {
        Self {
            rule,
            key: key.into(),
        }
    }
}

/// Read access to a rule and a key, so single checks need no allocation.
pub(crate) trait AsCheck {
    fn rule(&self) -> &Rule;
    fn key(&self) -> &str;
}

impl AsCheck for Check {
    fn rule(&self) -> &Rule {
        &self.rule
    }
    fn key(&self) -> &str {
        &self.key
    }
}

impl AsCheck for (&Rule, &str) {
    fn rule(&self) -> &Rule {
        self.0
    }
    fn key(&self) -> &str {
        self.1
    }
}

/// A route class: the rule families of the `limits.rules` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// Every request, per client IP.
    Ip,
    /// Every authenticated request, per user.
    User,
    /// Log-in attempts, per IP and account.
    Login,
    /// Sign-ups, per IP.
    Signup,
    /// Game actions, per user.
    Game,
    /// AI calls, per user.
    Ai,
    /// WebSocket messages, per connection.
    Websocket,
}

impl RouteClass {
    /// Every class, in settings order.
    pub const ALL: [Self; 7] = [
        Self::Ip,
        Self::User,
        Self::Login,
        Self::Signup,
        Self::Game,
        Self::Ai,
        Self::Websocket,
    ];

    /// The settings name: `ip`, `user`, `login`, `signup`, `game`, `ai`, `websocket`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::User => "user",
            Self::Login => "login",
            Self::Signup => "signup",
            Self::Game => "game",
            Self::Ai => "ai",
            Self::Websocket => "websocket",
        }
    }

    /// Rule names of the minute and hour windows.
    pub(crate) fn rule_names(self) -> (&'static str, &'static str) {
        match self {
            Self::Ip => ("ip.minute", "ip.hour"),
            Self::User => ("user.minute", "user.hour"),
            Self::Login => ("login.minute", "login.hour"),
            Self::Signup => ("signup.minute", "signup.hour"),
            Self::Game => ("game.minute", "game.hour"),
            Self::Ai => ("ai.minute", "ai.hour"),
            Self::Websocket => ("websocket.minute", "websocket.hour"),
        }
    }
}

/// The outcome of checking all of a request's rules at once.
///
/// When allowed, the numbers describe the most restrictive rule (fewest requests remaining);
/// when refused, the refusing rule that frees up last (longest `retry_after`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether every rule allowed the request (and was charged for it).
    pub allowed: bool,
    /// The quota of [`rule`](Self::rule), as enforced (at most one request per microsecond).
    pub limit: u32,
    /// Requests that rule would still allow right now.
    pub remaining: u32,
    /// Time until that rule's full quota is available again.
    pub reset: Duration,
    /// When refused: time until the request would be allowed.
    pub retry_after: Option<Duration>,
    /// Name of the rule described; empty when no rule applied. Borrowed from the rule when
    /// its name is `&'static` (the usual case), so a decision allocates nothing.
    pub rule: Cow<'static, str>,
}

impl Decision {
    /// The decision for a request no rule applies to: allowed, and no headers.
    pub fn unlimited() -> Self {
        Self {
            allowed: true,
            limit: 0,
            remaining: 0,
            reset: Duration::ZERO,
            retry_after: None,
            rule: Cow::Borrowed(""),
        }
    }

    /// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (whole seconds, rounded up)
    /// and, when refused, `Retry-After` (whole seconds, rounded up). Empty for
    /// [`unlimited`](Self::unlimited).
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut map = http::HeaderMap::new();
        self.write_headers(&mut map);
        map.into_iter()
            .filter_map(|(name, value)| Some((name?, value)))
            .collect()
    }

    /// Sets the [`headers`](Self::headers) on `headers` directly, replacing any of the same
    /// name: for a response on its way out, without collecting them first.
    pub fn write_headers(&self, headers: &mut http::HeaderMap) {
        if self.rule.is_empty() {
            return;
        }
        headers.insert(RATELIMIT_LIMIT, number(self.limit.into()));
        headers.insert(RATELIMIT_REMAINING, number(self.remaining.into()));
        headers.insert(RATELIMIT_RESET, number(ceil_secs(self.reset)));
        if let Some(retry) = self.retry_after {
            headers.insert(http::header::RETRY_AFTER, number(ceil_secs(retry).max(1)));
        }
    }
}

/// `n` in decimal as a header value, in one allocation (`HeaderValue::from(n)` makes two:
/// a buffer, then the shared handle it is frozen into). These go on every answer.
#[allow(
    clippy::expect_used,
    reason = "decimal digits are always a valid header value"
)]
fn number(n: u64) -> HeaderValue {
    HeaderValue::from_str(itoa::Buffer::new().format(n)).expect("digits are a valid header value")
}

/// `RateLimit-Limit`.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in [0, 7, 10, 99, 1_000_000_000, u64::MAX] {
            assert_eq!(number(n), HeaderValue::from(n), "{n}");
        }
    }

    #[test]
    fn headers_round_seconds_up_and_add_retry_after_only_when_refused() {
        let mut d = Decision {
            allowed: true,
            limit: 5,
            remaining: 3,
            reset: Duration::from_millis(24_001),
            retry_after: None,
            rule: "login.minute".into(),
        };
        let text = |d: &Decision| {
            d.headers()
                .into_iter()
                .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            text(&d),
            [
                "ratelimit-limit: 5",
                "ratelimit-remaining: 3",
                "ratelimit-reset: 25"
            ]
        );
        d.allowed = false;
        d.remaining = 0;
        d.retry_after = Some(Duration::from_micros(300));
        assert_eq!(text(&d)[3], "retry-after: 1");
        assert!(Decision::unlimited().headers().is_empty());
    }
}
