//! [`KafkaClient`]: the validated configuration and one idempotent producer, from which
//! subscribers and publishers are made.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::FutureProducer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientConfig, Message as _};
use wharf::adapter::{Backlog, Capabilities};
use wharf::adapter::{Client, Description};
use wharf::Error;

use crate::acker::AckerShared;
use crate::config::{validate_topic, KafkaConfig, RetryMode, PUBLISH_TIMEOUT};
use crate::dead_letters::KafkaDeadLetters;
use crate::error;
use crate::message::from_record;
use crate::offsets::Assignment;
use crate::publisher::KafkaPublisher;
use crate::subscriber::{GroupContext, KafkaSubscriber};

/// How long start-up checks (metadata, topic creation) wait for the broker.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A Kafka client: configuration plus a shared idempotent producer, with the same
/// surface as every other adapter's client ([`Client`]).
///
/// A *source* is a topic and a *group* a consumer group; dead letters of topic `t` go to
/// `t.dlq` (for every group; the `wharf-dlq-consumer` header tells them apart).
///
/// ```no_run
/// # async fn run() -> Result<(), wharf::Error> {
/// let kafka = wharf_kafka::KafkaClient::connect("kafka://127.0.0.1:9092?partitions=3".parse()?).await?;
/// kafka.declare("orders", &["billing"]).await?; // topics `orders` and `orders.dlq`
/// let subscriber = kafka.subscriber("orders", "billing").await?;
/// let publisher = kafka.publisher();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KafkaClient {
    config: Arc<KafkaConfig>,
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KafkaClient {
    /// Validates `config` and creates the producer. Nothing connects yet (librdkafka
    /// connects in the background); [`subscriber`](Self::subscriber) and
    /// [`declare`](Self::declare) check the brokers and topics, and say why when they
    /// cannot reach them.
    pub async fn connect(config: KafkaConfig) -> Result<Self, Error> {
        config.validate()?;
        let producer: FutureProducer = config
            .producer_config()
            .create()
            .map_err(|e| config.creation_error(e))?;
        Ok(KafkaClient {
            config: Arc::new(config),
            producer,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// A publisher on the shared producer.
    pub fn publisher(&self) -> KafkaPublisher {
        KafkaPublisher::new(
            self.producer.clone(),
            PUBLISH_TIMEOUT,
            self.config.max_record_bytes(),
        )
    }

    /// Joins consumer group `group` on topic `source` (see [`subscribe`](Self::subscribe)).
    pub async fn subscriber(&self, source: &str, group: &str) -> Result<KafkaSubscriber, Error> {
        self.subscribe(&[source], group).await
    }

    /// Creates topic `source` (with the configuration's [`partitions`](KafkaConfig::partitions)
    /// and the broker's default replication factor) and its dead-letter topic (and, with
    /// [`RetryMode::Topic`], its retry topic) alike, each unless it exists. A group needs nothing declared: one
    /// without a committed offset starts at `offset_reset` (default `earliest`), so it
    /// gets every message retained.
    pub async fn declare(&self, source: &str, groups: &[&str]) -> Result<(), Error> {
        let _ = groups;
        let partitions = self.config.partition_count();
        let mut topics = vec![source.to_owned(), self.config.dead_letter_topic_for(source)];
        if self.config.retry() == RetryMode::Topic {
            topics.push(self.config.retry_topic_for(source));
        }
        for topic in topics {
            validate_topic("topic", &topic)?;
            // The broker's default replication (`default.replication.factor`), as for
            // the dead-letter topics created at start-up: production clusters replicate.
            self.create_topics_with(&topic, partitions, TopicReplication::Fixed(-1))
                .await
                .map_err(|cause| error::connection(format!("creating topic `{topic}`"), cause))?;
        }
        Ok(())
    }

    /// The reader of the dead-letter topics.
    pub fn dead_letters(&self) -> KafkaDeadLetters {
        KafkaDeadLetters {
            client: self.clone(),
        }
    }

    /// Joins the group on the topics the configuration names (the URL's path and
    /// `group`).
    pub async fn configured_subscriber(&self) -> Result<KafkaSubscriber, Error> {
        let group = self
            .config
            .group_id()
            .ok_or_else(|| Error::config("group", "a consumer group is required to subscribe"))?
            .to_owned();
        let topics = self.config.topic_names().to_vec();
        self.subscribe(&topics, &group).await
    }

    /// Joins consumer group `group` on `topics` (other settings from the configuration).
    ///
    /// Fails at start-up when a broker cannot be reached or a source topic does not exist
    /// (create topics first, e.g. with [`create_topic`](Self::create_topic)). The
    /// dead-letter topic of each source (and with [`RetryMode::Topic`] its retry topic)
    /// is checked too: a missing one is created with the source's partition count and
    /// the broker's default replication, or, with
    /// [`create_topics(false)`](KafkaConfig::create_topics), is an error naming it.
    pub async fn subscribe<T: AsRef<str>>(
        &self,
        topics: &[T],
        group: &str,
    ) -> Result<KafkaSubscriber, Error> {
        if topics.is_empty() {
            return Err(Error::config(
                "topics",
                "at least one topic is required to subscribe",
            ));
        }
        if group.trim().is_empty() {
            return Err(Error::config("group", "must not be empty"));
        }
        let mut sources: Vec<String> = Vec::new();
        let mut retry_topics: Vec<String> = Vec::new();
        // Dead-letter and retry topics, with the source topic each is derived from.
        let mut derived: Vec<(String, String)> = Vec::new();
        for topic in topics {
            let topic = topic.as_ref();
            validate_topic("topics", topic)?;
            sources.push(topic.to_owned());
            derived.push((self.config.dead_letter_topic_for(topic), topic.to_owned()));
            if self.config.retry() == RetryMode::Topic {
                let retry = self.config.retry_topic_for(topic);
                retry_topics.push(retry.clone());
                derived.push((retry, topic.to_owned()));
            }
        }
        retry_topics.sort();
        retry_topics.dedup();
        let mut all = sources.clone();
        all.extend(retry_topics.iter().cloned());
        all.sort();
        all.dedup();

        let dead_letters: Vec<String> = sources
            .iter()
            .map(|t| self.config.dead_letter_topic_for(t))
            .collect();
        let description = Description::new("kafka", sources.join(","))
            .group(group)
            .dead_letters(dead_letters.join(","));

        let assignment = Arc::new(Assignment::default());
        let group: Arc<str> = Arc::from(group);
        let context = GroupContext {
            assignment: assignment.clone(),
            group: group.clone(),
        };
        let consumer: crate::subscriber::GroupConsumer = self
            .config
            .consumer_config(&group)
            .create_with_context(context)
            .map_err(|e| self.config.creation_error(e))?;
        let shared = Arc::new(AckerShared::new(
            consumer,
            assignment,
            self.producer.clone(),
            self.config.clone(),
            group,
            PUBLISH_TIMEOUT,
        ));

        // Start-up checks: the brokers answer, every source topic exists, and so does
        // every dead-letter and retry topic (created here when the config allows), so
        // a missing one fails now instead of stalling a partition at its first copy.
        // Made like the member (never subscribes): the same settings, so it is accepted
        // exactly when the member is.
        let probe: BaseConsumer<Probe> = self
            .config
            .consumer_config(&shared.group)
            .create_with_context(Probe::default())
            .map_err(|e| self.config.creation_error(e))?;
        let missing =
            tokio::task::spawn_blocking(move || missing_topics(&probe, &sources, &derived))
                .await
                .map_err(|e| error::connection("checking topics", e))??;
        for (topic, source, partitions) in missing {
            if !self.config.creates_topics() {
                return Err(error::subscribe(
                    format!("topic `{topic}`"),
                    format!("does not exist (the dead-letter or retry topic of `{source}`): create it, or leave `create_topics` on to have it created"),
                ));
            }
            self.create_derived_topic(&topic, &source, partitions)
                .await?;
        }
        let check = shared.clone();
        tokio::task::spawn_blocking(move || {
            let names: Vec<&str> = all.iter().map(String::as_str).collect();
            check
                .consumer()
                .subscribe(&names)
                .map_err(|e| error::subscribe("subscribing", e))
        })
        .await
        .map_err(|e| error::connection("subscribing", e))??;

        Ok(KafkaSubscriber::start(
            shared,
            self.config.buffer_size(),
            self.config.retry(),
            retry_topics,
            description,
        ))
    }

    /// Creates `topic` with `partitions` partitions (replication factor 1) unless it
    /// exists.
    pub async fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), Error> {
        validate_topic("topic", topic)?;
        if partitions < 1 {
            return Err(Error::config("partitions", "must be at least 1"));
        }
        self.create_topics_with(topic, partitions, TopicReplication::Fixed(1))
            .await
            .map_err(|cause| error::connection(format!("creating topic `{topic}`"), cause))
    }

    /// Creates a missing dead-letter or retry topic of `source`: its partition count, the
    /// broker's default replication.
    async fn create_derived_topic(
        &self,
        topic: &str,
        source: &str,
        partitions: i32,
    ) -> Result<(), Error> {
        tracing::info!(
            topic,
            source,
            partitions,
            "creating the missing dead-letter or retry topic (create_topics)"
        );
        self.create_topics_with(topic, partitions, TopicReplication::Fixed(-1))
            .await
            .map_err(|cause| {
                error::subscribe(
                    format!("topic `{topic}`"),
                    format!("does not exist (the dead-letter or retry topic of `{source}`) and could not be created: {cause}; create it, or grant this client CreateTopics"),
                )
            })
    }

    /// Creates `topic` unless it exists; the error is the cause, as text.
    async fn create_topics_with(
        &self,
        topic: &str,
        partitions: i32,
        replication: TopicReplication<'_>,
    ) -> Result<(), String> {
        let admin: AdminClient<DefaultClientContext> = self
            .config
            .client_config()
            .create()
            .map_err(|e| self.config.creation_error(e).to_string())?;
        let options = AdminOptions::new().operation_timeout(Some(STARTUP_TIMEOUT));
        let results = tokio::time::timeout(
            STARTUP_TIMEOUT,
            admin.create_topics(&[NewTopic::new(topic, partitions, replication)], &options),
        )
        .await
        .map_err(|_| format!("no answer within {STARTUP_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(code.to_string()),
            }
        }
        Ok(())
    }

    /// The backlog of group `group` on topic `source`: per partition, the high
    /// watermark less the group's committed offset (the lag) and the committed offset;
    /// the group's members; the records on its dead-letter topic (`<source>.dlq` or the
    /// configured `dead_letter_topic`; every group's). Joins no group. An error when the
    /// topic does not exist; a group that does not exist reads as one that never
    /// committed.
    pub async fn backlog(&self, source: &str, group: &str) -> Result<Backlog, Error> {
        crate::backlog::backlog(&self.config, source, group).await
    }

    /// Reads every record currently in `topic` (all partitions, oldest first per
    /// partition), for inspecting dead-letter and retry topics. Joins no group and
    /// commits nothing; gives up after `wait`.
    pub async fn read_topic(
        &self,
        topic: &str,
        wait: Duration,
    ) -> Result<Vec<wharf::Message>, Error> {
        self.read(topic, wait, false).await
    }

    /// Like [`read_topic`](Self::read_topic), but a missing topic, or partitions not
    /// read to their end within `wait`, is an error instead of fewer records.
    pub(crate) async fn read_topic_fully(
        &self,
        topic: &str,
        wait: Duration,
    ) -> Result<Vec<wharf::Message>, Error> {
        self.read(topic, wait, true).await
    }

    async fn read(
        &self,
        topic: &str,
        wait: Duration,
        strict: bool,
    ) -> Result<Vec<wharf::Message>, Error> {
        validate_topic("topic", topic)?;
        let mut config: ClientConfig = self.config.client_config();
        config
            .set("group.id", format!("wharf-inspect-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        let consumer: BaseConsumer = config.create().map_err(|e| self.config.creation_error(e))?;
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || read_all(&consumer, &topic, wait, strict))
            .await
            .map_err(|e| error::connection("reading a topic", e))?
    }
}

/// Checks that every source topic exists (an error otherwise) and returns the dead-letter
/// and retry topics that do not, as `(topic, source, source's partition count)`.
fn missing_topics(
    probe: &BaseConsumer<Probe>,
    sources: &[String],
    derived: &[(String, String)],
) -> Result<Vec<(String, String, i32)>, Error> {
    let partitions_of = |topic: &str| -> Result<Option<i32>, Error> {
        let metadata = fetch_metadata(probe, topic)?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| i32::try_from(t.partitions().len()).unwrap_or(i32::MAX)))
    };
    let mut counts = HashMap::new();
    for topic in sources {
        match partitions_of(topic)? {
            Some(n) => counts.insert(topic.as_str(), n),
            None => {
                return Err(error::subscribe(
                    format!("topic `{topic}`"),
                    "does not exist (create it first; the adapter never creates source topics)",
                ))
            }
        };
    }
    let mut missing: Vec<(String, String, i32)> = Vec::new();
    for (topic, source) in derived {
        if missing.iter().any(|(t, _, _)| t == topic) || partitions_of(topic)?.is_some() {
            continue;
        }
        let partitions = counts.get(source.as_str()).copied().unwrap_or(1);
        missing.push((topic.clone(), source.clone(), partitions));
    }
    Ok(missing)
}

/// The client behind the start-up checks: it records the errors librdkafka reports on
/// its own (a refused connection, failed authentication, a peer that does not speak
/// Kafka), which reach no returned error otherwise.
#[derive(Debug, Default)]
struct Probe {
    cause: std::sync::Mutex<Option<String>>,
}

impl rdkafka::ClientContext for Probe {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "librdkafka reported an error during the start-up checks");
        let mut cause = self.cause.lock().unwrap_or_else(|e| e.into_inner());
        // "1/1 brokers are down" follows the reason they are down: keep the reason.
        let all_down = matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown)
        );
        if cause.is_none() || !all_down {
            *cause = Some(reason.to_owned());
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Probe {}

/// Metadata for `topic`, asked for in attempts of 1 s, 2 s, 4 s… until
/// [`STARTUP_TIMEOUT`] (a slow broker still gets its answer in). A failed attempt after
/// which librdkafka has reported an error of its own ends at once with that cause: the
/// broker's answer would not change, and a bare timeout would hide it.
fn fetch_metadata(
    probe: &BaseConsumer<Probe>,
    topic: &str,
) -> Result<rdkafka::metadata::Metadata, Error> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut attempt = Duration::from_secs(1);
    loop {
        let wait = attempt.min(deadline.saturating_duration_since(Instant::now()));
        attempt = attempt.saturating_mul(2);
        match probe.fetch_metadata(Some(topic), wait) {
            Ok(metadata) => return Ok(metadata),
            Err(e) => {
                // Serves librdkafka's queued events: its error reports reach `Probe`.
                let _ = probe.poll(Duration::ZERO);
                let cause = probe
                    .context()
                    .cause
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                if let Some(cause) = cause {
                    return Err(error::connection(
                        "connecting to the brokers",
                        explain(cause),
                    ));
                }
                if Instant::now() >= deadline {
                    return Err(error::connection(
                        format!("fetching metadata (no answer within {STARTUP_TIMEOUT:?})"),
                        e,
                    ));
                }
            }
        }
    }
}

/// A partition's low and high watermarks. Right after a broker restart the partition may
/// have no leader yet (`NotLeaderForPartition`, `LeaderNotAvailable`): that is retried
/// every 200 ms within `STARTUP_TIMEOUT`, since the answer changes once the election is
/// done; any other error ends it at once. (Found by the chaos harness: listing dead
/// letters just after a Kafka restart failed.)
pub(crate) fn fetch_watermarks<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), Error> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match consumer.fetch_watermarks(topic, partition, left) {
            Ok(marks) => return Ok(marks),
            Err(KafkaError::MetadataFetch(
                Code::NotLeaderForPartition | Code::LeaderNotAvailable,
            )) if Instant::now() + Duration::from_millis(200) < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(error::connection("fetching watermarks", e)),
        }
    }
}

/// librdkafka's words for a peer that answers in another protocol are a hint about
/// `receive.message.max.bytes`; say what it means first.
fn explain(cause: String) -> String {
    if cause.contains("Invalid response size") || cause.contains("in state APIVERSION_QUERY") {
        format!(
            "the server does not answer as a Kafka broker (not a Kafka broker's address?): {cause}"
        )
    } else {
        cause
    }
}

fn read_all(
    consumer: &BaseConsumer,
    topic: &str,
    wait: Duration,
    strict: bool,
) -> Result<Vec<wharf::Message>, Error> {
    let deadline = Instant::now() + wait;
    let metadata = consumer
        .fetch_metadata(Some(topic), STARTUP_TIMEOUT)
        .map_err(|e| error::connection("fetching metadata", e))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if strict && partitions.is_empty() {
        return Err(error::subscribe(
            format!("topic `{topic}`"),
            "does not exist",
        ));
    }
    let mut ends = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = fetch_watermarks(consumer, topic, p)?;
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Offset(low))
                .map_err(|e| error::connection("assigning", e))?;
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer
        .assign(&tpl)
        .map_err(|e| error::connection("assigning", e))?;
    let topic_arc: Arc<str> = Arc::from(topic);
    while !ends.is_empty() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(record)) => {
                let end = ends.get(&record.partition()).copied();
                out.push(from_record(&record, &topic_arc, false).message);
                if end.is_some_and(|end| record.offset() + 1 >= end) {
                    ends.remove(&record.partition());
                }
            }
            Some(Err(e)) if strict => {
                return Err(error::connection(format!("reading topic `{topic}`"), e))
            }
            Some(Err(e)) => tracing::debug!(error = %e, "reading a topic"),
            None => {}
        }
    }
    if strict && !ends.is_empty() {
        return Err(error::connection(
            format!("reading topic `{topic}`"),
            format!(
                "{} partition(s) not read to their end within {wait:?}",
                ends.len()
            ),
        ));
    }
    Ok(out)
}

impl Client for KafkaClient {
    type Subscriber = KafkaSubscriber;
    type Publisher = KafkaPublisher;
    type DeadLetters = KafkaDeadLetters;

    fn capabilities(&self) -> Capabilities {
        crate::subscriber::capabilities(self.config.retry())
    }

    async fn declare(&self, source: &str, groups: &[&str]) -> Result<(), Error> {
        KafkaClient::declare(self, source, groups).await
    }

    async fn subscriber(&self, source: &str, group: &str) -> Result<KafkaSubscriber, Error> {
        KafkaClient::subscriber(self, source, group).await
    }

    fn publisher(&self) -> KafkaPublisher {
        KafkaClient::publisher(self)
    }

    fn dead_letters(&self) -> KafkaDeadLetters {
        KafkaClient::dead_letters(self)
    }

    async fn backlog(&self, source: &str, group: &str) -> Result<Backlog, Error> {
        KafkaClient::backlog(self, source, group).await
    }
}
