//! Hearth's realtime hub: messages published on a topic reach every subscriber of that topic,
//! in this process ([`InProcessHub`]) or on every gateway sharing one Redis ([`RedisHub`]).
//!
//! A transport (the WebSocket in `hearth-api`) makes one [`Subscriber`] per socket, subscribes
//! it to topics ([`topics`]) and forwards what [`Subscriber::recv`] yields; use-cases publish
//! already serialised JSON with [`Hub::publish`].
//!
//! # Layout
//! - [`Hub`]: the trait, with [`InProcessHub`] and [`RedisHub`] (`redis_hub`), which pass one
//!   shared suite (`tests/it`).
//! - `registry`: the local registry both share: topic → subscribers, each with a bounded
//!   queue. A publish never waits for a subscriber: one whose queue is full is marked lagged,
//!   gets [`Delivery::Lagged`] once and is dropped from every topic.
//! - [`topics`]: the topic names, and [`control`]: the messages on [`topics::CONTROL`].
//! - [`metric_names`]: `hearth_realtime_published_total{backend}` and
//!   `hearth_realtime_dropped_total`.
//!
//! # Example
//! ```
//! use hearth_realtime::{Delivery, Hub, InProcessHub, topics};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), hearth_realtime::HubError> {
//! let hub = InProcessHub::new();
//! let mut socket = hub.subscriber(256);
//! socket.subscribe(topics::BIG_WINS);
//! hub.publish(topics::BIG_WINS, r#"{"type":"big_win","win":5000}"#).await?;
//! match socket.recv().await {
//!     Some(Delivery::Message { topic, payload, .. }) => {
//!         assert_eq!(&*topic, "big_wins");
//!         assert!(payload.contains("5000"));
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok(()) }
//! ```
//!
//! # What it does not do
//! No sockets, frames or authentication (the transport's), no persistence: a message
//! published while a gateway's Redis pub/sub connection is down never reaches that gateway's
//! subscribers (pushes are notifications; the database stays the truth). It does not know
//! which user a subscriber is; the transport decides who may subscribe to what.

pub mod control;
pub mod metric_names;
mod redis_hub;
mod registry;
pub mod topics;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, Weak};

pub use redis_hub::RedisHub;

use crate::registry::{Inbox, Registry, SubscriberState};

/// Delivers messages published on a topic to every subscriber of it, on every gateway.
#[async_trait::async_trait]
pub trait Hub: Send + Sync + 'static {
    /// Publishes `payload` (a JSON text, already serialised) on `topic`.
    ///
    /// # Errors
    /// [`HubError::Unavailable`] when Redis does not take the message; the in-process hub
    /// never fails.
    async fn publish(&self, topic: &str, payload: &str) -> Result<(), HubError>;

    /// A new subscriber whose queue holds at most `capacity` undelivered messages (at least
    /// one).
    fn subscriber(&self, capacity: usize) -> Subscriber;

    /// Queues `payload` for this process's subscribers of `topic` only, never crossing to
    /// other gateways; returns how many got it. For pushes every gateway computes for its own
    /// sockets from shared state (the leaderboards), where publishing would deliver each one
    /// once per gateway.
    fn deliver_local(&self, topic: &str, payload: &str) -> usize;

    /// How many of this process's subscribers `topic` has; other gateways' are not counted.
    fn local_subscribers(&self, topic: &str) -> usize;

    /// `"in_process"` or `"redis"`.
    fn backend(&self) -> &'static str;
}

/// The wall clock in microseconds since the Unix epoch (0 before it), the unit of
/// [`Delivery::Message::published_at`].
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Redis did not accept the message.
    #[error("the realtime hub's Redis is unavailable: {0}")]
    Unavailable(#[source] redis::RedisError),
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A message published on a topic this subscriber was subscribed to.
    Message {
        /// The topic it was published on.
        topic: Arc<str>,
        /// The JSON text, as published.
        payload: Arc<str>,
        /// When it was published: wall-clock microseconds since the Unix epoch, taken by the
        /// publishing hub (on whichever gateway published it), so the transport can measure
        /// publish-to-socket latency. Wall-clock because it crosses processes; clocks of
        /// different hosts may disagree by their skew.
        published_at: u64,
    },
    /// The queue overflowed: messages were dropped; the transport disconnects this client
    /// ("too slow"). Sent once, after which the subscriber receives nothing more.
    Lagged,
}

/// One consumer of messages (one socket): its topics and its bounded queue. Dropping it
/// unsubscribes it from everything.
pub struct Subscriber {
    id: u64,
    /// Its bounded queue, filled by the registry.
    inbox: Arc<Inbox>,
    state: SubscriberState,
    /// Weak, so that a subscriber does not keep a dropped hub alive: once the hub is gone,
    /// `recv` answers `None`.
    registry: Weak<Registry>,
    /// Its topics, to leave them all when dropped. A mutex because `subscribe` takes `&self`
    /// (a transport subscribes from the task that reads the socket while another receives).
    topics: Mutex<HashSet<Arc<str>>>,
    /// `Lagged` was handed out, or the hub is gone: nothing more comes.
    finished: bool,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("id", &self.id)
            .field("lagged", &self.state.lagged())
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    /// Subscribes to `topic`. Idempotent; takes effect for later publishes. Does nothing
    /// once the subscriber has lagged or the hub is gone.
    pub fn subscribe(&self, topic: &str) {
        if let Some(name) = registry::subscribe(&self.registry, self.id, topic) {
            self.topics
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name);
        }
    }

    /// Unsubscribes from `topic`; messages published on it afterwards do not arrive.
    pub fn unsubscribe(&self, topic: &str) {
        self.topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(topic);
        registry::unsubscribe(&self.registry, self.id, topic);
    }

    /// The next delivery: a message, or [`Delivery::Lagged`] once when the queue overflowed.
    /// `None` after `Lagged`, and once the hub is gone.
    pub async fn recv(&mut self) -> Option<Delivery> {
        if self.finished {
            return None;
        }
        // Lagging happens only when the queue is full, so a subscriber waiting on an empty
        // queue cannot miss the flag: it is checked before each receive.
        if self.state.lagged() {
            self.finished = true;
            return Some(Delivery::Lagged);
        }
        let delivery = self.inbox.pop().await;
        if delivery.is_none() {
            self.finished = true;
        }
        delivery
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        // Nothing more is queued for it, even by a publish already fanning out.
        self.inbox.close();
        let topics =
            std::mem::take(&mut *self.topics.lock().unwrap_or_else(PoisonError::into_inner));
        registry::remove(&self.registry, self.id, topics.into_iter().collect());
    }
}

/// The hub of one process: a publish reaches this process's subscribers only. Right for one
/// gateway; several need [`RedisHub`]. Cheap to clone (clones share subscribers).
#[derive(Debug, Clone)]
pub struct InProcessHub {
    registry: Arc<Registry>,
}

impl Default for InProcessHub {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self {
            registry: Registry::new(),
        }
    }

    /// How many subscribers `topic` has (for tests and diagnostics).
    pub fn subscribers(&self, topic: &str) -> usize {
        self.registry.subscribers(topic)
    }
}

#[async_trait::async_trait]
impl Hub for InProcessHub {
    async fn publish(&self, topic: &str, payload: &str) -> Result<(), HubError> {
        metrics::counter!(metric_names::PUBLISHED, "backend" => "in_process").increment(1);
        // Stamped with the time now: publishing and delivering are one step here.
        self.registry.deliver(topic, &Arc::from(payload));
        Ok(())
    }

    fn subscriber(&self, capacity: usize) -> Subscriber {
        self.registry.subscriber(capacity)
    }

    fn deliver_local(&self, topic: &str, payload: &str) -> usize {
        self.registry.deliver(topic, &Arc::from(payload))
    }

    fn local_subscribers(&self, topic: &str) -> usize {
        self.registry.subscribers(topic)
    }

    fn backend(&self) -> &'static str {
        "in_process"
    }
}
