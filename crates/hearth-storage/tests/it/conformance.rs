use std::sync::Arc;

use hearth_domain::fairness::{ClientSeed, FairRng, ServerSeed};
use hearth_domain::games::{GameError, slots};
use hearth_domain::ledger::EntryKind;
use hearth_storage::{
    Cursor, Database, LedgerEntry, LedgerQuery, RoundPlay, RoundRequest, SettledRound, StorageError,
};
use hearth_test_support::{FIXED_SERVER_SEED, TestDb, backend_suite, new_user};
use uuid::Uuid;

fn slots_play(bet: i64) -> impl Fn(&mut FairRng<'_>) -> Result<RoundPlay, GameError> + Send + Sync {
    move |rng| {
        let outcome = slots::spin(rng, bet)?;
        Ok(RoundPlay {
            win: outcome.win,
            detail: serde_json::json!({ "stops": outcome.stops }),
        })
    }
}

async fn spin(db: &dyn Database, user: Uuid, bet: i64) -> Result<SettledRound, StorageError> {
    let play = slots_play(bet);
    db.play_round(RoundRequest {
        user_id: user,
        round_id: Uuid::now_v7(),
        game: "slots",
        bet,
        play: &play,
    })
    .await
}

async fn all_entries(db: &dyn Database, user: Uuid) -> Vec<LedgerEntry> {
    let mut entries = Vec::new();
    let mut after = None;
    loop {
        let page = db
            .ledger_page(user, LedgerQuery { limit: 100, after })
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
            t.db.ledger_page(user.id, LedgerQuery { limit: 5, after })
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
                after: None,
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

backend_suite!(
    a_new_user_gets_a_wallet_with_the_bonus_as_a_ledger_entry,
    a_zero_starting_balance_writes_no_entry,
    users_are_found_by_username_in_any_case_and_by_email,
    duplicate_usernames_and_emails_conflict_and_write_nothing,
    a_round_debits_credits_and_is_rederivable_from_its_seeds,
    an_unaffordable_bet_is_refused_and_changes_nothing,
    a_rule_refusal_rolls_everything_back,
    an_unknown_user_cannot_play,
    ledger_pages_walk_every_entry_once_newest_first,
    concurrent_rounds_on_one_wallet_never_lose_an_update_or_overdraw,
    reconciliation_finds_exactly_the_tampered_wallet,
    the_schema_refuses_a_negative_balance_or_broken_arithmetic,
    migrations_are_all_applied_and_the_database_answers,
);
