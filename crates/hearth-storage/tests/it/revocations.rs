//! The record of revocations: what is recorded is listed until it expires, a second record only
//! widens the first, a refresh token is consumed once, and the purge keeps what still matters.

use hearth_storage::Revocation;
use hearth_test_support::{TestDb, backend_suite};
use uuid::Uuid;

backend_suite!(
    recorded_revocations_are_listed_until_they_expire,
    recording_again_only_widens_a_revocation,
    a_refresh_token_is_consumed_once_and_never_listed,
    the_purge_deletes_only_what_stopped_mattering,
    the_table_refuses_a_user_without_a_cutoff_and_an_unknown_kind,
);

const NOW: u64 = 1_900_000_000;

fn sorted(mut list: Vec<Revocation>) -> Vec<Revocation> {
    list.sort_by_key(|r| format!("{r:?}"));
    list
}

async fn recorded_revocations_are_listed_until_they_expire(t: &TestDb) {
    let live = [
        Revocation::Token {
            jti: Uuid::now_v7(),
            until: NOW + 900,
        },
        Revocation::Family {
            family: Uuid::now_v7(),
            until: NOW + 604_800,
        },
        Revocation::User {
            user: Uuid::now_v7(),
            before_ms: NOW * 1000 + 123,
            until: NOW + 604_800,
        },
    ];
    for revocation in live {
        t.db.record_revocation(revocation).await.unwrap();
    }
    t.db.record_revocation(Revocation::Token {
        jti: Uuid::now_v7(),
        until: NOW,
    })
    .await
    .unwrap();
    assert_eq!(
        sorted(t.db.active_revocations(NOW).await.unwrap()),
        sorted(live.to_vec()),
        "expired at NOW is no longer in force"
    );
    assert!(
        t.db.active_revocations(NOW + 604_800)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn recording_again_only_widens_a_revocation(t: &TestDb) {
    let user = Uuid::now_v7();
    let family = Uuid::now_v7();
    let record = |before_ms, until| Revocation::User {
        user,
        before_ms,
        until,
    };
    t.db.record_revocation(record(5_000, NOW + 100))
        .await
        .unwrap();
    t.db.record_revocation(record(9_000, NOW + 50))
        .await
        .unwrap();
    t.db.record_revocation(record(1_000, NOW + 10))
        .await
        .unwrap();
    t.db.record_revocation(Revocation::Family {
        family,
        until: NOW + 200,
    })
    .await
    .unwrap();
    t.db.record_revocation(Revocation::Family {
        family,
        until: NOW + 20,
    })
    .await
    .unwrap();
    assert_eq!(
        sorted(t.db.active_revocations(NOW).await.unwrap()),
        sorted(vec![
            record(9_000, NOW + 100),
            Revocation::Family {
                family,
                until: NOW + 200
            },
        ])
    );
}

async fn a_refresh_token_is_consumed_once_and_never_listed(t: &TestDb) {
    let jti = Uuid::now_v7();
    assert!(t.db.consume_refresh(jti, NOW + 600).await.unwrap());
    assert!(!t.db.consume_refresh(jti, NOW + 600).await.unwrap());
    assert!(
        t.db.consume_refresh(Uuid::now_v7(), NOW + 600)
            .await
            .unwrap()
    );
    // A revoked token with the same id is another record.
    t.db.record_revocation(Revocation::Token {
        jti,
        until: NOW + 600,
    })
    .await
    .unwrap();
    assert!(!t.db.consume_refresh(jti, NOW + 600).await.unwrap());
    assert_eq!(
        t.db.active_revocations(NOW).await.unwrap(),
        vec![Revocation::Token {
            jti,
            until: NOW + 600
        }]
    );

    // Concurrent exchanges of one token: exactly one wins.
    let contested = Uuid::now_v7();
    let attempts = (0..8).map(|_| {
        let db = t.db.clone();
        tokio::spawn(async move { db.consume_refresh(contested, NOW + 600).await.unwrap() })
    });
    let mut winners = 0;
    for attempt in attempts {
        winners += usize::from(attempt.await.unwrap());
    }
    assert_eq!(winners, 1);
}

async fn the_purge_deletes_only_what_stopped_mattering(t: &TestDb) {
    let kept = Revocation::Family {
        family: Uuid::now_v7(),
        until: NOW + 1,
    };
    t.db.record_revocation(kept).await.unwrap();
    t.db.record_revocation(Revocation::Token {
        jti: Uuid::now_v7(),
        until: NOW,
    })
    .await
    .unwrap();
    let used_then = Uuid::now_v7();
    let used_later = Uuid::now_v7();
    assert!(t.db.consume_refresh(used_then, NOW - 1).await.unwrap());
    assert!(t.db.consume_refresh(used_later, NOW + 60).await.unwrap());

    assert_eq!(t.db.purge_revocations(NOW).await.unwrap(), 2);
    assert_eq!(t.db.purge_revocations(NOW).await.unwrap(), 0);
    assert_eq!(t.db.active_revocations(NOW).await.unwrap(), vec![kept]);
    // A used mark still in force survives the purge: the token stays spent.
    assert!(!t.db.consume_refresh(used_later, NOW + 60).await.unwrap());
}

async fn the_table_refuses_a_user_without_a_cutoff_and_an_unknown_kind(t: &TestDb) {
    let statements: [&'static str; 3] = if t.settings.is_sqlite() {
        [
            "INSERT INTO revocations (kind, id, cutoff_ms, expires_at) \
             VALUES ('user', X'0190a0b0c0d07000800000000000000a', NULL, 10)",
            "INSERT INTO revocations (kind, id, cutoff_ms, expires_at) \
             VALUES ('token', X'0190a0b0c0d07000800000000000000b', 5, 10)",
            "INSERT INTO revocations (kind, id, cutoff_ms, expires_at) \
             VALUES ('session', X'0190a0b0c0d07000800000000000000c', NULL, 10)",
        ]
    } else {
        [
            "INSERT INTO revocations (kind, id, cutoff_ms, expires_at) \
             VALUES ('user', '0190a0b0-c0d0-7000-8000-00000000000a', NULL, 10)",
            "INSERT INTO revocations (kind, id, cutoff_ms, expires_at) \
             VALUES ('token', '0190a0b0-c0d0-7000-8000-00000000000b', 5, 10)",
            "INSERT INTO revocations (kind, id, cutoff_ms, expires_at) \
             VALUES ('session', '0190a0b0-c0d0-7000-8000-00000000000c', NULL, 10)",
        ]
    };
    for sql in statements {
        assert!(t.execute_raw(sql).await.is_err(), "accepted: {sql}");
    }
}
