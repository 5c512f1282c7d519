//! The round use-case on both databases: a round that changed something is ranked once; a
//! replay is not ranked again; a refused round changes nothing.

use std::sync::Arc;
use std::time::Duration;

use hearth_app::leaderboards::{Board, InProcessLeaderboards, Leaderboards, Period};
use hearth_app::rounds::Rounds;
use hearth_domain::fairness::FairRng;
use hearth_domain::games::{GameError, slots};
use hearth_storage::{Idempotency, RoundPlay, RoundRequest, StorageError};
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
);
