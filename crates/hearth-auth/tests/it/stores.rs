//! One contract, two stores: every case runs in-process and against Redis
//! (`HEARTH_TEST_REDIS_URL`; skipped loudly without it, a failure under `CI=true`).

use std::sync::Arc;
use std::time::Duration;

use hearth_auth::{
    AttemptKeys, Authenticator, InProcessLockouts, InProcessRevocations, LockoutPolicy,
    LockoutStore, Lookup, RedisLockouts, RedisRevocations, Reservation, Revocation,
    RevocationStore, Role, TokenError, TokenService, TokenType,
};
use hearth_auth::{AuthError, AuthSettings};
use uuid::Uuid;

struct Stores {
    revocations: Arc<dyn RevocationStore>,
    lockouts: Arc<dyn LockoutStore>,
}

fn in_process() -> Stores {
    Stores {
        revocations: Arc::new(InProcessRevocations::new()),
        lockouts: Arc::new(InProcessLockouts::new()),
    }
}

async fn redis() -> Option<Stores> {
    let url = hearth_test_support::service_url("HEARTH_TEST_REDIS_URL", "Redis auth store")?;
    let client = ::redis::Client::open(url).expect("valid Redis URL");
    let conn = ::redis::aio::ConnectionManager::new(client)
        .await
        .expect("Redis is reachable");
    // A prefix per test keeps parallel tests (and earlier runs) apart.
    let prefix = format!("hearth-test:{}:", Uuid::now_v7());
    Some(Stores {
        revocations: Arc::new(RedisRevocations::new(conn.clone(), prefix.clone())),
        lockouts: Arc::new(RedisLockouts::new(conn, prefix)),
    })
}

fn authenticator(stores: &Stores) -> Authenticator {
    Authenticator::new(
        TokenService::new(&AuthSettings::default()),
        stores.revocations.clone(),
    )
}

fn revoked(result: Result<hearth_auth::Claims, AuthError>) -> bool {
    matches!(result, Err(AuthError::Token(TokenError::Revoked)))
}

macro_rules! both_stores {
    ($($case:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::in_process()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(stores) = super::redis().await {
                        super::$case(stores).await;
                    }
                }
            )*
        }
    };
}

both_stores!(
    a_revoked_token_is_refused_and_its_sibling_is_not,
    a_revoked_family_refuses_every_token_of_the_session,
    a_user_revocation_refuses_earlier_tokens_only,
    a_user_revocation_is_never_narrowed_by_an_earlier_cutoff,
    a_refresh_token_is_consumed_once,
    a_filled_store_refuses_what_it_was_filled_with_and_is_warm,
    five_failures_lock_and_the_lock_expires,
    a_lock_on_one_key_locks_a_request_naming_it,
    a_released_attempt_gives_its_slot_back_and_failures_stay_counted,
    attempts_in_flight_use_up_the_budget_before_they_fail,
    concurrent_reservations_grant_exactly_the_budget,
    a_spent_quiet_key_withholds_without_locking_the_open_ones,
);

async fn a_revoked_token_is_refused_and_its_sibling_is_not(stores: Stores) {
    let auth = authenticator(&stores);
    let one = auth
        .tokens()
        .issue_pair(Uuid::now_v7(), "a", Role::Player)
        .unwrap();
    let claims = auth
        .authenticate(&one.access_token, TokenType::Access)
        .await
        .unwrap();
    auth.revocations()
        .revoke_token(claims.jti, claims.exp)
        .await
        .unwrap();
    assert!(revoked(
        auth.authenticate(&one.access_token, TokenType::Access)
            .await
    ));
    // The refresh token of the same session is a different token.
    assert!(
        auth.authenticate(&one.refresh_token, TokenType::Refresh)
            .await
            .is_ok()
    );
}

async fn a_revoked_family_refuses_every_token_of_the_session(stores: Stores) {
    let auth = authenticator(&stores);
    let user = Uuid::now_v7();
    let session = auth.tokens().issue_pair(user, "a", Role::Player).unwrap();
    let rotated = auth
        .tokens()
        .issue_pair_in(session.family, user, "a", Role::Player)
        .unwrap();
    let other = auth.tokens().issue_pair(user, "a", Role::Player).unwrap();
    auth.revocations()
        .revoke_family(session.family, u64::MAX / 2)
        .await
        .unwrap();
    for token in [&session.access_token, &rotated.access_token] {
        assert!(revoked(auth.authenticate(token, TokenType::Access).await));
    }
    assert!(revoked(
        auth.authenticate(&rotated.refresh_token, TokenType::Refresh)
            .await
    ));
    assert!(
        auth.authenticate(&other.access_token, TokenType::Access)
            .await
            .is_ok()
    );
}

async fn a_user_revocation_refuses_earlier_tokens_only(stores: Stores) {
    let auth = authenticator(&stores);
    let user = Uuid::now_v7();
    let before = auth.tokens().issue_pair(user, "a", Role::Player).unwrap();
    let bystander = auth
        .tokens()
        .issue_pair(Uuid::now_v7(), "b", Role::Player)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    auth.revocations()
        .revoke_user(user, now_ms, u64::MAX / 2)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    let after = auth.tokens().issue_pair(user, "a", Role::Player).unwrap();
    assert!(revoked(
        auth.authenticate(&before.access_token, TokenType::Access)
            .await
    ));
    assert!(revoked(
        auth.authenticate(&before.refresh_token, TokenType::Refresh)
            .await
    ));
    assert!(
        auth.authenticate(&after.access_token, TokenType::Access)
            .await
            .is_ok()
    );
    assert!(
        auth.authenticate(&bystander.access_token, TokenType::Access)
            .await
            .is_ok()
    );
}

async fn a_user_revocation_is_never_narrowed_by_an_earlier_cutoff(stores: Stores) {
    let auth = authenticator(&stores);
    let user = Uuid::now_v7();
    let pair = auth.tokens().issue_pair(user, "a", Role::Player).unwrap();
    let claims = auth
        .tokens()
        .verify(&pair.access_token, TokenType::Access)
        .unwrap();
    let minted = claims.minted_at_ms();
    auth.revocations()
        .revoke_user(user, minted + 10, u64::MAX / 2)
        .await
        .unwrap();
    auth.revocations()
        .revoke_user(user, minted - 1_000, u64::MAX / 2)
        .await
        .unwrap();
    assert!(revoked(
        auth.authenticate(&pair.access_token, TokenType::Access)
            .await
    ));
    // Filling with an older record does not narrow it either.
    stores
        .revocations
        .fill(&[Revocation::User {
            user,
            at_ms: minted - 1_000,
            until: u64::MAX / 2,
        }])
        .await
        .unwrap();
    assert!(revoked(
        auth.authenticate(&pair.access_token, TokenType::Access)
            .await
    ));
}

async fn a_refresh_token_is_consumed_once(stores: Stores) {
    let jti = Uuid::now_v7();
    let exp = u64::MAX / 2;
    assert!(stores.revocations.consume_refresh(jti, exp).await.unwrap());
    assert!(!stores.revocations.consume_refresh(jti, exp).await.unwrap());
    assert!(
        stores
            .revocations
            .consume_refresh(Uuid::now_v7(), exp)
            .await
            .unwrap()
    );
}

async fn a_filled_store_refuses_what_it_was_filled_with_and_is_warm(stores: Stores) {
    let auth = authenticator(&stores);
    let user = Uuid::now_v7();
    let by_jti = auth.tokens().issue_pair(user, "a", Role::Player).unwrap();
    let by_family = auth.tokens().issue_pair(user, "a", Role::Player).unwrap();
    let by_user = auth
        .tokens()
        .issue_pair(Uuid::now_v7(), "b", Role::Player)
        .unwrap();
    let untouched = auth
        .tokens()
        .issue_pair(Uuid::now_v7(), "c", Role::Player)
        .unwrap();
    let claims = |token: &str, typ| auth.tokens().verify(token, typ).unwrap();
    let jti_claims = claims(&by_jti.access_token, TokenType::Access);
    let user_claims = claims(&by_user.refresh_token, TokenType::Refresh);
    let user_cutoff = user_claims
        .minted_at_ms()
        .max(claims(&by_user.access_token, TokenType::Access).minted_at_ms());
    let far = u64::MAX / 2;
    stores
        .revocations
        .fill(&[
            Revocation::Token {
                jti: jti_claims.jti,
                until: far,
            },
            Revocation::Family {
                family: by_family.family,
                until: far,
            },
            Revocation::User {
                user: user_claims.sub,
                at_ms: user_cutoff,
                until: far,
            },
        ])
        .await
        .unwrap();
    for (token, typ) in [
        (&by_jti.access_token, TokenType::Access),
        (&by_family.refresh_token, TokenType::Refresh),
        (&by_user.access_token, TokenType::Access),
        (&by_user.refresh_token, TokenType::Refresh),
    ] {
        let claims = claims(token, typ);
        assert_eq!(
            stores.revocations.lookup(&claims).await.unwrap(),
            Lookup::Revoked
        );
    }
    let clear = claims(&untouched.access_token, TokenType::Access);
    assert_eq!(
        stores.revocations.lookup(&clear).await.unwrap(),
        Lookup::Clear
    );
    // The sibling of a revoked token is not revoked.
    let sibling = claims(&by_jti.refresh_token, TokenType::Refresh);
    assert_eq!(
        stores.revocations.lookup(&sibling).await.unwrap(),
        Lookup::Clear
    );
}

/// A Redis store that was never filled, or lost its "filled" mark (a restart, a flush, an
/// eviction), says so in the same `MGET` as the check.
#[tokio::test]
async fn a_redis_store_without_its_filled_mark_is_cold() {
    let Some(url) = hearth_test_support::service_url("HEARTH_TEST_REDIS_URL", "Redis auth store")
    else {
        return;
    };
    let client = ::redis::Client::open(url).unwrap();
    let mut conn = ::redis::aio::ConnectionManager::new(client).await.unwrap();
    let prefix = format!("hearth-test:{}:", Uuid::now_v7());
    let store = RedisRevocations::new(conn.clone(), prefix.clone());
    let auth = Authenticator::new(
        TokenService::new(&AuthSettings::default()),
        Arc::new(store.clone()),
    );
    let pair = auth
        .tokens()
        .issue_pair(Uuid::now_v7(), "a", Role::Player)
        .unwrap();
    let claims = auth
        .tokens()
        .verify(&pair.access_token, TokenType::Access)
        .unwrap();
    assert_eq!(store.lookup(&claims).await.unwrap(), Lookup::Cold);
    store.fill(&[]).await.unwrap();
    assert_eq!(store.lookup(&claims).await.unwrap(), Lookup::Clear);
    store.revoke_family(claims.fam, u64::MAX / 2).await.unwrap();
    assert_eq!(store.lookup(&claims).await.unwrap(), Lookup::Revoked);
    ::redis::cmd("DEL")
        .arg(format!("{prefix}rev:loaded"))
        .arg(format!("{prefix}rev:fam:{}", claims.fam))
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.lookup(&claims).await.unwrap(), Lookup::Cold);
}

fn quick_policy() -> LockoutPolicy {
    LockoutPolicy {
        max_failures: 5,
        window_secs: 60,
        lock_secs: 1,
    }
}

fn open(keys: &[&str]) -> AttemptKeys {
    AttemptKeys {
        open: keys.iter().map(|k| (*k).to_owned()).collect(),
        quiet: Vec::new(),
    }
}

fn unique(scope: &str) -> String {
    format!("{scope}:{}", Uuid::now_v7())
}

/// Reserves and fails one attempt; returns the lock it started.
async fn one_failure(
    stores: &Stores,
    keys: &AttemptKeys,
    policy: &LockoutPolicy,
) -> Option<Duration> {
    match stores.lockouts.reserve(keys, policy).await.unwrap() {
        Reservation::Granted(reserved) => stores.lockouts.fail(reserved, policy).await.unwrap(),
        other => panic!("expected a granted reservation, got {other:?}"),
    }
}

fn locked_for(reservation: Reservation) -> Duration {
    match reservation {
        Reservation::Locked(retry_after) => retry_after,
        other => panic!("expected a lock, got {other:?}"),
    }
}

async fn five_failures_lock_and_the_lock_expires(stores: Stores) {
    let account = unique("account");
    let keys = open(&[&account]);
    let policy = quick_policy();
    for _ in 0..4 {
        assert_eq!(one_failure(&stores, &keys, &policy).await, None);
    }
    assert_eq!(
        one_failure(&stores, &keys, &policy).await,
        Some(Duration::from_secs(1))
    );
    let left = locked_for(stores.lockouts.reserve(&keys, &policy).await.unwrap());
    assert!(
        left <= Duration::from_secs(1) && left > Duration::ZERO,
        "{left:?}"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // The count started over: four more failures do not lock again.
    for _ in 0..4 {
        assert_eq!(one_failure(&stores, &keys, &policy).await, None);
    }
}

async fn a_lock_on_one_key_locks_a_request_naming_it(stores: Stores) {
    let ip = unique("ip");
    let policy = LockoutPolicy {
        lock_secs: 60,
        ..quick_policy()
    };
    // Five different accounts from one address: the address is locked, the accounts are not.
    for _ in 0..5 {
        one_failure(&stores, &open(&[&unique("account"), &ip]), &policy).await;
    }
    let fresh_account = unique("account");
    locked_for(
        stores
            .lockouts
            .reserve(&open(&[&fresh_account, &ip]), &policy)
            .await
            .unwrap(),
    );
    assert!(matches!(
        stores
            .lockouts
            .reserve(&open(&[&fresh_account]), &policy)
            .await
            .unwrap(),
        Reservation::Granted(_)
    ));
}

async fn a_released_attempt_gives_its_slot_back_and_failures_stay_counted(stores: Stores) {
    let account = unique("account");
    let keys = open(&[&account]);
    let policy = LockoutPolicy {
        lock_secs: 60,
        ..quick_policy()
    };
    for _ in 0..4 {
        one_failure(&stores, &keys, &policy).await;
    }
    // A success in between neither counts nor forgets the four failures.
    for _ in 0..3 {
        let Reservation::Granted(reserved) = stores.lockouts.reserve(&keys, &policy).await.unwrap()
        else {
            panic!("the fifth slot is free");
        };
        stores.lockouts.release(reserved).await.unwrap();
    }
    assert_eq!(
        one_failure(&stores, &keys, &policy).await,
        Some(Duration::from_secs(60))
    );
    locked_for(stores.lockouts.reserve(&keys, &policy).await.unwrap());
}

async fn attempts_in_flight_use_up_the_budget_before_they_fail(stores: Stores) {
    let account = unique("account");
    let keys = open(&[&account]);
    let policy = quick_policy();
    let mut pending = Vec::new();
    for _ in 0..5 {
        match stores.lockouts.reserve(&keys, &policy).await.unwrap() {
            Reservation::Granted(reserved) => pending.push(reserved),
            other => panic!("{other:?}"),
        }
    }
    // Nothing has failed yet, and still a sixth attempt is refused.
    locked_for(stores.lockouts.reserve(&keys, &policy).await.unwrap());
    // One succeeds: its slot is free again, for one attempt.
    stores
        .lockouts
        .release(pending.pop().unwrap())
        .await
        .unwrap();
    let Reservation::Granted(again) = stores.lockouts.reserve(&keys, &policy).await.unwrap() else {
        panic!("a released slot is free");
    };
    pending.push(again);
    let mut started = None;
    for reserved in pending {
        started = started.or(stores.lockouts.fail(reserved, &policy).await.unwrap());
    }
    assert_eq!(started, Some(Duration::from_secs(1)));
}

async fn concurrent_reservations_grant_exactly_the_budget(stores: Stores) {
    let keys = open(&[&unique("account"), &unique("ip")]);
    let policy = quick_policy();
    let lockouts = Arc::clone(&stores.lockouts);
    let attempts = (0..100).map(|_| {
        let lockouts = Arc::clone(&lockouts);
        let keys = keys.clone();
        tokio::spawn(async move { lockouts.reserve(&keys, &policy).await.unwrap() })
    });
    let mut granted = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        match attempt.await.unwrap() {
            Reservation::Granted(_) => granted += 1,
            Reservation::Locked(_) => {}
            Reservation::Withheld(_) => panic!("no quiet key here"),
        }
    }
    assert_eq!(granted, policy.max_failures);
}

async fn a_spent_quiet_key_withholds_without_locking_the_open_ones(stores: Stores) {
    let account = unique("account");
    let by_name = AttemptKeys {
        open: vec![unique("login")],
        quiet: vec![account.clone()],
    };
    let by_email = AttemptKeys {
        open: vec![unique("login")],
        quiet: vec![account.clone()],
    };
    let policy = LockoutPolicy {
        lock_secs: 60,
        ..quick_policy()
    };
    for _ in 0..5 {
        one_failure(&stores, &by_name, &policy).await;
    }
    locked_for(stores.lockouts.reserve(&by_name, &policy).await.unwrap());
    // The other name is counted (and locks after five) but is never granted a check.
    for attempt in 1..=5 {
        match stores.lockouts.reserve(&by_email, &policy).await.unwrap() {
            Reservation::Withheld(reserved) => {
                assert_eq!(reserved.keys(), by_email.open.as_slice());
                let started = stores.lockouts.fail(reserved, &policy).await.unwrap();
                assert_eq!(started.is_some(), attempt == 5, "attempt {attempt}");
            }
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    locked_for(stores.lockouts.reserve(&by_email, &policy).await.unwrap());
}
