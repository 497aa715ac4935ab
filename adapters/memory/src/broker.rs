//! The in-memory broker: topics, consumer groups and inspection.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use async_trait::async_trait;
use wharf::{Error, Message, MessageId, PublishError, Publisher};

use crate::inspect::{DeliveryRecord, NativeDeadLetter};
use crate::subscriber::MemorySubscriber;
use crate::topic::{GroupIndex, Topic};

/// An in-memory broker. Cheap to clone; clones share the topics.
///
/// - **Topics** are created on first use (publish or subscribe).
/// - **Consumer groups**: subscribers in one group share a topic's messages (competing
///   consumers); every group gets every message. A group created after messages were
///   published starts at the earliest retained one.
/// - **Messages stay until acked.** A retry comes back after its delay (on tokio's clock,
///   so `tokio::time::pause` skips the wait) with its attempt count incremented; a
///   delivery whose acker is dropped unsettled comes back at once.
/// - Once every group has settled a message it is removed from the topic (set
///   [`retain_acked`](MemoryBrokerBuilder::retain_acked) to keep it). A topic without
///   groups (such as a dead-letter topic) keeps everything.
///
/// ```
/// use wharf::Message;
/// use wharf_memory::MemoryBroker;
///
/// let broker = MemoryBroker::new();
/// broker.publish("orders", Message::new("one")).unwrap();
/// assert_eq!(broker.messages("orders").len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    topics: Mutex<HashMap<Arc<str>, Arc<Topic>>>,
    history: bool,
    retain_acked: bool,
    prefetch: usize,
}

/// Settings for a [`MemoryBroker`].
#[derive(Debug, Clone)]
pub struct MemoryBrokerBuilder {
    history: bool,
    retain_acked: bool,
    prefetch: usize,
}

impl Default for MemoryBrokerBuilder {
    fn default() -> Self {
        MemoryBrokerBuilder {
            history: true,
            retain_acked: false,
            prefetch: 64,
        }
    }
}

impl MemoryBrokerBuilder {
    /// Keep a [`DeliveryRecord`] per message and group (default `true`). Turn it off for
    /// benchmarks and long runs: records grow with every message.
    pub fn record_history(mut self, on: bool) -> Self {
        self.history = on;
        self
    }

    /// Keep messages every group has settled (default `false`).
    pub fn retain_acked(mut self, on: bool) -> Self {
        self.retain_acked = on;
        self
    }

    /// Messages a subscriber takes per lock (default 64). Like a broker's prefetch, it
    /// trades fairness between competing consumers for throughput.
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = n.max(1);
        self
    }

    /// Builds the broker.
    pub fn build(self) -> MemoryBroker {
        MemoryBroker {
            inner: Arc::new(Inner {
                topics: Mutex::new(HashMap::new()),
                history: self.history,
                retain_acked: self.retain_acked,
                prefetch: self.prefetch,
            }),
        }
    }
}

impl Default for MemoryBroker {
    fn default() -> Self {
        MemoryBroker::new()
    }
}

impl MemoryBroker {
    /// A broker with default settings.
    pub fn new() -> Self {
        MemoryBrokerBuilder::default().build()
    }

    /// Settings for a broker.
    pub fn builder() -> MemoryBrokerBuilder {
        MemoryBrokerBuilder::default()
    }

    /// What the in-memory broker promises (the same for every subscriber).
    pub fn capabilities(&self) -> wharf::adapter::Capabilities {
        crate::subscriber::capabilities()
    }

    pub(crate) fn topic(&self, name: &str) -> Arc<Topic> {
        let mut topics = self.inner.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = topics.get(name) {
            return t.clone();
        }
        let name: Arc<str> = name.into();
        let topic = Arc::new(Topic::new(
            name.clone(),
            self.inner.history,
            self.inner.retain_acked,
        ));
        topics.insert(name, topic.clone());
        topic
    }

    fn existing(&self, name: &str) -> Option<Arc<Topic>> {
        self.inner
            .topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Publishes a message; returns its id. Fails only when a fault was injected with
    /// [`fail_next_publishes`](Self::fail_next_publishes).
    pub fn publish(&self, topic: &str, message: Message) -> Result<MessageId, PublishError> {
        let id = message.id().clone();
        let t = self.topic(topic);
        match t.publish(message.clone()) {
            Ok(_) => Ok(id),
            Err(()) => Err(PublishError::new(
                topic,
                message,
                std::io::Error::other("publish failed (injected fault)"),
            )),
        }
    }

    /// Makes the next `n` publishes to `topic` fail, to test what happens when the
    /// broker refuses a message (a dead-letter publish that fails, say).
    pub fn fail_next_publishes(&self, topic: &str, n: u32) {
        self.topic(topic).fail_publishes(n);
    }

    /// Creates the group if it does not exist, so messages published from now on are
    /// kept for it even before it subscribes.
    pub fn declare_group(&self, topic: &str, group: &str) {
        self.topic(topic).lock().group(group);
    }

    /// Joins consumer group `group` on `topic`.
    pub fn subscribe(&self, topic: &str, group: &str) -> MemorySubscriber {
        let t = self.topic(topic);
        t.set_dead_letter_topic(|| self.topic(&dead_letter_topic(topic)));
        let (g, id) = {
            let mut st = t.lock();
            let g = st.group(group);
            (g, st.new_subscriber_id(g))
        };
        MemorySubscriber::new(t, g, id, self.inner.prefetch)
    }

    /// Removes every message with id `id` from `topic`; how many there were. Only for a
    /// topic no group reads (a dead-letter topic): [`Error::Config`] naming the topic
    /// otherwise.
    pub fn remove(&self, topic: &str, id: &MessageId) -> Result<usize, Error> {
        self.remove_where(topic, |m| m.id() == id, usize::MAX)
    }

    /// Removes up to `max` messages of `topic` for which `matches` holds, oldest first;
    /// how many. The same restriction as [`remove`](Self::remove).
    pub fn remove_where(
        &self,
        topic: &str,
        matches: impl FnMut(&Message) -> bool,
        max: usize,
    ) -> Result<usize, Error> {
        match self.existing(topic) {
            None => Ok(0),
            Some(t) => t.lock().remove(matches, max).map_err(|()| {
                Error::config(
                    "topic",
                    format!(
                        "`{topic}` is read by consumer groups; messages cannot be removed from it"
                    ),
                )
            }),
        }
    }

    /// Messages retained on `topic`, oldest first.
    pub fn messages(&self, topic: &str) -> Vec<Message> {
        self.existing(topic)
            .map(|t| t.lock().messages())
            .unwrap_or_default()
    }

    /// Messages in `topic`'s log (0 for a topic never used).
    pub(crate) fn message_count(&self, topic: &str) -> usize {
        self.existing(topic).map_or(0, |t| t.lock().len())
    }

    /// Messages `group` has not settled yet (unsent, in flight or waiting to retry).
    pub fn pending(&self, topic: &str, group: &str) -> u64 {
        self.with_group(topic, group, |st, g| st.pending(g))
            .unwrap_or(0)
    }

    /// Messages delivered to `group` and not settled yet.
    pub fn in_flight(&self, topic: &str, group: &str) -> u64 {
        self.with_group(topic, group, |st, g| st.in_flight(g))
            .unwrap_or(0)
    }

    /// What happened to each message `group` received, in offset order. Empty when
    /// history is off.
    pub fn records(&self, topic: &str, group: &str) -> Vec<DeliveryRecord> {
        self.with_group(topic, group, |st, g| {
            if !st.history_enabled() {
                tracing::warn!("records requested but the broker does not record history");
            }
            st.records(g)
        })
        .unwrap_or_default()
    }

    /// The history of one message in `group`.
    pub fn record(&self, topic: &str, group: &str, id: &MessageId) -> Option<DeliveryRecord> {
        self.records(topic, group)
            .into_iter()
            .find(|r| r.id() == id)
    }

    /// Messages `group` dead-lettered through the native path (settled `DeadLetter`
    /// without a dead-letter layer), as they were published. The same messages, with
    /// the `wharf-dlq-*` headers, are on topic `<topic>.dlq`.
    pub fn native_dead_letters(&self, topic: &str, group: &str) -> Vec<NativeDeadLetter> {
        self.with_group(topic, group, |st, g| st.dead_letters(g))
            .unwrap_or_default()
    }

    /// Resolves once `group` has settled every message published to `topic` so far
    /// (nothing unsent, in flight or waiting for a retry). Creates the group if needed.
    pub async fn idle(&self, topic: &str, group: &str) {
        let t = self.topic(topic);
        let (g, id) = {
            let mut st = t.lock();
            let g = st.group(group);
            (g, st.new_subscriber_id(g))
        };
        // Deregisters the waker however this future ends (done or dropped).
        struct Deregister<'a>(&'a Topic, GroupIndex, u64);
        impl Drop for Deregister<'_> {
            fn drop(&mut self) {
                self.0.lock().stop_waiting_idle(self.1, self.2);
            }
        }
        let _deregister = Deregister(&t, g, id);
        poll_fn(|cx| {
            let mut st = t.lock();
            if st.is_idle(g) {
                Poll::Ready(())
            } else {
                st.wait_idle(g, id, cx.waker());
                Poll::Pending
            }
        })
        .await
    }

    pub(crate) fn with_group<R>(
        &self,
        topic: &str,
        group: &str,
        f: impl FnOnce(&crate::topic::TopicState, crate::topic::GroupIndex) -> R,
    ) -> Option<R> {
        let t = self.existing(topic)?;
        let st = t.lock();
        let g = st.find_group(group)?;
        Some(f(&st, g))
    }
}

/// The topic native dead letters of `topic` go to, and where the dead-letter layer's
/// default destination points.
pub(crate) fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Publishing to the in-memory broker: confirmed as soon as the message is appended.
#[async_trait]
impl Publisher for MemoryBroker {
    async fn publish(&self, destination: &str, message: Message) -> Result<(), PublishError> {
        MemoryBroker::publish(self, destination, message).map(|_| ())
    }
}
