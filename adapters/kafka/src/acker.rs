//! Settling deliveries: moving the partition's watermark, republishing where needed.
//!
//! | outcome | what happens |
//! |---|---|
//! | `Ack` | the offset is settled; the partition's watermark moves over every settled offset before the first unsettled one and is stored for the next commit |
//! | `Retry { after }`, [`RetryMode::Lane`] | the runtime retries in the key's lane and settles only the final outcome ([`Capabilities::retry_in_lane`](wharf::adapter::Capabilities::retry_in_lane)); a `Retry` reaching the acker (the consumer is stopping) leaves the offset unsettled, so the message is read again after a restart or rebalance |
//! | `Retry { after }`, [`RetryMode::Topic`] | a copy with `wharf-attempt` raised and a not-before time is published to the retry topic; once the broker confirmed it, the offset is settled. If the publish fails the offset stays unsettled (read again after a restart) and the settlement reports the error |
//! | `DeadLetter(failure)` | the message with the `wharf-dlq-*` headers is published to the dead-letter topic (`<topic>.dlq`); once confirmed, the offset is settled. A failed publish leaves it unsettled, as above |
//! | `Drop(failure)` | the offset is settled (logged by the runtime) |
//! | acker dropped unsettled | the offset stays unsettled: the partition's committed offset stays below it, and the message is read again after a restart or rebalance |
//!
//! Settlements of a partition this member no longer owns are ignored: the new owner
//! reads those messages again from the committed watermark.

use std::future::{ready, Future};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::FutureProducer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::Notify;
use wharf::adapter::dead_letter::{dead_letter_message, fit, DEFAULT_MAX_ERROR_LEN};
use wharf::adapter::Acker;
use wharf::adapter::Lease;
use wharf::headers::names;
use wharf::{BoxError, Message, Outcome};

use crate::config::{KafkaConfig, RetryMode};
use crate::error;
use crate::message::{epoch_millis_after, RETRY_NOT_BEFORE, RETRY_SOURCE};
use crate::offset_map;
use crate::offsets::{Assignment, PartitionState, Tracker};
use crate::publisher::send;
use crate::subscriber::{GroupConsumer, GroupContext};

/// What every acker of one subscriber shares.
pub(crate) struct AckerShared {
    /// Always `Some` until dropped (taken in `Drop` to close it off the async threads).
    consumer: Option<GroupConsumer>,
    pub(crate) assignment: Arc<Assignment>,
    pub(crate) producer: FutureProducer,
    pub(crate) config: Arc<KafkaConfig>,
    pub(crate) group: Arc<str>,
    pub(crate) publish_timeout: Duration,
    /// A partition paused for its uncommitted window may resume (see
    /// [`KafkaConfig::max_uncommitted`]); the driver resumes it.
    pub(crate) window_released: Notify,
}

impl AckerShared {
    pub(crate) fn new(
        consumer: GroupConsumer,
        assignment: Arc<Assignment>,
        producer: FutureProducer,
        config: Arc<KafkaConfig>,
        group: Arc<str>,
        publish_timeout: Duration,
    ) -> Self {
        AckerShared {
            consumer: Some(consumer),
            assignment,
            producer,
            config,
            group,
            publish_timeout,
            window_released: Notify::new(),
        }
    }

    pub(crate) fn consumer(&self) -> &GroupConsumer {
        self.consumer
            .as_ref()
            .expect("the consumer is only taken when dropped")
    }
}

impl Drop for AckerShared {
    fn drop(&mut self) {
        // Dropping a consumer closes it synchronously (leaving the group, a final
        // commit), which can block for the session timeout when the broker is gone:
        // never on an async worker thread.
        if let Some(consumer) = self.consumer.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => drop(handle.spawn_blocking(move || drop(consumer))),
                Err(_) => drop(consumer),
            }
        }
    }
}

/// Settles one Kafka delivery; see the [module docs](self).
pub struct KafkaAcker {
    shared: Arc<AckerShared>,
    state: Arc<PartitionState>,
    offset: i64,
    message: Message,
}

impl std::fmt::Debug for KafkaAcker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaAcker")
            .field("topic", &self.state.topic)
            .field("partition", &self.state.partition)
            .field("offset", &self.offset)
            .field("message_id", self.message.id())
            .finish()
    }
}

/// The future [`KafkaAcker::settle`] returns.
pub type SettleFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'static>>;

impl KafkaAcker {
    pub(crate) fn new(
        shared: Arc<AckerShared>,
        state: Arc<PartitionState>,
        offset: i64,
        message: Message,
    ) -> Self {
        KafkaAcker {
            shared,
            state,
            offset,
            message,
        }
    }

    /// Marks the offset settled and stores the partition's new watermark, if it moved.
    fn settled(shared: &AckerShared, state: &PartitionState, offset: i64) {
        let mut tracker = state.tracker();
        if state.is_revoked() {
            tracing::debug!(topic = %state.topic, partition = state.partition, offset, "settled after the partition was revoked; the new owner reads it again");
            return;
        }
        if let Some(watermark) = tracker.settle(offset) {
            if tracker.store_due(watermark) {
                store(shared, state, &mut tracker, watermark);
            }
            if state.window_paused.load(Ordering::Acquire)
                && tracker.uncommitted() <= shared.config.max_uncommitted_offsets() / 2
            {
                shared.window_released.notify_one();
            }
        }
    }

    /// Publishes `copy` to `topic`, then settles the offset.
    ///
    /// A failed publish is retried with a backoff from 100 ms doubling to 30 s, for as
    /// long as it takes (a missing or refusing destination is an operator's problem to
    /// fix, and the message must not be lost): the delivery stays owned by the runtime
    /// meanwhile (it holds its key's lane and an in-flight slot, so the consumer cannot
    /// run away from it), the partition's commits wait at this offset, and every failure
    /// is a WARN naming topic, partition, offset, destination and error and a count in
    /// `wharf_settle_failures_total{reason}`. It stops when the partition is revoked (the
    /// new owner reads the record again) or when the runtime gives up at its
    /// `settle_timeout` after a shutdown (uncommitted: read again after a restart).
    fn publish_then_settle(
        self,
        topic: String,
        copy: Message,
        extra_headers: Vec<(&'static str, String)>,
        what: &'static str,
    ) -> SettleFuture {
        let KafkaAcker {
            shared,
            state,
            offset,
            message,
        } = self;
        Box::pin(async move {
            const FIRST: Duration = Duration::from_millis(100);
            const LONGEST: Duration = Duration::from_secs(30);
            let mut backoff = FIRST;
            let mut failures = 0u32;
            loop {
                if state.is_revoked() {
                    tracing::info!(message_id = %message.id(), topic = %state.topic, partition = state.partition, offset, "partition revoked while its {what} copy could not be published; the new owner reads the record again");
                    return Err(error::settle(
                        format!("publishing to `{topic}`"),
                        "the partition was revoked before the copy could be published",
                    )
                    .into());
                }
                let sent = send(
                    &shared.producer,
                    shared.publish_timeout,
                    &topic,
                    &copy,
                    &extra_headers,
                )
                .await;
                match sent {
                    Ok(()) => {
                        if failures > 0 {
                            tracing::info!(message_id = %message.id(), destination = %topic, failures, "{what} copy published after failed attempts");
                        }
                        Self::settled(&shared, &state, offset);
                        return Ok(());
                    }
                    Err(e) => {
                        failures += 1;
                        metrics::counter!(
                            wharf::metric_names::SETTLE_FAILURES,
                            "consumer" => shared.group.to_string(),
                            "source" => state.topic.to_string(),
                            "reason" => if what == "dead-letter" { "dead_letter_publish" } else { "retry_publish" },
                        )
                        .increment(1);
                        tracing::warn!(message_id = %message.id(), topic = %state.topic, partition = state.partition, offset, destination = %topic, failures, retry_in = ?backoff, error = %e, "{what} publish failed; retrying (the partition's commits wait at this offset)");
                        tokio::time::sleep(backoff).await;
                        backoff = backoff.saturating_mul(2).min(LONGEST);
                    }
                }
            }
        })
    }
}

impl Acker for KafkaAcker {
    type Future = SettleFuture;

    /// The partition's lease: revoked with the partition, so the runtime cancels this
    /// delivery's waiting in-lane retry and runs nothing more of it.
    fn lease(&self) -> Option<&Lease> {
        Some(&self.state.lease)
    }

    fn settle(self, outcome: Outcome) -> SettleFuture {
        match outcome {
            Outcome::Ack | Outcome::Drop(_) => {
                Self::settled(&self.shared, &self.state, self.offset);
                Box::pin(ready(Ok(())))
            }
            Outcome::DeadLetter(failure) => {
                let topic = self
                    .shared
                    .config
                    .dead_letter_topic_for(self.message.origin().source());
                let mut copy = dead_letter_message(
                    &self.message,
                    &failure,
                    &self.shared.group,
                    DEFAULT_MAX_ERROR_LEN,
                );
                // Cut to the producer's limit, as the dead-letter layer does.
                fit(&mut copy, self.shared.config.max_record_bytes());
                self.publish_then_settle(topic, copy, Vec::new(), "dead-letter")
            }
            Outcome::Retry { after } => match self.shared.config.retry() {
                RetryMode::Topic => {
                    let source = self.message.origin().source().to_owned();
                    let topic = self.shared.config.retry_topic_for(&source);
                    let extra = vec![
                        (
                            names::ATTEMPT,
                            self.message.attempt().saturating_add(1).to_string(),
                        ),
                        (RETRY_NOT_BEFORE, epoch_millis_after(after).to_string()),
                        (RETRY_SOURCE, source),
                    ];
                    let copy = self.message.clone();
                    self.publish_then_settle(topic, copy, extra, "retry-topic")
                }
                // `RetryMode` is non-exhaustive to callers, not here.
                RetryMode::Lane => {
                    tracing::debug!(message_id = %self.message.id(), offset = self.offset, "retry while stopping: left unsettled for the next owner");
                    Box::pin(ready(Ok(())))
                }
            },
        }
    }
}

/// Stores every watermark that moved past its last store, or whose offset map is behind
/// (the driver's periodic flush, and `close` before its commit).
pub(crate) fn store_unstored(shared: &AckerShared) {
    for state in shared.assignment.all() {
        let mut tracker = state.tracker();
        if state.is_revoked() {
            continue;
        }
        if let Some(watermark) = tracker.unstored() {
            store(shared, &state, &mut tracker, watermark);
        }
    }
}

/// Stores `position` (the next offset to read) of `state`'s partition with librdkafka,
/// with the partition's offset map, for its next commit.
pub(crate) fn store(
    shared: &AckerShared,
    state: &PartitionState,
    tracker: &mut Tracker,
    position: i64,
) {
    if let Err(e) = store_position(
        shared.consumer(),
        &state.topic,
        state.partition,
        tracker,
        position,
    ) {
        tracing::debug!(topic = %state.topic, partition = state.partition, error = %e, "storing the watermark failed (partition no longer assigned?)");
    }
}

/// Stores `position` of `topic`/`partition` with librdkafka for the next commit, with
/// the offset map (`offset_map.rs`) of the offsets above it that `tracker` knows are
/// settled (a map too long for the broker is left out and counted: the commit is then
/// the plain position).
pub(crate) fn store_position<K: rdkafka::consumer::Consumer<GroupContext>>(
    consumer: &K,
    topic: &str,
    partition: i32,
    tracker: &mut Tracker,
    position: i64,
) -> rdkafka::error::KafkaResult<()> {
    let map = tracker.offset_map(position).unwrap_or_else(|| {
        metrics::counter!(offset_map::OVERFLOWS, "topic" => topic.to_owned()).increment(1);
        tracing::debug!(
            topic,
            partition,
            "offset map too long to store: committing the plain watermark"
        );
        String::new()
    });
    let mut tpl = TopicPartitionList::with_capacity(1);
    let mut elem = tpl.add_partition(topic, partition);
    elem.set_offset(Offset::Offset(position))?;
    elem.set_metadata(map);
    consumer.store_offsets(&tpl)?;
    tracker.stored(position);
    Ok(())
}
