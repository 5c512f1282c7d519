//! The `limits` settings section (`HEARTH__LIMITS__*`).
//!
//! Environment variables arrive as strings, so every number and flag here also deserializes
//! from its text (`"5"`, `"0.2"`, `"true"`). A rule section given only in part keeps the
//! defaults of the fields it does not name: `HEARTH__LIMITS__RULES__GAME__PER_MINUTE=100` keeps
//! `game.per_hour = 1000`. A window is switched off with `off`, `none` or an empty value.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::client_ip;
use crate::rule::{RouteClass, Rule};

/// One currency unit in budget micro-units: every amount and price is an integer count of
/// millionths of the currency (`5_000_000` is 5.00).
pub const MICROS_PER_UNIT: u64 = 1_000_000;

/// The `limits` settings section (`HEARTH__LIMITS__*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    /// CIDRs of load balancers whose `X-Forwarded-For` is believed; comma-separated in the
    /// environment. Empty by default: the socket peer is the client.
    #[serde(deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<client_ip::Cidr>,
    /// `HEARTH__LIMITS__REDIS_DOWN`: what Redis-backed limits and budgets do while Redis is
    /// unreachable (`local`, the default, or `refuse`).
    pub redis_down: RedisDownPolicy,
    /// `HEARTH__LIMITS__RULES__<RULE>__PER_MINUTE` / `__PER_HOUR`: the quota of each rule.
    pub rules: RuleTable,
    /// `HEARTH__LIMITS__BUDGETS__*`: cost budgets and the price table.
    pub budgets: BudgetSettings,
    /// `HEARTH__LIMITS__ANOMALY__*`: request-rate anomaly detection.
    pub anomaly: AnomalySettings,
}

impl LimitsSettings {
    /// Every problem with these settings, one sentence each; empty when they are usable.
    /// The application lists them together with its other start-up problems.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for class in RouteClass::ALL {
            let rule = self.rules.get(class);
            for (window, quota) in [("per_minute", rule.per_minute), ("per_hour", rule.per_hour)] {
                if quota == Some(0) {
                    problems.push(format!(
                        "limits.rules.{}.{window} is 0, which refuses everything; use `off` to disable the window",
                        class.as_str()
                    ));
                }
            }
        }
        let a = &self.anomaly;
        if a.alpha.is_nan() || a.alpha <= 0.0 || a.alpha > 1.0 {
            problems.push(format!(
                "limits.anomaly.alpha must be in (0, 1], got {}",
                a.alpha
            ));
        }
        if a.z_threshold.is_nan() || a.z_threshold <= 0.0 {
            problems.push("limits.anomaly.z_threshold must be positive".to_owned());
        }
        if a.spike_ratio.is_nan() || a.spike_ratio < 1.0 {
            problems.push("limits.anomaly.spike_ratio must be at least 1".to_owned());
        }
        if a.min_rate.is_nan() || a.min_rate < 0.0 {
            problems.push("limits.anomaly.min_rate must not be negative".to_owned());
        }
        if a.interval_secs == 0 {
            problems.push("limits.anomaly.interval_secs must be at least 1".to_owned());
        }
        problems
    }
}

/// What Redis-backed limits do while Redis is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisDownPolicy {
    /// Decide in-process, per instance, until Redis answers again (N gateways then allow up
    /// to N times a quota). Logged, and the `hearth_limits_degraded` gauge is 1.
    #[default]
    Local,
    /// Refuse: rate-limit checks fail with `LimitError::Unavailable` and budget reservations
    /// with `BudgetError::Unavailable` (the HTTP layer answers 503).
    Refuse,
}

impl FromStr for RedisDownPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(Self::Local),
            "refuse" => Ok(Self::Refuse),
            other => Err(format!(
                "invalid redis_down policy {other:?} (expected `local` or `refuse`)"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for RedisDownPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// The quota of one rule: requests per minute and/or per hour. Each window set becomes one
/// GCRA [`Rule`]; a request must pass all of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RuleSettings {
    /// Requests per minute; `None` switches the minute window off.
    pub per_minute: Option<u32>,
    /// Requests per hour; `None` switches the hour window off.
    pub per_hour: Option<u32>,
}

impl RuleSettings {
    const fn minute(n: u32) -> Self {
        Self {
            per_minute: Some(n),
            per_hour: None,
        }
    }

    const fn hour(n: u32) -> Self {
        Self {
            per_minute: None,
            per_hour: Some(n),
        }
    }
}

/// One [`RuleSettings`] per rule class. Defaults: `ip` 60/min, `user` 30/min, `login` 5/min,
/// `signup` 3/h, `game` 60/min and 1000/h, `ai` 10/min, `websocket` 30/min (messages per
/// connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RawRuleTable")]
pub struct RuleTable {
    /// Any request, keyed by client IP.
    pub ip: RuleSettings,
    /// Any authenticated request, keyed by user.
    pub user: RuleSettings,
    /// Log-in attempts, keyed by IP and account.
    pub login: RuleSettings,
    /// Sign-ups, keyed by IP.
    pub signup: RuleSettings,
    /// Game actions, keyed by user.
    pub game: RuleSettings,
    /// AI calls, keyed by user.
    pub ai: RuleSettings,
    /// WebSocket messages, per connection.
    pub websocket: RuleSettings,
}

impl Default for RuleTable {
    fn default() -> Self {
        Self {
            ip: RuleSettings::minute(60),
            user: RuleSettings::minute(30),
            login: RuleSettings::minute(5),
            signup: RuleSettings::hour(3),
            game: RuleSettings {
                per_minute: Some(60),
                per_hour: Some(1000),
            },
            ai: RuleSettings::minute(10),
            websocket: RuleSettings::minute(30),
        }
    }
}

impl RuleTable {
    /// The settings of one class.
    pub fn get(&self, class: RouteClass) -> RuleSettings {
        match class {
            RouteClass::Ip => self.ip,
            RouteClass::User => self.user,
            RouteClass::Login => self.login,
            RouteClass::Signup => self.signup,
            RouteClass::Game => self.game,
            RouteClass::Ai => self.ai,
            RouteClass::Websocket => self.websocket,
        }
    }

    /// The rules of one class, minute window first: none, one or two. Rules are named
    /// `<class>.minute` / `<class>.hour` (`game.hour`); the name is part of the counter's key,
    /// of the `rule` metric label and of [`Decision::rule`](crate::Decision::rule).
    pub fn rules_for(&self, class: RouteClass) -> Vec<Rule> {
        let settings = self.get(class);
        let (minute, hour) = class.rule_names();
        let mut rules = Vec::with_capacity(2);
        if let Some(quota) = settings.per_minute {
            rules.push(Rule::new(
                Cow::Borrowed(minute),
                quota,
                Duration::from_secs(60),
            ));
        }
        if let Some(quota) = settings.per_hour {
            rules.push(Rule::new(
                Cow::Borrowed(hour),
                quota,
                Duration::from_secs(3600),
            ));
        }
        rules
    }
}

/// Cost budgets, in integer micro-units of the currency ([`MICROS_PER_UNIT`] per unit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetSettings {
    /// What one user may spend per UTC day. Default 5.00 (`5000000`).
    #[serde(deserialize_with = "flex_u64")]
    pub user_daily: u64,
    /// What everyone together may spend per UTC hour. Default 100.00 (`100000000`).
    #[serde(deserialize_with = "flex_u64")]
    pub global_hourly: u64,
    /// Price of one unit of each billable item, in micro-units; the item name says what a unit
    /// is (`ai_1k_input_tokens`). Entries given in settings replace or add to the defaults:
    /// `ai_call` 2000, `ai_1k_input_tokens` 500, `ai_1k_output_tokens` 1500.
    #[serde(deserialize_with = "prices_over_defaults")]
    pub prices: BTreeMap<String, u64>,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            user_daily: 5 * MICROS_PER_UNIT,
            global_hourly: 100 * MICROS_PER_UNIT,
            prices: default_prices(),
        }
    }
}

impl BudgetSettings {
    /// The price of one unit of `item`, if the table has it.
    pub fn price(&self, item: &str) -> Option<u64> {
        self.prices.get(item).copied()
    }

    /// `quantity` units of `item`, saturating; `None` for an unknown item.
    pub fn cost(&self, item: &str, quantity: u64) -> Option<u64> {
        self.price(item).map(|p| p.saturating_mul(quantity))
    }
}

fn default_prices() -> BTreeMap<String, u64> {
    [
        ("ai_call", 2_000),
        ("ai_1k_input_tokens", 500),
        ("ai_1k_output_tokens", 1_500),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Request-rate anomaly detection (see the crate docs for the maths).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalySettings {
    /// Whether the detector looks at all. Default true.
    #[serde(deserialize_with = "flex_bool")]
    pub enabled: bool,
    /// EWMA smoothing factor α in (0, 1]: the weight of the newest interval. Default 0.2
    /// (a memory of about 1/α = 5 intervals).
    #[serde(deserialize_with = "flex_f64")]
    pub alpha: f64,
    /// z-score from which a rate is anomalous. Default 4.
    #[serde(deserialize_with = "flex_f64")]
    pub z_threshold: f64,
    /// The rate must also be at least this multiple of the baseline. Default 3.
    #[serde(deserialize_with = "flex_f64")]
    pub spike_ratio: f64,
    /// Rates below this many requests per second are never anomalous. Default 1.
    #[serde(deserialize_with = "flex_f64")]
    pub min_rate: f64,
    /// Length of one measuring interval, in seconds. Default 10.
    #[serde(deserialize_with = "flex_u64")]
    pub interval_secs: u64,
    /// Closed intervals a key needs before it can be judged. Default 6.
    #[serde(deserialize_with = "flex_u32")]
    pub warmup_intervals: u32,
    /// Whether an anomalous key is blocked. Default false (log and count only).
    #[serde(deserialize_with = "flex_bool")]
    pub block: bool,
    /// How long a block lasts, in seconds. Default 300.
    #[serde(deserialize_with = "flex_u64")]
    pub block_secs: u64,
}

impl Default for AnomalySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            alpha: 0.2,
            z_threshold: 4.0,
            spike_ratio: 3.0,
            min_rate: 1.0,
            interval_secs: 10,
            warmup_intervals: 6,
            block: false,
            block_secs: 300,
        }
    }
}

// ---- Deserialization helpers -------------------------------------------------------------

fn cidr_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<client_ip::Cidr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let items = match Raw::deserialize(deserializer)? {
        Raw::One(text) => text.split(',').map(str::to_owned).collect(),
        Raw::Many(items) => items,
    };
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(de::Error::custom))
        .collect()
}

/// A scalar read from a number, a flag or its text. `Off` is `off`, `none`, an empty string
/// or a null/unit.
enum Scalar {
    Int(i128),
    Float(f64),
    Bool(bool),
    Text(String),
    Off,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, a boolean or its text")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        let v = v.trim();
        if v.is_empty() || v.eq_ignore_ascii_case("off") || v.eq_ignore_ascii_case("none") {
            Ok(Scalar::Off)
        } else {
            Ok(Scalar::Text(v.to_owned()))
        }
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Off)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Off)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
    d.deserialize_any(ScalarVisitor)
}

fn int_from<E: de::Error>(s: Scalar, what: &str) -> Result<Option<i128>, E> {
    match s {
        Scalar::Int(i) => Ok(Some(i)),
        Scalar::Float(f) if f.fract() == 0.0 && f.is_finite() => Ok(Some(f as i128)),
        Scalar::Text(t) => t
            .replace('_', "")
            .parse::<i128>()
            .map(Some)
            .map_err(|_| E::custom(format!("expected {what}, got {t:?}"))),
        Scalar::Off => Ok(None),
        Scalar::Float(f) => Err(E::custom(format!("expected {what}, got {f}"))),
        Scalar::Bool(b) => Err(E::custom(format!("expected {what}, got {b}"))),
    }
}

fn flex_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let i = int_from::<D::Error>(scalar(d)?, "a whole number")?
        .ok_or_else(|| de::Error::custom("expected a whole number, got nothing"))?;
    u64::try_from(i).map_err(|_| de::Error::custom(format!("{i} is out of range")))
}

fn flex_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let i = flex_u64(d)?;
    u32::try_from(i).map_err(|_| de::Error::custom(format!("{i} is out of range")))
}

fn flex_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match scalar(d)? {
        Scalar::Int(i) => Ok(i as f64),
        Scalar::Float(f) => Ok(f),
        Scalar::Text(t) => t
            .parse()
            .map_err(|_| de::Error::custom(format!("expected a number, got {t:?}"))),
        Scalar::Bool(b) => Err(de::Error::custom(format!("expected a number, got {b}"))),
        Scalar::Off => Err(de::Error::custom("expected a number, got nothing")),
    }
}

fn flex_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match scalar(d)? {
        Scalar::Bool(b) => Ok(b),
        Scalar::Int(0) => Ok(false),
        Scalar::Int(1) => Ok(true),
        Scalar::Off => Ok(false),
        Scalar::Text(t) => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "0" => Ok(false),
            _ => Err(de::Error::custom(format!(
                "expected true or false, got {t:?}"
            ))),
        },
        Scalar::Int(_) | Scalar::Float(_) => Err(de::Error::custom("expected true or false")),
    }
}

/// A field of a partly given rule section: absent (keep the default), off, or a quota.
#[derive(Default)]
enum Patch {
    #[default]
    Keep,
    Set(Option<u32>),
}

impl Patch {
    fn apply(self, default: Option<u32>) -> Option<u32> {
        match self {
            Self::Keep => default,
            Self::Set(value) => value,
        }
    }
}

impl<'de> Deserialize<'de> for Patch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = int_from::<D::Error>(scalar(d)?, "a whole number or `off`")?;
        value
            .map(|i| {
                u32::try_from(i).map_err(|_| de::Error::custom(format!("{i} is out of range")))
            })
            .transpose()
            .map(Self::Set)
    }
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRule {
    per_minute: Patch,
    per_hour: Patch,
}

impl RawRule {
    fn over(self, default: RuleSettings) -> RuleSettings {
        RuleSettings {
            per_minute: self.per_minute.apply(default.per_minute),
            per_hour: self.per_hour.apply(default.per_hour),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRuleTable {
    ip: RawRule,
    user: RawRule,
    login: RawRule,
    signup: RawRule,
    game: RawRule,
    ai: RawRule,
    websocket: RawRule,
}

impl From<RawRuleTable> for RuleTable {
    fn from(raw: RawRuleTable) -> Self {
        let d = Self::default();
        Self {
            ip: raw.ip.over(d.ip),
            user: raw.user.over(d.user),
            login: raw.login.over(d.login),
            signup: raw.signup.over(d.signup),
            game: raw.game.over(d.game),
            ai: raw.ai.over(d.ai),
            websocket: raw.websocket.over(d.websocket),
        }
    }
}

impl<'de> Deserialize<'de> for RuleSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawRule::deserialize(d).map(|raw| raw.over(Self::default()))
    }
}

fn prices_over_defaults<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, u64>, D::Error> {
    struct Price(u64);
    impl<'de> Deserialize<'de> for Price {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            flex_u64(d).map(Price)
        }
    }
    let given = BTreeMap::<String, Price>::deserialize(d)?;
    let mut prices = default_prices();
    prices.extend(
        given
            .into_iter()
            .map(|(k, Price(v))| (k.to_ascii_lowercase(), v)),
    );
    Ok(prices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error as ValueError, MapDeserializer};

    /// Deserializes a section from string pairs, as environment variables deliver them.
    fn from_strings<T: for<'de> Deserialize<'de>>(pairs: &[(&str, &str)]) -> Result<T, ValueError> {
        let map = MapDeserializer::<_, ValueError>::new(
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        );
        T::deserialize(map)
    }

    #[test]
    fn defaults_match_the_requirements() {
        let s = LimitsSettings::default();
        assert!(s.trusted_proxies.is_empty());
        assert_eq!(s.redis_down, RedisDownPolicy::Local);
        let r = s.rules;
        assert_eq!((r.ip.per_minute, r.ip.per_hour), (Some(60), None));
        assert_eq!(r.user.per_minute, Some(30));
        assert_eq!(r.login.per_minute, Some(5));
        assert_eq!((r.signup.per_minute, r.signup.per_hour), (None, Some(3)));
        assert_eq!((r.game.per_minute, r.game.per_hour), (Some(60), Some(1000)));
        assert_eq!(r.ai.per_minute, Some(10));
        assert_eq!(r.websocket.per_minute, Some(30));
        assert_eq!(s.budgets.user_daily, 5_000_000);
        assert_eq!(s.budgets.global_hourly, 100_000_000);
        assert!(s.problems().is_empty());
    }

    #[test]
    fn rule_sections_read_numbers_from_strings_and_keep_unnamed_defaults() {
        let rule: RuleSettings = from_strings(&[("per_hour", "3")]).unwrap();
        assert_eq!(
            rule,
            RuleSettings {
                per_minute: None,
                per_hour: Some(3)
            }
        );
        let budgets: BudgetSettings =
            from_strings(&[("user_daily", "2500000"), ("global_hourly", "7")]).unwrap();
        assert_eq!((budgets.user_daily, budgets.global_hourly), (2_500_000, 7));
        let anomaly: AnomalySettings = from_strings(&[
            ("alpha", "0.5"),
            ("block", "true"),
            ("block_secs", "60"),
            ("z_threshold", "3"),
        ])
        .unwrap();
        assert_eq!(anomaly.alpha, 0.5);
        assert!(anomaly.block);
        assert_eq!(anomaly.block_secs, 60);
        assert_eq!(anomaly.z_threshold, 3.0);
        assert_eq!(
            anomaly.warmup_intervals, 6,
            "untouched fields keep defaults"
        );
    }

    #[test]
    fn off_switches_a_window_off_and_garbage_is_refused() {
        let rule: RuleSettings =
            from_strings(&[("per_minute", "off"), ("per_hour", "12")]).unwrap();
        assert_eq!((rule.per_minute, rule.per_hour), (None, Some(12)));
        assert!(from_strings::<RuleSettings>(&[("per_minute", "five")]).is_err());
        assert!(from_strings::<RuleSettings>(&[("per_second", "5")]).is_err());
        assert!(from_strings::<RuleSettings>(&[("per_minute", "-1")]).is_err());
        assert!(from_strings::<AnomalySettings>(&[("block", "maybe")]).is_err());
    }

    #[test]
    fn the_policy_reads_case_insensitively() {
        assert_eq!(
            "REFUSE".parse::<RedisDownPolicy>(),
            Ok(RedisDownPolicy::Refuse)
        );
        assert!("drop".parse::<RedisDownPolicy>().is_err());
    }

    #[test]
    fn rules_for_names_each_window() {
        let table = RuleTable::default();
        let game = table.rules_for(RouteClass::Game);
        assert_eq!(game.len(), 2);
        assert_eq!(game[0].name, "game.minute");
        assert_eq!(
            (game[0].quota, game[0].window),
            (60, Duration::from_secs(60))
        );
        assert_eq!(game[1].name, "game.hour");
        assert_eq!(
            (game[1].quota, game[1].window),
            (1000, Duration::from_secs(3600))
        );
        let signup = table.rules_for(RouteClass::Signup);
        assert_eq!(signup.len(), 1);
        assert_eq!(signup[0].name, "signup.hour");
    }

    #[test]
    fn problems_name_zero_quotas_and_bad_anomaly_numbers() {
        let mut s = LimitsSettings::default();
        s.rules.login.per_minute = Some(0);
        s.anomaly.alpha = 1.5;
        let problems = s.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("limits.rules.login.per_minute"));
    }

    #[test]
    fn prices_add_to_the_defaults() {
        let map = MapDeserializer::<_, ValueError>::new(
            [("ai_call", "3000"), ("Image", "40000")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let prices = prices_over_defaults(map).unwrap();
        assert_eq!(prices["ai_call"], 3000);
        assert_eq!(prices["image"], 40_000);
        assert_eq!(prices["ai_1k_input_tokens"], 500);
        let settings = BudgetSettings {
            prices,
            ..BudgetSettings::default()
        };
        assert_eq!(settings.cost("image", 3), Some(120_000));
        assert_eq!(settings.cost("unknown", 3), None);
    }
}
