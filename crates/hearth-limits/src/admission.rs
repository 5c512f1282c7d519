//! The admission sequence of an HTTP request, written once for the Hearth gateway and for
//! `RateLimitLayer`: the anomaly check, the request's keys, its route's checks, one limiter
//! call, and the headers or refusal that follow.
//!
//! Plain inputs only (a method, a path, the client's key, a closure giving the identities), so
//! any HTTP stack can drive it; the caller turns a [`Refusal`] into its own error response.

use std::borrow::Borrow;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::anomaly::{AnomalyDetector, Verdict};
use crate::limiter::Limiter;
use crate::routes::{LimitKeys, RouteLimits, write_ip_key};
use crate::rule::{Check, Decision, ceil_secs};

/// What the admission sequence needs to decide a request: the limiter and, optionally, the
/// anomaly detector. Borrowed, so building one per request costs nothing.
///
/// ```
/// use std::time::Instant;
/// use hearth_limits::{Admission, Arrival, KeyBy, LimitKeys, Limiter, RouteClass, RouteLimits, RuleTable};
/// use http::Method;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let limiter = Limiter::in_process();
/// let routes = RouteLimits::new(&RuleTable::default()).route("*", "/*", RouteClass::Ip, KeyBy::Ip);
/// let ip = "203.0.113.7".parse().unwrap();
/// let arrival = Arrival { method: &Method::GET, path: "/wallet", client: None, arrived: Instant::now() };
/// let admitted = Admission::new(&limiter)
///     .admit(&routes, arrival, || LimitKeys { ip: Some(ip), user: None })
///     .await
///     .unwrap();
/// let mut headers = http::HeaderMap::new();
/// admitted.write_headers(&mut headers);
/// assert_eq!(headers["ratelimit-limit"], "60");
/// # });
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    limiter: &'a Limiter,
    anomaly: Option<&'a AnomalyDetector>,
}

/// The request being admitted, as the sequence sees it.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'r> {
    /// The request's method.
    pub method: &'r Method,
    /// The request's path (without the query).
    pub path: &'r str,
    /// The client's key (`ip:<addr>`, see [`ClientKey`]) for the anomaly check; `None` when
    /// the client is unknown, which skips it.
    pub client: Option<&'r str>,
    /// When the request arrived: its anomaly check and rate limits are decided at this
    /// moment, so a request reads the clock once for all of them.
    pub arrived: Instant,
}

impl<'a> Admission<'a> {
    /// Decides with `limiter`, without an anomaly check.
    pub fn new(limiter: &'a Limiter) -> Self {
        Self {
            limiter,
            anomaly: None,
        }
    }

    /// Also refuses clients `anomaly` has blocked, before anything else is done for them.
    #[must_use]
    pub fn with_anomaly(self, anomaly: &'a AnomalyDetector) -> Self {
        Self {
            anomaly: Some(anomaly),
            ..self
        }
    }

    /// The whole sequence for a request whose checks come from a route table: the anomaly
    /// check of `arrival.client`, then `keys()` (called only for a client that is not
    /// blocked, as finding the user may mean verifying a token), then the route's checks for
    /// those keys, all decided in one limiter call at `arrival.arrived`.
    ///
    /// Everything up to the limiter call happens in this call; the future only waits for the
    /// limiter (for Redis) and holds neither `keys` nor what it borrows.
    ///
    /// # Errors
    /// A [`Refusal`] to answer instead of serving the request.
    pub fn admit<K: Borrow<LimitKeys>>(
        &self,
        routes: &RouteLimits,
        arrival: Arrival<'_>,
        keys: impl FnOnce() -> K,
    ) -> impl Future<Output = Result<Admitted, Refusal>> + Send + 'a {
        self.admit_with(arrival.client, arrival.arrived, || {
            routes.checks(arrival.method, arrival.path, keys().borrow())
        })
    }

    /// The same sequence with the checks from `checks()` instead of a table (a custom
    /// classifier): the anomaly check of `client`, then `checks()`, decided in one limiter
    /// call at `arrived`. No checks is admitted without asking the limiter, and without
    /// headers. As with [`admit`](Self::admit), only the limiter call is left to the future.
    ///
    /// # Errors
    /// A [`Refusal`] to answer instead of serving the request.
    pub fn admit_with(
        &self,
        client: Option<&str>,
        arrived: Instant,
        checks: impl FnOnce() -> Vec<Check>,
    ) -> impl Future<Output = Result<Admitted, Refusal>> + Send + 'a {
        let this = *self;
        let screened = this.screen(client, arrived).map(|()| checks());
        async move { this.decide(screened?, arrived).await }
    }

    /// Refuses a client the anomaly detector has blocked (and counts its request).
    fn screen(&self, client: Option<&str>, arrived: Instant) -> Result<(), Refusal> {
        if let (Some(anomaly), Some(client)) = (self.anomaly, client)
            && let Verdict::Blocked { until } = anomaly.observe(client, arrived)
        {
            return Err(Refusal::Blocked {
                retry_after: until.saturating_duration_since(Instant::now()),
            });
        }
        Ok(())
    }

    /// One limiter call for all of `checks`, in place when the counters are in-process.
    async fn decide(self, checks: Vec<Check>, arrived: Instant) -> Result<Admitted, Refusal> {
        if checks.is_empty() {
            return Ok(Admitted { decision: None });
        }
        let decided = match self.limiter.check_at(&checks, arrived) {
            Some(decision) => Ok(decision),
            // Redis: its call's future is large, so it is boxed, on this path only.
            None => Box::pin(self.limiter.check(&checks)).await,
        };
        match decided {
            Ok(decision) if decision.allowed => Ok(Admitted {
                decision: Some(decision),
            }),
            Ok(decision) => Err(Refusal::Limited(decision)),
            Err(error) => {
                tracing::warn!(%error, "rate limiter unavailable; refusing per policy");
                Err(Refusal::Unavailable)
            }
        }
    }
}

/// An admitted request: the decision whose `RateLimit-*` headers its answer carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// `None` when no rule applied to the request.
    decision: Option<Decision>,
}

impl Admitted {
    /// The limiter's decision, when any rule applied.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// Sets the `RateLimit-*` headers of the decision on an answer, replacing any there;
    /// nothing when no rule applied.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        if let Some(decision) = &self.decision {
            decision.write_headers(headers);
        }
    }
}

/// Why a request is not admitted. The caller answers with [`status`](Self::status), the
/// [`headers`](Self::write_headers) and a problem document saying [`detail`](Self::detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 429: the anomaly detector blocked the client.
    Blocked {
        /// How long the block lasts from now.
        retry_after: Duration,
    },
    /// 429: a rule refused the request.
    Limited(Decision),
    /// 503: the limiter could not decide (Redis down, policy refuse).
    Unavailable,
}

impl Refusal {
    /// 429, or 503 for [`Refusal::Unavailable`].
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Blocked { .. } | Self::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The whole seconds the client should wait, as `Retry-After` says them (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Self::Blocked { retry_after } => ceil_secs(*retry_after).max(1),
            Self::Limited(decision) => decision.retry_after.map_or(1, |d| ceil_secs(d).max(1)),
            Self::Unavailable => 1,
        }
    }

    /// The refusing rule's name, for a [`Refusal::Limited`].
    pub fn rule(&self) -> Option<&str> {
        match self {
            Self::Limited(decision) => Some(&decision.rule),
            _ => None,
        }
    }

    /// A client-safe sentence for the problem document's `detail`.
    pub fn detail(&self) -> String {
        match self {
            Self::Blocked { .. } => format!(
                "unusual traffic from this address; retry in {} s",
                self.retry_after_secs()
            ),
            Self::Limited(decision) => format!(
                "rate limit {} exceeded; retry in {} s",
                decision.rule,
                self.retry_after_secs()
            ),
            Self::Unavailable => "rate limiting is unavailable; retry shortly".to_owned(),
        }
    }

    /// Sets the refusal's headers: `Retry-After`, and for a rule's refusal the `RateLimit-*`
    /// headers of its decision.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        match self {
            Self::Limited(decision) => decision.write_headers(headers),
            Self::Blocked { .. } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(self.retry_after_secs()),
                );
            }
            Self::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
        }
    }
}

/// A client address's key, `ip:<addr>`, kept inline: every request has one, and a `String`
/// would be an allocation each. The same text as [`ip_key`](crate::ip_key).
#[derive(Debug, Clone, Copy)]
pub struct ClientKey {
    bytes: [u8; Self::CAPACITY],
    len: u8,
}

impl ClientKey {
    /// `ip:` and the longest IPv6 text there is (45 bytes, with an embedded IPv4 address;
    /// the standard library writes at most 39).
    const CAPACITY: usize = 48;

    /// The key of `ip`.
    pub fn new(ip: IpAddr) -> Self {
        let mut key = Self {
            bytes: [0; Self::CAPACITY],
            len: 0,
        };
        write_ip_key(ip, &mut key);
        key
    }

    /// `ip:<addr>`.
    pub fn as_str(&self) -> &str {
        // Only whole `&str`s are ever written into it.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// The address as text (the key without its `ip:` prefix).
    pub fn address(&self) -> &str {
        let key = self.as_str();
        key.strip_prefix("ip:").unwrap_or(key)
    }
}

impl std::fmt::Write for ClientKey {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let start = usize::from(self.len);
        let end = start + text.len();
        let slot = self.bytes.get_mut(start..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        // At most CAPACITY (48), so it fits.
        self.len = u8::try_from(end).map_err(|_| std::fmt::Error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_are_written_in_place_as_ip_key_writes_them() {
        for ip in [
            "0.0.0.0",
            "203.0.113.7",
            "255.255.255.255",
            "::1",
            "::ffff:255.255.255.255",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db8:85a3::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let key = ClientKey::new(ip);
            assert_eq!(key.as_str(), crate::ip_key(ip));
            assert_eq!(key.address(), ip.to_string());
        }
    }

    #[test]
    fn refusals_say_how_long_to_wait_in_whole_seconds() {
        let blocked = Refusal::Blocked {
            retry_after: Duration::from_millis(2_001),
        };
        assert_eq!(blocked.retry_after_secs(), 3);
        assert_eq!(
            blocked.detail(),
            "unusual traffic from this address; retry in 3 s"
        );
        let mut headers = HeaderMap::new();
        blocked.write_headers(&mut headers);
        assert_eq!(headers[header::RETRY_AFTER], "3");
        // A block about to end still asks for a second, never for none.
        let ending = Refusal::Blocked {
            retry_after: Duration::ZERO,
        };
        assert_eq!(ending.retry_after_secs(), 1);
        let unavailable = Refusal::Unavailable;
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.rule(), None);
    }
}
