//! A test harness for handlers and stacks: publish, run until idle, assert.

use tower::Service;
use wharf::{BoxError, Consumer, DeliveryOrder, Message, MessageId, Outcome, Summary};

use crate::broker::MemoryBroker;
use crate::inspect::{DeliveryRecord, NativeDeadLetter};

/// Runs a handler or a whole stack against an in-memory topic and reports what happened
/// to every message.
///
/// [`run_until_idle`](Harness::run_until_idle) runs a real [`Consumer`] until every
/// published message is settled for good: acked, dead-lettered or dropped. Retries are
/// part of the run; under `#[tokio::test(start_paused = true)]` their delays take no
/// wall time, because tokio's clock jumps to the next timer whenever the test is idle.
/// Nothing sleeps, so runs are deterministic.
///
/// ```
/// use std::time::Duration;
/// use wharf::{Handler, HandlerError, Message, Outcome};
/// use wharf_memory::Harness;
///
/// async fn handler(msg: Message) -> Result<(), HandlerError> {
///     if msg.payload().as_ref() == b"bad" {
///         return Err(HandlerError::permanent("bad payload"));
///     }
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut harness = Harness::new(handler.into_service());
/// let good = harness.publish(Message::new("good"));
/// let bad = harness.publish(Message::new("bad"));
///
/// let report = harness.run_until_idle().await;
/// report.assert_acked(&good);
/// // No dead-letter layer in this stack: the in-memory broker's native path took it.
/// report.assert_dead_lettered(&bad, "permanent");
/// # }
/// ```
#[derive(Debug)]
pub struct Harness<S> {
    broker: MemoryBroker,
    topic: String,
    group: String,
    consumer: String,
    service: S,
    max_in_flight: usize,
    ordering: DeliveryOrder,
}

impl<S> Harness<S>
where
    S: Service<Message, Response = Outcome> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    /// A harness on a fresh broker, topic `input`, group and consumer `test`.
    pub fn new(service: S) -> Self {
        Harness::with_broker(MemoryBroker::new(), service)
    }

    /// A harness on an existing broker (to share it with the stack's publisher, say).
    pub fn with_broker(broker: MemoryBroker, service: S) -> Self {
        Harness {
            broker,
            topic: "input".into(),
            group: "test".into(),
            consumer: "test".into(),
            service,
            max_in_flight: 64,
            ordering: DeliveryOrder::PerKey,
        }
    }

    /// The topic messages are published to and consumed from (default `input`).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    /// The consumer's name and group (default `test`).
    pub fn consumer_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.group = name.clone();
        self.consumer = name;
        self
    }

    /// The consumer's in-flight bound (default 64).
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max;
        self
    }

    /// The consumer's ordering (default per key).
    pub fn ordering(mut self, ordering: DeliveryOrder) -> Self {
        self.ordering = ordering;
        self
    }

    /// The broker.
    pub fn broker(&self) -> &MemoryBroker {
        &self.broker
    }

    /// Name of the topic under test.
    pub fn topic_name(&self) -> &str {
        &self.topic
    }

    /// Publishes a message to the topic under test; returns its id.
    pub fn publish(&mut self, message: Message) -> MessageId {
        self.broker.declare_group(&self.topic, &self.group);
        self.broker
            .publish(&self.topic, message)
            .expect("publishing to the topic under test (did a test inject a fault on it?)")
    }

    /// Runs the consumer until every published message is settled for good, then shuts
    /// it down and reports.
    ///
    /// # Panics
    ///
    /// If the consumer fails (its settings are invalid or the stack's `poll_ready`
    /// fails): a harness is for tests, where a panic is the clearest report.
    pub async fn run_until_idle(&mut self) -> Report {
        let subscriber = self.broker.subscribe(&self.topic, &self.group);
        let broker = self.broker.clone();
        let (topic, group) = (self.topic.clone(), self.group.clone());
        let idle = async move { broker.idle(&topic, &group).await };
        let summary = Consumer::new(self.consumer.clone(), subscriber, self.service.clone())
            .max_in_flight(self.max_in_flight)
            .ordering(self.ordering)
            .run(idle)
            .await
            .unwrap_or_else(|e| panic!("the consumer under test failed: {e}"));
        Report {
            summary,
            records: self.broker.records(&self.topic, &self.group),
            dead_letters: self.broker.messages(&format!("{}.dlq", self.topic)),
            native_dead_letters: self.broker.native_dead_letters(&self.topic, &self.group),
        }
    }
}

/// What happened during a [`Harness`] run.
#[derive(Debug, Clone)]
pub struct Report {
    summary: Summary,
    records: Vec<DeliveryRecord>,
    dead_letters: Vec<Message>,
    native_dead_letters: Vec<NativeDeadLetter>,
}

impl Report {
    /// The consumer's counters for this run.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Every message's history, in publish order.
    pub fn records(&self) -> &[DeliveryRecord] {
        &self.records
    }

    /// One message's history: the first message published with this id. When several
    /// messages share an id (duplicates), see [`records_of`](Self::records_of).
    pub fn record(&self, id: &MessageId) -> Option<&DeliveryRecord> {
        self.records.iter().find(|r| r.id() == id)
    }

    /// The histories of every message published with this id, in publish order.
    pub fn records_of<'a>(
        &'a self,
        id: &'a MessageId,
    ) -> impl Iterator<Item = &'a DeliveryRecord> + 'a {
        self.records.iter().filter(move |r| r.id() == id)
    }

    /// A message's final outcome.
    pub fn outcome(&self, id: &MessageId) -> Option<&Outcome> {
        self.record(id).and_then(|r| r.final_outcome())
    }

    /// Ids of the messages whose final outcome is `Ack`.
    pub fn acked(&self) -> Vec<&MessageId> {
        self.records
            .iter()
            .filter(|r| r.final_outcome() == Some(&Outcome::Ack))
            .map(|r| r.id())
            .collect()
    }

    /// Messages the dead-letter layer published to `<topic>.dlq`, with their headers.
    pub fn dead_letters(&self) -> &[Message] {
        &self.dead_letters
    }

    /// The dead letter published for message `id` (same id as the original).
    pub fn dead_letter(&self, id: &MessageId) -> Option<&Message> {
        self.dead_letters.iter().find(|m| m.id() == id)
    }

    /// Messages dead-lettered through the broker's native path (no dead-letter layer).
    pub fn native_dead_letters(&self) -> &[NativeDeadLetter] {
        &self.native_dead_letters
    }

    /// Asserts the message was finally acked.
    ///
    /// # Panics
    ///
    /// If it was not, with its history.
    pub fn assert_acked(&self, id: &MessageId) -> &Self {
        match self.outcome(id) {
            Some(Outcome::Ack) => self,
            _ => panic!(
                "expected message {id} to be acked; history: {:?}",
                self.record(id)
            ),
        }
    }

    /// Asserts the message was dead-lettered with `reason`, through the dead-letter layer
    /// (a copy on `<topic>.dlq` with `wharf-dlq-reason`) or the native path.
    ///
    /// # Panics
    ///
    /// If it was not, with its history.
    pub fn assert_dead_lettered(&self, id: &MessageId, reason: &str) -> &Self {
        let via_layer = self.dead_letter(id).and_then(|m| {
            m.headers()
                .get_str(wharf::headers::names::DLQ_REASON)
                .map(str::to_owned)
        });
        let native = self
            .native_dead_letters
            .iter()
            .find(|d| d.message.id() == id)
            .map(|d| d.failure.reason().as_str().to_owned());
        match via_layer.or(native) {
            Some(r) if r == reason => self,
            Some(r) => {
                panic!("expected message {id} dead-lettered with reason `{reason}`, got `{r}`")
            }
            None => panic!(
                "expected message {id} to be dead-lettered with reason `{reason}`; history: {:?}",
                self.record(id)
            ),
        }
    }

    /// Asserts the message was settled `Retry` exactly `n` times.
    ///
    /// # Panics
    ///
    /// If it was not, with its history.
    pub fn assert_retried(&self, id: &MessageId, n: usize) -> &Self {
        let retries = self.record(id).map(|r| r.retries());
        assert_eq!(
            retries,
            Some(n),
            "retries of message {id}; history: {:?}",
            self.record(id)
        );
        self
    }
}
