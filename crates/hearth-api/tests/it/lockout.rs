//! The login lockout under attack: bursts of guesses from many addresses, second-factor codes,
//! and whether locks or metrics tell which names exist or belong together.

use std::time::{Duration, Instant};

use hearth_auth::onetime::{backup_codes, hash_secret};
use hearth_auth::{TotpSecret, Verifications};
use hearth_test_support::{TestDb, backend_suite};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{PASSWORD, TestApp, spawn_app_with};

backend_suite!(
    a_burst_of_guesses_from_twenty_addresses_checks_at_most_five_passwords,
    a_burst_of_codes_with_the_right_password_checks_at_most_five,
    unknown_and_real_logins_answer_and_lock_alike,
);

const WRONG: &str = "Wrong-Pass-1!";

/// Behind a trusted proxy (loopback), with no rate limit that could stop a burst before the
/// lockout does (`test_settings` keeps every rule generous). bcrypt is a little dearer than
/// in other suites so that a burst is truly concurrent: a lockout that counted failures only
/// once verified would let most of it through.
async fn behind_proxy(t: &TestDb) -> TestApp {
    spawn_app_with(t, |s| {
        s.limits.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        s.auth.bcrypt_cost = 8;
    })
    .await
}

async fn login_from(app: &TestApp, address: &str, body: &Value) -> reqwest::Response {
    app.request(reqwest::Method::POST, "/v1/auth/login", None)
        .header("x-forwarded-for", address)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn verifications(app: &TestApp) -> Verifications {
    app.state.hasher.verifications()
}

/// Sends every body in `wrong` at once, each from one of twenty addresses, and `right` from a
/// twenty-first as soon as five passwords have been checked (so a lockout that counts only
/// completed failures still has them in flight). Returns every status.
async fn burst(app: &TestApp, wrong: Vec<Value>, right: Value) -> Vec<StatusCode> {
    let before = verifications(app).stored;
    let mut tasks = Vec::new();
    for (i, body) in wrong.into_iter().enumerate() {
        let app_url = app.url("/v1/auth/login");
        let client = app.client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(app_url)
                .header("x-forwarded-for", format!("203.0.113.{}", i % 20))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while verifications(app).stored < before + 5 && Instant::now() < deadline {
        if tasks.iter().all(tokio::task::JoinHandle::is_finished) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut statuses = vec![login_from(app, "198.51.100.1", &right).await.status()];
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

async fn a_burst_of_guesses_from_twenty_addresses_checks_at_most_five_passwords(t: &TestDb) {
    let app = behind_proxy(t).await;
    app.register("Victim").await;
    let before = verifications(&app);
    let wrong = (0..100)
        .map(|i| json!({ "login": "victim", "password": format!("{WRONG}{i}") }))
        .collect();
    let statuses = burst(
        &app,
        wrong,
        json!({ "login": "victim", "password": PASSWORD }),
    )
    .await;

    let checked = verifications(&app).stored - before.stored;
    assert!(checked <= 5, "{checked} passwords were checked");
    assert!(
        !statuses.contains(&StatusCode::OK),
        "a token was issued: {statuses:?}"
    );
    let failed = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert!(failed <= 5, "{failed} wrong passwords were answered 401");
    assert!(
        statuses
            .iter()
            .all(|s| [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(s)),
        "{statuses:?}"
    );
    // Locked still, from any address, even with the right password.
    let again = login_from(
        &app,
        "198.51.100.2",
        &json!({ "login": "victim", "password": PASSWORD }),
    )
    .await;
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
    app.stop().await.unwrap();
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A six-digit code that is not the secret's code one step either side of now.
fn wrong_code(secret: &TotpSecret, seed: u32) -> String {
    let now = unix_now();
    let valid = [now - 60, now - 30, now, now + 30, now + 60].map(|t| secret.code_at(t));
    (seed..)
        .map(|n| format!("{:06}", n % 1_000_000))
        .find(|code| !valid.contains(code))
        .unwrap()
}

async fn a_burst_of_codes_with_the_right_password_checks_at_most_five(t: &TestDb) {
    let app = behind_proxy(t).await;
    app.register("Guarded").await;
    let user = app
        .state
        .db
        .find_credentials("guarded")
        .await
        .unwrap()
        .unwrap()
        .user
        .id;
    let secret = TotpSecret::generate();
    let codes = backup_codes();
    let hashes: Vec<String> = codes.iter().map(|c| hash_secret(c)).collect();
    assert!(
        app.state
            .db
            .begin_totp(user, &secret.to_base32())
            .await
            .unwrap()
    );
    assert!(app.state.db.enable_totp(user, 0, &hashes).await.unwrap());
    let before = verifications(&app);

    // Half wrong TOTP codes, half wrong backup codes; the password is right every time.
    let wrong = (0..100u32)
        .map(|i| {
            let code = if i % 2 == 0 {
                wrong_code(&secret, i * 7_919)
            } else {
                format!("zzzz-zzzz-{:04}", i)
            };
            json!({ "login": "guarded", "password": PASSWORD, "totp": code })
        })
        .collect();
    let right = json!({
        "login": "guarded",
        "password": PASSWORD,
        "totp": secret.code_at(unix_now()),
    });
    let statuses = burst(&app, wrong, right).await;

    // Each code is checked after the password, within the same reservation.
    let checked = verifications(&app).stored - before.stored;
    assert!(checked <= 5, "{checked} attempts were checked");
    assert!(
        !statuses.contains(&StatusCode::OK),
        "a token was issued: {statuses:?}"
    );
    // A backup code does not get past the lock either.
    let backup = login_from(
        &app,
        "198.51.100.3",
        &json!({ "login": "guarded", "password": PASSWORD, "totp": codes[0] }),
    )
    .await;
    assert_eq!(backup.status(), StatusCode::TOO_MANY_REQUESTS);
    app.stop().await.unwrap();
}

/// What a client sees of an answer: status, the header names, `Retry-After`, and the body
/// without its request id.
#[derive(Debug, PartialEq)]
struct Seen {
    status: StatusCode,
    headers: Vec<String>,
    retry_after: Option<u64>,
    body: Value,
}

async fn seen(response: reqwest::Response) -> Seen {
    let status = response.status();
    let mut headers: Vec<String> = response
        .headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .collect();
    headers.sort();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let mut body: Value = response.json().await.unwrap();
    body.as_object_mut().unwrap().remove("request_id");
    Seen {
        status,
        headers,
        retry_after,
        body,
    }
}

/// Six wrong passwords by the username, then six by the e-mail, each name from its own
/// address (so the address locks never speak first).
async fn guess_both_names(app: &TestApp, name: &str, first_address: u8) -> Vec<Seen> {
    let mut seen_all = Vec::new();
    for (offset, login) in [name.to_owned(), format!("{name}@example.com")]
        .into_iter()
        .enumerate()
    {
        let address = format!("192.0.2.{}", first_address + offset as u8);
        for _ in 0..6 {
            let body = json!({ "login": login, "password": WRONG });
            seen_all.push(seen(login_from(app, &address, &body).await).await);
        }
    }
    seen_all
}

async fn unknown_and_real_logins_answer_and_lock_alike(t: &TestDb) {
    let app = behind_proxy(t).await;
    let name = format!("known{}", &Uuid::new_v4().simple().to_string()[..8]);
    app.register(&name).await;
    let before = verifications(&app);
    let real = guess_both_names(&app, &name, 1).await;
    let middle = verifications(&app);
    let unknown = guess_both_names(&app, &format!("ghost{}", &name[5..]), 11).await;
    let after = verifications(&app);

    let statuses: Vec<u16> = real.iter().map(|s| s.status.as_u16()).collect();
    assert_eq!(
        statuses,
        [401, 401, 401, 401, 401, 429, 401, 401, 401, 401, 401, 429],
        "each name locks after five failures, the e-mail as if it were another account"
    );
    for (i, (real, unknown)) in real.iter().zip(&unknown).enumerate() {
        assert_eq!(real.status, unknown.status, "attempt {i}");
        assert_eq!(real.headers, unknown.headers, "attempt {i}");
        let (a, b) = (real.retry_after, unknown.retry_after);
        assert_eq!(a.is_some(), b.is_some(), "attempt {i}");
        assert!(a.unwrap_or(0).abs_diff(b.unwrap_or(0)) <= 1, "attempt {i}");
        if real.status != StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(real.body, unknown.body, "attempt {i}");
        } else {
            assert_eq!(real.body["type"], unknown.body["type"], "attempt {i}");
        }
    }
    // The same bcrypt work for both (the same timing class)...
    let spent = |from: Verifications, to: Verifications| {
        (to.stored - from.stored) + (to.dummy - from.dummy)
    };
    assert_eq!(spent(before, middle), spent(middle, after));
    // ...and the account's password was checked at most five times over both of its names.
    assert!(
        middle.stored - before.stored <= 5,
        "{}",
        middle.stored - before.stored
    );

    // The public metric does not tell unknown names from wrong passwords.
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("hearth_auth_login_failures_total"))
        .collect();
    assert!(!series.is_empty(), "{metrics}");
    for line in series {
        assert!(
            line.starts_with("hearth_auth_login_failures_total "),
            "a labelled failure series: {line}"
        );
    }
    app.stop().await.unwrap();
}

/// Two gateways sharing PostgreSQL and Redis: a burst split across both still gets five
/// checks in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_split_across_two_gateways_sharing_redis_checks_at_most_five_passwords() {
    let Some(t) = hearth_test_support::postgres_db().await else {
        return;
    };
    let Some(redis) = hearth_test_support::service_url(hearth_test_support::REDIS_URL_VAR, "Redis")
    else {
        return;
    };
    let prefix = format!("hearth-test:{}:", Uuid::new_v4().simple());
    let shared = |s: &mut hearth_api::Settings| {
        s.limits.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        s.auth.bcrypt_cost = 8;
        s.redis.url = Some(secrecy::SecretString::from(redis.clone()));
        s.redis.key_prefix = prefix.clone();
    };
    let a = spawn_app_with(&t, shared).await;
    let b = spawn_app_with(&t, shared).await;
    a.register("Roamer").await;
    let before = (verifications(&a).stored, verifications(&b).stored);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let url = if i % 2 == 0 { &a } else { &b }.url("/v1/auth/login");
        let client = a.client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("x-forwarded-for", format!("203.0.113.{}", i % 20))
                .json(&json!({ "login": "roamer", "password": format!("{WRONG}{i}") }))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for task in tasks {
        let status = task.await.unwrap();
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&status),
            "{status}"
        );
    }
    let checked = (verifications(&a).stored - before.0) + (verifications(&b).stored - before.1);
    assert!(checked <= 5, "{checked} passwords were checked");
    let right = json!({ "login": "roamer", "password": PASSWORD });
    for gateway in [&a, &b] {
        assert_eq!(
            login_from(gateway, "198.51.100.9", &right).await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    t.cleanup().await;
}
