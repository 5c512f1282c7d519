//! Blackjack over HTTP: hands persist between requests, money moves exactly, rounds re-derive.

use hearth_domain::fairness::{ClientSeed, FairRng, ServerSeed};
use hearth_domain::games::blackjack::{Action, Hand};
use hearth_test_support::{TestDb, backend_suite};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, problem, spawn_app};

async fn deal(app: &TestApp, token: &str, bet: i64) -> reqwest::Response {
    app.post("/v1/games/blackjack", Some(token), &json!({ "bet": bet }))
        .await
}

async fn act(app: &TestApp, token: &str, round: &Value, action: &str) -> reqwest::Response {
    let path = format!(
        "/v1/games/blackjack/{}/action",
        round["round_id"].as_str().unwrap()
    );
    app.post(&path, Some(token), &json!({ "action": action }))
        .await
}

/// Deals hands until one stays open (naturals settle at once).
async fn open_hand(app: &TestApp, token: &str, bet: i64) -> Value {
    for _ in 0..20 {
        let hand: Value = deal(app, token, bet).await.json().await.unwrap();
        if hand["status"] == "open" {
            return hand;
        }
    }
    panic!("twenty naturals in a row");
}

async fn a_hand_stays_open_until_it_is_played_out(t: &TestDb) {
    let app = spawn_app(t).await;
    let token = app.player("Dealer").await;
    let hand = open_hand(&app, &token, 10).await;
    let text = hand.to_string();
    assert!(
        !text.contains("shoe"),
        "the shoe never leaves the server: {text}"
    );
    assert_eq!(hand["hand"]["hole_card_hidden"], true);
    assert_eq!(hand["hand"]["dealer"]["cards"].as_array().unwrap().len(), 1);
    let balance_open = hand["balance"].as_i64().unwrap();

    // One open hand at a time; the bet of a refused deal is not taken.
    problem(deal(&app, &token, 10).await, StatusCode::CONFLICT).await;
    let wallet: Value = app
        .get("/v1/wallet", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wallet["balance"].as_i64(), Some(balance_open));

    let done = act(&app, &token, &hand, "stand").await;
    assert_eq!(done.status(), StatusCode::OK);
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["status"], "settled");
    assert_eq!(done["hand"]["hole_card_hidden"], false);
    let win = done["win"].as_i64().unwrap();
    assert!(
        [0, 10, 20].contains(&win),
        "stand pays 0, the stake or double: {win}"
    );
    assert_eq!(done["balance"].as_i64().unwrap(), balance_open + win);

    // The hand is over: further actions conflict, and another player cannot touch it.
    problem(act(&app, &token, &hand, "hit").await, StatusCode::CONFLICT).await;
    let other = app.player("Other").await;
    problem(
        act(&app, &other, &hand, "stand").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(t.db.reconcile().await.unwrap().mismatches.is_empty());
    app.stop().await.unwrap();
}

async fn doubling_debits_the_extra_stake_and_the_round_rederives(t: &TestDb) {
    let app = spawn_app(t).await;
    let token = app.player("Doubler").await;
    let hand = open_hand(&app, &token, 20).await;
    let before = hand["balance"].as_i64().unwrap();
    let response = act(&app, &token, &hand, "double").await;
    assert_eq!(response.status(), StatusCode::OK);
    let done: Value = response.json().await.unwrap();
    assert_eq!(
        (done["status"].as_str(), done["bet"].as_i64()),
        (Some("settled"), Some(40))
    );
    let win = done["win"].as_i64().unwrap();
    assert_eq!(done["balance"].as_i64().unwrap(), before - 20 + win);

    let stats: Value = app
        .get("/v1/stats", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert!(stats["wagered"].as_i64().unwrap() >= 40);

    // After rotation anyone can replay the deal and the actions and get the same payout.
    app.post("/v1/fairness/rotate", Some(&token), &json!({}))
        .await;
    let path = format!("/v1/fairness/rounds/{}", hand["round_id"].as_str().unwrap());
    let record: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
    let seed = ServerSeed::from_hex(record["server_seed"].as_str().unwrap()).unwrap();
    let client = ClientSeed::parse(record["client_seed"].as_str().unwrap()).unwrap();
    let mut rng = FairRng::new(&seed, &client, record["nonce"].as_u64().unwrap());
    let mut replay = Hand::deal(&mut rng, 20).unwrap();
    replay.apply(Action::Double).unwrap();
    assert_eq!(replay.payout(), record["win"].as_i64().unwrap());
    assert_eq!(json!(replay.full_view()), record["detail"]["hand"]);
    app.stop().await.unwrap();
}

backend_suite!(
    a_hand_stays_open_until_it_is_played_out,
    doubling_debits_the_extra_stake_and_the_round_rederives,
);

#[tokio::test]
async fn bad_bets_and_actions_are_refused_precisely() {
    let t = hearth_test_support::sqlite_db().await;
    let app = spawn_app(&t).await;
    let token = app.player("Strict").await;
    for bet in [3, 0, 1_002] {
        let body = problem(
            deal(&app, &token, bet).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "bet", "{bet}");
    }
    let hand = open_hand(&app, &token, 10).await;
    let body = problem(
        act(&app, &token, &hand, "split").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "action");
    act(&app, &token, &hand, "hit").await;
    let after_hit = act(&app, &token, &hand, "double").await;
    // Either the hit ended the hand (bust or 21) or doubling after a hit is refused.
    problem(after_hit, StatusCode::CONFLICT).await;
    problem(
        app.post(
            "/v1/games/blackjack/not-a-round/action",
            Some(&token),
            &json!({"action": "stand"}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.stop().await.unwrap();
}
