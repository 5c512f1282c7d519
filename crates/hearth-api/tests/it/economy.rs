//! Idempotent money, provably-fair seeds, ledger filters, history and stats over HTTP.

use hearth_domain::fairness::{ClientSeed, FairRng, ServerSeed};
use hearth_domain::games::slots;
use hearth_test_support::{TestDb, backend_suite, sqlite_db};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, problem, spawn_app};

async fn keyed_spin(app: &TestApp, token: &str, key: &str, bet: i64) -> reqwest::Response {
    app.request(Method::POST, "/v1/games/slots/spin", Some(token))
        .header("idempotency-key", key)
        .json(&json!({ "bet": bet }))
        .send()
        .await
        .unwrap()
}

async fn a_retried_spin_replays_its_first_answer_and_moves_money_once(t: &TestDb) {
    let app = spawn_app(t).await;
    let token = app.player("Retry").await;
    let first = keyed_spin(&app, &token, "spin-0001", 10).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();

    let again = keyed_spin(&app, &token, "spin-0001", 10).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);

    let body = problem(
        keyed_spin(&app, &token, "spin-0001", 20).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "Idempotency-Key");

    let stats: Value = app
        .get("/v1/stats", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["rounds"], 1, "one effect for three requests");
    let wallet: Value = app
        .get("/v1/wallet", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wallet["balance"], first["balance"]);
    app.stop().await.unwrap();
}

async fn a_player_can_rederive_every_round_after_rotating_the_seed(t: &TestDb) {
    let app = spawn_app(t).await;
    let token = app.player("Verifier").await;
    let before: Value = app
        .get("/v1/fairness", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before["nonce"], 0);

    let set = app
        .request(Method::PUT, "/v1/fairness/client-seed", Some(&token))
        .json(&json!({"client_seed": "lucky-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::OK);
    let bad = app
        .request(Method::PUT, "/v1/fairness/client-seed", Some(&token))
        .json(&json!({"client_seed": "has:colon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await["errors"][0]["field"],
        "client_seed"
    );

    let round: Value = app.spin(&token, 5).await.json().await.unwrap();
    assert_eq!(round["server_seed_hash"], before["server_seed_hash"]);
    assert_eq!(
        (round["client_seed"].as_str(), round["nonce"].as_u64()),
        (Some("lucky-7"), Some(0))
    );
    let path = format!(
        "/v1/fairness/rounds/{}",
        round["round_id"].as_str().unwrap()
    );
    let hidden: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
    assert!(
        hidden["server_seed"].is_null(),
        "not revealed before rotation"
    );

    let rotation: Value = app
        .post("/v1/fairness/rotate", Some(&token), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        rotation["revealed_server_seed_hash"],
        before["server_seed_hash"]
    );
    let revealed: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
    let seed = ServerSeed::from_hex(revealed["server_seed"].as_str().unwrap()).unwrap();
    assert_eq!(
        seed.hash_hex(),
        before["server_seed_hash"].as_str().unwrap()
    );
    let client = ClientSeed::parse("lucky-7").unwrap();
    let outcome = slots::spin(&mut FairRng::new(&seed, &client, 0), 5).unwrap();
    assert_eq!(json!(outcome.reels), round["reels"]);
    assert_eq!(outcome.win, round["win"].as_i64().unwrap());

    let after: Value = app
        .get("/v1/fairness", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (after["server_seed_hash"].clone(), after["nonce"].clone()),
        (rotation["server_seed_hash"].clone(), json!(0))
    );

    // Another player cannot see it; a malformed id is simply not found.
    let other = app.player("Snoop").await;
    problem(app.get(&path, Some(&other)).await, StatusCode::NOT_FOUND).await;
    problem(
        app.get("/v1/fairness/rounds/not-a-uuid", Some(&other))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.stop().await.unwrap();
}

async fn history_filters_and_stats_describe_the_same_play(t: &TestDb) {
    let app = spawn_app(t).await;
    let token = app.player("Ledgered").await;
    let mut won = 0;
    for _ in 0..4 {
        let round: Value = app.spin(&token, 2).await.json().await.unwrap();
        won += round["win"].as_i64().unwrap();
    }
    let bets: Value = app
        .get("/v1/wallet/transactions?kind=bet", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bets["items"].as_array().unwrap().len(), 4);
    let bonus: Value = app
        .get("/v1/wallet/transactions?kind=bonus&limit=5", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bonus["items"].as_array().unwrap().len(), 1);
    let slots: Value = app
        .get("/v1/wallet/transactions?game=slots", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        slots["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["game"] == "slots")
    );

    let stats: Value = app
        .get("/v1/stats", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            stats["rounds"].as_i64(),
            stats["wagered"].as_i64(),
            stats["won"].as_i64()
        ),
        (Some(4), Some(8), Some(won))
    );
    assert_eq!(stats["net"].as_i64().unwrap(), won - 8);
    assert_eq!(stats["balance"].as_i64().unwrap(), 1_000 - 8 + won);

    let history: Value = app
        .get("/v1/wallet/history?days=3", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let days = history["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(days[2]["closing_balance"], stats["balance"]);
    app.stop().await.unwrap();
}

backend_suite!(
    a_retried_spin_replays_its_first_answer_and_moves_money_once,
    a_player_can_rederive_every_round_after_rotating_the_seed,
    history_filters_and_stats_describe_the_same_play,
);

#[tokio::test]
async fn bad_history_and_filter_parameters_are_named() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    let token = app.player("Params").await;
    for (path, field) in [
        ("/v1/wallet/history?days=0", "days"),
        ("/v1/wallet/history?days=366", "days"),
        ("/v1/wallet/transactions?kind=gift", "kind"),
        ("/v1/wallet/transactions?game=", "game"),
    ] {
        let body = problem(
            app.get(path, Some(&token)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(body["errors"][0]["field"], field, "{path}: {body}");
    }
    let long_key = "k".repeat(256);
    for key in [long_key.as_str(), "has space"] {
        let body = problem(
            keyed_spin(&app, &token, key, 1).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "Idempotency-Key");
    }
    app.stop().await.unwrap();
}

async fn dice_and_roulette_settle_and_rederive(t: &TestDb) {
    let app = spawn_app(t).await;
    let token = app.player("Tables").await;
    let roll = app
        .post(
            "/v1/games/dice/roll",
            Some(&token),
            &json!({"bet": 100, "target": 5000, "direction": "under"}),
        )
        .await;
    assert_eq!(roll.status(), StatusCode::OK);
    let roll: Value = roll.json().await.unwrap();
    assert_eq!(
        (roll["game"].as_str(), roll["bet"].as_i64()),
        (Some("dice"), Some(100))
    );
    let won = roll["roll"].as_u64().unwrap() < 5000;
    assert_eq!(roll["won"].as_bool(), Some(won));
    assert_eq!(
        roll["win"].as_i64(),
        Some(if won { 198 } else { 0 }),
        "1% edge: ×1.98"
    );
    for field in [
        "server_seed_hash",
        "client_seed",
        "nonce",
        "multiplier",
        "chance",
    ] {
        assert!(!roll[field].is_null(), "{field} missing from {roll}");
    }

    let bets = json!({"bets": [
        {"kind": "red", "amount": 10},
        {"kind": "straight", "numbers": [17], "amount": 5},
        {"kind": "dozen", "numbers": [2], "amount": 5}
    ]});
    let spin = app
        .post("/v1/games/roulette/spin", Some(&token), &bets)
        .await;
    assert_eq!(spin.status(), StatusCode::OK);
    let spin: Value = spin.json().await.unwrap();
    assert_eq!(spin["bet"], 20);
    let payouts: i64 = spin["bets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["payout"].as_i64().unwrap())
        .sum();
    assert_eq!(spin["win"].as_i64().unwrap(), payouts);
    let balance = 1_000 - 100 + roll["win"].as_i64().unwrap() - 20 + payouts;
    assert_eq!(spin["balance"].as_i64().unwrap(), balance);

    // After rotation the dice roll re-derives from the revealed seed.
    app.post("/v1/fairness/rotate", Some(&token), &json!({}))
        .await;
    let path = format!("/v1/fairness/rounds/{}", roll["round_id"].as_str().unwrap());
    let record: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
    let seed = ServerSeed::from_hex(record["server_seed"].as_str().unwrap()).unwrap();
    let client = ClientSeed::parse(record["client_seed"].as_str().unwrap()).unwrap();
    let request = hearth_domain::games::dice::DiceRequest {
        amount: 100,
        direction: hearth_domain::games::dice::Direction::Under,
        target: 5000,
    };
    let edge = hearth_domain::games::dice::HouseEdge::from_basis_points(100).unwrap();
    let bet = hearth_domain::games::dice::DiceBet::new(&request, edge).unwrap();
    let mut rng = FairRng::new(&seed, &client, record["nonce"].as_u64().unwrap());
    let outcome = hearth_domain::games::dice::roll(&mut rng, &bet);
    assert_eq!(u64::from(outcome.roll), roll["roll"].as_u64().unwrap());
    app.stop().await.unwrap();
}

mod tables {
    use super::*;
    backend_suite!(dice_and_roulette_settle_and_rederive);
}

#[tokio::test]
async fn dice_and_roulette_name_the_bad_field() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    let token = app.player("BadTables").await;
    let cases = [
        (
            "/v1/games/dice/roll",
            json!({"bet": 100, "target": 9990, "direction": "under"}),
            "target",
        ),
        (
            "/v1/games/dice/roll",
            json!({"bet": 5, "target": 5000, "direction": "under"}),
            "bet",
        ),
        (
            "/v1/games/dice/roll",
            json!({"bet": 100, "target": 5000, "direction": "sideways"}),
            "direction",
        ),
        ("/v1/games/roulette/spin", json!({"bets": []}), "bets"),
        (
            "/v1/games/roulette/spin",
            json!({"bets": [{"kind": "red", "amount": 1}, {"kind": "split", "numbers": [1, 5], "amount": 1}]}),
            "bets[1]",
        ),
        (
            "/v1/games/roulette/spin",
            json!({"bets": [{"kind": "red", "amount": 20000}]}),
            "bets",
        ),
    ];
    for (path, body, field) in cases {
        let response = app.post(path, Some(&token), &body).await;
        let problem = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    let wallet: Value = app
        .get("/v1/wallet", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wallet["balance"], 1_000, "no refused bet moved money");
    app.stop().await.unwrap();
}

async fn a_thousand_concurrent_mixed_bets_with_retries_keep_every_ledger_exact(t: &TestDb) {
    let app = crate::support::spawn_app_with(t, |s| s.wallet.starting_balance = 10_000).await;
    let mut tokens = Vec::new();
    for i in 0..51 {
        tokens.push(app.player(&format!("load{i:02}")).await);
    }
    let hot = tokens[50].clone();
    let bodies = [
        ("/v1/games/slots/spin", json!({"bet": 5})),
        (
            "/v1/games/dice/roll",
            json!({"bet": 100, "target": 5000, "direction": "under"}),
        ),
        (
            "/v1/games/roulette/spin",
            json!({"bets": [{"kind": "red", "amount": 5}]}),
        ),
    ];
    let mut tasks = Vec::new();
    for i in 0..1_000usize {
        // A quarter of all bets land on one hot wallet; the rest spread over fifty.
        let token = if i % 4 == 0 {
            hot.clone()
        } else {
            tokens[i % 50].clone()
        };
        let (path, body) = bodies[i % 3].clone();
        // Every tenth request is sent twice at once with the same key: a client retry.
        let copies = if i % 10 == 0 { 2 } else { 1 };
        for _ in 0..copies {
            let (client, url, token, body) = (
                app.client.clone(),
                app.url(path),
                token.clone(),
                body.clone(),
            );
            let key = format!("mixed-{i}");
            tasks.push(tokio::spawn(async move {
                let response = client
                    .post(url)
                    .bearer_auth(&token)
                    .header("idempotency-key", &key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let replayed = response.headers().contains_key("idempotent-replayed");
                let status = response.status();
                (
                    token,
                    key,
                    status,
                    replayed,
                    response.json::<Value>().await.unwrap(),
                )
            }));
        }
    }
    let mut by_key: std::collections::HashMap<(String, String), Vec<(bool, Value)>> =
        Default::default();
    for task in tasks {
        let (token, key, status, replayed, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        by_key
            .entry((token, key))
            .or_default()
            .push((replayed, body));
    }
    for ((_, key), answers) in &by_key {
        let fresh = answers.iter().filter(|(replayed, _)| !replayed).count();
        assert_eq!(fresh, 1, "{key} had {fresh} effects");
        let round = &answers[0].1["round_id"];
        assert!(
            answers.iter().all(|(_, body)| body["round_id"] == *round),
            "{key} answered differently"
        );
    }
    let report = t.db.reconcile().await.unwrap();
    assert_eq!(report.wallets, 51);
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
    let hot_stats: Value = app.get("/v1/stats", Some(&hot)).await.json().await.unwrap();
    assert_eq!(
        hot_stats["rounds"], 250,
        "one effect per key on the hot wallet"
    );
    assert!(hot_stats["balance"].as_i64().unwrap() >= 0);
    app.stop().await.unwrap();
}

mod load {
    use super::*;
    backend_suite!(a_thousand_concurrent_mixed_bets_with_retries_keep_every_ledger_exact);
}
