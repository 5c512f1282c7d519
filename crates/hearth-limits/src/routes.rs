//! A per-route rate-limit table: which rule classes apply to which routes, keyed by what.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::{Method, Request};

use crate::rule::{Check, RouteClass, Rule};
use crate::settings::RuleTable;

/// Who made a request, as far as rate limits care. The application inserts it into the
/// request's extensions (after resolving the client IP behind trusted proxies and, for
/// `user`, after authentication) for [`RouteLimits::classify`] to read, and for the anomaly
/// check of a `RateLimitLayer` made `with_anomaly` (feature `tower`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitKeys {
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The authenticated user's id.
    pub user: Option<String>,
}

/// What a route's counter is keyed by. A check whose key is unknown (no user on an anonymous
/// request) is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyBy {
    /// `ip:<addr>`.
    Ip,
    /// `user:<id>`.
    User,
    /// `user:<id>` when signed in, else `ip:<addr>`.
    UserOrIp,
    /// One counter for everyone: `global`.
    Global,
}

impl KeyBy {
    /// The key for these identities, if known.
    pub fn key(self, keys: &LimitKeys) -> Option<String> {
        let ip = || keys.ip.map(ip_key);
        let user = || keys.user.as_ref().map(|u| format!("user:{u}"));
        match self {
            Self::Ip => ip(),
            Self::User => user(),
            Self::UserOrIp => user().or_else(ip),
            Self::Global => Some("global".to_owned()),
        }
    }
}

/// `ip:<addr>`, the key of a client address, as [`KeyBy::Ip`] makes it.
pub fn ip_key(ip: IpAddr) -> String {
    let mut key = String::with_capacity(48);
    write_ip_key(ip, &mut key);
    key
}

/// Writes [`ip_key`]`(ip)` to `out`: for callers that keep the key without allocating (it is
/// at most 48 bytes: `ip:` and the longest IPv6 text).
///
/// Every request counts its address, so IPv4 is written digit by digit rather than through
/// the formatting machinery (which costs several times as much).
pub fn write_ip_key(ip: IpAddr, out: &mut impl std::fmt::Write) {
    let _ = out.write_str("ip:");
    match ip {
        IpAddr::V4(v4) => {
            for (index, octet) in v4.octets().into_iter().enumerate() {
                if index > 0 {
                    let _ = out.write_char('.');
                }
                if octet >= 100 {
                    let _ = out.write_char(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    let _ = out.write_char(char::from(b'0' + octet / 10 % 10));
                }
                let _ = out.write_char(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    method: Option<Method>,
    pattern: Vec<Segment>,
    rules: Vec<Rule>,
    key_by: KeyBy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: any one segment.
    Param,
    /// A trailing `*`: any rest, including nothing.
    Rest,
}

/// Which rules apply to which routes, written like a table. Every matching row applies (a
/// request on `/auth/login` pays both the `ip` row and the `login` row), and all of a
/// request's checks are decided together.
///
/// Paths are matched segment by segment: literals, `{param}` for any one segment, and a
/// trailing `*` for any rest. Methods are upper-case names or `*` for any.
///
/// ```
/// use hearth_limits::{KeyBy, LimitKeys, RouteClass::*, RouteLimits, RuleTable};
/// use http::Method;
///
/// let limits = RouteLimits::new(&RuleTable::default())
///     //     method  path                        rules   keyed by
///     .route("*",    "/*",                       Ip,     KeyBy::Ip)
///     .route("*",    "/*",                       User,   KeyBy::User)
///     .route("POST", "/auth/login",              Login,  KeyBy::Ip)
///     .route("POST", "/auth/signup",             Signup, KeyBy::Ip)
///     .route("POST", "/games/{id}/actions",      Game,   KeyBy::User)
///     .route("POST", "/ai/*",                    Ai,     KeyBy::UserOrIp);
///
/// let keys = LimitKeys { ip: Some("203.0.113.7".parse().unwrap()), user: Some("u1".into()) };
/// let checks = limits.checks(&Method::POST, "/games/42/actions", &keys);
/// let names: Vec<_> = checks.iter().map(|c| c.rule.name.as_ref()).collect();
/// assert_eq!(names, ["ip.minute", "user.minute", "game.minute", "game.hour"]);
/// ```
#[derive(Debug, Clone)]
pub struct RouteLimits {
    table: RuleTable,
    entries: Vec<Entry>,
}

impl RouteLimits {
    /// An empty table whose classes take their quotas from `rules`.
    pub fn new(rules: &RuleTable) -> Self {
        Self {
            table: *rules,
            entries: Vec::new(),
        }
    }

    /// Adds a row: requests with `method` (`*` for any) on paths matching `pattern` pay the
    /// rules of `class`, keyed by `key_by`.
    ///
    /// # Panics
    /// If `method` is not a valid method name (a programming error in the table).
    pub fn route(self, method: &str, pattern: &str, class: RouteClass, key_by: KeyBy) -> Self {
        let rules = self.table.rules_for(class);
        self.route_rules(method, pattern, rules, key_by)
    }

    /// Adds a row with explicit rules instead of a settings class.
    ///
    /// # Panics
    /// If `method` is not a valid method name.
    pub fn route_rules(
        mut self,
        method: &str,
        pattern: &str,
        rules: Vec<Rule>,
        key_by: KeyBy,
    ) -> Self {
        let method = (method != "*").then(|| {
            Method::from_bytes(method.as_bytes())
                .unwrap_or_else(|_| panic!("invalid method {method:?} in the rate-limit table"))
        });
        self.entries.push(Entry {
            method,
            pattern: parse_pattern(pattern),
            rules,
            key_by,
        });
        self
    }

    /// The checks for a request, in table order.
    pub fn checks(&self, method: &Method, path: &str, keys: &LimitKeys) -> Vec<Check> {
        let mut checks = Vec::new();
        for entry in &self.entries {
            if entry.method.as_ref().is_some_and(|m| m != method) || !matches(&entry.pattern, path)
            {
                continue;
            }
            let Some(mut key) = entry.key_by.key(keys) else {
                continue;
            };
            let mut rules = entry.rules.iter().peekable();
            while let Some(rule) = rules.next() {
                // The last rule of the row takes the key itself: one copy fewer per row.
                let key = if rules.peek().is_some() {
                    key.clone()
                } else {
                    std::mem::take(&mut key)
                };
                checks.push(Check::new(rule.clone(), key));
            }
        }
        checks
    }

    /// The checks for `request`, reading [`LimitKeys`] from its extensions (none there: only
    /// [`KeyBy::Global`] rows apply). A ready-made classifier for
    /// `RateLimitLayer` (feature `tower`).
    pub fn classify<B>(&self, request: &Request<B>) -> Vec<Check> {
        let default = LimitKeys::default();
        let keys = request.extensions().get::<LimitKeys>().unwrap_or(&default);
        self.checks(request.method(), request.uri().path(), keys)
    }

    /// The table as text, one row per line (for start-up logs).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            let method = e.method.as_ref().map_or("*", Method::as_str);
            let rules: Vec<String> = e
                .rules
                .iter()
                .map(|r| format!("{} {}/{}s", r.name, r.quota, r.window.as_secs()))
                .collect();
            let _ = writeln!(
                out,
                "{method:6} {:28} {:?}: {}",
                describe_pattern(&e.pattern),
                e.key_by,
                rules.join(", ")
            );
        }
        out
    }
}

fn parse_pattern(pattern: &str) -> Vec<Segment> {
    pattern
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s == "*" {
                Segment::Rest
            } else if s.starts_with('{') && s.ends_with('}') {
                Segment::Param
            } else {
                Segment::Literal(s.to_owned())
            }
        })
        .collect()
}

fn describe_pattern(pattern: &[Segment]) -> String {
    let mut out = String::new();
    for s in pattern {
        out.push('/');
        match s {
            Segment::Literal(l) => out.push_str(l),
            Segment::Param => out.push_str("{}"),
            Segment::Rest => out.push('*'),
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn matches(pattern: &[Segment], path: &str) -> bool {
    let mut parts = path.split('/').filter(|s| !s.is_empty());
    for segment in pattern {
        match segment {
            Segment::Rest => return true,
            Segment::Param => {
                if parts.next().is_none() {
                    return false;
                }
            }
            Segment::Literal(l) => {
                if parts.next() != Some(l.as_str()) {
                    return false;
                }
            }
        }
    }
    parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_literals_params_and_rests() {
        let p = parse_pattern("/games/{id}/actions");
        assert!(matches(&p, "/games/42/actions"));
        assert!(matches(&p, "/games/42/actions/"));
        assert!(!matches(&p, "/games/42"));
        assert!(!matches(&p, "/games/42/actions/x"));
        let rest = parse_pattern("/ai/*");
        assert!(matches(&rest, "/ai"));
        assert!(matches(&rest, "/ai/chat/1"));
        assert!(!matches(&rest, "/aix"));
        assert!(matches(&parse_pattern("/*"), "/anything/at/all"));
        assert!(matches(&parse_pattern("/"), "/"));
        assert!(!matches(&parse_pattern("/"), "/x"));
    }

    #[test]
    fn rows_apply_by_method_and_skip_unknown_keys() {
        let limits = RouteLimits::new(&RuleTable::default())
            .route("*", "/*", RouteClass::Ip, KeyBy::Ip)
            .route("*", "/*", RouteClass::User, KeyBy::User)
            .route("POST", "/auth/login", RouteClass::Login, KeyBy::Ip);
        let anonymous = LimitKeys {
            ip: Some("192.0.2.1".parse().unwrap()),
            user: None,
        };
        let checks = limits.checks(&Method::POST, "/auth/login", &anonymous);
        let got: Vec<(&str, &str)> = checks
            .iter()
            .map(|c| (c.rule.name.as_ref(), c.key.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("ip.minute", "ip:192.0.2.1"),
                ("login.minute", "ip:192.0.2.1")
            ]
        );
        assert_eq!(
            limits.checks(&Method::GET, "/auth/login", &anonymous).len(),
            1
        );
        assert!(limits.describe().contains("POST   /auth/login"));
    }

    #[test]
    fn classify_reads_the_keys_from_extensions() {
        let limits = RouteLimits::new(&RuleTable::default())
            .route("*", "/*", RouteClass::Ip, KeyBy::Ip)
            .route_rules("*", "/*", vec![Rule::per_hour("all", 1)], KeyBy::Global);
        let mut request = Request::new(());
        assert_eq!(limits.classify(&request).len(), 1, "only the global row");
        request.extensions_mut().insert(LimitKeys {
            ip: Some("192.0.2.9".parse().unwrap()),
            user: None,
        });
        assert_eq!(limits.classify(&request)[0].key, "ip:192.0.2.9");
    }

    #[test]
    fn ip_keys_match_the_standard_formatting() {
        let mut ips: Vec<IpAddr> = vec![
            "0.0.0.0".parse().unwrap(),
            "255.255.255.255".parse().unwrap(),
            "10.0.100.9".parse().unwrap(),
            "::1".parse().unwrap(),
            "2001:db8::8a2e:370:7334".parse().unwrap(),
            "::ffff:192.0.2.1".parse().unwrap(),
        ];
        ips.extend((0..=255u8).map(|n| IpAddr::from([n, n / 3, n / 7, 255 - n])));
        for ip in ips {
            assert_eq!(ip_key(ip), format!("ip:{ip}"));
        }
    }
}
