//! Operators (issue #25) over HTTP, on both backends: every admin route hides from players and
//! from addresses off the allowlist (and audits the attempt); a ban ends the banned user's
//! next request, login and live socket; an adjustment is idempotent, audited and reconciles;
//! actions need the admin's TOTP code; search, view, pages and figures answer what the
//! database holds.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hearth_api::ws::WsSettings;
use hearth_auth::TotpSecret;
use hearth_storage::admin::AuditEntry;
use hearth_test_support::{TestDb, backend_suite};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{PASSWORD, TestApp, problem, spawn_app, spawn_app_with, spawn_ws};

backend_suite!(
    every_admin_route_hides_from_players_and_other_addresses_and_audits_the_attempt,
    a_ban_ends_the_next_request_the_login_and_the_live_socket_until_an_unban,
    an_adjustment_is_idempotent_audited_never_negative_and_reconciles,
    admin_actions_need_a_fresh_totp_code_when_the_admin_has_one,
    operators_find_accounts_and_page_through_ledgers_rounds_and_the_audit,
    the_figures_count_rounds_by_game_open_hands_jobs_and_the_last_reconciliation,
);

/// Registers `name`, makes them admin, logs in; returns the access token and the user id.
async fn admin(app: &TestApp, t: &TestDb, name: &str) -> (String, String) {
    assert_eq!(app.register(name).await.status(), StatusCode::CREATED);
    t.db.set_role(name, "admin").await.unwrap();
    let tokens: Value = app.login(name).await.json().await.unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let id = me(app, &token).await;
    (token, id)
}

async fn me(app: &TestApp, token: &str) -> String {
    let me: Value = app.get("/v1/me", Some(token)).await.json().await.unwrap();
    me["id"].as_str().unwrap().to_owned()
}

async fn audit_rows(t: &TestDb) -> Vec<AuditEntry> {
    t.db.audit_page(None, None, 100).await.unwrap().items
}

/// Every admin route with a body its handler accepts.
fn admin_routes(user: &str) -> Vec<(Method, String, Option<Value>)> {
    let job = uuid::Uuid::now_v7();
    vec![
        (Method::GET, "/v1/admin/users?query=a".into(), None),
        (Method::GET, format!("/v1/admin/users/{user}"), None),
        (
            Method::POST,
            format!("/v1/admin/users/{user}/ban"),
            Some(json!({ "reason": "probe" })),
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{user}/unban"),
            Some(json!({ "reason": "probe" })),
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{user}/adjustments"),
            Some(json!({ "amount": 5, "reason": "probe" })),
        ),
        (
            Method::GET,
            format!("/v1/admin/users/{user}/transactions"),
            None,
        ),
        (Method::GET, format!("/v1/admin/users/{user}/rounds"), None),
        (Method::GET, "/v1/admin/audit".into(), None),
        (Method::GET, "/v1/admin/stats".into(), None),
        (Method::GET, "/v1/admin/jobs".into(), None),
        (
            Method::POST,
            format!("/v1/admin/jobs/{job}/retry"),
            Some(json!({})),
        ),
    ]
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = app
        .request(method, path, Some(token))
        .header("idempotency-key", "probe-key");
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

async fn every_admin_route_hides_from_players_and_other_addresses_and_audits_the_attempt(
    t: &TestDb,
) {
    let app = spawn_app(t).await;
    let player = app.player("Plain").await;
    let player_id = me(&app, &player).await;
    let (chief, chief_id) = admin(&app, t, "chief").await;
    let routes = admin_routes(&player_id);

    for (method, path, body) in &routes {
        let hidden = send(&app, method.clone(), path, &player, body.as_ref()).await;
        let body = problem(hidden, StatusCode::NOT_FOUND).await;
        assert_eq!(
            body["type"], "urn:hearth:problem:not-found",
            "{method} {path}"
        );
    }
    let rows = audit_rows(t).await;
    assert_eq!(
        rows.len(),
        routes.len(),
        "one audit row per refused attempt"
    );
    for row in &rows {
        assert_eq!(row.outcome, "refused");
        assert_eq!(row.refusal.as_deref(), Some("not_admin"));
        assert_eq!(
            row.actor_id.map(|id| id.to_string()),
            Some(player_id.clone())
        );
        assert_eq!(row.client_ip.as_deref(), Some("127.0.0.1"));
        assert!(row.request_id.as_deref().is_some_and(|id| !id.is_empty()));
    }
    let ban_row = rows.iter().find(|r| r.action == "users.ban").unwrap();
    assert_eq!(
        ban_row.target_user_id.map(|id| id.to_string()),
        Some(player_id.clone())
    );
    assert!(rows.iter().any(|r| r.action == "users.adjust"));
    assert!(rows.iter().any(|r| r.action == "jobs.retry"));

    // A real admin from an address off the allowlist: the same 404, audited as such.
    let elsewhere = spawn_app_with(t, |s| {
        s.admin.allowed_ips = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    for (method, path, body) in &routes {
        let hidden = send(&elsewhere, method.clone(), path, &chief, body.as_ref()).await;
        problem(hidden, StatusCode::NOT_FOUND).await;
    }
    let rows = audit_rows(t).await;
    let off_list: Vec<_> = rows
        .iter()
        .filter(|r| r.refusal.as_deref() == Some("not_allowlisted"))
        .collect();
    assert_eq!(off_list.len(), routes.len());
    assert!(
        off_list
            .iter()
            .all(|r| r.actor_id.map(|id| id.to_string()) == Some(chief_id.clone()))
    );
    // Nothing was done: the player's wallet and account are untouched.
    let wallet: Value = app
        .get("/v1/wallet", Some(&player))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wallet["balance"], 1000);
    assert_eq!(app.login("Plain").await.status(), StatusCode::OK);

    // Without a token, from an allowed address: the usual 401, audited too.
    let anonymous = app.get("/v1/admin/stats", None).await;
    problem(anonymous, StatusCode::UNAUTHORIZED).await;
    let rows = audit_rows(t).await;
    assert_eq!(rows[0].refusal.as_deref(), Some("unauthenticated"));
    assert_eq!(rows[0].actor_id, None);
    elsewhere.stop().await.unwrap();
    app.stop().await.unwrap();
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn socket_for(app: &TestApp, token: &str) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/ws", app.addr))
        .await
        .unwrap();
    socket
        .send(Message::text(
            json!({"type": "auth", "token": token}).to_string(),
        ))
        .await
        .unwrap();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(text) = next {
            let answer: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(answer["type"], "authenticated", "{answer}");
            return socket;
        }
    }
}

async fn close_code(socket: &mut Socket) -> u16 {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(2), socket.next())
            .await
            .expect("the socket closes in time");
        match next {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

async fn a_ban_ends_the_next_request_the_login_and_the_live_socket_until_an_unban(t: &TestDb) {
    let app = spawn_ws(t, WsSettings::defaults()).await;
    let player = app.player("Cheater").await;
    let player_id = me(&app, &player).await;
    let tokens: Value = app.login("Cheater").await.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (chief, chief_id) = admin(&app, t, "chief").await;
    let mut socket = socket_for(&app, &player).await;

    let ban = format!("/v1/admin/users/{player_id}/ban");
    // A reason is required, bounded and plain.
    for body in [
        json!({}),
        json!({ "reason": "   " }),
        json!({ "reason": "x".repeat(501) }),
    ] {
        let refused = problem(
            app.post(&ban, Some(&chief), &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(refused["errors"][0]["field"], "reason", "{body}");
    }
    assert_eq!(
        app.get("/v1/wallet", Some(&player)).await.status(),
        StatusCode::OK
    );

    let banned = app
        .post(&ban, Some(&chief), &json!({ "reason": "chargeback fraud" }))
        .await;
    assert_eq!(banned.status(), StatusCode::OK);
    let banned: Value = banned.json().await.unwrap();
    assert_eq!(banned["user"]["disabled_reason"], "chargeback fraud");
    assert!(banned["user"]["disabled_at"].is_string());

    // The live socket is closed with 1008, the next request is refused, and so is a refresh.
    assert_eq!(close_code(&mut socket).await, 1008);
    problem(
        app.get("/v1/wallet", Some(&player)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        app.post(
            "/v1/auth/refresh",
            None,
            &json!({ "refresh_token": refresh }),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Login with the right password: 403 account-disabled; with a wrong one, the usual 401.
    let disabled = problem(app.login("Cheater").await, StatusCode::FORBIDDEN).await;
    assert_eq!(disabled["type"], "urn:hearth:problem:account-disabled");
    let wrong = app
        .post(
            "/v1/auth/login",
            None,
            &json!({ "login": "Cheater", "password": "Wrong-passw0rd!" }),
        )
        .await;
    problem(wrong, StatusCode::UNAUTHORIZED).await;

    // Banning twice, or banning oneself: 409; an unknown account: 404.
    problem(
        app.post(&ban, Some(&chief), &json!({ "reason": "again" }))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    problem(
        app.post(
            &format!("/v1/admin/users/{chief_id}/ban"),
            Some(&chief),
            &json!({ "reason": "oops" }),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    problem(
        app.post(
            &format!("/v1/admin/users/{}/ban", uuid::Uuid::now_v7()),
            Some(&chief),
            &json!({ "reason": "nobody" }),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    let rows = audit_rows(t).await;
    let done: Vec<_> = rows
        .iter()
        .filter(|r| r.action == "users.ban" && r.outcome == "done")
        .collect();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].reason.as_deref(), Some("chargeback fraud"));
    assert_eq!(
        done[0].actor_id.map(|id| id.to_string()),
        Some(chief_id.clone())
    );
    assert_eq!(
        done[0].target_user_id.map(|id| id.to_string()),
        Some(player_id.clone())
    );
    let refused: Vec<_> = rows
        .iter()
        .filter(|r| r.action == "users.ban" && r.outcome == "refused")
        .filter_map(|r| r.refusal.as_deref())
        .collect();
    assert!(refused.contains(&"conflict"), "{refused:?}");
    assert!(refused.contains(&"not_found"), "{refused:?}");
    assert!(refused.contains(&"invalid_request"), "{refused:?}");

    // Unbanned: logins work again, old sessions stay ended.
    let unban = format!("/v1/admin/users/{player_id}/unban");
    let unbanned = app
        .post(&unban, Some(&chief), &json!({ "reason": "appeal upheld" }))
        .await;
    assert_eq!(unbanned.status(), StatusCode::OK);
    let unbanned: Value = unbanned.json().await.unwrap();
    assert_eq!(unbanned["user"]["disabled_at"], Value::Null);
    problem(
        app.post(&unban, Some(&chief), &json!({ "reason": "again" }))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(app.login("Cheater").await.status(), StatusCode::OK);
    problem(
        app.get("/v1/wallet", Some(&player)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    app.stop().await.unwrap();
}

async fn adjust(
    app: &TestApp,
    token: &str,
    user: &str,
    key: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = app
        .request(
            Method::POST,
            &format!("/v1/admin/users/{user}/adjustments"),
            Some(token),
        )
        .json(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.unwrap()
}

async fn an_adjustment_is_idempotent_audited_never_negative_and_reconciles(t: &TestDb) {
    let app = spawn_app(t).await;
    let player = app.player("Owed").await;
    let player_id = me(&app, &player).await;
    let (chief, chief_id) = admin(&app, t, "chief").await;
    let credit = json!({ "amount": 250, "reason": "refund for outage 2026-12-05" });

    let first = adjust(&app, &chief, &player_id, Some("adj-1"), &credit).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["entry"]["kind"], "adjustment");
    assert_eq!(first["entry"]["amount"], 250);
    assert_eq!(first["entry"]["balance_before"], 1000);
    assert_eq!(first["entry"]["balance_after"], 1250);
    assert_eq!(
        first["entry"]["description"],
        "refund for outage 2026-12-05"
    );
    assert_eq!(first["entry"]["metadata"]["admin_id"], chief_id.as_str());
    assert_eq!(first["wallet"]["balance"], 1250);

    // The same key and body: the same answer, nothing written.
    let again = adjust(&app, &chief, &player_id, Some("adj-1"), &credit).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);
    let ledger: Value = app
        .get("/v1/wallet/transactions?kind=adjustment", Some(&player))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ledger["items"].as_array().unwrap().len(), 1, "{ledger}");
    let wallet: Value = app
        .get("/v1/wallet", Some(&player))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wallet["balance"], 1250);

    // The same key with another request: 422 naming the key, nothing written.
    let other = adjust(
        &app,
        &chief,
        &player_id,
        Some("adj-1"),
        &json!({ "amount": 1, "reason": "refund for outage 2026-12-05" }),
    )
    .await;
    let other = problem(other, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(other["errors"][0]["field"], "Idempotency-Key");

    // Without a key, with a zero or huge amount, or no reason: 422 naming the field.
    for (key, body, field) in [
        (None, credit.clone(), "Idempotency-Key"),
        (
            Some("adj-2"),
            json!({ "amount": 0, "reason": "r" }),
            "amount",
        ),
        (
            Some("adj-3"),
            json!({ "amount": 2_000_000_000_i64, "reason": "r" }),
            "amount",
        ),
        (Some("adj-4"), json!({ "amount": 5 }), "reason"),
        (
            Some("adj-5"),
            json!({ "amount": "5", "reason": "r" }),
            "amount",
        ),
    ] {
        let refused = problem(
            adjust(&app, &chief, &player_id, key, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(refused["errors"][0]["field"], field, "{body}");
    }

    // A debit below zero: 422 insufficient-balance, nothing written; one to exactly zero works.
    let too_much = adjust(
        &app,
        &chief,
        &player_id,
        Some("adj-6"),
        &json!({ "amount": -1251, "reason": "claw back" }),
    )
    .await;
    let too_much = problem(too_much, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(too_much["type"], "urn:hearth:problem:insufficient-balance");
    assert_eq!(too_much["available"], 1250);
    let to_zero = adjust(
        &app,
        &chief,
        &player_id,
        Some("adj-7"),
        &json!({ "amount": -1250, "reason": "claw back" }),
    )
    .await;
    assert_eq!(to_zero.status(), StatusCode::CREATED);
    let wallet: Value = app
        .get("/v1/wallet", Some(&player))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wallet["balance"], 0);

    // An admin's own wallet is not theirs to adjust.
    problem(
        adjust(&app, &chief, &chief_id, Some("adj-8"), &credit).await,
        StatusCode::CONFLICT,
    )
    .await;

    // Every wallet still equals its ledger.
    let report = t.db.reconcile().await.unwrap();
    assert!(report.mismatches.is_empty(), "{report:?}");

    // Audited: two done adjustments in their transactions, one replay, the refusals.
    let rows = audit_rows(t).await;
    let adjustments: Vec<_> = rows.iter().filter(|r| r.action == "users.adjust").collect();
    let done: Vec<_> = adjustments
        .iter()
        .filter(|r| r.outcome == "done" && r.detail.get("replayed").is_none())
        .collect();
    assert_eq!(done.len(), 2);
    assert!(
        done.iter()
            .any(|r| r.detail["entry_id"] == first["entry"]["id"]
                && r.detail["amount"] == 250
                && r.reason.as_deref() == Some("refund for outage 2026-12-05"))
    );
    assert_eq!(
        adjustments
            .iter()
            .filter(|r| r.detail.get("replayed").is_some())
            .count(),
        1
    );
    assert!(
        adjustments
            .iter()
            .any(|r| r.refusal.as_deref() == Some("insufficient_balance"))
    );
    app.stop().await.unwrap();
}

async fn admin_actions_need_a_fresh_totp_code_when_the_admin_has_one(t: &TestDb) {
    let app = spawn_app(t).await;
    let player = app.player("Target").await;
    let player_id = me(&app, &player).await;
    let (chief, _) = admin(&app, t, "chief").await;

    // The admin turns the second factor on; the answer carries a renewed session.
    let enroll: Value = app
        .post(
            "/v1/auth/totp/enroll",
            Some(&chief),
            &json!({ "password": PASSWORD }),
        )
        .await
        .json()
        .await
        .unwrap();
    let secret = TotpSecret::from_base32(enroll["secret"].as_str().unwrap()).unwrap();
    let now = unix_now();
    let confirmed: Value = app
        .post(
            "/v1/auth/totp/confirm",
            Some(&chief),
            &json!({ "password": PASSWORD, "code": secret.code_at(now) }),
        )
        .await
        .json()
        .await
        .unwrap();
    let chief = confirmed["session"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let backup = confirmed["backup_codes"][0].as_str().unwrap().to_owned();

    let ban = format!("/v1/admin/users/{player_id}/ban");
    let body = json!({ "reason": "bot" });
    let post = |code: Option<String>| {
        let mut request = app.request(Method::POST, &ban, Some(&chief)).json(&body);
        if let Some(code) = code {
            request = request.header("x-hearth-totp", code);
        }
        request.send()
    };
    // Reads need no code.
    assert_eq!(
        app.get("/v1/admin/stats", Some(&chief)).await.status(),
        StatusCode::OK
    );
    let missing = problem(post(None).await.unwrap(), StatusCode::UNAUTHORIZED).await;
    assert_eq!(missing["type"], "urn:hearth:problem:totp-required");
    assert_eq!(missing["totp_required"], true);
    // The code that confirmed enrolment is used up; a made-up one is wrong.
    for code in [secret.code_at(now), "000000".to_owned()] {
        let wrong = problem(
            post(Some(code)).await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(wrong["errors"][0]["field"], "X-Hearth-TOTP");
    }
    assert_eq!(
        app.login("Target").await.status(),
        StatusCode::OK,
        "not banned yet"
    );

    // The next step's code works once.
    let next = secret.code_at(now + 30);
    assert_eq!(
        post(Some(next.clone())).await.unwrap().status(),
        StatusCode::OK
    );
    let unban = format!("/v1/admin/users/{player_id}/unban");
    let replayed = app
        .request(Method::POST, &unban, Some(&chief))
        .header("x-hearth-totp", next)
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(replayed, StatusCode::UNPROCESSABLE_ENTITY).await;
    // A backup code works too.
    let unbanned = app
        .request(Method::POST, &unban, Some(&chief))
        .header("x-hearth-totp", backup)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(unbanned.status(), StatusCode::OK);

    let refusals: Vec<_> = audit_rows(t)
        .await
        .into_iter()
        .filter_map(|r| r.refusal)
        .collect();
    assert_eq!(
        refusals.iter().filter(|r| *r == "totp_missing").count(),
        1,
        "{refusals:?}"
    );
    assert_eq!(
        refusals.iter().filter(|r| *r == "totp_invalid").count(),
        3,
        "{refusals:?}"
    );
    app.stop().await.unwrap();
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn operators_find_accounts_and_page_through_ledgers_rounds_and_the_audit(t: &TestDb) {
    let app = spawn_app(t).await;
    let (chief, _) = admin(&app, t, "chief").await;
    let mut players = Vec::new();
    for name in ["amber", "Amos", "amy_x", "bob"] {
        let token = app.player(name).await;
        players.push((me(&app, &token).await, token));
    }
    let get = |path: String| {
        let app = &app;
        let chief = chief.clone();
        async move {
            let response = app.get(&path, Some(&chief)).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };

    // A prefix of the username (any case), newest first, in pages.
    let first = get("/v1/admin/users?query=AM&limit=2".into()).await;
    assert_eq!(names(&first), ["amy_x", "Amos"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get(format!("/v1/admin/users?query=am&limit=2&cursor={cursor}")).await;
    assert_eq!(names(&second), ["amber"]);
    assert_eq!(second["next_cursor"], Value::Null);
    // `_` is a character, not a wildcard; an e-mail prefix; an id; everyone.
    assert_eq!(
        names(&get("/v1/admin/users?query=amy_".into()).await),
        ["amy_x"]
    );
    assert_eq!(
        names(&get("/v1/admin/users?query=am_".into()).await).len(),
        0
    );
    assert_eq!(
        names(&get("/v1/admin/users?query=bob%40example".into()).await),
        ["bob"]
    );
    let (bob_id, bob) = &players[3];
    assert_eq!(
        names(&get(format!("/v1/admin/users?query={bob_id}")).await),
        ["bob"]
    );
    assert_eq!(names(&get("/v1/admin/users".into()).await).len(), 5);
    for (path, field) in [
        ("/v1/admin/users?limit=0", "limit"),
        ("/v1/admin/users?cursor=nope", "cursor"),
        ("/v1/admin/audit?user_id=nope", "user_id"),
        ("/v1/admin/audit?limit=101", "limit"),
    ] {
        let refused = problem(
            app.get(path, Some(&chief)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(refused["errors"][0]["field"], field, "{path}");
    }

    // Bob plays three rounds; his ledger and rounds page newest first.
    for _ in 0..3 {
        assert_eq!(app.spin(bob, 10).await.status(), StatusCode::OK);
    }
    let view = get(format!("/v1/admin/users/{bob_id}")).await;
    assert_eq!(view["user"]["username"], "bob");
    assert_eq!(view["user"]["disabled_at"], Value::Null);
    assert_eq!(view["totp_enabled"], false);
    let rounds = get(format!("/v1/admin/users/{bob_id}/rounds?limit=2")).await;
    assert_eq!(rounds["items"].as_array().unwrap().len(), 2);
    assert_eq!(rounds["items"][0]["game"], "slots");
    assert_eq!(rounds["items"][0]["bet"], 10);
    let cursor = rounds["next_cursor"].as_str().unwrap();
    let rest = get(format!(
        "/v1/admin/users/{bob_id}/rounds?limit=2&cursor={cursor}"
    ))
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    let mut ids: Vec<_> = rounds["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "no round twice");
    let ledger = get(format!("/v1/admin/users/{bob_id}/transactions?kind=bet")).await;
    assert_eq!(ledger["items"].as_array().unwrap().len(), 3);
    let own: Value = app
        .get("/v1/wallet/transactions?kind=bet", Some(bob))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ledger, own, "the operator sees what the player sees");
    for path in [
        format!("/v1/admin/users/{}", uuid::Uuid::now_v7()),
        "/v1/admin/users/not-a-uuid".to_owned(),
        format!("/v1/admin/users/{}/rounds", uuid::Uuid::now_v7()),
        format!("/v1/admin/users/{}/transactions", uuid::Uuid::now_v7()),
    ] {
        problem(app.get(&path, Some(&chief)).await, StatusCode::NOT_FOUND).await;
    }

    // The audit trail pages newest first and filters by account.
    let about_bob = get(format!("/v1/admin/audit?user_id={bob_id}")).await;
    let actions: Vec<_> = about_bob["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "users.transactions",
            "users.rounds",
            "users.rounds",
            "users.view"
        ]
    );
    let page = get("/v1/admin/audit?limit=3".into()).await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = get(format!("/v1/admin/audit?limit=3&cursor={cursor}")).await;
    let last_id = page["items"][2]["id"].as_i64().unwrap();
    assert!(next["items"][0]["id"].as_i64().unwrap() < last_id);
    app.stop().await.unwrap();
}

async fn the_figures_count_rounds_by_game_open_hands_jobs_and_the_last_reconciliation(t: &TestDb) {
    let app = spawn_app(t).await;
    let (chief, _) = admin(&app, t, "chief").await;
    let player = app.player("Gambler").await;
    for _ in 0..4 {
        assert_eq!(app.spin(&player, 5).await.status(), StatusCode::OK);
    }
    // An open blackjack hand (a natural settles at once; try until one stays open).
    let mut open = false;
    for _ in 0..20 {
        let hand: Value = app
            .post("/v1/games/blackjack", Some(&player), &json!({ "bet": 10 }))
            .await
            .json()
            .await
            .unwrap();
        if hand["status"] == "open" {
            open = true;
            break;
        }
    }
    assert!(open, "a hand stayed open");
    hearth_app::jobs::reconcile_once(t.db.as_ref())
        .await
        .unwrap();

    let stats = app.get("/v1/admin/stats", Some(&chief)).await;
    assert_eq!(stats.status(), StatusCode::OK);
    let stats: Value = stats.json().await.unwrap();
    let slots = stats["games"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["game"] == "slots")
        .unwrap()
        .clone();
    let won =
        t.db.stats(uuid::Uuid::parse_str(&me(&app, &player).await).unwrap())
            .await
            .unwrap();
    for period in ["today", "last_7_days", "all_time"] {
        assert_eq!(slots[period]["rounds"], 4, "{period}: {slots}");
        assert_eq!(slots[period]["wagered"], 20, "{period}");
    }
    let paid = slots["all_time"]["paid"].as_i64().unwrap();
    let rtp = slots["all_time"]["rtp"].as_f64().unwrap();
    assert!((rtp - paid as f64 / 20.0).abs() < 0.0001, "{slots}");
    assert!(won.rounds >= 4);
    assert_eq!(stats["open_blackjack_hands"], 1);
    assert_eq!(stats["active_users"]["today"], 1);
    assert_eq!(stats["reconciliation"]["mismatches"], 0);
    assert!(stats["reconciliation"]["wallets"].as_i64().unwrap() >= 2);
    let daily = stats["daily"].as_array().unwrap();
    assert!(
        daily
            .iter()
            .any(|d| d["game"] == "slots" && d["rounds"] == 4),
        "{daily:?}"
    );
    for field in ["queued", "running", "dead", "oldest_due_age_secs"] {
        assert!(stats["jobs"][field].is_number(), "{field}");
    }
    app.stop().await.unwrap();
}
