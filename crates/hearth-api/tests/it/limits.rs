//! Rate limits and leaderboards through the gateway, in-process and on Redis.

use hearth_api::Settings;
use hearth_test_support::{REDIS_URL_VAR, TestDb, service_url, sqlite_db};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{TestApp, problem, spawn_app_with};

/// The backends every test here runs on: in-process, and Redis when configured.
enum Backend {
    InProcess,
    Redis,
}

fn configure(backend: &Backend, settings: &mut Settings) -> bool {
    match backend {
        Backend::InProcess => true,
        Backend::Redis => match service_url(REDIS_URL_VAR, "Redis") {
            Some(url) => {
                settings.redis.url = Some(SecretString::from(url));
                // A fresh prefix: counters from other tests or earlier runs never interfere.
                settings.redis.key_prefix =
                    format!("hearth-test:{}:", uuid::Uuid::new_v4().simple());
                true
            }
            None => false,
        },
    }
}

async fn spawn(
    t: &TestDb,
    backend: &Backend,
    tweak: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    let mut settings_ok = true;
    let app = spawn_app_with(t, |settings| {
        settings.limits.rules = hearth_limits::RuleTable::default();
        settings_ok = configure(backend, settings);
        tweak(settings);
    })
    .await;
    if settings_ok { Some(app) } else { None }
}

async fn login_attempt(app: &TestApp, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = app
        .request(Method::POST, "/v1/auth/login", None)
        .json(&json!({"login": "nobody", "password": "Wrong-pass1!"}));
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

async fn the_sixth_login_in_a_minute_is_refused_with_retry_after(backend: Backend) {
    let t = sqlite_db().await;
    let Some(app) = spawn(&t, &backend, |_| {}).await else {
        return;
    };
    for attempt in 1..=5 {
        let response = login_attempt(&app, None).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
        assert_eq!(response.headers()["ratelimit-limit"], "5");
        let remaining: u32 = response.headers()["ratelimit-remaining"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(remaining, 5 - attempt);
    }
    let refused = login_attempt(&app, None).await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    let body = problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["rule"], "login.minute");
    // Health probes are never limited.
    for _ in 0..10 {
        assert_eq!(app.get("/health/live", None).await.status(), StatusCode::OK);
    }
    app.stop().await.unwrap();
}

async fn forwarded_for_counts_only_from_a_trusted_proxy(backend: Backend) {
    let t = sqlite_db().await;
    // Untrusted peer: a spoofed X-Forwarded-For changes nothing; all share 127.0.0.1's quota.
    let Some(app) = spawn(&t, &backend, |_| {}).await else {
        return;
    };
    for i in 0..5 {
        login_attempt(&app, Some(&format!("203.0.113.{i}"))).await;
    }
    let spoofed = login_attempt(&app, Some("198.51.100.77")).await;
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);
    app.stop().await.unwrap();

    // Trusted proxy: each forwarded client has its own quota.
    let t = sqlite_db().await;
    // (The account lockout, which would lock "nobody" after five failures, is not under test.)
    let trusted = |s: &mut Settings| {
        s.limits.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        s.auth.lockout.max_failures = 100;
    };
    let Some(app) = spawn(&t, &backend, trusted).await else {
        return;
    };
    for _ in 0..5 {
        assert_eq!(
            login_attempt(&app, Some("203.0.113.1")).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_attempt(&app, Some("203.0.113.1")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_attempt(&app, Some("203.0.113.2")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.stop().await.unwrap();
}

/// A client that writes its own `X-Forwarded-For` line, changing it at every request, must
/// not escape its quota: the trusted proxy's line, appended after it, names the real address.
async fn every_forwarded_for_line_counts(backend: Backend) {
    let t = sqlite_db().await;
    let trusted = |s: &mut Settings| {
        s.limits.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        s.auth.lockout.max_failures = 100;
    };
    let Some(app) = spawn(&t, &backend, trusted).await else {
        return;
    };
    let attempt = |spoofed: String, proxy_line: &'static str| {
        app.request(Method::POST, "/v1/auth/login", None)
            .json(&json!({"login": "nobody", "password": "Wrong-pass1!"}))
            // Two header lines: the client's own, then the one the proxy appended.
            .header("x-forwarded-for", spoofed)
            .header("x-forwarded-for", proxy_line)
            .send()
    };
    for i in 0..5 {
        let response = attempt(format!("198.51.100.{i}"), "203.0.113.1")
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let refused = attempt("198.51.100.99".into(), "203.0.113.1")
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the proxy's line names the client, whatever the client's own line says"
    );
    // The walk goes on into the client's line past trusted proxies: the two lines read as one.
    let other = attempt("203.0.113.2".into(), "127.0.0.9").await.unwrap();
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    app.stop().await.unwrap();
}

/// A revoked (or forged) token of user U spends its holder's address quota only: U, with a
/// live session, still has the whole per-user quota.
async fn a_refused_token_costs_its_holder_not_its_owner(backend: Backend) {
    let t = sqlite_db().await;
    let tweak = |s: &mut Settings| {
        s.limits.rules.user.per_minute = Some(5);
        s.limits.rules.user.per_hour = None;
        s.limits.rules.ip.per_minute = Some(1_000);
        s.limits.rules.ip.per_hour = None;
    };
    let Some(app) = spawn(&t, &backend, tweak).await else {
        return;
    };
    let stolen = app.player("Owner").await;
    // The owner logs out: the stolen token is revoked (that request spends 1 of U's 5).
    let logout = app
        .request(Method::POST, "/v1/auth/logout", Some(&stolen))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let live: Value = app.login("owner").await.json().await.unwrap();
    let live = live["access_token"].as_str().unwrap().to_owned();
    // The thief keeps trying with the revoked token, and with a forged one naming U.
    let (head_and_claims, signature) = stolen.rsplit_once('.').unwrap();
    let forged = format!(
        "{head_and_claims}.{}",
        signature.chars().rev().collect::<String>()
    );
    for token in [&stolen, &forged].into_iter().cycle().take(12) {
        let response = app.get("/v1/wallet", Some(token)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // U's own quota is untouched: four requests left after the logout.
    for i in 0..4 {
        let response = app.get("/v1/wallet", Some(&live)).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "request {i} of the owner"
        );
    }
    let spent = app.get("/v1/wallet", Some(&live)).await;
    let body = problem(spent, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        body["rule"], "user.minute",
        "the owner's quota still applies"
    );
    app.stop().await.unwrap();
}

async fn game_actions_are_limited_per_user(backend: Backend) {
    let t = sqlite_db().await;
    let tweak = |s: &mut Settings| {
        s.limits.rules.game.per_minute = Some(3);
        s.limits.rules.user.per_minute = Some(1_000);
    };
    let Some(app) = spawn(&t, &backend, tweak).await else {
        return;
    };
    let token = app.player("Limited").await;
    for _ in 0..3 {
        assert_eq!(app.spin(&token, 1).await.status(), StatusCode::OK);
    }
    let body = problem(app.spin(&token, 1).await, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["rule"], "game.minute");
    // Reading the wallet is not a game action.
    assert_eq!(
        app.get("/v1/wallet", Some(&token)).await.status(),
        StatusCode::OK
    );
    // Another player has their own quota.
    let other = app.player("Unlimited").await;
    assert_eq!(app.spin(&other, 1).await.status(), StatusCode::OK);
    let stats: Value = app
        .get("/v1/stats", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["rounds"], 3, "the refused spin moved no money");
    app.stop().await.unwrap();
}

async fn leaderboards_rank_players_as_rounds_settle(backend: Backend) {
    let t = sqlite_db().await;
    let Some(app) = spawn(&t, &backend, |_| {}).await else {
        return;
    };
    let mut best = Vec::new();
    for name in ["Ann", "Bob", "Cid"] {
        let token = app.player(name).await;
        let mut biggest = 0;
        for _ in 0..5 {
            let round: Value = app.spin(&token, 10).await.json().await.unwrap();
            biggest = biggest.max(round["win"].as_i64().unwrap());
        }
        best.push((name, biggest));
    }
    // Updates are asynchronous; give them a moment.
    let mut board = Value::Null;
    for _ in 0..50 {
        board = app
            .get("/v1/leaderboards/balance", None)
            .await
            .json()
            .await
            .unwrap();
        if board["entries"].as_array().is_some_and(|e| e.len() == 3) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let entries = board["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{board}");
    let scores: Vec<i64> = entries
        .iter()
        .map(|e| e["score"].as_i64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "ranked: {scores:?}"
    );
    assert_eq!(entries[0]["rank"], 1);

    let daily: Value = app
        .get("/v1/leaderboards/biggest_win?period=daily&limit=5", None)
        .await
        .json()
        .await
        .unwrap();
    let winners = best.iter().filter(|(_, b)| *b > 0).count();
    assert_eq!(
        daily["entries"].as_array().unwrap().len(),
        winners,
        "{daily}"
    );

    let body = problem(
        app.get("/v1/leaderboards/balance?period=daily", None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "period");
    problem(
        app.get("/v1/leaderboards/luckiest", None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let body = problem(
        app.get("/v1/leaderboards/net_won?limit=101", None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "limit");
    app.stop().await.unwrap();
}

macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        mod in_process {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::InProcess).await } )+
        }
        mod redis {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Redis).await } )+
        }
    };
}

on_both!(
    the_sixth_login_in_a_minute_is_refused_with_retry_after,
    forwarded_for_counts_only_from_a_trusted_proxy,
    every_forwarded_for_line_counts,
    a_refused_token_costs_its_holder_not_its_owner,
    game_actions_are_limited_per_user,
    leaderboards_rank_players_as_rounds_settle,
);

#[tokio::test]
async fn readiness_reports_redis_when_it_backs_the_limits() {
    let t = sqlite_db().await;
    let Some(app) = spawn(&t, &Backend::Redis, |_| {}).await else {
        return;
    };
    let body: Value = app.get("/health/ready", None).await.json().await.unwrap();
    assert_eq!(body["checks"]["redis"], "ok", "{body}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn with_the_refuse_policy_an_unreachable_redis_fails_readiness_and_refuses_requests() {
    let t = sqlite_db().await;
    let app = spawn_app_with(&t, |s| {
        s.limits.rules = hearth_limits::RuleTable::default();
        // Nothing listens on port 1: the limiter starts degraded.
        s.redis.url = Some(SecretString::from("redis://127.0.0.1:1".to_owned()));
        s.limits.redis_down = hearth_limits::RedisDownPolicy::Refuse;
    })
    .await;
    let body = problem(
        app.get("/health/ready", None).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(body["checks"]["redis"], "unreachable", "{body}");
    let refused = problem(
        app.get("/v1/leaderboards/balance", None).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("rate limiting"),
        "{refused}"
    );
    assert_eq!(app.get("/health/live", None).await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}
