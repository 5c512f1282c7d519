//! The local registry both hubs share: topic → subscribers, one bounded queue per subscriber.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};

use tokio::sync::Notify;

use crate::{Delivery, metric_names};

/// What a subscriber and the registry both see.
#[derive(Debug, Default)]
struct State {
    /// Set by the publish that found the queue full. From then on the subscriber gets
    /// [`Delivery::Lagged`] once and nothing else, and no publish queues anything for it.
    lagged: AtomicBool,
}

/// One subscriber's bounded queue, shared by its [`Slot`] and its [`crate::Subscriber`].
///
/// Not a tokio `mpsc` channel: that allocates a block of 32 slots (1.3 KiB) when it is
/// created, for every subscriber (every socket), though most never hold more than one message
/// at a time. This one allocates only once something is queued.
#[derive(Debug)]
pub(crate) struct Inbox {
    items: Mutex<VecDeque<Delivery>>,
    /// Wakes the subscriber; `notify_one` keeps a permit when it is not waiting yet.
    ready: Notify,
    capacity: usize,
    /// Set when either end is gone: the slot (the hub was dropped), after which `recv` drains
    /// what is queued and then answers `None`; or the subscriber, after which nothing is
    /// queued for it.
    closed: AtomicBool,
}

/// Why [`Inbox::push`] did not take a message.
enum Refused {
    Full,
    Closed,
}

impl Inbox {
    fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            items: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            capacity: capacity.max(1),
            closed: AtomicBool::new(false),
        })
    }

    fn push(&self, delivery: Delivery) -> Result<(), Refused> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Refused::Closed);
        }
        {
            let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
            if items.len() >= self.capacity {
                return Err(Refused::Full);
            }
            items.push_back(delivery);
        }
        self.ready.notify_one();
        Ok(())
    }

    /// The next message; `None` once closed and drained.
    pub(crate) async fn pop(&self) -> Option<Delivery> {
        loop {
            if let Some(delivery) = self
                .items
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()
            {
                return Some(delivery);
            }
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            // A push (or close) between the checks above and this wait left a permit.
            self.ready.notified().await;
        }
    }

    /// Closes the inbox from either end, waking the subscriber.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_one();
    }
}

/// The registry's end of one subscriber.
#[derive(Debug)]
struct Slot {
    /// The subscriber's queue. The registry holds the only `Slot`s: when the registry (the
    /// hub) is dropped, so is every slot, which closes its inbox, and `recv` answers `None`.
    inbox: Arc<Inbox>,
    state: Arc<State>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.inbox.close();
    }
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
        let inbox = Inbox::new(capacity);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(State::default());
        let slot = Arc::new(Slot {
            inbox: inbox.clone(),
            state: state.clone(),
        });
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, slot);
        crate::Subscriber {
            id,
            inbox,
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
                match slot.inbox.push(message) {
                    Ok(()) => delivered += 1,
                    Err(Refused::Full) => {
                        // `swap` so that two publishes racing here count the subscriber once.
                        if !slot.state.lagged.swap(true, Ordering::AcqRel) {
                            metrics::counter!(metric_names::DROPPED).increment(1);
                            tracing::debug!(topic, "subscriber queue full; dropping it as lagged");
                        }
                        lagging = true;
                    }
                    // The subscriber was dropped and is about to leave.
                    Err(Refused::Closed) => {}
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
