//! The slice a player walks, and money under concurrency, on both backends.

use std::collections::HashSet;

use hearth_test_support::{TestDb, backend_suite};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{spawn_app, spawn_app_with};

async fn ledger(app: &crate::support::TestApp, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut path = "/v1/wallet/transactions?limit=100".to_owned();
    loop {
        let page: Value = app.get(&path, Some(token)).await.json().await.unwrap();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/wallet/transactions?limit=100&cursor={cursor}"),
            None => return items,
        }
    }
}

async fn register_login_spin_and_read_the_ledger(t: &TestDb) {
    let app = spawn_app(t).await;

    let response = app.register("Alice").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["username"], "Alice");
    assert_eq!(user["email"], "alice@example.com");
    assert!(user.get("password_hash").is_none() && user.get("password").is_none());

    // Username (any case) or e-mail both log in.
    for login in ["Alice", "alice", "ALICE@example.com"] {
        let response = app.login(login).await;
        assert_eq!(response.status(), StatusCode::OK, "{login}");
        let tokens: Value = response.json().await.unwrap();
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["expires_in"], 900);
        assert!(tokens["refresh_token"].is_string());
    }
    let tokens: Value = app.login("alice").await.json().await.unwrap();
    let token = tokens["access_token"].as_str().unwrap();

    let me: Value = app.get("/v1/me", Some(token)).await.json().await.unwrap();
    assert_eq!(me["id"], user["id"]);

    let wallet: Value = app
        .get("/v1/wallet", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wallet["balance"], 1_000);

    let response = app.spin(token, 10).await;
    assert_eq!(response.status(), StatusCode::OK);
    let round: Value = response.json().await.unwrap();
    for field in [
        "round_id",
        "bet",
        "win",
        "balance",
        "reels",
        "multiplier",
        "server_seed_hash",
        "client_seed",
        "nonce",
    ] {
        assert!(!round[field].is_null(), "{field} missing from {round}");
    }
    let win = round["win"].as_i64().unwrap();
    assert_eq!(round["bet"], 10);
    assert_eq!(round["balance"].as_i64().unwrap(), 1_000 - 10 + win);
    assert_eq!(
        round["win"].as_i64().unwrap(),
        10 * round["multiplier"].as_i64().unwrap()
    );

    let items = ledger(&app, token).await;
    let kinds: Vec<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    let expected: &[&str] = if win > 0 {
        &["win", "bet", "bonus"]
    } else {
        &["bet", "bonus"]
    };
    assert_eq!(kinds, expected);
    let bet = items.iter().find(|i| i["kind"] == "bet").unwrap();
    assert_eq!(bet["amount"], -10);
    assert_eq!(bet["round_id"], round["round_id"]);
    for field in [
        "id",
        "balance_before",
        "balance_after",
        "created_at",
        "game",
        "description",
        "metadata",
        "status",
    ] {
        assert!(bet.get(field).is_some(), "{field} missing from {bet}");
    }
    app.stop().await.unwrap();
}

async fn cursor_pages_cover_the_ledger_exactly_once(t: &TestDb) {
    let app = spawn_app(t).await;
    let token = app.player("Pager").await;
    for _ in 0..6 {
        assert_eq!(app.spin(&token, 1).await.status(), StatusCode::OK);
    }
    let all = ledger(&app, &token).await;
    let mut seen = Vec::new();
    let mut path = "/v1/wallet/transactions?limit=2".to_owned();
    loop {
        let page: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|i| i["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/wallet/transactions?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let ids: Vec<i64> = all.iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!(seen, ids);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    app.stop().await.unwrap();
}

async fn two_hundred_concurrent_spins_on_one_wallet_balance_exactly(t: &TestDb) {
    let app = spawn_app_with(t, |s| s.wallet.starting_balance = 10_000).await;
    let token = app.player("Hot").await;
    let spins = (0..200).map(|_| {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/v1/games/slots/spin"),
            token.clone(),
        );
        tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&serde_json::json!({"bet": 10}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        })
    });
    let spins: Vec<_> = spins.collect();
    let mut wins = 0;
    let mut settled = 0;
    let mut rounds = HashSet::new();
    for spin in spins {
        let (status, body) = spin.await.unwrap();
        match status {
            StatusCode::OK => {
                settled += 1;
                wins += body["win"].as_i64().unwrap();
                assert!(body["balance"].as_i64().unwrap() >= 0);
                assert!(rounds.insert(body["round_id"].as_str().unwrap().to_owned()));
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(body["type"], "urn:hearth:problem:insufficient-balance")
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(settled > 0);
    let expected = 10_000 - 10 * settled + wins;
    let wallet: Value = app
        .get("/v1/wallet", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wallet["balance"].as_i64().unwrap(), expected);
    let items = ledger(&app, &token).await;
    assert_eq!(
        items
            .iter()
            .map(|i| i["amount"].as_i64().unwrap())
            .sum::<i64>(),
        expected
    );
    assert_eq!(
        items.iter().filter(|i| i["kind"] == "bet").count() as i64,
        settled
    );
    assert!(
        items
            .iter()
            .all(|i| i["balance_after"].as_i64().unwrap() >= 0)
    );
    assert!(t.db.reconcile().await.unwrap().mismatches.is_empty());
    app.stop().await.unwrap();
}

backend_suite!(
    register_login_spin_and_read_the_ledger,
    cursor_pages_cover_the_ledger_exactly_once,
    two_hundred_concurrent_spins_on_one_wallet_balance_exactly,
);
