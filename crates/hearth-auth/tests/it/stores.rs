//! One contract, two stores: every case runs in-process and against Redis
//! (`HEARTH_TEST_REDIS_URL`; skipped loudly without it, a failure under `CI=true`).

use std::sync::Arc;
use std::time::Duration;

use hearth_auth::{AuthError, AuthSettings};
use hearth_auth::{
    Authenticator, InProcessLockouts, InProcessRevocations, LockoutPolicy, LockoutStore, Lookup,
    RedisLockouts, RedisRevocations, Revocation, RevocationStore, Role, TokenError, TokenService,
    TokenType,
};
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
                #[tokio::test]
                async fn $case() {
                    super::$case(super::in_process()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
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
    clearing_forgets_failures_but_not_a_lock,
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

async fn five_failures_lock_and_the_lock_expires(stores: Stores) {
    let keys = vec![format!("account:{}", Uuid::now_v7())];
    let policy = quick_policy();
    for _ in 0..4 {
        assert_eq!(
            stores
                .lockouts
                .record_failure(&keys, &policy)
                .await
                .unwrap(),
            None
        );
        assert_eq!(stores.lockouts.locked(&keys).await.unwrap(), None);
    }
    let started = stores
        .lockouts
        .record_failure(&keys, &policy)
        .await
        .unwrap();
    assert_eq!(started, Some(Duration::from_secs(1)));
    let left = stores
        .lockouts
        .locked(&keys)
        .await
        .unwrap()
        .expect("locked");
    assert!(
        left <= Duration::from_secs(1) && left > Duration::ZERO,
        "{left:?}"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(stores.lockouts.locked(&keys).await.unwrap(), None);
    // The count started over: one more failure does not lock again.
    assert_eq!(
        stores
            .lockouts
            .record_failure(&keys, &policy)
            .await
            .unwrap(),
        None
    );
}

async fn a_lock_on_one_key_locks_a_request_naming_it(stores: Stores) {
    let ip = format!("ip:{}", Uuid::now_v7());
    let policy = LockoutPolicy {
        lock_secs: 60,
        ..quick_policy()
    };
    // Five different accounts from one address: the address is locked, the accounts are not.
    for _ in 0..5 {
        let keys = vec![format!("account:{}", Uuid::now_v7()), ip.clone()];
        stores
            .lockouts
            .record_failure(&keys, &policy)
            .await
            .unwrap();
    }
    let fresh_account = format!("account:{}", Uuid::now_v7());
    assert!(
        stores
            .lockouts
            .locked(&[fresh_account.clone(), ip])
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        stores.lockouts.locked(&[fresh_account]).await.unwrap(),
        None
    );
}

async fn clearing_forgets_failures_but_not_a_lock(stores: Stores) {
    let key = format!("account:{}", Uuid::now_v7());
    let keys = vec![key.clone()];
    let policy = LockoutPolicy {
        lock_secs: 60,
        ..quick_policy()
    };
    for _ in 0..4 {
        stores
            .lockouts
            .record_failure(&keys, &policy)
            .await
            .unwrap();
    }
    stores.lockouts.clear(&key).await.unwrap();
    for _ in 0..4 {
        assert_eq!(
            stores
                .lockouts
                .record_failure(&keys, &policy)
                .await
                .unwrap(),
            None
        );
    }
    assert!(
        stores
            .lockouts
            .record_failure(&keys, &policy)
            .await
            .unwrap()
            .is_some()
    );
    stores.lockouts.clear(&key).await.unwrap();
    assert!(stores.lockouts.locked(&keys).await.unwrap().is_some());
}
