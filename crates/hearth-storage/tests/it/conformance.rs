use std::sync::Arc;

use hearth_domain::fairness::{ClientSeed, FairRng, ServerSeed};
use hearth_domain::games::{GameError, slots};
use hearth_domain::ledger::EntryKind;
use hearth_storage::{
    Cursor, Database, Idempotency, LedgerEntry, LedgerQuery, Played, RoundPlay, RoundRequest,
    SettledRound, StorageError,
};
use hearth_test_support::{FIXED_SERVER_SEED, TestDb, backend_suite, new_user};
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

async fn spin(db: &dyn Database, user: Uuid, bet: i64) -> Result<SettledRound, StorageError> {
    spin_with_key(db, user, bet, None)
        .await
        .map(|played| played.value)
}

async fn spin_with_key(
    db: &dyn Database,
    user: Uuid,
    bet: i64,
    key: Option<(&str, &str)>,
) -> Result<Played<SettledRound>, StorageError> {
    let play = slots_play(bet);
    let idempotency = key.map(|(key, fingerprint)| Idempotency {
        key: key.into(),
        fingerprint: fingerprint.into(),
    });
    db.play_round(RoundRequest {
        user_id: user,
        round_id: Uuid::now_v7(),
        game: "slots",
        bet,
        play: &play,
        idempotency,
    })
    .await
}

async fn all_entries(db: &dyn Database, user: Uuid) -> Vec<LedgerEntry> {
    let mut entries = Vec::new();
    let mut after = None;
    loop {
        let page = db
            .ledger_page(
                user,
                LedgerQuery {
                    limit: 100,
                    after,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        entries.extend(page.items);
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => return entries,
        }
    }
}

async fn a_new_user_gets_a_wallet_with_the_bonus_as_a_ledger_entry(t: &TestDb) {
    let user = t.db.create_user(new_user("Alice", 1_000)).await.unwrap();
    assert_eq!(user.username, "Alice");
    assert_eq!(user.email, "alice@example.com");
    assert_eq!(user.role, "player");

    let wallet = t.db.wallet(user.id).await.unwrap();
    assert_eq!(wallet.balance, 1_000);
    let entries = all_entries(t.db.as_ref(), user.id).await;
    assert_eq!(entries.len(), 1);
    let bonus = &entries[0];
    assert_eq!(
        (
            bonus.kind,
            bonus.amount,
            bonus.balance_before,
            bonus.balance_after
        ),
        (EntryKind::Bonus, 1_000, 0, 1_000)
    );
    assert_eq!((bonus.game.as_deref(), bonus.round_id), (None, None));
}

async fn a_zero_starting_balance_writes_no_entry(t: &TestDb) {
    let user = t.db.create_user(new_user("Zed", 0)).await.unwrap();
    assert_eq!(t.db.wallet(user.id).await.unwrap().balance, 0);
    assert!(all_entries(t.db.as_ref(), user.id).await.is_empty());
}

async fn users_are_found_by_username_in_any_case_and_by_email(t: &TestDb) {
    let user = t.db.create_user(new_user("Bob_1", 0)).await.unwrap();
    for login in [
        "Bob_1",
        "bob_1",
        "BOB_1",
        "bob_1@example.com",
        " Bob_1@Example.com ",
    ] {
        let found =
            t.db.find_credentials(login)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{login}"));
        assert_eq!(found.user.id, user.id);
        assert!(found.password_hash.starts_with("$2b$"));
    }
    assert!(t.db.find_credentials("nobody").await.unwrap().is_none());
    assert_eq!(t.db.find_user(user.id).await.unwrap().unwrap(), user);
    assert!(t.db.find_user(Uuid::now_v7()).await.unwrap().is_none());
}

async fn duplicate_usernames_and_emails_conflict_and_write_nothing(t: &TestDb) {
    t.db.create_user(new_user("Carol", 100)).await.unwrap();

    let mut same_name = new_user("CAROL", 100);
    same_name.email = "other@example.com".into();
    match t.db.create_user(same_name.clone()).await {
        Err(StorageError::Conflict { constraint }) => {
            assert!(constraint.contains("username"), "{constraint}")
        }
        other => panic!("expected a username conflict, got {other:?}"),
    }
    let mut same_email = new_user("Caroline", 100);
    same_email.email = "carol@example.com".into();
    match t.db.create_user(same_email.clone()).await {
        Err(StorageError::Conflict { constraint }) => {
            assert!(constraint.contains("email"), "{constraint}")
        }
        other => panic!("expected an e-mail conflict, got {other:?}"),
    }
    // Neither refused registration left a wallet behind.
    assert!(matches!(
        t.db.wallet(same_name.id).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        t.db.wallet(same_email.id).await,
        Err(StorageError::NotFound)
    ));
}

async fn a_round_debits_credits_and_is_rederivable_from_its_seeds(t: &TestDb) {
    let user = t.db.create_user(new_user("Dora", 1_000)).await.unwrap();
    let server = ServerSeed::from_bytes(*FIXED_SERVER_SEED);
    let client = ClientSeed::parse("test-client-seed").unwrap();
    let mut balance = 1_000;
    for nonce in 0..5u64 {
        let round = spin(t.db.as_ref(), user.id, 10).await.unwrap();
        let expected = slots::spin(&mut FairRng::new(&server, &client, nonce), 10).unwrap();
        assert_eq!(round.nonce, nonce);
        assert_eq!(round.win, expected.win);
        assert_eq!(round.server_seed_hash, server.hash_hex());
        assert_eq!(round.client_seed, "test-client-seed");
        balance = balance - 10 + expected.win;
        assert_eq!(round.balance, balance);
    }
    assert_eq!(t.db.wallet(user.id).await.unwrap().balance, balance);

    // Every entry's arithmetic holds and the chain is unbroken, newest first.
    let entries = all_entries(t.db.as_ref(), user.id).await;
    for pair in entries.windows(2) {
        assert_eq!(
            pair[0].balance_before, pair[1].balance_after,
            "chain broken at {}",
            pair[0].id
        );
        assert!(pair[0].id > pair[1].id);
    }
    assert_eq!(entries.iter().map(|e| e.amount).sum::<i64>(), balance);
    let bets = entries.iter().filter(|e| e.kind == EntryKind::Bet).count();
    assert_eq!(bets, 5);
    for entry in entries.iter().filter(|e| e.kind != EntryKind::Bonus) {
        assert_eq!(entry.game.as_deref(), Some("slots"));
        assert!(entry.round_id.is_some());
    }
}

/// Two processes (two pools) playing for one player, with a client seed change between rounds:
/// each round draws from the seeds and the nonce the database holds, whatever the other did.
async fn rounds_from_two_processes_draw_from_the_current_seeds_and_nonce(t: &TestDb) {
    let user = t.db.create_user(new_user("Otto", 1_000)).await.unwrap();
    let other = hearth_storage::connect(&t.settings).await.unwrap();
    let server = ServerSeed::from_bytes(*FIXED_SERVER_SEED);
    let mut client = "test-client-seed".to_owned();
    let mut balance = 1_000;
    for nonce in 0..8u64 {
        let db: &dyn Database = if nonce % 3 == 1 {
            other.as_ref()
        } else {
            t.db.as_ref()
        };
        if nonce == 5 {
            client = "a-new-client-seed".to_owned();
            let seed = ClientSeed::parse(&client).unwrap();
            other.set_client_seed(user.id, &seed).await.unwrap();
        }
        let round = spin(db, user.id, 10).await.unwrap();
        let seed = ClientSeed::parse(&client).unwrap();
        let expected = slots::spin(&mut FairRng::new(&server, &seed, nonce), 10).unwrap();
        assert_eq!(round.nonce, nonce);
        assert_eq!(round.client_seed, client);
        assert_eq!(round.win, expected.win);
        balance = balance - 10 + expected.win;
        assert_eq!(round.balance, balance);
        let stored = t.db.round(user.id, round.round_id).await.unwrap().unwrap();
        assert_eq!((stored.nonce, stored.win), (nonce, expected.win));
        assert_eq!(stored.client_seed, client);
    }
    assert_eq!(t.db.wallet(user.id).await.unwrap().balance, balance);
    assert!(t.db.reconcile().await.unwrap().mismatches.is_empty());
    other.close().await;
}

async fn an_unaffordable_bet_is_refused_and_changes_nothing(t: &TestDb) {
    let user = t.db.create_user(new_user("Eve", 5)).await.unwrap();
    match spin(t.db.as_ref(), user.id, 10).await {
        Err(StorageError::InsufficientBalance { needed, available }) => {
            assert_eq!((needed, available), (10, 5))
        }
        other => panic!("expected insufficient balance, got {other:?}"),
    }
    assert_eq!(t.db.wallet(user.id).await.unwrap().balance, 5);
    assert_eq!(all_entries(t.db.as_ref(), user.id).await.len(), 1);
    // The refusal spent no nonce: the next affordable round uses nonce 0.
    let round = spin(t.db.as_ref(), user.id, 5).await.unwrap();
    assert_eq!(round.nonce, 0);
}

async fn a_rule_refusal_rolls_everything_back(t: &TestDb) {
    let user = t.db.create_user(new_user("Finn", 100)).await.unwrap();
    let refuse = |_: &mut FairRng<'_>| Err(GameError::InvalidBet { bet: 7 });
    let result =
        t.db.play_round(RoundRequest {
            user_id: user.id,
            round_id: Uuid::now_v7(),
            game: "slots",
            bet: 7,
            play: &refuse,
            idempotency: None,
        })
        .await;
    assert!(
        matches!(
            result,
            Err(StorageError::Game(GameError::InvalidBet { bet: 7 }))
        ),
        "{result:?}"
    );
    assert_eq!(t.db.wallet(user.id).await.unwrap().balance, 100);
    assert_eq!(spin(t.db.as_ref(), user.id, 1).await.unwrap().nonce, 0);
}

async fn an_unknown_user_cannot_play(t: &TestDb) {
    assert!(matches!(
        spin(t.db.as_ref(), Uuid::now_v7(), 1).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        t.db.wallet(Uuid::now_v7()).await,
        Err(StorageError::NotFound)
    ));
}

async fn ledger_pages_walk_every_entry_once_newest_first(t: &TestDb) {
    let user = t.db.create_user(new_user("Gus", 10_000)).await.unwrap();
    for _ in 0..12 {
        spin(t.db.as_ref(), user.id, 1).await.unwrap();
    }
    let all = all_entries(t.db.as_ref(), user.id).await;
    let mut walked = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page =
            t.db.ledger_page(
                user.id,
                LedgerQuery {
                    limit: 5,
                    after,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 5);
        pages += 1;
        walked.extend(page.items.iter().map(|e| e.id));
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(walked, all.iter().map(|e| e.id).collect::<Vec<_>>());
    assert_eq!(pages, all.len().div_ceil(5));
    // A page that ends exactly at the last entry says so.
    let exact =
        t.db.ledger_page(
            user.id,
            LedgerQuery {
                limit: u32::try_from(all.len()).unwrap(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(exact.next_cursor, None);
    // Another user's cursor position reveals nothing of this ledger.
    let other = t.db.create_user(new_user("Hal", 0)).await.unwrap();
    let page =
        t.db.ledger_page(
            other.id,
            LedgerQuery {
                limit: 100,
                after: Some(Cursor::after_id(i64::MAX - 1)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(page.items.is_empty());
}

async fn concurrent_rounds_on_one_wallet_never_lose_an_update_or_overdraw(t: &TestDb) {
    // A small balance so some rounds must be refused while others run.
    let user = t.db.create_user(new_user("Ivy", 300)).await.unwrap();
    let db: Arc<dyn Database> = t.db.clone();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { spin(db.as_ref(), user.id, 5).await })
        })
        .collect();
    let mut settled = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(round) => settled.push(round),
            Err(StorageError::InsufficientBalance { .. }) => {}
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    let wins: i64 = settled.iter().map(|r| r.win).sum();
    let expected = 300 - 5 * i64::try_from(settled.len()).unwrap() + wins;
    let wallet = t.db.wallet(user.id).await.unwrap();
    assert_eq!(wallet.balance, expected);
    let entries = all_entries(t.db.as_ref(), user.id).await;
    assert_eq!(entries.iter().map(|e| e.amount).sum::<i64>(), expected);
    assert!(entries.iter().all(|e| e.balance_after >= 0));
    let mut nonces: Vec<u64> = settled.iter().map(|r| r.nonce).collect();
    nonces.sort_unstable();
    assert_eq!(
        nonces,
        (0..settled.len() as u64).collect::<Vec<_>>(),
        "each nonce used exactly once"
    );
    assert!(t.db.reconcile().await.unwrap().mismatches.is_empty());
}

async fn reconciliation_finds_exactly_the_tampered_wallet(t: &TestDb) {
    let honest = t.db.create_user(new_user("Jay", 500)).await.unwrap();
    let tampered = t.db.create_user(new_user("Kim", 700)).await.unwrap();
    spin(t.db.as_ref(), honest.id, 10).await.unwrap();
    let clean = t.db.reconcile().await.unwrap();
    assert_eq!((clean.wallets, clean.mismatches.len()), (2, 0));

    let touched = t
        .execute_raw("UPDATE wallets SET balance = balance + 5 WHERE balance = 700")
        .await
        .unwrap();
    assert_eq!(touched, 1);
    let report = t.db.reconcile().await.unwrap();
    assert_eq!(report.mismatches.len(), 1);
    let mismatch = &report.mismatches[0];
    assert_eq!(
        (mismatch.user_id, mismatch.balance, mismatch.ledger_sum),
        (tampered.id, 705, 700)
    );
}

async fn the_schema_refuses_a_negative_balance_or_broken_arithmetic(t: &TestDb) {
    // The database is the last line of defence; these must fail whatever the code does.
    let user = t.db.create_user(new_user("Lou", 10)).await.unwrap();
    let negative = t.execute_raw("UPDATE wallets SET balance = -1").await;
    assert!(negative.is_err(), "a negative balance was stored");
    let broken = t
        .execute_raw(
            "UPDATE ledger_entries SET balance_after = balance_after + 1 WHERE kind = 'bonus'",
        )
        .await;
    assert!(
        broken.is_err(),
        "a ledger entry with wrong arithmetic was stored"
    );
    let bad_kind = t
        .execute_raw("UPDATE ledger_entries SET kind = 'gift'")
        .await;
    assert!(bad_kind.is_err(), "an unknown ledger kind was stored");
    assert_eq!(t.db.wallet(user.id).await.unwrap().balance, 10);
}

async fn migrations_are_all_applied_and_the_database_answers(t: &TestDb) {
    assert!(t.db.pending_migrations().await.unwrap().is_empty());
    t.db.ping().await.unwrap();
    t.db.migrate().await.unwrap();
    let stats = t.db.pool_stats();
    assert!(stats.size >= stats.idle);
}

async fn a_repeated_idempotency_key_replays_and_a_different_request_is_refused(t: &TestDb) {
    let user = t.db.create_user(new_user("Idem", 1_000)).await.unwrap();
    let first = spin_with_key(t.db.as_ref(), user.id, 10, Some(("k-1", "fp-a")))
        .await
        .unwrap();
    assert!(!first.replayed);
    let again = spin_with_key(t.db.as_ref(), user.id, 10, Some(("k-1", "fp-a")))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.value, first.value, "the replay is the first response");
    let other = spin_with_key(t.db.as_ref(), user.id, 20, Some(("k-1", "fp-b"))).await;
    assert!(
        matches!(other, Err(StorageError::IdempotencyMismatch)),
        "{other:?}"
    );
    // One effect only.
    let entries = all_entries(t.db.as_ref(), user.id).await;
    assert_eq!(
        entries.iter().filter(|e| e.kind == EntryKind::Bet).count(),
        1
    );
    assert_eq!(
        t.db.wallet(user.id).await.unwrap().balance,
        first.value.balance
    );
    // Keys are per user: another user may use the same key.
    let other_user = t.db.create_user(new_user("Idem2", 100)).await.unwrap();
    let theirs = spin_with_key(t.db.as_ref(), other_user.id, 10, Some(("k-1", "fp-a"))).await;
    assert!(!theirs.unwrap().replayed);
}

async fn concurrent_requests_with_one_key_have_one_effect(t: &TestDb) {
    let user = t.db.create_user(new_user("Racer", 1_000)).await.unwrap();
    let db: Arc<dyn Database> = t.db.clone();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                spin_with_key(db.as_ref(), user.id, 10, Some(("same", "fp")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut fresh = 0;
    let mut rounds = std::collections::HashSet::new();
    for task in tasks {
        let played = task.await.unwrap();
        fresh += usize::from(!played.replayed);
        rounds.insert(played.value.round_id);
    }
    assert_eq!((fresh, rounds.len()), (1, 1));
    let entries = all_entries(t.db.as_ref(), user.id).await;
    assert_eq!(
        entries.iter().filter(|e| e.kind == EntryKind::Bet).count(),
        1
    );
}

async fn old_idempotency_keys_are_purged(t: &TestDb) {
    let user = t.db.create_user(new_user("Purge", 100)).await.unwrap();
    spin_with_key(t.db.as_ref(), user.id, 1, Some(("old", "fp")))
        .await
        .unwrap();
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(t.db.purge_idempotency_keys(hour).await.unwrap(), 0);
    assert_eq!(
        t.db.purge_idempotency_keys(std::time::Duration::ZERO)
            .await
            .unwrap(),
        1
    );
    // After the purge the key is free again.
    let again = spin_with_key(t.db.as_ref(), user.id, 1, Some(("old", "fp")))
        .await
        .unwrap();
    assert!(!again.replayed);
}

async fn rotation_reveals_the_old_seed_and_resets_the_nonce(t: &TestDb) {
    let user = t.db.create_user(new_user("Seeds", 100)).await.unwrap();
    let before = t.db.fairness(user.id).await.unwrap();
    assert_eq!(before.nonce, 0);
    let round = spin(t.db.as_ref(), user.id, 1).await.unwrap();
    let record = t.db.round(user.id, round.round_id).await.unwrap().unwrap();
    assert_eq!(
        record.server_seed, None,
        "the seed stays secret while in use"
    );
    assert_eq!(t.db.fairness(user.id).await.unwrap().nonce, 1);

    let seed = ClientSeed::parse("my-lucky-seed").unwrap();
    let state = t.db.set_client_seed(user.id, &seed).await.unwrap();
    assert_eq!(state.client_seed, "my-lucky-seed");

    let next = ServerSeed::from_bytes([7; 32]);
    let rotation = t.db.rotate_seed(user.id, next.clone()).await.unwrap();
    let first_seed = ServerSeed::from_bytes(*FIXED_SERVER_SEED);
    assert_eq!(rotation.revealed_server_seed, first_seed.to_hex());
    assert_eq!(rotation.revealed_server_seed_hash, before.server_seed_hash);
    assert_eq!(rotation.server_seed_hash, next.hash_hex());
    let after = t.db.fairness(user.id).await.unwrap();
    assert_eq!(
        (after.server_seed_hash.clone(), after.nonce),
        (next.hash_hex(), 0)
    );

    let record = t.db.round(user.id, round.round_id).await.unwrap().unwrap();
    let revealed = ServerSeed::from_hex(record.server_seed.as_deref().unwrap()).unwrap();
    assert_eq!(
        revealed.hash_hex(),
        record.server_seed_hash,
        "the seed matches its commitment"
    );
    let client = ClientSeed::parse(&record.client_seed).unwrap();
    let rederived = slots::spin(&mut FairRng::new(&revealed, &client, record.nonce), 1).unwrap();
    assert_eq!(rederived.win, record.win);
    // Another user's round does not exist for this one.
    let stranger = t.db.create_user(new_user("Stranger", 0)).await.unwrap();
    assert!(
        t.db.round(stranger.id, round.round_id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn ledger_filters_by_kind_and_game(t: &TestDb) {
    let user = t.db.create_user(new_user("Filter", 1_000)).await.unwrap();
    for _ in 0..5 {
        spin(t.db.as_ref(), user.id, 2).await.unwrap();
    }
    let page = |kind: Option<EntryKind>, game: Option<&str>| {
        let game = game.map(str::to_owned);
        let query = LedgerQuery {
            limit: 100,
            kind,
            game,
            ..Default::default()
        };
        t.db.ledger_page(user.id, query)
    };
    let bets = page(Some(EntryKind::Bet), None).await.unwrap().items;
    assert_eq!(bets.len(), 5);
    assert!(bets.iter().all(|e| e.kind == EntryKind::Bet));
    assert_eq!(
        page(Some(EntryKind::Bonus), None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let slots_entries = page(None, Some("slots")).await.unwrap().items;
    assert!(slots_entries.len() >= 5);
    assert!(
        slots_entries
            .iter()
            .all(|e| e.game.as_deref() == Some("slots"))
    );
    assert_eq!(
        page(Some(EntryKind::Bet), Some("slots"))
            .await
            .unwrap()
            .items
            .len(),
        5
    );
    assert!(page(None, Some("roulette")).await.unwrap().items.is_empty());
}

async fn history_and_stats_are_computed_by_the_database(t: &TestDb) {
    let user = t.db.create_user(new_user("Stats", 1_000)).await.unwrap();
    let mut rounds = Vec::new();
    for _ in 0..8 {
        rounds.push(spin(t.db.as_ref(), user.id, 5).await.unwrap());
    }
    let history = t.db.balance_history(user.id, 7).await.unwrap();
    assert_eq!(history.len(), 7);
    let today = history.last().unwrap();
    let balance = t.db.wallet(user.id).await.unwrap().balance;
    assert_eq!(today.closing_balance, balance);
    assert_eq!(
        today.net_change, balance,
        "the bonus and every round happened today"
    );
    let wins = rounds.iter().filter(|r| r.win > 0).count() as u64;
    assert_eq!(today.entries, 1 + 8 + wins);
    assert!(
        history[..6]
            .iter()
            .all(|d| d.closing_balance == 0 && d.entries == 0)
    );

    let stats = t.db.stats(user.id).await.unwrap();
    assert_eq!(stats.rounds, 8);
    assert_eq!(stats.wagered, 40);
    assert_eq!(stats.won, rounds.iter().map(|r| r.win).sum::<i64>());
    assert_eq!(stats.net, stats.won - 40);
    assert_eq!(
        stats.biggest_win,
        rounds.iter().map(|r| r.win).max().unwrap()
    );
    assert_eq!(
        stats.wins,
        rounds.iter().filter(|r| r.win > r.bet).count() as u64
    );
    assert_eq!(stats.balance, balance);
    assert!(matches!(
        t.db.stats(Uuid::now_v7()).await,
        Err(StorageError::NotFound)
    ));
    let unknown = t.db.balance_history(Uuid::now_v7(), 3).await;
    assert!(matches!(unknown, Err(StorageError::NotFound)));
}

/// Many players' rounds at once (on PostgreSQL, sent together in shared statements), two of
/// them under one round id: the duplicate is refused alone, every other round settles, and every
/// round is still the one its seeds and nonce give.
async fn concurrent_rounds_of_many_players_settle_apart_from_a_failing_one(t: &TestDb) {
    let mut users = Vec::new();
    for n in 0..10 {
        let user =
            t.db.create_user(new_user(&format!("Crowd{n}"), 10_000))
                .await
                .unwrap();
        users.push(user.id);
    }
    let db: Arc<dyn Database> = t.db.clone();
    let shared_round = Uuid::now_v7();
    let tasks: Vec<_> = (0..62)
        .map(|n| {
            let db = db.clone();
            // Rounds 60 and 61 are the same round of the first player.
            let (user, round_id) = if n >= 60 {
                (users[0], shared_round)
            } else {
                (users[n % users.len()], Uuid::now_v7())
            };
            tokio::spawn(async move {
                let play = slots_play(10);
                let result = db
                    .play_round(RoundRequest {
                        user_id: user,
                        round_id,
                        game: "slots",
                        bet: 10,
                        play: &play,
                        idempotency: None,
                    })
                    .await;
                (n, user, result)
            })
        })
        .collect();
    let mut settled = Vec::new();
    let mut duplicates = Vec::new();
    for task in tasks {
        let (n, user, result) = task.await.unwrap();
        if n >= 60 {
            duplicates.push(result);
        } else {
            settled.push((
                user,
                result.unwrap_or_else(|e| panic!("round {n}: {e}")).value,
            ));
        }
    }
    let refused: Vec<_> = duplicates.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(
        refused.len(),
        1,
        "exactly one of the two rounds with one id settles"
    );
    assert!(
        matches!(refused[0], StorageError::Conflict { .. }),
        "the duplicate is a conflict, not {}",
        refused[0]
    );
    settled.extend(
        duplicates
            .into_iter()
            .filter_map(Result::ok)
            .map(|played| (users[0], played.value)),
    );
    let server = ServerSeed::from_bytes(*FIXED_SERVER_SEED);
    let client = ClientSeed::parse("test-client-seed").unwrap();
    for user in &users {
        let mut rounds: Vec<_> = settled
            .iter()
            .filter(|(owner, _)| owner == user)
            .map(|(_, round)| round)
            .collect();
        rounds.sort_by_key(|round| round.nonce);
        let nonces: Vec<u64> = rounds.iter().map(|round| round.nonce).collect();
        assert_eq!(nonces, (0..rounds.len() as u64).collect::<Vec<_>>());
        for round in &rounds {
            let expected =
                slots::spin(&mut FairRng::new(&server, &client, round.nonce), 10).unwrap();
            assert_eq!(round.win, expected.win, "round {} re-derives", round.nonce);
        }
        let wins: i64 = rounds.iter().map(|round| round.win).sum();
        let expected = 10_000 - 10 * i64::try_from(rounds.len()).unwrap() + wins;
        assert_eq!(t.db.wallet(*user).await.unwrap().balance, expected);
        // The answer with the highest nonce carries the final balance.
        assert_eq!(rounds.last().unwrap().balance, expected);
    }
    assert!(t.db.reconcile().await.unwrap().mismatches.is_empty());
    let sent = t.db.round_statements();
    if t.db.backend() == "postgres" {
        // Started together, all but the first waited in the queue.
        assert!(sent.statements >= 1 && sent.rounds >= 2, "{sent:?}");
    } else {
        assert_eq!(sent, hearth_storage::RoundStatements::default());
    }
}

backend_suite!(
    a_repeated_idempotency_key_replays_and_a_different_request_is_refused,
    concurrent_requests_with_one_key_have_one_effect,
    old_idempotency_keys_are_purged,
    rotation_reveals_the_old_seed_and_resets_the_nonce,
    ledger_filters_by_kind_and_game,
    history_and_stats_are_computed_by_the_database,
    a_new_user_gets_a_wallet_with_the_bonus_as_a_ledger_entry,
    a_zero_starting_balance_writes_no_entry,
    users_are_found_by_username_in_any_case_and_by_email,
    duplicate_usernames_and_emails_conflict_and_write_nothing,
    a_round_debits_credits_and_is_rederivable_from_its_seeds,
    rounds_from_two_processes_draw_from_the_current_seeds_and_nonce,
    an_unaffordable_bet_is_refused_and_changes_nothing,
    a_rule_refusal_rolls_everything_back,
    an_unknown_user_cannot_play,
    ledger_pages_walk_every_entry_once_newest_first,
    concurrent_rounds_on_one_wallet_never_lose_an_update_or_overdraw,
    concurrent_rounds_of_many_players_settle_apart_from_a_failing_one,
    reconciliation_finds_exactly_the_tampered_wallet,
    the_schema_refuses_a_negative_balance_or_broken_arithmetic,
    migrations_are_all_applied_and_the_database_answers,
);
