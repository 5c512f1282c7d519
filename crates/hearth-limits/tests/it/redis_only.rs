//! Behaviour only the Redis backend has: one round trip per decision, counters shared by
//! several instances, and the outage policy with automatic recovery (against a redis-server
//! of our own, killed and restarted; never the shared one).

#![cfg(feature = "redis")]

use std::time::Duration;

use hearth_limits::{
    BudgetError, BudgetSettings, Budgets, LimitError, Limiter, RedisDownPolicy, Rule,
};

use crate::support::{OwnRedis, capture_logs, metrics, outage_lock, redis_url, unique_prefix};

async fn evalsha_calls(url: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn every_decision_is_exactly_one_evalsha() {
    if redis_url().is_none() {
        return;
    }
    let server = OwnRedis::start();
    let limiter = Limiter::redis(server.url(), RedisDownPolicy::Refuse)
        .await
        .unwrap();
    let rules = [
        Rule::per_minute("ip.minute", 60),
        Rule::per_minute("game.minute", 60),
        Rule::per_hour("game.hour", 1000),
    ];
    let checks: Vec<_> = rules.iter().map(|r| r.check("user:one-trip")).collect();
    let before = evalsha_calls(&server.url()).await;
    for _ in 0..25 {
        assert!(limiter.check(&checks).await.unwrap().allowed);
    }
    assert_eq!(evalsha_calls(&server.url()).await - before, 25);
}

#[tokio::test]
async fn two_instances_share_one_quota() {
    let Some(url) = redis_url() else {
        return;
    };
    let prefix = unique_prefix();
    let gateway = |url: String, prefix: String| async move {
        Limiter::builder()
            .redis(url, RedisDownPolicy::Refuse)
            .key_prefix(prefix)
            .build()
            .await
            .unwrap()
    };
    let a = gateway(url.clone(), prefix.clone()).await;
    let b = gateway(url, prefix).await;
    let rule = Rule::per_minute("login.minute", 5);
    let mut allowed = 0;
    for i in 0..10 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        allowed += usize::from(
            limiter
                .check_one("ip:198.51.100.7", &rule)
                .await
                .unwrap()
                .allowed,
        );
    }
    assert_eq!(allowed, 5);
    assert_eq!(a.backend(), "redis");
}

#[tokio::test]
async fn counters_expire_from_redis_once_their_window_has_passed() {
    let Some(url) = redis_url() else {
        return;
    };
    let prefix = unique_prefix();
    let limiter = Limiter::builder()
        .redis(url.as_str(), RedisDownPolicy::Refuse)
        .key_prefix(prefix.clone())
        .build()
        .await
        .unwrap();
    let rule = Rule::new("ttl", 2, Duration::from_millis(400));
    limiter.check_one("k", &rule).await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{prefix}ttl:k");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        (1..=200).contains(&ttl),
        "TTL until the TAT passes: {ttl} ms"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists);
}

#[tokio::test(flavor = "current_thread")]
async fn an_outage_falls_back_to_local_limits_and_recovers_on_its_own() {
    if redis_url().is_none() {
        return;
    }
    let _serial = outage_lock().await;
    let recorded = metrics();
    let (logs, _guard) = capture_logs();
    let mut server = OwnRedis::start();
    let limiter = Limiter::builder()
        .redis(server.url(), RedisDownPolicy::Local)
        .probe_interval(Duration::from_millis(100))
        .redis_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let rule = Rule::per_minute("outage", 3);
    assert!(
        limiter
            .check_one("ip:203.0.113.9", &rule)
            .await
            .unwrap()
            .allowed
    );
    assert!(!limiter.is_degraded());
    let gauge = "hearth_limits_degraded{component=rate_limit}";
    let errors = "hearth_limits_redis_errors_total{component=rate_limit}";
    let errors_before = recorded.total(errors);
    let sets_before = recorded.history(gauge).len();

    server.stop();
    let d = limiter
        .check_one("ip:203.0.113.9", &rule)
        .await
        .expect("policy local decides");
    assert!(d.allowed);
    assert!(limiter.is_degraded());
    assert!(
        recorded.total(errors) > errors_before,
        "the failure is counted"
    );
    assert!(
        recorded.history(gauge)[sets_before..].contains(&1.0),
        "the degraded gauge went to 1"
    );
    assert!(
        logs.text().contains("falling back to in-process limits"),
        "{}",
        logs.text()
    );
    // While degraded, the local counters enforce the quota (fresh here: 3 allowed).
    let mut local_allowed = 1;
    for _ in 0..5 {
        local_allowed += usize::from(
            limiter
                .check_one("ip:203.0.113.9", &rule)
                .await
                .unwrap()
                .allowed,
        );
    }
    assert_eq!(local_allowed, 3);

    server.restart();
    wait_until("the limiter is back on Redis", || !limiter.is_degraded()).await;
    assert!(
        logs.text().contains("back to Redis-backed limits"),
        "{}",
        logs.text()
    );
    assert_eq!(recorded.history(gauge).last(), Some(&0.0));
    // Decisions go to the (empty, restarted) Redis again.
    let before = evalsha_calls(&server.url()).await;
    assert!(
        limiter
            .check_one("ip:203.0.113.9", &rule)
            .await
            .unwrap()
            .allowed
    );
    assert_eq!(evalsha_calls(&server.url()).await - before, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn an_outage_with_the_refuse_policy_errors_then_recovers() {
    if redis_url().is_none() {
        return;
    }
    let _serial = outage_lock().await;
    let mut server = OwnRedis::start();
    let limiter = Limiter::builder()
        .redis(server.url(), RedisDownPolicy::Refuse)
        .probe_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let rule = Rule::per_minute("refuse", 10);
    assert!(limiter.check_one("k", &rule).await.unwrap().allowed);
    server.stop();
    let err = limiter.check_one("k", &rule).await.unwrap_err();
    assert!(matches!(err, LimitError::Unavailable), "{err:?}");
    // Degraded: the next refusal does not even wait for Redis.
    let started = std::time::Instant::now();
    assert!(limiter.check_one("k", &rule).await.is_err());
    assert!(started.elapsed() < Duration::from_millis(50));
    server.restart();
    wait_until("the limiter is back on Redis", || !limiter.is_degraded()).await;
    assert!(limiter.check_one("k", &rule).await.unwrap().allowed);
}

#[tokio::test(flavor = "current_thread")]
async fn an_unreachable_server_at_start_is_not_an_error_but_a_degraded_start() {
    if redis_url().is_none() {
        return;
    }
    let _serial = outage_lock().await;
    let mut server = OwnRedis::start();
    server.stop();
    let limiter = Limiter::builder()
        .redis(server.url(), RedisDownPolicy::Local)
        .probe_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    assert!(limiter.is_degraded());
    let rule = Rule::per_minute("start", 1);
    assert!(limiter.check_one("k", &rule).await.unwrap().allowed);
    server.restart();
    wait_until("the limiter reaches Redis", || !limiter.is_degraded()).await;
    assert!(
        Limiter::redis("not a url", RedisDownPolicy::Local)
            .await
            .is_err(),
        "a bad URL is an error"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn budgets_fall_back_or_refuse_while_redis_is_down() {
    if redis_url().is_none() {
        return;
    }
    let _serial = outage_lock().await;
    let mut server = OwnRedis::start();
    let settings = BudgetSettings {
        user_daily: 100,
        global_hourly: 1000,
        ..BudgetSettings::default()
    };
    let local = Budgets::redis(server.url(), &settings, RedisDownPolicy::Local)
        .await
        .unwrap();
    let refuse = Budgets::redis(server.url(), &settings, RedisDownPolicy::Refuse)
        .await
        .unwrap();
    local
        .reserve("u", 10)
        .await
        .unwrap()
        .settle(10)
        .await
        .unwrap();
    assert_eq!(local.usage("u").await.unwrap().user_today, 10);
    server.stop();
    let r = local.reserve("u", 60).await.expect("local fallback");
    assert!(local.is_degraded());
    r.settle(60).await.unwrap();
    assert!(matches!(
        refuse.reserve("u", 1).await,
        Err(BudgetError::Unavailable)
    ));
    server.restart();
    wait_until("budgets are back on Redis", || {
        !local.is_degraded() && !refuse.is_degraded()
    })
    .await;
    // Redis still holds what it held before the outage (the restarted server is empty here).
    assert_eq!(refuse.usage("u").await.unwrap().user_today, 0);
}
