//! [`RedisHub`]: fan-out across gateways through Redis pub/sub.
//!
//! A publish is one `PUBLISH {prefix}rt:{topic}` on the shared connection manager. Each
//! process keeps ONE dedicated pub/sub connection, subscribed to the pattern `{prefix}rt:*`,
//! whose task hands every message to the local registry. Local subscribers get their own
//! gateway's messages the same way, so every gateway sees one order per topic: the order
//! Redis received them in. When the pub/sub connection drops (Redis restarted, the
//! connection killed), the task reconnects by itself with a capped backoff; messages
//! published in between are lost for this gateway.
//!
//! The Redis message is an envelope, `{published_at} {payload}`: the publish time in unix
//! microseconds (decimal digits), one space, then the JSON as published. The receiving
//! gateway strips the prefix, so subscribers get the payload unchanged, with the time in
//! [`crate::Delivery::Message::published_at`]. A message that is not such an envelope is
//! logged and dropped, never delivered.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::ConnectionManager;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::registry::Registry;
use crate::{Hub, HubError, Subscriber, metric_names, unix_micros};

/// How long one attempt to open the pub/sub connection and subscribe may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Backoff between reconnection attempts: starts here, doubles, stops at `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The hub of several gateways sharing one Redis. Cheap to clone (clones share the
/// registry and the pub/sub connection); the pub/sub task stops when the last clone drops.
#[derive(Clone)]
pub struct RedisHub {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    /// `{prefix}rt:`, before every topic's channel name.
    channel_prefix: String,
    registry: Arc<Registry>,
    /// How many times the pub/sub connection has been (re)subscribed; 0 until the first.
    subscribed: watch::Receiver<u64>,
    task: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for RedisHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHub")
            .field("channel_prefix", &self.inner.channel_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisHub {
    /// A hub publishing on `conn` (the process's shared connection manager) and listening on
    /// its own pub/sub connection from `client`, for channels `{prefix}rt:*`. The pub/sub
    /// connection is opened in the background (must be called inside a tokio runtime); until
    /// it is subscribed, this gateway's subscribers miss messages ([`Self::wait_subscribed`]
    /// waits for it).
    pub fn new(conn: ConnectionManager, client: redis::Client, prefix: impl Into<String>) -> Self {
        let channel_prefix = format!("{}rt:", prefix.into());
        let registry = Registry::new();
        let (tx, subscribed) = watch::channel(0);
        let task = tokio::spawn(listen(
            client,
            format!("{channel_prefix}*"),
            channel_prefix.clone(),
            Arc::downgrade(&registry),
            tx,
        ))
        .abort_handle();
        Self {
            inner: Arc::new(Inner {
                conn,
                channel_prefix,
                registry,
                subscribed,
                task,
            }),
        }
    }

    /// Waits until the pub/sub connection has subscribed at least `times` times in total
    /// (1: the first connection; 2: after one reconnection; …). Returns `false` after
    /// `timeout`.
    pub async fn wait_subscribed(&self, times: u64, timeout: Duration) -> bool {
        let mut rx = self.inner.subscribed.clone();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n >= times))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// How many times the pub/sub connection has subscribed so far.
    pub fn subscriptions(&self) -> u64 {
        *self.inner.subscribed.borrow()
    }

    /// How many subscribers `topic` has in this process.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.inner.registry.subscribers(topic)
    }
}

#[async_trait::async_trait]
impl Hub for RedisHub {
    async fn publish(&self, topic: &str, payload: &str) -> Result<(), HubError> {
        let channel = format!("{}{topic}", self.inner.channel_prefix);
        let mut conn = self.inner.conn.clone();
        redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(envelope(unix_micros(), payload))
            .query_async::<i64>(&mut conn)
            .await
            .map_err(HubError::Unavailable)?;
        metrics::counter!(metric_names::PUBLISHED, "backend" => "redis").increment(1);
        Ok(())
    }

    fn subscriber(&self, capacity: usize) -> Subscriber {
        self.inner.registry.subscriber(capacity)
    }

    fn deliver_local(&self, topic: &str, payload: &str) -> usize {
        self.inner.registry.deliver(topic, &Arc::from(payload))
    }

    fn local_subscribers(&self, topic: &str) -> usize {
        self.inner.registry.subscribers(topic)
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

/// The pub/sub task: connect, subscribe, fan out until the connection ends, then reconnect;
/// returns once the hub is dropped.
async fn listen(
    client: redis::Client,
    pattern: String,
    channel_prefix: String,
    registry: Weak<Registry>,
    subscribed: watch::Sender<u64>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match tokio::time::timeout(CONNECT_TIMEOUT, connect(&client, &pattern)).await {
            Ok(Ok(pubsub)) => {
                backoff = MIN_BACKOFF;
                subscribed.send_modify(|n| *n += 1);
                tracing::debug!(%pattern, "realtime pub/sub subscribed");
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let Some(registry) = registry.upgrade() else {
                        return;
                    };
                    let Some(topic) = message.get_channel_name().strip_prefix(&channel_prefix)
                    else {
                        continue;
                    };
                    match open(message.get_payload_bytes()) {
                        Some((published_at, payload)) => {
                            registry.deliver_at(topic, &Arc::from(payload), published_at);
                        }
                        None => tracing::warn!(topic, "malformed realtime message ignored"),
                    }
                }
                tracing::warn!("realtime pub/sub connection lost; reconnecting");
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "realtime pub/sub connection failed; retrying");
            }
            Err(_) => tracing::warn!("realtime pub/sub connection timed out; retrying"),
        }
        if registry.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The Redis message for `payload` published at `published_at` (unix microseconds).
fn envelope(published_at: u64, payload: &str) -> String {
    format!("{published_at} {payload}")
}

/// The publish time and payload of an [`envelope`]; `None` when `bytes` is not one (not
/// UTF-8, no space, or a prefix that is not a decimal number).
fn open(bytes: &[u8]) -> Option<(u64, &str)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (prefix, payload) = text.split_once(' ')?;
    // `parse` alone would take a leading `+`.
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((prefix.parse().ok()?, payload))
}

async fn connect(client: &redis::Client, pattern: &str) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(pattern).await?;
    Ok(pubsub)
}

#[cfg(test)]
mod tests {
    use super::{envelope, open};

    #[test]
    fn an_envelope_round_trips_the_publish_time_and_the_payload_unchanged() {
        let payload = r#"{"type":"wallet","balance":"12 34"}"#;
        let message = envelope(1_764_873_000_123_456, payload);
        assert_eq!(
            open(message.as_bytes()),
            Some((1_764_873_000_123_456, payload))
        );
        assert_eq!(open(envelope(0, "").as_bytes()), Some((0, "")));
    }

    #[test]
    fn a_malformed_envelope_is_not_opened() {
        for bad in [
            &b"{\"type\":\"wallet\"}"[..],
            b"",
            b" {}",
            b"12x {}",
            b"+12 {}",
            b"99999999999999999999999 {}",
            b"12\xff {}",
            b"12 \xff",
        ] {
            assert_eq!(open(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
