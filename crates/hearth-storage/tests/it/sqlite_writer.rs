//! The embedded writer under load: many concurrent spins on one SQLite file queue in the
//! process, share commits, settle exactly and reconcile, and a refused round among them changes
//! nothing but itself. SQLite only (PostgreSQL's queue is covered by the conformance suite).

use std::sync::Arc;

use hearth_domain::fairness::FairRng;
use hearth_domain::games::{GameError, slots};
use hearth_storage::sqlite::SqliteDatabase;
use hearth_storage::{
    DatabaseSettings, GameRepository, Idempotency, Maintenance, RoundPlay, RoundRequest,
    SettledRound, StorageError, UserRepository, WalletRepository,
};
use hearth_test_support::new_user;
use uuid::Uuid;

async fn open() -> (tempfile::TempDir, Arc<SqliteDatabase>) {
    let dir = tempfile::tempdir().unwrap();
    let settings = DatabaseSettings {
        url: format!("sqlite://{}", dir.path().join("hearth.db").display()).into(),
        max_connections: 8,
        ..DatabaseSettings::default()
    };
    let db = SqliteDatabase::connect(&settings).await.unwrap();
    db.migrate().await.unwrap();
    (dir, Arc::new(db))
}

async fn spin(
    db: &SqliteDatabase,
    user: Uuid,
    bet: i64,
    key: String,
) -> Result<SettledRound, StorageError> {
    let play = move |rng: &mut FairRng<'_>| -> Result<RoundPlay, GameError> {
        let outcome = slots::spin(rng, bet)?;
        Ok(RoundPlay {
            win: outcome.win,
            detail: serde_json::json!({ "stops": outcome.stops }),
            state: None,
        })
    };
    db.play_round(RoundRequest {
        user_id: user,
        round_id: Uuid::now_v7(),
        game: "slots",
        bet,
        play: &play,
        idempotency: Some(Idempotency {
            fingerprint: format!("spin {bet}"),
            key,
        }),
    })
    .await
    .map(|played| played.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_spins_settle_in_shared_commits_and_reconcile() {
    let (_dir, db) = open().await;
    let mut players = Vec::new();
    for n in 0..50 {
        players.push(
            db.create_user(new_user(&format!("Spinner{n}"), 10_000))
                .await
                .unwrap()
                .id,
        );
    }
    let before = db.writer_stats();
    // 32 clients, each spinning for players in turn with its own keys: 640 rounds in all.
    let clients: Vec<_> = (0..32)
        .map(|client| {
            let db = Arc::clone(&db);
            let players = players.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for n in 0..20 {
                    let user = players[(client * 7 + n) % players.len()];
                    let answer = spin(&db, user, 10, format!("c{client}-{n}")).await;
                    answers.push((user, answer.unwrap_or_else(|e| panic!("spin failed: {e}"))));
                }
                answers
            })
        })
        .collect();
    let mut settled: Vec<(Uuid, SettledRound)> = Vec::new();
    for client in clients {
        settled.extend(client.await.unwrap());
    }

    assert_eq!(settled.len(), 640);
    for user in &players {
        let mut rounds: Vec<_> = settled.iter().filter(|(u, _)| u == user).collect();
        rounds.sort_by_key(|(_, round)| round.nonce);
        let nonces: Vec<u64> = rounds.iter().map(|(_, round)| round.nonce).collect();
        assert_eq!(nonces, (0..rounds.len() as u64).collect::<Vec<_>>());
        let wins: i64 = rounds.iter().map(|(_, round)| round.win).sum();
        let expected = 10_000 - 10 * i64::try_from(rounds.len()).unwrap() + wins;
        assert_eq!(db.wallet(*user).await.unwrap().balance, expected);
        assert_eq!(rounds.last().unwrap().1.balance, expected);
    }
    assert!(db.reconcile().await.unwrap().mismatches.is_empty());
    let after = db.writer_stats();
    let (commits, writes) = (after.commits - before.commits, after.writes - before.writes);
    assert_eq!(writes, 640, "every spin is one write");
    assert!(
        commits < writes,
        "concurrent spins share commits: {commits} commits for {writes} writes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_spin_among_concurrent_ones_changes_nothing_but_itself() {
    let (_dir, db) = open().await;
    let mut players = Vec::new();
    for n in 0..8 {
        players.push(
            db.create_user(new_user(&format!("Batch{n}"), 10_000))
                .await
                .unwrap()
                .id,
        );
    }
    let poor = db.create_user(new_user("Poor", 5)).await.unwrap().id;
    let rounds: Vec<_> = (0..40)
        .map(|n| {
            let db = Arc::clone(&db);
            // Every fifth spin is the poor player's, who cannot cover the bet.
            let user = if n % 5 == 4 { poor } else { players[n % 8] };
            tokio::spawn(async move { (user, spin(&db, user, 10, format!("k{n}")).await) })
        })
        .collect();
    let mut results = Vec::new();
    for round in rounds {
        results.push(round.await.unwrap());
    }

    for (user, result) in &results {
        if *user == poor {
            assert!(
                matches!(result, Err(StorageError::InsufficientBalance { .. })),
                "{result:?}"
            );
        } else {
            assert!(result.is_ok(), "{result:?}");
        }
    }
    assert_eq!(db.wallet(poor).await.unwrap().balance, 5);
    for user in &players {
        let wins: i64 = results
            .iter()
            .filter(|(u, _)| u == user)
            .map(|(_, r)| r.as_ref().unwrap().win)
            .sum();
        let spins = results.iter().filter(|(u, _)| u == user).count();
        let expected = 10_000 - 10 * i64::try_from(spins).unwrap() + wins;
        assert_eq!(db.wallet(*user).await.unwrap().balance, expected);
    }
    assert!(db.reconcile().await.unwrap().mismatches.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_repeated_inside_one_batch_is_played_once_and_replayed() {
    let (_dir, db) = open().await;
    let user = db.create_user(new_user("Twice", 10_000)).await.unwrap().id;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let db = Arc::clone(&db);
            tokio::spawn(async move { spin(&db, user, 10, "same-key".to_owned()).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap().unwrap());
    }

    assert!(answers.iter().all(|a| a.round_id == answers[0].round_id));
    let balance = db.wallet(user).await.unwrap().balance;
    assert_eq!(balance, 10_000 - 10 + answers[0].win);
}
