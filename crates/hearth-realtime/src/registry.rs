//! The local registry both hubs share: topic → subscribers, one bounded queue per subscriber.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};

use tokio::sync::mpsc;

use crate::{Delivery, metric_names};

/// What a subscriber and the registry both see.
#[derive(Debug, Default)]
struct State {
    /// Set by the publish that found the queue full. From then on the subscriber gets
    /// [`Delivery::Lagged`] once and nothing else, and no publish queues anything for it.
    lagged: AtomicBool,
}

/// The registry's end of one subscriber.
#[derive(Debug)]
struct Slot {
    /// The only sender of the subscriber's queue: when the registry (the hub) is dropped, so
    /// is every sender, and `recv` answers `None`.
    tx: mpsc::Sender<Delivery>,
    state: Arc<State>,
}

/// The subscribers of one topic.
#[derive(Debug)]
struct Topic {
    /// The topic's name, cloned (a reference count, no copy) into every delivery.
    name: Arc<str>,
    subscribers: HashMap<u64, Arc<Slot>>,
}

/// Topic → subscribers. Publishing takes the read lock only, so publishes on different
/// threads fan out at once; subscribing and unsubscribing take the write lock briefly.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    topics: RwLock<HashMap<Arc<str>, Topic>>,
    /// Every live subscriber's slot, including those subscribed to nothing yet, so that its
    /// queue stays open for as long as the hub lives.
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    next_id: AtomicU64,
}

impl Registry {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A new subscriber with a queue of `capacity` (at least 1) messages.
    pub(crate) fn subscriber(self: &Arc<Self>, capacity: usize) -> crate::Subscriber {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(State::default());
        let slot = Arc::new(Slot {
            tx,
            state: state.clone(),
        });
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, slot);
        crate::Subscriber {
            id,
            rx,
            state: SubscriberState(state),
            registry: Arc::downgrade(self),
            topics: Mutex::new(HashSet::new()),
            finished: false,
        }
    }

    /// Adds subscriber `id` to `topic`; returns the topic's shared name.
    fn join(&self, id: u64, topic: &str) -> Option<Arc<str>> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()?;
        if slot.state.lagged.load(Ordering::Acquire) {
            return None;
        }
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        let entry = topics
            .entry(Arc::from(topic))
            .or_insert_with_key(|name| Topic {
                name: name.clone(),
                subscribers: HashMap::new(),
            });
        entry.subscribers.insert(id, slot);
        Some(entry.name.clone())
    }

    /// Removes subscriber `id` from `topic` (and the topic once nobody is left on it).
    fn leave(&self, id: u64, topic: &str) {
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = topics.get_mut(topic) {
            entry.subscribers.remove(&id);
            if entry.subscribers.is_empty() {
                topics.remove(topic);
            }
        }
    }

    /// Queues `payload` for every local subscriber of `topic`, published now; returns how
    /// many got it. See [`Self::deliver_at`].
    pub(crate) fn deliver(&self, topic: &str, payload: &Arc<str>) -> usize {
        self.deliver_at(topic, payload, crate::unix_micros())
    }

    /// Queues `payload`, published at `published_at` (unix microseconds), for every local
    /// subscriber of `topic`; returns how many got it. Never waits: a full queue marks its
    /// subscriber lagged, which is then dropped from the topic. Allocates nothing per
    /// subscriber: each delivery holds two reference-counted pointers.
    pub(crate) fn deliver_at(&self, topic: &str, payload: &Arc<str>, published_at: u64) -> usize {
        let mut delivered = 0;
        let mut lagging = false;
        {
            let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
            let Some(entry) = topics.get(topic) else {
                return 0;
            };
            for slot in entry.subscribers.values() {
                if slot.state.lagged.load(Ordering::Acquire) {
                    lagging = true;
                    continue;
                }
                let message = Delivery::Message {
                    topic: entry.name.clone(),
                    payload: payload.clone(),
                    published_at,
                };
                match slot.tx.try_send(message) {
                    Ok(()) => delivered += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // `swap` so that two publishes racing here count the subscriber once.
                        if !slot.state.lagged.swap(true, Ordering::AcqRel) {
                            metrics::counter!(metric_names::DROPPED).increment(1);
                            tracing::debug!(topic, "subscriber queue full; dropping it as lagged");
                        }
                        lagging = true;
                    }
                    // The subscriber was dropped and is about to leave.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
        if lagging {
            self.drop_lagged(topic);
        }
        delivered
    }

    /// Removes the lagged subscribers of `topic`: they will receive nothing more.
    fn drop_lagged(&self, topic: &str) {
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = topics.get_mut(topic) {
            entry
                .subscribers
                .retain(|_, slot| !slot.state.lagged.load(Ordering::Acquire));
            if entry.subscribers.is_empty() {
                topics.remove(topic);
            }
        }
    }

    /// Forgets subscriber `id` entirely (it was dropped).
    fn remove(&self, id: u64, topics: impl IntoIterator<Item = Arc<str>>) {
        for topic in topics {
            self.leave(id, &topic);
        }
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// How many subscribers `topic` has in this process.
    pub(crate) fn subscribers(&self, topic: &str) -> usize {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
            .map_or(0, |t| t.subscribers.len())
    }
}

/// The subscriber's view of its lagged flag.
#[derive(Debug)]
pub(crate) struct SubscriberState(Arc<State>);

impl SubscriberState {
    pub(crate) fn lagged(&self) -> bool {
        self.0.lagged.load(Ordering::Acquire)
    }
}

/// Called by [`crate::Subscriber`]'s methods.
pub(crate) fn subscribe(registry: &Weak<Registry>, id: u64, topic: &str) -> Option<Arc<str>> {
    registry.upgrade()?.join(id, topic)
}

pub(crate) fn unsubscribe(registry: &Weak<Registry>, id: u64, topic: &str) {
    if let Some(registry) = registry.upgrade() {
        registry.leave(id, topic);
    }
}

pub(crate) fn remove(registry: &Weak<Registry>, id: u64, topics: Vec<Arc<str>>) {
    if let Some(registry) = registry.upgrade() {
        registry.remove(id, topics);
    }
}
