//! Durable revocations on both databases: a revoke is recorded before it is cached (and fails
//! when it cannot be recorded), a check is exactly one Redis command, and a cache that lost its
//! contents is refilled from the database before it answers.

use std::sync::Arc;
use std::time::Duration;

use hearth_app::revocations::DurableRevocations;
use hearth_auth::{
    AuthSettings, Claims, InProcessRevocations, RedisRevocations, RevocationStore, Role,
    TokenService, TokenType,
};
use hearth_realtime::control::Revoked;
use hearth_realtime::{Delivery, Hub as _, InProcessHub, topics};
use hearth_test_support::{PrivateRedis, TestDb, backend_suite};
use uuid::Uuid;

backend_suite!(
    a_revoke_the_database_cannot_record_fails_and_is_not_cached,
    a_fresh_in_process_cache_is_filled_from_the_database,
    a_check_is_one_redis_command_and_a_flushed_cache_is_refilled_first,
    the_purge_job_deletes_only_revocations_that_refuse_nothing,
    every_revocation_is_announced_on_the_control_topic_after_it_is_recorded,
);

fn claims_of(tokens: &TokenService, user: Uuid) -> (Claims, Claims) {
    let pair = tokens.issue_pair(user, "someone", Role::Player).unwrap();
    (
        tokens
            .verify(&pair.access_token, TokenType::Access)
            .unwrap(),
        tokens
            .verify(&pair.refresh_token, TokenType::Refresh)
            .unwrap(),
    )
}

async fn a_revoke_the_database_cannot_record_fails_and_is_not_cached(t: &TestDb) {
    let tokens = TokenService::new(&AuthSettings::default());
    let cache = Arc::new(InProcessRevocations::new());
    let durable = DurableRevocations::new(cache.clone(), t.db.clone());
    let (access, refresh) = claims_of(&tokens, Uuid::now_v7());
    t.db.close().await;
    assert!(
        durable
            .revoke_family(access.fam, access.exp + 3600)
            .await
            .is_err()
    );
    assert!(durable.revoke_token(access.jti, access.exp).await.is_err());
    assert!(
        durable
            .revoke_user(access.sub, access.minted_at_ms(), access.exp)
            .await
            .is_err()
    );
    assert!(
        durable
            .consume_refresh(refresh.jti, refresh.exp)
            .await
            .is_err()
    );
    assert!(
        !cache.is_revoked(&access).await.unwrap(),
        "nothing is revoked in the cache only"
    );
}

async fn a_fresh_in_process_cache_is_filled_from_the_database(t: &TestDb) {
    let tokens = TokenService::new(&AuthSettings::default());
    let user = Uuid::now_v7();
    let (by_token, _) = claims_of(&tokens, Uuid::now_v7());
    let (by_family, by_family_refresh) = claims_of(&tokens, Uuid::now_v7());
    let (by_user, _) = claims_of(&tokens, user);
    let (untouched, refresh) = claims_of(&tokens, Uuid::now_v7());
    let first = DurableRevocations::new(Arc::new(InProcessRevocations::new()), t.db.clone());
    first
        .revoke_token(by_token.jti, by_token.exp)
        .await
        .unwrap();
    first
        .revoke_family(by_family.fam, by_family.exp + 3600)
        .await
        .unwrap();
    first
        .revoke_user(user, by_user.minted_at_ms(), by_user.exp)
        .await
        .unwrap();
    assert!(
        first
            .consume_refresh(refresh.jti, refresh.exp)
            .await
            .unwrap()
    );

    // A restarted process: empty memory, the same database.
    let second = DurableRevocations::new(Arc::new(InProcessRevocations::new()), t.db.clone());
    assert_eq!(second.refill().await.unwrap(), 3);
    for claims in [&by_token, &by_family, &by_family_refresh, &by_user] {
        assert!(second.is_revoked(claims).await.unwrap(), "{claims:?}");
    }
    assert!(!second.is_revoked(&untouched).await.unwrap());
    assert!(
        !second
            .consume_refresh(refresh.jti, refresh.exp)
            .await
            .unwrap(),
        "a used refresh token stays used"
    );

    // A process that did not fill its cache at start fills it at the first check.
    let third = DurableRevocations::new(Arc::new(InProcessRevocations::new()), t.db.clone());
    assert!(third.is_revoked(&by_family).await.unwrap());
    assert!(!third.is_revoked(&untouched).await.unwrap());
}

/// A redis-server of our own on a free port (flushing it touches nobody else), with the
/// commands this suite counts.
struct OwnRedis(PrivateRedis);

impl OwnRedis {
    fn start() -> Self {
        Self(PrivateRedis::start())
    }

    fn url(&self) -> String {
        self.0.url()
    }

    async fn command(&self, args: &[&str]) -> redis::Value {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd(args[0])
            .arg(&args[1..])
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    /// Commands the server ran, except the ones this counting itself sends (`INFO`, and the
    /// `CLIENT`/`HELLO` of a new connection).
    async fn commands(&self) -> u64 {
        let redis::Value::BulkString(info) = self.command(&["INFO", "commandstats"]).await else {
            panic!("INFO answers a bulk string");
        };
        String::from_utf8(info)
            .unwrap()
            .lines()
            .filter(|line| {
                !["cmdstat_info:", "cmdstat_client|", "cmdstat_hello:"]
                    .iter()
                    .any(|own| line.starts_with(own))
            })
            .filter_map(|line| {
                line.split_once(":calls=")?
                    .1
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }
}

async fn a_check_is_one_redis_command_and_a_flushed_cache_is_refilled_first(t: &TestDb) {
    if hearth_test_support::service_url(hearth_test_support::REDIS_URL_VAR, "Redis").is_none() {
        return;
    }
    let server = OwnRedis::start();
    let conn = redis::aio::ConnectionManager::new(redis::Client::open(server.url()).unwrap())
        .await
        .unwrap();
    let durable =
        DurableRevocations::new(Arc::new(RedisRevocations::new(conn, "t:")), t.db.clone());
    let tokens = TokenService::new(&AuthSettings::default());
    let (revoked, revoked_refresh) = claims_of(&tokens, Uuid::now_v7());
    let (clear, _) = claims_of(&tokens, Uuid::now_v7());
    durable
        .revoke_family(revoked.fam, revoked.exp + 3600)
        .await
        .unwrap();
    // A revoked token is refused from what the cache holds; the first token it cannot refuse
    // finds the store never filled, and fills it.
    assert!(durable.is_revoked(&revoked).await.unwrap());
    assert!(!durable.is_revoked(&clear).await.unwrap());

    let before = server.commands().await;
    for _ in 0..10 {
        assert!(durable.is_revoked(&revoked).await.unwrap());
        assert!(!durable.is_revoked(&clear).await.unwrap());
    }
    assert_eq!(
        server.commands().await - before,
        20,
        "each check is exactly one Redis command"
    );

    // Redis loses everything: the next check notices, refills, and still refuses.
    server.command(&["FLUSHALL"]).await;
    assert!(durable.is_revoked(&revoked).await.unwrap());
    assert!(durable.is_revoked(&revoked_refresh).await.unwrap());
    assert!(!durable.is_revoked(&clear).await.unwrap());
    let before = server.commands().await;
    assert!(durable.is_revoked(&revoked).await.unwrap());
    assert_eq!(server.commands().await - before, 1);
}

async fn the_purge_job_deletes_only_revocations_that_refuse_nothing(t: &TestDb) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let live = hearth_storage::Revocation::Family {
        family: Uuid::now_v7(),
        until: now + 3600,
    };
    t.db.record_revocation(live).await.unwrap();
    t.db.record_revocation(hearth_storage::Revocation::Token {
        jti: Uuid::now_v7(),
        until: now - 1,
    })
    .await
    .unwrap();
    assert!(t.db.consume_refresh(Uuid::now_v7(), now - 1).await.unwrap());
    assert_eq!(
        hearth_app::jobs::purge_revocations(t.db.as_ref())
            .await
            .unwrap(),
        2
    );
    assert_eq!(t.db.active_revocations(now).await.unwrap(), vec![live]);
}

async fn announced(sub: &mut hearth_realtime::Subscriber) -> Revoked {
    match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
        Ok(Some(Delivery::Message { payload, .. })) => Revoked::parse(&payload).unwrap(),
        other => panic!("expected an announcement, got {other:?}"),
    }
}

async fn every_revocation_is_announced_on_the_control_topic_after_it_is_recorded(t: &TestDb) {
    let hub = Arc::new(InProcessHub::new());
    let durable = DurableRevocations::new(Arc::new(InProcessRevocations::new()), t.db.clone())
        .announcing(hub.clone());
    let mut control = hub.subscriber(16);
    control.subscribe(topics::CONTROL);
    let tokens = TokenService::new(&AuthSettings::default());
    let (user, family, jti) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let (access, _) = claims_of(&tokens, user);
    let until = access.exp + 3600;

    durable
        .revoke_user(user, access.minted_at_ms(), until)
        .await
        .unwrap();
    assert_eq!(announced(&mut control).await, Revoked::user(user));
    durable.revoke_family(family, until).await.unwrap();
    assert_eq!(announced(&mut control).await, Revoked::family(family));
    durable.revoke_token(jti, until).await.unwrap();
    assert_eq!(announced(&mut control).await, Revoked::token(jti));

    // It was recorded, not only announced: a fresh cache filled from the database refuses
    // the user's token.
    let fresh = DurableRevocations::new(Arc::new(InProcessRevocations::new()), t.db.clone());
    assert!(fresh.is_revoked(&access).await.unwrap());

    // Filling a cache from the record announces nothing: those sockets closed long ago.
    fresh.refill().await.unwrap();
    durable.refill().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), control.recv())
            .await
            .is_err()
    );
}
