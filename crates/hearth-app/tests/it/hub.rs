//! The hub as `Hearth::wire` installs it: in process without Redis; with Redis, two wired
//! instances sharing one prefix stand for two gateways, and what one publishes (a round's
//! wallet push, a revocation) reaches the other's subscribers.

use std::time::Duration;

use hearth_app::{Hearth, Settings};
use hearth_domain::fairness::FairRng;
use hearth_domain::games::GameError;
use hearth_realtime::control::Revoked;
use hearth_realtime::{Delivery, Subscriber, topics};
use hearth_storage::{RoundPlay, RoundRequest};
use hearth_test_support::{new_user, sqlite_db};
use secrecy::SecretString;
use uuid::Uuid;

async fn json(sub: &mut Subscriber) -> serde_json::Value {
    match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
        Ok(Some(Delivery::Message { payload, .. })) => serde_json::from_str(&payload).unwrap(),
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test]
async fn without_redis_the_hub_is_in_process() {
    let t = sqlite_db().await;
    let hearth = Hearth::wire(t.db.clone(), Settings::default(), "test")
        .await
        .unwrap();
    assert_eq!(hearth.hub.backend(), "in_process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_a_round_and_a_revocation_on_one_gateway_reach_the_other() {
    let Some(url) = hearth_test_support::service_url(hearth_test_support::REDIS_URL_VAR, "Redis")
    else {
        return;
    };
    let t = sqlite_db().await;
    let mut settings = Settings::default();
    settings.redis.url = Some(SecretString::from(url));
    // A prefix of its own, so no other test's channels (or keys) meet this one's.
    settings.redis.key_prefix = format!("test:{}:", Uuid::new_v4().simple());
    let a = Hearth::wire(t.db.clone(), settings.clone(), "test")
        .await
        .unwrap();
    let b = Hearth::wire(t.db.clone(), settings, "test").await.unwrap();
    assert_eq!((a.hub.backend(), b.hub.backend()), ("redis", "redis"));

    let user = t.db.create_user(new_user("Kim", 1_000)).await.unwrap();
    let mut socket_on_b = b.hub.subscriber(16);
    socket_on_b.subscribe(&topics::user(&user.id));
    socket_on_b.subscribe(topics::CONTROL);
    // B's pub/sub connection subscribes in the background: publish until it hears one.
    let mut ready = false;
    for _ in 0..100 {
        a.hub.publish(topics::CONTROL, "{}").await.unwrap();
        if let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(50), socket_on_b.recv()).await
        {
            ready = true;
            break;
        }
    }
    assert!(ready, "B's hub subscribed");
    // Drain what the probes left queued.
    while let Ok(Some(_)) =
        tokio::time::timeout(Duration::from_millis(100), socket_on_b.recv()).await
    {}

    let play = |_: &mut FairRng<'_>| -> Result<RoundPlay, GameError> {
        Ok(RoundPlay {
            win: 0,
            detail: serde_json::json!({}),
            state: None,
        })
    };
    let played = a
        .rounds
        .play(
            "Kim",
            RoundRequest {
                user_id: user.id,
                round_id: Uuid::now_v7(),
                game: "slots",
                bet: 10,
                play: &play,
                idempotency: None,
            },
        )
        .await
        .unwrap();
    let wallet = json(&mut socket_on_b).await;
    assert_eq!(wallet["type"], "wallet");
    assert_eq!(wallet["balance"], 990);
    assert_eq!(wallet["change"], -10);
    assert_eq!(wallet["round_id"], serde_json::json!(played.value.round_id));

    // Expiring within a minute: the shared Redis keeps no leftovers of this test for long.
    let until = time::OffsetDateTime::now_utc()
        .unix_timestamp()
        .unsigned_abs()
        + 60;
    a.auth
        .revocations()
        .revoke_user(user.id, 1, until)
        .await
        .unwrap();
    let revoked = json(&mut socket_on_b).await;
    assert_eq!(
        Revoked::parse(&revoked.to_string()),
        Some(Revoked::user(user.id))
    );
}
