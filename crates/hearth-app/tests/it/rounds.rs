//! The round use-case on both databases: a round that changed something is ranked once and
//! pushed (the wallet to its player, a big win to everyone); a replay is not ranked or pushed
//! again; a refused round changes nothing.

use std::sync::Arc;
use std::time::Duration;

use hearth_app::leaderboards::{Board, InProcessLeaderboards, Leaderboards, Period};
use hearth_app::rounds::Rounds;
use hearth_domain::fairness::FairRng;
use hearth_domain::games::{GameError, slots};
use hearth_realtime::{Hub as _, InProcessHub, topics};
use hearth_storage::{ActRequest, Idempotency, RoundPlay, RoundRequest, Step, StorageError};
use hearth_test_support::{TestDb, backend_suite, new_user};
use uuid::Uuid;

fn slots_play(bet: i64) -> impl Fn(&mut FairRng<'_>) -> Result<RoundPlay, GameError> + Send + Sync {
    move |rng| {
        let outcome = slots::spin(rng, bet)?;
        Ok(RoundPlay {
            win: outcome.win,
            detail: serde_json::json!({ "stops": outcome.stops }),
            state: None,
        })
    }
}

/// The all-time balance board, once the spawned leaderboard update has landed.
async fn balance_board(boards: &dyn Leaderboards, expected_len: usize) -> Vec<(Uuid, i64)> {
    let at = time::OffsetDateTime::now_utc();
    for _ in 0..200 {
        let top = boards
            .top(Board::Balance, Period::AllTime, at, 10)
            .await
            .unwrap();
        if top.len() >= expected_len {
            return top.iter().map(|e| (e.user_id, e.score)).collect();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the leaderboard never got {expected_len} entries");
}

async fn a_played_round_is_ranked_and_a_replay_is_not_played_again(t: &TestDb) {
    let boards = Arc::new(InProcessLeaderboards::new());
    let rounds = Rounds::new(t.db.clone(), boards.clone());
    let user = t.db.create_user(new_user("Fay", 1_000)).await.unwrap();
    let play = slots_play(10);
    let request = |round_id| RoundRequest {
        user_id: user.id,
        round_id,
        game: "slots",
        bet: 10,
        play: &play,
        idempotency: Some(Idempotency {
            key: "k-1".into(),
            fingerprint: "spin 10".into(),
        }),
    };
    let first = rounds.play("Fay", request(Uuid::now_v7())).await.unwrap();
    assert!(!first.replayed);
    let ranked = balance_board(boards.as_ref(), 1).await;
    assert_eq!(ranked, [(user.id, first.value.balance)]);

    let again = rounds.play("Fay", request(Uuid::now_v7())).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.value, first.value);
    let wallet = t.db.wallet(user.id).await.unwrap();
    assert_eq!(
        wallet.balance, first.value.balance,
        "a replay moves no coins"
    );
    let top = boards
        .top(
            Board::NetWon,
            Period::AllTime,
            time::OffsetDateTime::now_utc(),
            10,
        )
        .await
        .unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].score, first.value.win - 10, "counted once");
}

async fn a_refused_round_changes_nothing_and_ranks_nothing(t: &TestDb) {
    let boards = Arc::new(InProcessLeaderboards::new());
    let rounds = Rounds::new(t.db.clone(), boards.clone());
    let user = t.db.create_user(new_user("Gus", 5)).await.unwrap();
    let play = slots_play(10);
    let refused = rounds
        .play(
            "Gus",
            RoundRequest {
                user_id: user.id,
                round_id: Uuid::now_v7(),
                game: "slots",
                bet: 10,
                play: &play,
                idempotency: None,
            },
        )
        .await;
    assert!(
        matches!(refused, Err(StorageError::InsufficientBalance { .. })),
        "{refused:?}"
    );
    assert_eq!(t.db.wallet(user.id).await.unwrap().balance, 5);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let top = boards
        .top(
            Board::Balance,
            Period::AllTime,
            time::OffsetDateTime::now_utc(),
            10,
        )
        .await
        .unwrap();
    assert!(top.is_empty(), "{top:?}");
}

backend_suite!(
    a_played_round_is_ranked_and_a_replay_is_not_played_again,
    a_refused_round_changes_nothing_and_ranks_nothing,
    a_settled_round_pushes_the_wallet_to_its_player_and_a_big_win_to_everyone,
    an_open_round_pushes_its_stake_and_each_action_what_it_moved,
);

// ---- Pushes -----------------------------------------------------------------------------------

/// A round whose rules pay a fixed `win`, settled (`open: false`) or left open.
fn fixed_play(
    win: i64,
    open: bool,
) -> impl Fn(&mut FairRng<'_>) -> Result<RoundPlay, GameError> + Send + Sync {
    move |_| {
        Ok(RoundPlay {
            win,
            detail: serde_json::json!({ "fixed": win }),
            state: open.then(|| serde_json::json!({ "hand": "open" })),
        })
    }
}

/// The next message on `sub` as JSON, within a deadline.
async fn pushed(sub: &mut hearth_realtime::Subscriber) -> serde_json::Value {
    match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
        Ok(Some(hearth_realtime::Delivery::Message { payload, .. })) => {
            serde_json::from_str(&payload).unwrap()
        }
        other => panic!("expected a push, got {other:?}"),
    }
}

async fn quiet(sub: &mut hearth_realtime::Subscriber) {
    if let Ok(delivery) = tokio::time::timeout(Duration::from_millis(200), sub.recv()).await {
        panic!("expected no push, got {delivery:?}");
    }
}

fn pushing_rounds(t: &TestDb) -> (Rounds, Arc<InProcessHub>) {
    let hub = Arc::new(InProcessHub::new());
    let rounds = Rounds::new(t.db.clone(), Arc::new(InProcessLeaderboards::new()))
        .announcing(hub.clone(), 50);
    (rounds, hub)
}

async fn a_settled_round_pushes_the_wallet_to_its_player_and_a_big_win_to_everyone(t: &TestDb) {
    let (rounds, hub) = pushing_rounds(t);
    let user = t.db.create_user(new_user("Hal", 1_000)).await.unwrap();
    let other = t.db.create_user(new_user("Ivy", 1_000)).await.unwrap();
    let mut mine = hub.subscriber(16);
    mine.subscribe(&topics::user(&user.id));
    let mut theirs = hub.subscriber(16);
    theirs.subscribe(&topics::user(&other.id));
    let mut wins = hub.subscriber(16);
    wins.subscribe(topics::BIG_WINS);

    // 500 on a bet of 10: exactly 50 times, a big win.
    let play = fixed_play(500, false);
    let key = Idempotency {
        key: "big-one".into(),
        fingerprint: "f".into(),
    };
    let request = |idempotency| RoundRequest {
        user_id: user.id,
        round_id: Uuid::now_v7(),
        game: "slots",
        bet: 10,
        play: &play,
        idempotency,
    };
    let first = rounds
        .play("Hal", request(Some(key.clone())))
        .await
        .unwrap();
    assert_eq!(
        pushed(&mut mine).await,
        serde_json::json!({
            "type": "wallet",
            "balance": 1_490,
            "change": 490,
            "kind": "round",
            "round_id": first.value.round_id,
        })
    );
    assert_eq!(
        pushed(&mut wins).await,
        serde_json::json!({
            "type": "big_win", "username": "Hal", "game": "slots", "bet": 10, "win": 500,
        })
    );

    // A replay changed nothing, so it pushes nothing.
    let replay = rounds.play("Hal", request(Some(key))).await.unwrap();
    assert!(replay.replayed);

    // 490 on 10 is 49 times: the wallet moves, no big win.
    let play_small = fixed_play(490, false);
    let second = rounds
        .play(
            "Hal",
            RoundRequest {
                play: &play_small,
                ..request(None)
            },
        )
        .await
        .unwrap();
    let wallet = pushed(&mut mine).await;
    assert_eq!(wallet["change"], 480);
    assert_eq!(wallet["balance"], 1_970);
    assert_eq!(wallet["round_id"], serde_json::json!(second.value.round_id));
    quiet(&mut wins).await;
    quiet(&mut mine).await;
    quiet(&mut theirs).await;
}

async fn an_open_round_pushes_its_stake_and_each_action_what_it_moved(t: &TestDb) {
    let (rounds, hub) = pushing_rounds(t);
    let user = t.db.create_user(new_user("Jon", 1_000)).await.unwrap();
    let mut mine = hub.subscriber(16);
    mine.subscribe(&topics::user(&user.id));
    let mut wins = hub.subscriber(16);
    wins.subscribe(topics::BIG_WINS);

    let deal = fixed_play(0, true);
    let dealt = rounds
        .play(
            "Jon",
            RoundRequest {
                user_id: user.id,
                round_id: Uuid::now_v7(),
                game: "blackjack",
                bet: 20,
                play: &deal,
                idempotency: None,
            },
        )
        .await
        .unwrap();
    let round_id = dealt.value.round_id;
    let wallet = pushed(&mut mine).await;
    assert_eq!(
        (wallet["change"].clone(), wallet["balance"].clone()),
        (serde_json::json!(-20), serde_json::json!(980))
    );

    // A hit that leaves the hand open moves no coins: no push.
    let hit = |_state: serde_json::Value| {
        Ok(Step {
            extra_stake: 0,
            state: Some(serde_json::json!({ "hand": "hit" })),
            win: 0,
            detail: serde_json::json!({}),
        })
    };
    let act = |step| ActRequest {
        user_id: user.id,
        round_id,
        game: "blackjack",
        step,
        idempotency: None,
    };
    rounds.act("Jon", act(&hit)).await.unwrap();
    quiet(&mut mine).await;

    // A double that settles: 20 more staked, 80 paid, so +60 for this action.
    let double = |_state: serde_json::Value| {
        Ok(Step {
            extra_stake: 20,
            state: None,
            win: 80,
            detail: serde_json::json!({}),
        })
    };
    let settled = rounds.act("Jon", act(&double)).await.unwrap();
    assert_eq!(settled.value.bet, 40);
    let wallet = pushed(&mut mine).await;
    assert_eq!(
        wallet,
        serde_json::json!({
            "type": "wallet", "balance": 1_040, "change": 60, "kind": "round",
            "round_id": round_id,
        })
    );
    quiet(&mut wins).await;
}
