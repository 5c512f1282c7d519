//! Revocations outlive restarts, on both databases: a logout, a password change, a session
//! killed for a reused refresh token and a refresh token already exchanged stay refused after
//! the gateway restarts with fresh in-process stores, and after Redis restarts empty.

use std::time::Duration;

use hearth_test_support::{TestDb, backend_suite};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, spawn_app, spawn_app_with, spawn_restarted};

backend_suite!(
    revocations_survive_a_restart_of_an_embedded_gateway,
    revocations_survive_redis_restarting_empty,
);

async fn tokens(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn token<'a>(pair: &'a Value, name: &str) -> &'a str {
    pair[name].as_str().unwrap()
}

async fn refresh(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    app.post(
        "/v1/auth/refresh",
        None,
        &json!({ "refresh_token": refresh_token }),
    )
    .await
}

/// What a test revoked, to be checked after the restart.
struct Revoked {
    /// Access tokens that must be refused.
    access: Vec<String>,
    /// Refresh tokens that must be refused (revoked, or of a revoked session).
    refresh: Vec<String>,
    /// A refresh token exchanged once, whose session is otherwise alive: presenting it again
    /// must be refused, and must end the session of `rotated_access`.
    used_refresh: String,
    rotated_access: String,
    /// A session nothing revoked.
    alive_access: String,
}

/// Logs out one session, kills another by replaying its refresh token, rotates a third, and
/// changes a second user's password.
async fn revoke_one_of_each(app: &TestApp) -> Revoked {
    app.register("Durable").await;
    app.register("Changer").await;

    let logged_out = tokens(app.login("durable").await).await;
    let logout = app
        .request(
            Method::POST,
            "/v1/auth/logout",
            Some(token(&logged_out, "access_token")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);

    let stolen = tokens(app.login("durable").await).await;
    let after_theft = tokens(refresh(app, token(&stolen, "refresh_token")).await).await;
    assert_eq!(
        refresh(app, token(&stolen, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let rotated_once = tokens(app.login("durable").await).await;
    let rotated = tokens(refresh(app, token(&rotated_once, "refresh_token")).await).await;
    let alive = tokens(app.login("durable").await).await;

    let changer = tokens(app.login("changer").await).await;
    let changed = app
        .post(
            "/v1/auth/password",
            Some(token(&changer, "access_token")),
            &json!({ "old_password": PASSWORD, "new_password": "N3w-Password!" }),
        )
        .await;
    assert!(changed.status().is_success(), "{}", changed.status());

    let revoked = Revoked {
        access: [&logged_out, &after_theft, &changer]
            .iter()
            .map(|pair| token(pair, "access_token").to_owned())
            .collect(),
        refresh: [&logged_out, &after_theft, &changer]
            .iter()
            .map(|pair| token(pair, "refresh_token").to_owned())
            .collect(),
        used_refresh: token(&rotated_once, "refresh_token").to_owned(),
        rotated_access: token(&rotated, "access_token").to_owned(),
        alive_access: token(&alive, "access_token").to_owned(),
    };
    assert_still_refused(app, &revoked).await;
    revoked
}

/// The status of `/v1/me`, waiting out the 503s of a Redis connection coming back.
async fn me(app: &TestApp, access: &str) -> StatusCode {
    for _ in 0..100 {
        let status = app.get("/v1/me", Some(access)).await.status();
        if status != StatusCode::SERVICE_UNAVAILABLE {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway kept answering 503");
}

async fn assert_still_refused(app: &TestApp, revoked: &Revoked) {
    assert_eq!(me(app, &revoked.alive_access).await, StatusCode::OK);
    for access in &revoked.access {
        assert_eq!(me(app, access).await, StatusCode::UNAUTHORIZED, "{access}");
    }
    for refresh_token in &revoked.refresh {
        assert_eq!(
            refresh(app, refresh_token).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(me(app, &revoked.alive_access).await, StatusCode::OK);
}

/// The used refresh token is refused, and presenting it ends its session.
async fn assert_used_refresh_token_is_spent(app: &TestApp, revoked: &Revoked) {
    assert_eq!(me(app, &revoked.rotated_access).await, StatusCode::OK);
    assert_eq!(
        refresh(app, &revoked.used_refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me(app, &revoked.rotated_access).await,
        StatusCode::UNAUTHORIZED
    );
}

async fn revocations_survive_a_restart_of_an_embedded_gateway(t: &TestDb) {
    let before = spawn_app(t).await;
    let revoked = revoke_one_of_each(&before).await;
    before.stop().await.unwrap();

    // A new gateway on the same database, with empty in-process stores.
    let after = spawn_restarted(t).await;
    assert_still_refused(&after, &revoked).await;
    assert_used_refresh_token_is_spent(&after, &revoked).await;
    after.stop().await.unwrap();

    // And once more: what the second gateway revoked, the third knows.
    let again = spawn_restarted(t).await;
    assert_eq!(
        me(&again, &revoked.rotated_access).await,
        StatusCode::UNAUTHORIZED
    );
    again.stop().await.unwrap();
}

async fn revocations_survive_redis_restarting_empty(t: &TestDb) {
    if hearth_test_support::service_url(hearth_test_support::REDIS_URL_VAR, "Redis").is_none() {
        return;
    }
    let mut server = hearth_test_support::PrivateRedis::start();
    let url = server.url();
    let app = spawn_app_with(t, |s| {
        s.redis.url = Some(secrecy::SecretString::from(url.clone()));
    })
    .await;
    let revoked = revoke_one_of_each(&app).await;

    server.restart();
    assert_still_refused(&app, &revoked).await;
    assert_used_refresh_token_is_spent(&app, &revoked).await;

    // Again, with the session ended after the first restart.
    server.restart();
    assert_eq!(
        me(&app, &revoked.rotated_access).await,
        StatusCode::UNAUTHORIZED
    );
    assert_still_refused(&app, &revoked).await;
    app.stop().await.unwrap();
}
