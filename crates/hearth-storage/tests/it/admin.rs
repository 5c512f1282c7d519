//! Operators' storage on both backends: the audit trail is append-only, a ban or an adjustment
//! and its audit row are written together or not at all, an adjustment replays by its key and
//! never takes a balance below zero, and search, pages and figures read what is stored.

use hearth_storage::admin::{ALREADY_BANNED, AuditOutcome, NOT_BANNED, NewAdjustment, NewAudit};
use hearth_storage::{Idempotency, LedgerQuery, StorageError};
use hearth_test_support::{TestDb, backend_suite, new_user};
use serde_json::json;
use uuid::Uuid;

backend_suite!(
    the_audit_trail_refuses_update_and_delete,
    a_ban_and_its_audit_row_are_written_together_or_not_at_all,
    an_adjustment_replays_by_key_stays_non_negative_and_reconciles,
    search_matches_ids_and_prefixes_and_pages_newest_first,
    figures_and_the_last_reconciliation_read_what_is_stored,
);

fn audit(
    actor: Option<Uuid>,
    action: &str,
    target: Option<Uuid>,
    outcome: AuditOutcome,
) -> NewAudit {
    NewAudit {
        actor_id: actor,
        action: action.to_owned(),
        target_user_id: target,
        reason: Some("because".to_owned()),
        client_ip: Some("192.0.2.1".to_owned()),
        request_id: Some("req-1".to_owned()),
        outcome,
        detail: json!({}),
    }
}

async fn the_audit_trail_refuses_update_and_delete(t: &TestDb) {
    let first =
        t.db.append_audit(audit(None, "users.view", None, AuditOutcome::Done))
            .await
            .unwrap();
    let second =
        t.db.append_audit(audit(
            None,
            "users.ban",
            None,
            AuditOutcome::Refused("not_admin".into()),
        ))
        .await
        .unwrap();
    assert!(second > first);

    for statement in [
        "UPDATE admin_audit SET reason = 'rewritten'",
        "UPDATE admin_audit SET outcome = 'done', refusal = NULL WHERE outcome = 'refused'",
        "DELETE FROM admin_audit",
        "DELETE FROM admin_audit WHERE action = 'users.ban'",
    ] {
        let refused = t.execute_raw(statement).await;
        let error = refused.expect_err(statement).to_string();
        assert!(error.contains("append-only"), "{statement}: {error}");
    }
    if !t.settings.is_sqlite() {
        let error = t
            .execute_raw("TRUNCATE admin_audit")
            .await
            .expect_err("truncate")
            .to_string();
        assert!(error.contains("append-only"), "{error}");
    }
    // A refused row must say why; a done row must not.
    assert!(
        t.execute_raw(
            "INSERT INTO admin_audit (at, action, outcome, detail) \
             VALUES ('2026-12-05T00:00:00Z', 'x', 'refused', '{}')"
        )
        .await
        .is_err()
    );

    let page = t.db.audit_page(None, None, 10).await.unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.items[0].id, second);
    assert_eq!(page.items[0].refusal.as_deref(), Some("not_admin"));
    assert_eq!(page.items[1].reason.as_deref(), Some("because"));
    assert_eq!(page.items[1].client_ip.as_deref(), Some("192.0.2.1"));
}

async fn a_ban_and_its_audit_row_are_written_together_or_not_at_all(t: &TestDb) {
    let user = t.db.create_user(new_user("Suspect", 100)).await.unwrap();
    let admin = t.db.create_user(new_user("Chief", 0)).await.unwrap();
    assert_eq!(t.db.ban_of(user.id).await.unwrap(), None);

    let row = || {
        audit(
            Some(admin.id),
            "users.ban",
            Some(user.id),
            AuditOutcome::Done,
        )
    };
    let banned = t.db.ban_account(user.id, "fraud", row()).await.unwrap();
    assert_eq!(banned.disabled_reason.as_deref(), Some("fraud"));
    assert!(banned.disabled_at.is_some());
    let ban = t.db.ban_of(user.id).await.unwrap().unwrap();
    assert_eq!(ban.reason, "fraud");

    // Banned again, or an unknown account: refused, and no audit row written with it.
    match t.db.ban_account(user.id, "again", row()).await {
        Err(StorageError::Conflict { constraint }) => assert_eq!(constraint, ALREADY_BANNED),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        t.db.ban_account(Uuid::now_v7(), "who", row()).await,
        Err(StorageError::NotFound)
    ));
    let page = t.db.audit_page(Some(user.id), None, 10).await.unwrap();
    assert_eq!(page.items.len(), 1, "only the ban that happened is audited");

    let unbanned =
        t.db.unban_account(
            user.id,
            audit(
                Some(admin.id),
                "users.unban",
                Some(user.id),
                AuditOutcome::Done,
            ),
        )
        .await
        .unwrap();
    assert_eq!(unbanned.disabled_at, None);
    assert_eq!(unbanned.disabled_reason, None);
    match t
        .db
        .unban_account(
            user.id,
            audit(
                Some(admin.id),
                "users.unban",
                Some(user.id),
                AuditOutcome::Done,
            ),
        )
        .await
    {
        Err(StorageError::Conflict { constraint }) => assert_eq!(constraint, NOT_BANNED),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(t.db.ban_of(user.id).await.unwrap(), None);
    let page = t.db.audit_page(Some(user.id), None, 10).await.unwrap();
    let actions: Vec<_> = page.items.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["users.unban", "users.ban"]);
    // The account itself is otherwise untouched.
    assert_eq!(t.db.wallet(user.id).await.unwrap().balance, 100);
}

fn adjustment(admin: Uuid, user: Uuid, amount: i64, key: &str, fingerprint: &str) -> NewAdjustment {
    NewAdjustment {
        user_id: user,
        amount,
        reason: "outage refund".to_owned(),
        idempotency: Idempotency {
            key: key.to_owned(),
            fingerprint: fingerprint.to_owned(),
        },
        audit: NewAudit {
            detail: json!({ "amount": amount }),
            ..audit(Some(admin), "users.adjust", Some(user), AuditOutcome::Done)
        },
    }
}

async fn adjustments(t: &TestDb, user: Uuid) -> usize {
    t.db.ledger_page(
        user,
        LedgerQuery {
            limit: 100,
            kind: Some(hearth_domain::ledger::EntryKind::Adjustment),
            ..LedgerQuery::default()
        },
    )
    .await
    .unwrap()
    .items
    .len()
}

async fn an_adjustment_replays_by_key_stays_non_negative_and_reconciles(t: &TestDb) {
    let user = t.db.create_user(new_user("Owed", 100)).await.unwrap();
    let admin = t.db.create_user(new_user("Chief", 0)).await.unwrap();

    let first =
        t.db.adjust_balance(adjustment(admin.id, user.id, 50, "k1", "f1"))
            .await
            .unwrap();
    assert!(!first.replayed);
    assert_eq!(first.value["wallet"]["balance"], 150);
    assert_eq!(first.value["entry"]["kind"], "adjustment");
    assert_eq!(first.value["entry"]["balance_before"], 100);
    let again =
        t.db.adjust_balance(adjustment(admin.id, user.id, 50, "k1", "f1"))
            .await
            .unwrap();
    assert!(again.replayed);
    assert_eq!(again.value, first.value);
    assert!(matches!(
        t.db.adjust_balance(adjustment(admin.id, user.id, 50, "k1", "other"))
            .await,
        Err(StorageError::IdempotencyMismatch)
    ));
    assert_eq!(adjustments(t, user.id).await, 1);
    assert_eq!(t.db.wallet(user.id).await.unwrap().balance, 150);

    // Below zero: refused, with nothing written (no entry, no audit row, no key).
    match t
        .db
        .adjust_balance(adjustment(admin.id, user.id, -151, "k2", "f2"))
        .await
    {
        Err(StorageError::InsufficientBalance { needed, available }) => {
            assert_eq!((needed, available), (151, 150));
        }
        other => panic!("expected insufficient balance, got {other:?}"),
    }
    let retried =
        t.db.adjust_balance(adjustment(admin.id, user.id, -150, "k2", "f3"))
            .await
            .unwrap();
    assert!(!retried.replayed, "a refused request stored no key");
    assert_eq!(t.db.wallet(user.id).await.unwrap().balance, 0);
    assert!(matches!(
        t.db.adjust_balance(adjustment(admin.id, Uuid::now_v7(), 5, "k3", "f4"))
            .await,
        Err(StorageError::NotFound)
    ));

    let audited =
        t.db.audit_page(Some(user.id), None, 10)
            .await
            .unwrap()
            .items;
    assert_eq!(audited.len(), 2, "one row per adjustment written");
    assert_eq!(audited[1].detail["entry_id"], first.value["entry"]["id"]);
    assert_eq!(audited[1].detail["balance_after"], 150);
    assert!(t.db.reconcile().await.unwrap().mismatches.is_empty());
}

async fn search_matches_ids_and_prefixes_and_pages_newest_first(t: &TestDb) {
    let mut ids = Vec::new();
    for name in ["al_pha", "Alpine", "alps", "beta"] {
        ids.push(t.db.create_user(new_user(name, 0)).await.unwrap().id);
    }
    let names =
        |page: &hearth_storage::campaign::KeyPage<hearth_storage::admin::AccountSummary>| {
            page.items
                .iter()
                .map(|a| a.username.clone())
                .collect::<Vec<_>>()
        };
    let first = t.db.search_accounts(Some("AL"), None, 2).await.unwrap();
    assert_eq!(names(&first), ["alps", "Alpine"]);
    let rest =
        t.db.search_accounts(Some("al"), first.next_cursor, 2)
            .await
            .unwrap();
    assert_eq!(names(&rest), ["al_pha"]);
    assert_eq!(rest.next_cursor, None);
    let literal = t.db.search_accounts(Some("al_"), None, 10).await.unwrap();
    assert_eq!(names(&literal), ["al_pha"], "_ is not a wildcard");
    let percent = t.db.search_accounts(Some("%"), None, 10).await.unwrap();
    assert!(percent.items.is_empty(), "% is not a wildcard");
    let by_mail = t.db.search_accounts(Some("beta@"), None, 10).await.unwrap();
    assert_eq!(names(&by_mail), ["beta"]);
    let by_id =
        t.db.search_accounts(Some(&ids[1].to_string()), None, 10)
            .await
            .unwrap();
    assert_eq!(names(&by_id), ["Alpine"]);
    let everyone = t.db.search_accounts(None, None, 10).await.unwrap();
    assert_eq!(everyone.items.len(), 4);
    assert!(t.db.account(Uuid::now_v7()).await.unwrap().is_none());
}

async fn figures_and_the_last_reconciliation_read_what_is_stored(t: &TestDb) {
    let now = time::OffsetDateTime::now_utc();
    let empty = t.db.admin_figures(now).await.unwrap();
    assert!(empty.all_time.is_empty());
    assert_eq!(empty.open_blackjack_hands, 0);
    assert_eq!(empty.reconciliation, None);

    t.db.record_reconciliation(3, 0, now - time::Duration::hours(1))
        .await
        .unwrap();
    t.db.record_reconciliation(4, 1, now).await.unwrap();
    let figures = t.db.admin_figures(now).await.unwrap();
    let last = figures.reconciliation.unwrap();
    assert_eq!((last.wallets, last.mismatches), (4, 1));
    assert_eq!(figures.active_today, 0);
}
