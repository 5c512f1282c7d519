//! What only the Redis hub has: a pub/sub connection that comes back by itself, against a
//! redis-server of our own (never the shared one).

use std::time::Duration;

use hearth_realtime::Hub;

use crate::support::{OwnRedis, WAIT, message, redis_hub, redis_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pubsub_connection_reconnects_and_delivery_resumes() {
    if redis_url().is_none() {
        return;
    }
    let server = OwnRedis::start();
    let a = redis_hub(&server.url(), "t:").await;
    let b = redis_hub(&server.url(), "t:").await;
    let mut sub = b.subscriber(16);
    sub.subscribe("big_wins");
    a.publish("big_wins", "before").await.unwrap();
    assert_eq!(message(&mut sub).await.1, "before");

    let client = redis::Client::open(server.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 2, "both hubs' pub/sub connections");

    assert!(a.wait_subscribed(2, WAIT).await, "a resubscribed");
    assert!(b.wait_subscribed(2, WAIT).await, "b resubscribed");
    a.publish("big_wins", "after").await.unwrap();
    assert_eq!(message(&mut sub).await.1, "after");
    // The subscriber's own topics survived: nothing to do on its side.
    assert_eq!(b.subscribers("big_wins"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_while_redis_is_unreachable_fails() {
    if redis_url().is_none() {
        return;
    }
    let server = OwnRedis::start();
    let url = server.url();
    let hub = redis_hub(&url, "t:").await;
    drop(server);
    // The shared manager reports the outage; the caller logs it and carries on.
    let mut failed = false;
    for _ in 0..20 {
        if hub.publish("control", "lost").await.is_err() {
            failed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failed, "a publish to a dead Redis fails");
    assert_eq!(hub.backend(), "redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_without_the_envelope_is_dropped_and_a_publish_carries_its_time() {
    let Some(url) = redis_url() else {
        return;
    };
    let prefix = crate::support::unique_prefix();
    let hub = redis_hub(&url, &prefix).await;
    let mut sub = hub.subscriber(16);
    sub.subscribe("big_wins");
    // Another writer on the channel, without the `{published_at} ` prefix.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(format!("{prefix}rt:big_wins"))
        .arg(r#"{"type":"big_win"}"#)
        .query_async(&mut raw)
        .await
        .unwrap();
    crate::support::nothing(&mut sub).await;

    let before = hearth_realtime::unix_micros();
    hub.publish("big_wins", r#"{"type":"big_win","win":7}"#)
        .await
        .unwrap();
    match crate::support::next(&mut sub).await {
        Some(hearth_realtime::Delivery::Message {
            payload,
            published_at,
            ..
        }) => {
            assert_eq!(&*payload, r#"{"type":"big_win","win":7}"#);
            assert!(
                (before..=hearth_realtime::unix_micros()).contains(&published_at),
                "{published_at} stamped at the publish"
            );
        }
        other => panic!("expected the message, got {other:?}"),
    }
}
