//! Receiving with a deadline, the Redis URL, and a redis-server of our own.

use std::time::Duration;

use hearth_realtime::{Delivery, RedisHub, Subscriber};

/// Long enough for a Redis round trip on a loaded machine, short enough to fail fast.
pub(crate) const WAIT: Duration = Duration::from_secs(5);
/// How long to watch for a message that must not come.
pub(crate) const QUIET: Duration = Duration::from_millis(200);

/// The next delivery within [`WAIT`]; panics on a timeout.
pub(crate) async fn next(subscriber: &mut Subscriber) -> Option<Delivery> {
    tokio::time::timeout(WAIT, subscriber.recv())
        .await
        .expect("a delivery within the deadline")
}

/// The next message as `(topic, payload)`; panics on anything else.
pub(crate) async fn message(subscriber: &mut Subscriber) -> (String, String) {
    match next(subscriber).await {
        Some(Delivery::Message { topic, payload, .. }) => (topic.to_string(), payload.to_string()),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Asserts nothing arrives within [`QUIET`].
pub(crate) async fn nothing(subscriber: &mut Subscriber) {
    if let Ok(delivery) = tokio::time::timeout(QUIET, subscriber.recv()).await {
        panic!("expected nothing, got {delivery:?}");
    }
}

pub(crate) fn redis_url() -> Option<String> {
    hearth_test_support::service_url(hearth_test_support::REDIS_URL_VAR, "Redis")
}

/// A prefix no other test uses.
pub(crate) fn unique_prefix() -> String {
    format!("test:{}:", uuid::Uuid::new_v4().simple())
}

/// A Redis hub on `url` under `prefix`, subscribed before it is returned.
pub(crate) async fn redis_hub(url: &str, prefix: &str) -> RedisHub {
    let client = redis::Client::open(url).unwrap();
    let conn = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    let hub = RedisHub::new(conn, client, prefix);
    assert!(hub.wait_subscribed(1, WAIT).await, "pub/sub subscribed");
    hub
}

/// A redis-server of our own on a free port, for the connection-loss test: never the shared
/// one.
pub(crate) use hearth_test_support::PrivateRedis as OwnRedis;
