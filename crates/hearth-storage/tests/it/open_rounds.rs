//! Rounds that stay open between requests, with a toy two-step game: `open` stakes the bet,
//! `raise` adds the bet again, `finish` pays the total stake back twice.

use hearth_domain::games::GameError;
use hearth_storage::{
    ActRequest, Database, Idempotency, LedgerQuery, Played, RoundPlay, RoundRequest, SettledRound,
    Step, StorageError,
};
use hearth_test_support::{TestDb, backend_suite, new_user};
use serde_json::{Value, json};
use uuid::Uuid;

async fn open(db: &dyn Database, user: Uuid, bet: i64) -> Result<SettledRound, StorageError> {
    let play = |_: &mut hearth_domain::fairness::FairRng<'_>| {
        Ok(RoundPlay {
            win: 0,
            detail: json!({"steps": 0}),
            state: Some(json!({"steps": 0, "bet": bet})),
        })
    };
    let request = RoundRequest {
        user_id: user,
        round_id: Uuid::now_v7(),
        game: "toy",
        bet,
        play: &play,
        idempotency: None,
    };
    db.play_round(request).await.map(|p| p.value)
}

async fn act(
    db: &dyn Database,
    user: Uuid,
    round: Uuid,
    action: &str,
    key: Option<&str>,
) -> Result<Played<SettledRound>, StorageError> {
    let action = action.to_owned();
    let step = move |state: Value| -> Result<Step, GameError> {
        let steps = state["steps"].as_i64().unwrap() + 1;
        let bet = state["bet"].as_i64().unwrap();
        match action.as_str() {
            "raise" => Ok(Step {
                extra_stake: bet,
                state: Some(json!({"steps": steps, "bet": bet * 2})),
                win: 0,
                detail: json!({"steps": steps}),
            }),
            "finish" => Ok(Step {
                extra_stake: 0,
                state: None,
                win: bet * 2,
                detail: json!({"steps": steps, "over": true}),
            }),
            _ => Err(GameError::CorruptState),
        }
    };
    let idempotency = key.map(|k| Idempotency {
        key: k.into(),
        fingerprint: "fp".into(),
    });
    db.act(ActRequest {
        user_id: user,
        round_id: round,
        game: "toy",
        step: &step,
        idempotency,
    })
    .await
}

async fn ledger_sum(db: &dyn Database, user: Uuid) -> i64 {
    let page = db
        .ledger_page(
            user,
            LedgerQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    page.items.iter().map(|e| e.amount).sum()
}

async fn an_open_round_stakes_now_and_pays_when_it_settles(t: &TestDb) {
    let user = t.db.create_user(new_user("Opener", 100)).await.unwrap();
    let round = open(t.db.as_ref(), user.id, 10).await.unwrap();
    assert_eq!(
        (round.status.as_str(), round.balance, round.win),
        ("open", 90, 0)
    );
    assert_eq!(
        t.db.stats(user.id).await.unwrap().rounds,
        0,
        "open rounds are not in the stats"
    );

    let raised = act(t.db.as_ref(), user.id, round.round_id, "raise", None)
        .await
        .unwrap()
        .value;
    assert_eq!(
        (raised.status.as_str(), raised.bet, raised.balance),
        ("open", 20, 80)
    );
    let done = act(t.db.as_ref(), user.id, round.round_id, "finish", None)
        .await
        .unwrap()
        .value;
    assert_eq!(
        (done.status.as_str(), done.bet, done.win, done.balance),
        ("settled", 20, 40, 120)
    );
    assert_eq!(done.detail, json!({"steps": 2, "over": true}));
    assert_eq!(t.db.wallet(user.id).await.unwrap().balance, 120);
    assert_eq!(ledger_sum(t.db.as_ref(), user.id).await, 120);
    let record = t.db.round(user.id, round.round_id).await.unwrap().unwrap();
    assert_eq!(
        (record.status.as_str(), record.bet, record.win),
        ("settled", 20, 40)
    );

    let again = act(t.db.as_ref(), user.id, round.round_id, "finish", None).await;
    assert!(
        matches!(&again, Err(StorageError::Conflict { constraint }) if constraint == "round_settled"),
        "{again:?}"
    );
    assert!(t.db.reconcile().await.unwrap().mismatches.is_empty());
}

async fn one_open_round_per_game_and_no_rotation_while_open(t: &TestDb) {
    let user = t.db.create_user(new_user("OneAtATime", 100)).await.unwrap();
    let round = open(t.db.as_ref(), user.id, 10).await.unwrap();
    let second = open(t.db.as_ref(), user.id, 10).await;
    assert!(
        matches!(&second, Err(StorageError::Conflict { constraint }) if constraint.contains("one_open")),
        "{second:?}"
    );
    assert_eq!(
        t.db.wallet(user.id).await.unwrap().balance,
        90,
        "the refused round took nothing"
    );
    let rotation =
        t.db.rotate_seed(
            user.id,
            hearth_domain::fairness::ServerSeed::from_bytes([9; 32]),
        )
        .await;
    assert!(
        matches!(&rotation, Err(StorageError::Conflict { constraint }) if constraint == "open_round"),
        "{rotation:?}"
    );
    act(t.db.as_ref(), user.id, round.round_id, "finish", None)
        .await
        .unwrap();
    t.db.rotate_seed(
        user.id,
        hearth_domain::fairness::ServerSeed::from_bytes([9; 32]),
    )
    .await
    .unwrap();
}

async fn an_unaffordable_raise_or_a_foreign_round_changes_nothing(t: &TestDb) {
    let user = t.db.create_user(new_user("Short", 15)).await.unwrap();
    let round = open(t.db.as_ref(), user.id, 10).await.unwrap();
    let raise = act(t.db.as_ref(), user.id, round.round_id, "raise", None).await;
    assert!(
        matches!(
            raise,
            Err(StorageError::InsufficientBalance {
                needed: 10,
                available: 5
            })
        ),
        "{raise:?}"
    );
    let stranger = t.db.create_user(new_user("Thief", 100)).await.unwrap();
    assert!(matches!(
        act(t.db.as_ref(), stranger.id, round.round_id, "finish", None).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        act(t.db.as_ref(), user.id, Uuid::now_v7(), "finish", None).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        act(t.db.as_ref(), user.id, round.round_id, "dance", None).await,
        Err(StorageError::Game(_))
    ));
    assert_eq!(t.db.wallet(user.id).await.unwrap().balance, 5);
    let still_open = act(t.db.as_ref(), user.id, round.round_id, "finish", None)
        .await
        .unwrap()
        .value;
    assert_eq!(still_open.win, 20);
}

async fn a_retried_action_replays_instead_of_acting_twice(t: &TestDb) {
    let user = t.db.create_user(new_user("Twice", 100)).await.unwrap();
    let round = open(t.db.as_ref(), user.id, 10).await.unwrap();
    let first = act(t.db.as_ref(), user.id, round.round_id, "raise", Some("r-1"))
        .await
        .unwrap();
    let again = act(t.db.as_ref(), user.id, round.round_id, "raise", Some("r-1"))
        .await
        .unwrap();
    assert!(!first.replayed && again.replayed);
    assert_eq!(again.value, first.value);
    assert_eq!(
        t.db.wallet(user.id).await.unwrap().balance,
        80,
        "raised once"
    );
}

backend_suite!(
    an_open_round_stakes_now_and_pays_when_it_settles,
    one_open_round_per_game_and_no_rotation_while_open,
    an_unaffordable_raise_or_a_foreign_round_changes_nothing,
    a_retried_action_replays_instead_of_acting_twice,
);
