//! The `limits` section loaded the way the application loads it: the `config` crate over
//! `HEARTH__…` variables, whose values are all strings.

use std::collections::HashMap;

use config::{Config, Environment};
use hearth_limits::{LimitsSettings, RedisDownPolicy, RouteClass};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Root {
    #[serde(default)]
    limits: LimitsSettings,
}

fn load(vars: &[(&str, &str)]) -> Result<LimitsSettings, config::ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let env = Environment::with_prefix("HEARTH")
        .prefix_separator("__")
        .separator("__")
        .source(Some(vars));
    let root: Root = Config::builder()
        .add_source(env)
        .build()?
        .try_deserialize()?;
    Ok(root.limits)
}

#[test]
fn environment_variables_set_every_kind_of_limit() {
    let s = load(&[
        (
            "HEARTH__LIMITS__TRUSTED_PROXIES",
            "10.0.0.0/8, 192.168.0.0/16",
        ),
        ("HEARTH__LIMITS__REDIS_DOWN", "refuse"),
        ("HEARTH__LIMITS__RULES__SIGNUP__PER_HOUR", "3"),
        ("HEARTH__LIMITS__RULES__LOGIN__PER_MINUTE", "7"),
        ("HEARTH__LIMITS__RULES__GAME__PER_MINUTE", "100"),
        ("HEARTH__LIMITS__RULES__AI__PER_HOUR", "50"),
        ("HEARTH__LIMITS__RULES__IP__PER_MINUTE", "off"),
        ("HEARTH__LIMITS__BUDGETS__USER_DAILY", "2500000"),
        ("HEARTH__LIMITS__BUDGETS__PRICES__AI_CALL", "3000"),
        ("HEARTH__LIMITS__ANOMALY__BLOCK", "true"),
        ("HEARTH__LIMITS__ANOMALY__ALPHA", "0.1"),
    ])
    .unwrap();
    assert_eq!(s.trusted_proxies.len(), 2);
    assert_eq!(s.redis_down, RedisDownPolicy::Refuse);
    assert_eq!(s.rules.signup.per_hour, Some(3));
    assert_eq!(s.rules.login.per_minute, Some(7));
    assert_eq!(
        (s.rules.game.per_minute, s.rules.game.per_hour),
        (Some(100), Some(1000)),
        "the hour default survives"
    );
    assert_eq!(
        (s.rules.ai.per_minute, s.rules.ai.per_hour),
        (Some(10), Some(50))
    );
    assert_eq!(s.rules.ip.per_minute, None);
    assert!(s.rules.rules_for(RouteClass::Ip).is_empty());
    assert_eq!(s.budgets.user_daily, 2_500_000);
    assert_eq!(s.budgets.global_hourly, 100_000_000);
    assert_eq!(s.budgets.price("ai_call"), Some(3000));
    assert_eq!(s.budgets.price("ai_1k_output_tokens"), Some(1500));
    assert!(s.anomaly.block);
    assert_eq!(s.anomaly.alpha, 0.1);
    assert!(s.problems().is_empty());
}

#[test]
fn no_variables_give_the_documented_defaults() {
    let s = load(&[]).unwrap();
    let quotas: Vec<(RouteClass, Option<u32>, Option<u32>)> = RouteClass::ALL
        .iter()
        .map(|&c| (c, s.rules.get(c).per_minute, s.rules.get(c).per_hour))
        .collect();
    assert_eq!(
        quotas,
        [
            (RouteClass::Ip, Some(60), None),
            (RouteClass::User, Some(30), None),
            (RouteClass::Login, Some(5), None),
            (RouteClass::Signup, None, Some(3)),
            (RouteClass::Game, Some(60), Some(1000)),
            (RouteClass::Ai, Some(10), None),
            (RouteClass::Websocket, Some(30), None),
        ]
    );
    assert_eq!(s.redis_down, RedisDownPolicy::Local);
    assert!(s.trusted_proxies.is_empty());
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    assert!(load(&[("HEARTH__LIMITS__RULES__LOGIN__PER_DAY", "5")]).is_err());
    assert!(load(&[("HEARTH__LIMITS__RULES__CHAT__PER_MINUTE", "5")]).is_err());
    assert!(load(&[("HEARTH__LIMITS__REDIS_DOWN", "ignore")]).is_err());
    assert!(load(&[("HEARTH__LIMITS__RULES__LOGIN__PER_MINUTE", "many")]).is_err());
}
