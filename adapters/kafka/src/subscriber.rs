//! Consuming: a consumer-group member whose partitions are read by one driver task.
//!
//! # How records reach the runtime
//!
//! A driver task owns the polling: it calls librdkafka's `recv` (which also serves
//! rebalances and `max.poll.interval.ms`; heartbeats run on librdkafka's own thread),
//! copies each record into a [`Message`](wharf::Message), records its offset with its
//! partition's [watermark tracker](crate::offsets), and queues it for the subscriber. The
//! runtime pulls from that queue only when it has room, so the queue is the backpressure
//! point. Once `buffer` records wait in it, the driver stops taking records for up to a
//! second (librdkafka's prefetch limits hold its own queue meanwhile; nothing is
//! purged or fetched twice, which keeps short bursts cheap). If the handlers are still
//! behind after that, it **pauses** every assigned partition and polls again, so the
//! consumer keeps its group duties however slow the handlers are; once the queue is down
//! to half it resumes them (librdkafka refetches from the position of the last record
//! returned, so nothing is skipped).

//! # Offsets
//!
//! Settled offsets move their partition's watermark (see [`offsets`](crate::offsets));
//! the watermark is stored with librdkafka (at most 64 offsets or 100 ms behind, at once
//! when the partition has nothing left in flight) and committed every
//! `commit_interval`, on every revoke (by librdkafka, before the partition moves) and
//! at [`close`](wharf::adapter::Subscriber::close) (after storing every watermark). Nothing is
//! ever committed past an unsettled offset.
//!
//! # Rebalances
//!
//! On a revoke the partition's watermark is stored (librdkafka commits the stored offsets
//! of removed partitions on its own thread before it rejoins the group: nothing blocks a
//! runtime thread) and the partition is marked revoked:
//! records of it still queued are discarded (not handed out), and settlements of its
//! messages still in flight are ignored. The new owner reads from the committed
//! watermark, so messages in flight during a rebalance are delivered again
//! (at-least-once; the dedup layer absorbs the copies). With librdkafka's default
//! (eager) assignment every rebalance revokes every partition; set
//! `rdkafka.partition.assignment.strategy=cooperative-sticky` to move only the
//! partitions that change owner.
//!
//! # Retry topic
//!
//! With [`RetryMode::Topic`] the subscriber also reads the retry topics. A copy whose
//! not-before time has not come is held (its offset stays unsettled, so its partition's
//! watermark waits for it) and handed out when due. Held copies do **not** count against
//! `buffer`, so pending retries never stop the main topics; they have a budget of their
//! own (`buffer` copies): once that many are held, the driver pauses only the retry
//! topics' partitions, and resumes them when half have come due.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_util::{FutureExt, Stream};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError as RdKafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientContext, Message as _};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};
use wharf::adapter::Description;
use wharf::adapter::{Capabilities, Delivery, Subscriber};
use wharf::Error;

use crate::acker::{store_position, AckerShared, KafkaAcker};
use crate::config::RetryMode;
use crate::error;
use crate::message::{from_record, Received};
use crate::offsets::{Assignment, PartitionState, Registered, STORE_AFTER};

/// What the Kafka adapter promises (see the [crate docs](crate)).
pub fn capabilities(retry: RetryMode) -> Capabilities {
    let mut c = Capabilities::default();
    c.acknowledgements = true;
    c.persistent = true;
    c.redelivers_unacked = true;
    c.ordered_per_key = true;
    c.competing_consumers = true;
    c.fan_out_groups = true;
    c.native_dead_letter = true;
    c.retains_before_subscribe = true;
    c.broker_attempt_count = false;
    match retry {
        RetryMode::Lane => c.retry_in_lane = true,
        RetryMode::Topic => c.native_delay = true,
    }
    c
}

// ===== group membership =====

/// Rebalance handling: revoked partitions are committed and retired, assigned ones get
/// a fresh tracker. Runs inside the driver's polling.
#[derive(Debug)]
pub(crate) struct GroupContext {
    pub(crate) assignment: Arc<Assignment>,
    pub(crate) group: Arc<str>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let lost = consumer.assignment_lost();
                let mut in_flight = 0;
                for elem in tpl.elements() {
                    let Some(state) = self.assignment.remove(elem.topic(), elem.partition()) else {
                        continue;
                    };
                    let mut tracker = state.revoke();
                    in_flight += tracker.unsettled();
                    // Only stored here: librdkafka commits the stored offsets of removed
                    // partitions itself (auto-commit is on) on its own thread, and waits
                    // for that commit before it rejoins. A synchronous commit here would
                    // block this runtime worker for a broker round trip. A lost
                    // assignment belongs to someone else already: nothing is stored, so
                    // nothing moves their position.
                    if !lost {
                        if let Some(position) = tracker.position() {
                            if let Err(e) = store_position(
                                consumer,
                                elem.topic(),
                                elem.partition(),
                                &mut tracker,
                                position,
                            ) {
                                tracing::warn!(group = %self.group, topic = elem.topic(), partition = elem.partition(), error = %e, "storing a revoked partition's watermark failed; the new owner re-reads from the last committed offset");
                            }
                        }
                    }
                }
                tracing::info!(
                    group = %self.group,
                    partitions = tpl.count(),
                    in_flight,
                    lost,
                    "partitions revoked; messages in flight are redelivered to the new owner"
                );
            }
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.group, error = %e, "rebalance error");
            }
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let mut skipped = 0;
            let committed = committed_maps(consumer, tpl, &self.group);
            for elem in tpl.elements() {
                let skip = committed
                    .get(&(elem.topic().to_owned(), elem.partition()))
                    .cloned()
                    .unwrap_or_default();
                skipped += skip.iter().map(|(start, end)| end - start).sum::<i64>();
                self.assignment
                    .assign_with_skip(elem.topic(), elem.partition(), skip);
            }
            if skipped > 0 {
                tracing::info!(group = %self.group, skipped, "offsets settled before the last stop are skipped, not handled again (the commit's offset map)");
            }
            // librdkafka keeps an application pause across a revoke and a new assignment:
            // a partition this member paused (flow control, its uncommitted window) and
            // gets back must start unpaused, as its fresh state says. The driver pauses
            // it again if the queue is still full.
            if let Err(e) = consumer.resume(tpl) {
                tracing::warn!(group = %self.group, error = %e, "resuming newly assigned partitions failed");
            }
            tracing::info!(group = %self.group, partitions = tpl.count(), "partitions assigned");
        }
    }
}

/// How long an assignment waits for the committed offsets' metadata (the offset maps);
/// without an answer the partitions start without one (everything after the committed
/// offset is handled again, as before offset maps). The fetch runs in the rebalance
/// callback, on the driver's runtime worker, so the bound is short: a coordinator still
/// loading after a broker restart must not hold the driver for long. (With a 5 s bound a
/// chaos run's consumer once missed its 30 s stop deadline after a broker restart;
/// whether this fetch was part of it is not known.)
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(1);

/// The offset maps committed for the partitions of `tpl`: per partition the ranges
/// settled above the committed offset.
fn committed_maps(
    consumer: &BaseConsumer<GroupContext>,
    tpl: &rdkafka::TopicPartitionList,
    group: &str,
) -> HashMap<(String, i32), Vec<(i64, i64)>> {
    let committed = match consumer.committed_offsets(tpl.clone(), COMMITTED_TIMEOUT) {
        Ok(committed) => committed,
        Err(e) => {
            tracing::warn!(group, error = %e, "reading the committed offset maps failed: records settled before the last stop may be handled again");
            return HashMap::new();
        }
    };
    committed
        .elements()
        .into_iter()
        .filter_map(|elem| {
            let rdkafka::Offset::Offset(at) = elem.offset() else {
                return None;
            };
            let ranges = crate::offset_map::decode(elem.metadata(), at)?;
            Some(((elem.topic().to_owned(), elem.partition()), ranges))
        })
        .collect()
}

pub(crate) type GroupConsumer = StreamConsumer<GroupContext>;

/// Reads a subscriber's current assignment (see
/// [`KafkaSubscriber::assigned_partitions`]); cheap to clone.
#[derive(Debug, Clone)]
pub struct AssignedPartitions(Arc<Assignment>);

impl AssignedPartitions {
    /// The partitions assigned now, as `(topic, partition)`, sorted.
    pub fn get(&self) -> Vec<(String, i32)> {
        let mut all: Vec<_> = self
            .0
            .all()
            .iter()
            .map(|s| (s.topic.to_string(), s.partition))
            .collect();
        all.sort();
        all
    }
}

// ===== driver =====

/// What the driver hands the subscriber.
enum Fetched {
    Record(Received, Arc<PartitionState>),
    Error(RdKafkaError),
}

/// Flow control between the driver and the subscriber.
#[derive(Debug)]
struct Flow {
    /// Records queued, not yet handed out (or moved to the held retry copies).
    buffered: AtomicUsize,
    capacity: usize,
    /// The driver waits for room (set by the driver, cleared by the subscriber when it
    /// wakes it).
    waiting: AtomicBool,
    space: Notify,
    /// Retry copies held until due: a budget of their own (`capacity`), so held retries
    /// never stop the main topics.
    held: AtomicUsize,
    /// The driver paused the retry topics for held copies and waits for them to drain.
    held_waiting: AtomicBool,
    held_space: Notify,
    /// The retry topics ([`RetryMode::Topic`]), whose partitions pause for held copies.
    retry_topics: Vec<String>,
    stop: Notify,
}

impl Flow {
    fn is_retry_topic(&self, topic: &str) -> bool {
        self.retry_topics.iter().any(|t| t == topic)
    }
}

/// How long the driver stops taking records from librdkafka when the queue is full,
/// before it pauses the partitions and goes back to polling.
const SOFT_STOP: Duration = Duration::from_secs(1);

async fn drive(shared: Arc<AckerShared>, flow: Arc<Flow>, tx: mpsc::UnboundedSender<Fetched>) {
    let consumer = shared.consumer();
    // Every assigned partition paused: the queue is full.
    let mut paused = false;
    // The retry topics' partitions paused: the held retry copies are at their budget.
    let mut retry_paused = false;
    let mut flush = tokio::time::interval(STORE_AFTER);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !retry_paused
            && !flow.retry_topics.is_empty()
            && flow.held.load(Ordering::Acquire) >= flow.capacity
        {
            flow.held_waiting.store(true, Ordering::Release);
            // Checked again after announcing the wait: the subscriber may have drained
            // them meanwhile without seeing the flag.
            if flow.held.load(Ordering::Acquire) >= flow.capacity {
                retry_paused = true;
                set_paused(consumer, true, |topic, _| flow.is_retry_topic(topic));
            }
        }
        if !paused && flow.buffered.load(Ordering::Acquire) >= flow.capacity {
            // The queue is full. Stop taking records for a moment: librdkafka's own
            // prefetch limits hold its queue meanwhile, and nothing is refetched. If the
            // handlers are still behind after `SOFT_STOP`, pause the partitions and poll
            // again, so rebalances and `max.poll.interval.ms` are served.
            flow.waiting.store(true, Ordering::Release);
            if flow.buffered.load(Ordering::Acquire) > flow.capacity / 2 {
                let soft_stop = tokio::time::sleep(SOFT_STOP);
                tokio::pin!(soft_stop);
                loop {
                    tokio::select! {
                        biased;
                        () = flow.stop.notified() => return,
                        () = tx.closed() => return,
                        () = flow.space.notified() => break,
                        () = &mut soft_stop => {
                            paused = true;
                            set_paused(consumer, true, |_, _| true);
                            break;
                        }
                        // Settlements go on meanwhile: keep their stores at most 100 ms
                        // behind.
                        _ = flush.tick() => crate::acker::store_unstored(&shared),
                    }
                }
            }
            continue;
        }
        tokio::select! {
            biased;
            () = flow.stop.notified() => break,
            () = tx.closed() => break,
            () = flow.space.notified(), if paused => {
                paused = false;
                // The retry topics stay paused while their held copies are at budget, and
                // a partition paused for its window stays paused until it is released.
                set_paused(consumer, false, |topic, partition| {
                    let held = retry_paused && flow.is_retry_topic(topic);
                    !held && !window_paused(&shared, topic, partition)
                });
                resume_released_windows(&shared, |topic| retry_paused && flow.is_retry_topic(topic));
            }
            () = flow.held_space.notified(), if retry_paused => {
                retry_paused = false;
                if !paused {
                    set_paused(consumer, false, |topic, partition| {
                        flow.is_retry_topic(topic) && !window_paused(&shared, topic, partition)
                    });
                    // A retry partition whose window was released while the held copies
                    // kept it paused: its release notification is spent.
                    resume_released_windows(&shared, |_| false);
                }
            }
            () = shared.window_released.notified(), if !paused => {
                resume_released_windows(&shared, |topic| retry_paused && flow.is_retry_topic(topic));
            }
            _ = flush.tick() => crate::acker::store_unstored(&shared),
            fetched = consumer.recv() => {
                // Then whatever else librdkafka has ready, without going through the
                // `select!` (and its wake-up registrations) for every record.
                let mut next = Some(fetched);
                let mut batch = 0;
                while let Some(fetched) = next.take() {
                    match queue(&shared, &flow, &tx, fetched) {
                        Queued::Closed => return,
                        Queued::Over if paused => {
                            // A record while paused: a partition assigned since the pause.
                            flow.waiting.store(true, Ordering::Release);
                            set_paused(consumer, true, |_, _| true);
                            break;
                        }
                        Queued::Over => break,
                        Queued::Room | Queued::Skipped => {}
                    }
                    batch += 1;
                    if batch < DRIVER_BATCH {
                        next = consumer.recv().now_or_never();
                    }
                }
            }
        }
    }
}

/// Records the driver takes from librdkafka in a row while they are ready.
const DRIVER_BATCH: usize = 64;

/// What [`queue`] did with a fetched record.
enum Queued {
    /// Queued; the queue has room.
    Room,
    /// Queued; the queue is full now.
    Over,
    /// Not handed out (read again while in flight or done, or not assigned).
    Skipped,
    /// The subscriber is gone.
    Closed,
}

/// Registers a fetched record with its partition's tracker and queues it for the
/// subscriber (errors are queued too, for the runtime to report).
fn queue(
    shared: &AckerShared,
    flow: &Flow,
    tx: &mpsc::UnboundedSender<Fetched>,
    fetched: KafkaResult<BorrowedMessage<'_>>,
) -> Queued {
    let item = match fetched {
        Ok(record) => {
            let topic = record.topic();
            let Some(state) = shared.assignment.get(topic, record.partition()) else {
                // Partitions are added in the rebalance callback, before any of their
                // records can be returned; a record of a partition not (or no longer)
                // assigned is stale. Skipped, never given a tracker: a tracker made here
                // would outlive into the partition's next assignment and refuse the
                // records that assignment re-reads from the committed offset.
                tracing::debug!(
                    topic,
                    partition = record.partition(),
                    offset = record.offset(),
                    "record of a partition not assigned to this member; skipped"
                );
                return Queued::Skipped;
            };
            let mut tracker = state.tracker();
            let skipped = match tracker.register(record.offset()) {
                Registered::Handed => None,
                Registered::Reread => {
                    Some("record read again while in flight or done; not handed out twice")
                }
                Registered::Settled => Some(
                    "record settled before the last stop (the commit's offset map); not handed out again",
                ),
            };
            if let Some(why) = skipped {
                tracing::debug!(
                    topic,
                    partition = record.partition(),
                    offset = record.offset(),
                    "{why}"
                );
                return Queued::Skipped;
            }
            let uncommitted = tracker.uncommitted();
            drop(tracker);
            if uncommitted >= shared.config.max_uncommitted_offsets()
                && !state.window_paused.swap(true, Ordering::AcqRel)
            {
                // Something early in the partition is stuck (a copy that cannot be
                // published, a slow retry): stop reading this partition alone until half
                // of its window is committable, so later offsets cannot pile up.
                tracing::warn!(
                    topic,
                    partition = record.partition(),
                    uncommitted,
                    "partition paused: this many offsets wait behind an unsettled one (max_uncommitted)"
                );
                pause_partition(shared.consumer(), topic, record.partition(), true);
            }
            let received = from_record(&record, &state.topic, flow.is_retry_topic(topic));
            Fetched::Record(received, state)
        }
        Err(e @ RdKafkaError::MessageConsumptionFatal(_)) => {
            // librdkafka's instance is unusable (a fenced static member, say): the error,
            // then the end of the stream, so the consumer stops with it instead of waiting
            // for records that never come. Restarting the process makes a new instance.
            tracing::error!(error = %e, "fatal consumer error; the subscription ends");
            let _ = tx.send(Fetched::Error(e));
            return Queued::Closed;
        }
        Err(e) => Fetched::Error(e),
    };
    // Counted before it is queued: the subscriber counts it down once taken.
    let over = matches!(item, Fetched::Record(..))
        && flow.buffered.fetch_add(1, Ordering::AcqRel) + 1 >= flow.capacity;
    if tx.send(item).is_err() {
        return Queued::Closed;
    }
    if over {
        Queued::Over
    } else {
        Queued::Room
    }
}

/// Pauses or resumes the assigned partitions `which` selects by topic and partition.
/// Pauses or resumes one partition.
fn pause_partition(consumer: &GroupConsumer, topic: &str, partition: i32, pause: bool) {
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    pause_or_resume(consumer, &tpl, pause);
}

/// Resumes the partitions paused for their uncommitted window whose window is half
/// committable again (unless the rest of the flow control keeps them paused).
fn resume_released_windows(shared: &AckerShared, keep_paused: impl Fn(&str) -> bool) {
    let half = shared.config.max_uncommitted_offsets() / 2;
    for state in shared.assignment.all() {
        if !state.window_paused.load(Ordering::Acquire) || keep_paused(&state.topic) {
            continue;
        }
        let uncommitted = state.tracker().uncommitted();
        if uncommitted <= half && state.window_paused.swap(false, Ordering::AcqRel) {
            tracing::info!(topic = %state.topic, partition = state.partition, uncommitted, "partition resumed: its uncommitted window is half free");
            pause_partition(shared.consumer(), &state.topic, state.partition, false);
        }
    }
}

/// Whether `topic`/`partition` is paused for its uncommitted window.
fn window_paused(shared: &AckerShared, topic: &str, partition: i32) -> bool {
    shared
        .assignment
        .get(topic, partition)
        .is_some_and(|state| state.window_paused.load(Ordering::Acquire))
}

fn set_paused(consumer: &GroupConsumer, pause: bool, which: impl Fn(&str, i32) -> bool) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let mut selected = rdkafka::TopicPartitionList::new();
    for elem in assignment.elements() {
        if which(elem.topic(), elem.partition()) {
            selected.add_partition(elem.topic(), elem.partition());
        }
    }
    if selected.count() > 0 {
        pause_or_resume(consumer, &selected, pause);
    }
}

/// Pauses or resumes the partitions in `tpl`; a failure is logged (flow control goes on
/// with the next pause or resume).
fn pause_or_resume(consumer: &GroupConsumer, tpl: &rdkafka::TopicPartitionList, pause: bool) {
    let result = if pause {
        consumer.pause(tpl)
    } else {
        consumer.resume(tpl)
    };
    match result {
        Ok(()) => tracing::debug!(pause, partitions = tpl.count(), "flow control"),
        Err(e) => {
            tracing::warn!(pause, partitions = ?tpl, error = %e, "pausing or resuming partitions failed")
        }
    }
}

// ===== subscriber =====

/// A consumer-group member; see the [module docs](self).
///
/// Create it with [`KafkaClient::subscriber`](crate::KafkaClient::subscriber).
pub struct KafkaSubscriber {
    shared: Arc<AckerShared>,
    flow: Arc<Flow>,
    rx: mpsc::UnboundedReceiver<Fetched>,
    driver: Option<JoinHandle<()>>,
    /// Retry copies not yet due, by due time.
    delayed: BTreeMap<(Instant, u64), (Received, Arc<PartitionState>)>,
    delayed_seq: u64,
    timer: Option<Pin<Box<Sleep>>>,
    capabilities: Capabilities,
    description: Description,
}

impl std::fmt::Debug for KafkaSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSubscriber")
            .field("group", &self.shared.group)
            .field("buffered", &self.flow.buffered.load(Ordering::Relaxed))
            .field("delayed", &self.delayed.len())
            .finish_non_exhaustive()
    }
}

impl KafkaSubscriber {
    pub(crate) fn start(
        shared: Arc<AckerShared>,
        buffer: usize,
        retry: RetryMode,
        retry_topics: Vec<String>,
        description: Description,
    ) -> Self {
        let flow = Arc::new(Flow {
            buffered: AtomicUsize::new(0),
            capacity: buffer,
            waiting: AtomicBool::new(false),
            space: Notify::new(),
            held: AtomicUsize::new(0),
            held_waiting: AtomicBool::new(false),
            held_space: Notify::new(),
            retry_topics,
            stop: Notify::new(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = tokio::spawn(drive(shared.clone(), flow.clone(), tx));
        KafkaSubscriber {
            shared,
            flow,
            rx,
            driver: Some(driver),
            delayed: BTreeMap::new(),
            delayed_seq: 0,
            timer: None,
            capabilities: capabilities(retry),
            description,
        }
    }

    /// The partitions currently assigned to this member, as `(topic, partition)`.
    pub fn assigned(&self) -> Vec<(String, i32)> {
        self.assigned_partitions().get()
    }

    /// A handle that reads this member's assignment, for after the subscriber moved
    /// into a [`Consumer`](wharf::Consumer) (health checks, "who owns which partition").
    pub fn assigned_partitions(&self) -> AssignedPartitions {
        AssignedPartitions(self.shared.assignment.clone())
    }

    /// A record leaves the queue (handed out or discarded); wakes the driver once the
    /// queue is down to half.
    fn dequeued(&self) {
        let flow = &*self.flow;
        release_one(&flow.buffered, flow.capacity, &flow.waiting, &flow.space);
    }

    /// A held retry copy leaves the held set; wakes the driver once half its budget is
    /// free.
    fn unheld(&self) {
        let flow = &*self.flow;
        release_one(
            &flow.held,
            flow.capacity,
            &flow.held_waiting,
            &flow.held_space,
        );
    }

    fn deliver(
        &self,
        received: Received,
        state: Arc<PartitionState>,
    ) -> Option<Delivery<KafkaAcker>> {
        if state.is_revoked() {
            return None;
        }
        let acker = KafkaAcker::new(
            self.shared.clone(),
            state,
            received.offset,
            received.message.clone(),
        );
        Some(Delivery::new(received.message, acker))
    }
}

impl Stream for KafkaSubscriber {
    type Item = Result<Delivery<KafkaAcker>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            // Retry copies that came due go first.
            if let Some(entry) = this.delayed.first_entry() {
                if entry.key().0 <= Instant::now() {
                    let (received, state) = entry.remove();
                    this.unheld();
                    match this.deliver(received, state) {
                        Some(d) => return Poll::Ready(Some(Ok(d))),
                        None => continue,
                    }
                }
            }
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(Fetched::Record(received, state))) => {
                    // Out of the queue: held copies have a budget of their own.
                    this.dequeued();
                    if let Some(due) = received.not_before.and_then(due_instant) {
                        if !state.is_revoked() {
                            this.delayed_seq += 1;
                            this.delayed
                                .insert((due, this.delayed_seq), (received, state));
                            this.flow.held.fetch_add(1, Ordering::AcqRel);
                            this.timer = None;
                        }
                        continue;
                    }
                    match this.deliver(received, state) {
                        Some(d) => return Poll::Ready(Some(Ok(d))),
                        None => continue,
                    }
                }
                Poll::Ready(Some(Fetched::Error(e))) => {
                    return Poll::Ready(Some(Err(error::subscribe("consuming", e))));
                }
                Poll::Ready(None) if this.delayed.is_empty() => return Poll::Ready(None),
                Poll::Ready(None) | Poll::Pending => {}
            }
            // Wait for the earliest delayed copy.
            let Some(((due, _), _)) = this.delayed.first_key_value() else {
                return Poll::Pending;
            };
            let due = *due;
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
            if timer.deadline() != due {
                timer.as_mut().reset(due);
            }
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Counts one record out of `count` and wakes the driver, if it is `waiting`, once the
/// count is down to half of `capacity` (the queue and the held retry copies alike).
fn release_one(count: &AtomicUsize, capacity: usize, waiting: &AtomicBool, wake: &Notify) {
    let left = count.fetch_sub(1, Ordering::AcqRel) - 1;
    if left <= capacity / 2 && waiting.swap(false, Ordering::AcqRel) {
        wake.notify_one();
    }
}

/// The tokio instant of a not-before time still in the future. The header comes from
/// the record, so any value must be safe: a time beyond what `Instant` holds is held
/// for a century instead of panicking.
fn due_instant(not_before: SystemTime) -> Option<Instant> {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let wait = not_before.duration_since(SystemTime::now()).ok()?;
    let now = Instant::now();
    (!wait.is_zero()).then(|| now.checked_add(wait.min(FAR)).unwrap_or(now))
}

impl Subscriber for KafkaSubscriber {
    type Acker = KafkaAcker;

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn describe(&self) -> Description {
        self.description.clone()
    }

    /// Stops polling, commits the stored watermarks synchronously and leaves the group.
    /// Records fetched but not handed out, and retry copies not yet due, are not
    /// committed: the next owner reads them. A failed final commit (the group is
    /// rebalancing, the broker is gone) is logged, not returned: nothing is lost, the next
    /// owner re-reads from the last committed offset.
    async fn close(mut self) -> Result<(), Error> {
        self.flow.stop.notify_one();
        if let Some(driver) = self.driver.take() {
            let _ = driver.await;
        }
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            // Watermarks whose store was left for later (see `Tracker::store_due`).
            crate::acker::store_unstored(&shared);
            match shared.consumer().commit_consumer_state(CommitMode::Sync) {
                // Nothing stored since the last commit.
                Ok(()) | Err(RdKafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                // Nothing is lost: the next owner of these partitions reads from the last
                // committed offset, so settled messages after it are delivered again.
                Err(e) => tracing::warn!(
                    group = %shared.group,
                    error = %e,
                    "the final commit failed (group rebalancing or broker unreachable); the next owner re-reads from the last committed offset"
                ),
            }
            shared.consumer().unsubscribe();
        })
        .await
        .map_err(|e| error::connection("closing the consumer", e))
    }
}

impl Drop for KafkaSubscriber {
    fn drop(&mut self) {
        // Stops the driver if `close` was not called (the queue's receiver also goes).
        self.flow.stop.notify_one();
    }
}
