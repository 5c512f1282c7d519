//! The shared suite: written once, run on every backend by `shared_suite!` in `main.rs`.

use std::sync::Arc;
use std::time::Duration;

use hearth_limits::{BudgetError, BudgetSettings, Check, Decision, Rule};

use crate::support::Backend;

fn rule(name: &'static str, quota: u32, window_ms: u64) -> Rule {
    Rule::new(name, quota, Duration::from_millis(window_ms))
}

/// A decision through `check`, or every other time in-process through `check_now`, so the
/// whole suite runs both. With Redis, `check_now` declines.
async fn check(b: &Backend, checks: &[Check]) -> Decision {
    static NOW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if b.limiter.backend() == "redis" {
        assert!(b.limiter.check_now(checks).is_none(), "{}", b.name);
    } else if NOW.fetch_xor(true, std::sync::atomic::Ordering::Relaxed) {
        return b.limiter.check_now(checks).expect("in-process decides now");
    }
    b.limiter.check(checks).await.expect("decision")
}

fn between(actual: Duration, low: Duration, high: Duration) -> bool {
    low <= actual && actual <= high
}

pub(crate) async fn quota_passes_at_once_then_refusal_says_when_to_retry(b: Backend) {
    let r = rule("burst", 5, 1000);
    let c = [r.check("ip:192.0.2.1")];
    for expected_remaining in (0..5).rev() {
        let d = check(&b, &c).await;
        assert!(d.allowed, "{}", b.name);
        assert_eq!(d.remaining, expected_remaining);
        assert_eq!(d.limit, 5);
        assert_eq!(d.retry_after, None);
    }
    let refused = check(&b, &c).await;
    assert!(!refused.allowed);
    assert_eq!((refused.rule.as_ref(), refused.remaining), ("burst", 0));
    // One emission interval (1 s / 5) minus the time the calls took.
    let retry = refused.retry_after.expect("retry_after");
    assert!(
        between(
            retry,
            Duration::from_millis(200) - b.slack(),
            Duration::from_millis(200)
        ),
        "{retry:?}"
    );
    b.advance(retry + b.slack() / 2 + Duration::from_millis(1))
        .await;
    assert!(check(&b, &c).await.allowed, "refilled after retry_after");
    assert!(!check(&b, &c).await.allowed, "but only by one");
}

pub(crate) async fn a_burst_before_a_window_boundary_leaves_nothing_after_it(b: Backend) {
    // A fixed 2 s window would allow 5 just before its boundary and 5 more just after.
    let r = rule("boundary", 5, 2000);
    let c = [r.check("ip:192.0.2.2")];
    b.advance(Duration::from_millis(1900)).await;
    for _ in 0..5 {
        assert!(check(&b, &c).await.allowed);
    }
    assert!(!check(&b, &c).await.allowed);
    b.advance(Duration::from_millis(200)).await; // across the "boundary"
    assert!(!check(&b, &c).await.allowed, "no second burst");
    b.advance(Duration::from_millis(250)).await; // 450 ms after the burst: one interval
    assert!(check(&b, &c).await.allowed, "one request per 400 ms");
    assert!(!check(&b, &c).await.allowed);
}

pub(crate) async fn a_refused_rule_consumes_nothing_from_the_others(b: Backend) {
    let wide = rule("wide", 10, 60_000);
    let narrow = rule("narrow", 2, 60_000);
    let per_user = rule("per-user", 10, 60_000);
    let checks = [
        wide.check("ip:192.0.2.3"),
        narrow.check("ip:192.0.2.3"),
        per_user.check("user:u3"),
    ];
    assert!(check(&b, &checks).await.allowed);
    assert!(check(&b, &checks).await.allowed);
    for _ in 0..3 {
        let refused = check(&b, &checks).await;
        assert!(!refused.allowed);
        assert_eq!(refused.rule, "narrow");
    }
    // Each of the other rules was charged for the two allowed requests only.
    let wide_now = b.limiter.check_one("ip:192.0.2.3", &wide).await.unwrap();
    assert_eq!(wide_now.remaining, 7, "10 − 2 allowed − this one");
    let user_now = b.limiter.check_one("user:u3", &per_user).await.unwrap();
    assert_eq!(user_now.remaining, 7);
}

pub(crate) async fn the_decision_describes_the_tightest_rule_and_its_headers(b: Backend) {
    let ip = Rule::per_minute("ip.minute", 60);
    let login = Rule::per_minute("login.minute", 5);
    let checks = [
        ip.check("ip:192.0.2.4"),
        login.check("login:192.0.2.4:alice"),
    ];
    let d = check(&b, &checks).await;
    assert!(d.allowed);
    assert_eq!(
        (d.rule.as_ref(), d.limit, d.remaining),
        ("login.minute", 5, 4)
    );
    // Full quota back 12 s after one request (one interval of 60 s / 5).
    assert!(between(
        d.reset,
        Duration::from_secs(12) - b.slack(),
        Duration::from_secs(12)
    ));
    let headers: Vec<(String, String)> = d
        .headers()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        headers,
        [
            ("ratelimit-limit".into(), "5".into()),
            ("ratelimit-remaining".into(), "4".into()),
            ("ratelimit-reset".into(), "12".into()),
        ]
    );
    for _ in 0..4 {
        assert!(check(&b, &checks).await.allowed);
    }
    let refused = check(&b, &checks).await;
    assert!(!refused.allowed);
    let names: Vec<String> = refused
        .headers()
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "retry-after"
        ]
    );
    let retry = refused
        .headers()
        .into_iter()
        .find(|(k, _)| k == http::header::RETRY_AFTER)
        .unwrap()
        .1;
    assert_eq!(retry, "12");
}

pub(crate) async fn keys_and_rules_keep_separate_counters(b: Backend) {
    let a = rule("sep-a", 1, 60_000);
    let other = rule("sep-b", 1, 60_000);
    assert!(
        b.limiter
            .check_one("ip:192.0.2.5", &a)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !b.limiter
            .check_one("ip:192.0.2.5", &a)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        b.limiter
            .check_one("ip:192.0.2.6", &a)
            .await
            .unwrap()
            .allowed,
        "another key"
    );
    assert!(
        b.limiter
            .check_one("ip:192.0.2.5", &other)
            .await
            .unwrap()
            .allowed,
        "another rule"
    );
}

pub(crate) async fn a_zero_quota_refuses_and_no_checks_allow(b: Backend) {
    let closed = rule("closed", 0, 60_000);
    let d = b.limiter.check_one("ip:192.0.2.7", &closed).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Some(Duration::from_secs(60)));
    let none = b.limiter.check(&[]).await.unwrap();
    assert_eq!(none, Decision::unlimited());
}

pub(crate) async fn concurrent_requests_never_exceed_the_quota(b: Backend) {
    let r = rule("concurrent", 25, 60_000);
    let limiter = b.limiter.clone();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let limiter = limiter.clone();
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            limiter
                .check_one("user:concurrent", &r)
                .await
                .unwrap()
                .allowed
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.unwrap());
    }
    assert_eq!(allowed, 25, "{}", b.name);
}

// ---- Budgets --------------------------------------------------------------------------------

fn budget(user_daily: u64, global_hourly: u64) -> BudgetSettings {
    BudgetSettings {
        user_daily,
        global_hourly,
        ..BudgetSettings::default()
    }
}

pub(crate) async fn settling_releases_the_difference_to_the_estimate(b: Backend) {
    let (budgets, _) = b.budgets(&budget(1_000, 10_000)).await;
    let r = budgets.reserve("alice", 600).await.unwrap();
    assert_eq!(r.amount(), 600);
    let usage = budgets.usage("alice").await.unwrap();
    assert_eq!((usage.user_today, usage.global_this_hour), (600, 600));
    // While 600 are reserved, 500 more do not fit.
    assert!(matches!(
        budgets.reserve("alice", 500).await,
        Err(BudgetError::UserExhausted { .. })
    ));
    r.settle(150).await.unwrap();
    let usage = budgets.usage("alice").await.unwrap();
    assert_eq!((usage.user_today, usage.global_this_hour), (150, 150));
    let r = budgets.reserve("alice", 500).await.expect("now it fits");
    r.release().await.unwrap();
    assert_eq!(budgets.usage("alice").await.unwrap().user_today, 150);
}

pub(crate) async fn a_spent_user_budget_is_429_until_midnight_and_renews(b: Backend) {
    let (budgets, clock) = b.budgets(&budget(1_000, 1_000_000)).await;
    budgets
        .reserve("bob", 1_000)
        .await
        .unwrap()
        .settle(1_000)
        .await
        .unwrap();
    let err = budgets.reserve("bob", 1).await.unwrap_err();
    let BudgetError::UserExhausted { retry_after } = err else {
        panic!("{err:?}")
    };
    assert_eq!(err.status(), http::StatusCode::TOO_MANY_REQUESTS);
    let now = hearth_limits::Clock::now(&clock);
    let midnight = Duration::from_secs((now.as_secs() / 86_400 + 1) * 86_400);
    assert_eq!(retry_after, midnight - now);
    // Others still have theirs.
    budgets
        .reserve("carol", 10)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    clock.advance(retry_after);
    budgets
        .reserve("bob", 1_000)
        .await
        .expect("a new day")
        .release()
        .await
        .unwrap();
}

pub(crate) async fn a_spent_global_budget_is_503_until_the_hour(b: Backend) {
    let (budgets, clock) = b.budgets(&budget(1_000, 1_500)).await;
    budgets
        .reserve("u1", 1_000)
        .await
        .unwrap()
        .settle(1_000)
        .await
        .unwrap();
    let err = budgets.reserve("u2", 600).await.unwrap_err();
    let BudgetError::GlobalExhausted { retry_after } = err else {
        panic!("{err:?}")
    };
    assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry_after <= Duration::from_secs(3600) && retry_after > Duration::ZERO);
    assert_eq!(
        budgets.usage("u2").await.unwrap().user_today,
        0,
        "nothing charged"
    );
    clock.advance(retry_after);
    budgets
        .reserve("u2", 600)
        .await
        .expect("a new hour")
        .release()
        .await
        .unwrap();
}

pub(crate) async fn concurrent_reservations_never_exceed_the_budgets(b: Backend) {
    // 100 callers of one user reserve 7 each against a daily budget of 100: 14 fit.
    let (budgets, _) = b.budgets(&budget(100, 1_000_000)).await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let budgets = budgets.clone();
        tasks.push(tokio::spawn(async move {
            match budgets.reserve("dave", 7).await {
                Ok(r) => {
                    // Hold it across a yield so reservations overlap, then spend it all.
                    tokio::task::yield_now().await;
                    r.settle(7).await.unwrap();
                    true
                }
                Err(BudgetError::UserExhausted { .. }) => false,
                Err(e) => panic!("{e:?}"),
            }
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 14);
    assert_eq!(budgets.usage("dave").await.unwrap().user_today, 98);

    // 100 different users, 10 each, against a global hourly budget of 250: 25 fit.
    let (budgets, _) = b.budgets(&budget(1_000, 250)).await;
    let budgets = Arc::new(budgets);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let budgets = budgets.clone();
        tasks.push(tokio::spawn(async move {
            match budgets.reserve(&format!("user{i}"), 10).await {
                Ok(r) => {
                    tokio::task::yield_now().await;
                    r.settle(10).await.unwrap();
                    true
                }
                Err(BudgetError::GlobalExhausted { .. }) => false,
                Err(e) => panic!("{e:?}"),
            }
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 25);
    assert_eq!(budgets.usage("user0").await.unwrap().global_this_hour, 250);
}

pub(crate) async fn a_dropped_reservation_is_released(b: Backend) {
    let (budgets, _) = b.budgets(&budget(1_000, 10_000)).await;
    let r = budgets.reserve("erin", 800).await.unwrap();
    drop(r);
    // The Redis release runs on a spawned task.
    for _ in 0..100 {
        if budgets.usage("erin").await.unwrap().user_today == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the dropped reservation was not released");
}
