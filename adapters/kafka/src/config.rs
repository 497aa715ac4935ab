//! Configuration: a URL or a builder, validated before anything connects.
//!
//! # URL form
//!
//! ```text
//! kafka://[user:password@]host:port[,host:port...]/<topic>[,<topic>...]?group=<group>&...
//! kafka+ssl://[user:password@]host:port[,...]/<topic>?group=<group>&...
//! ```
//!
//! The path lists the topics to consume (and the default destination of the dead-letter
//! and retry topics, derived from each source topic). `kafka+ssl` uses TLS; credentials
//! in the URL switch SASL on (`PLAIN` unless `sasl_mechanism` says otherwise). Every
//! query parameter:
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `group` | required to subscribe | consumer group id |
//! | `client_id` | `wharf` | client id the broker logs |
//! | `offset_reset` | `earliest` | where a group without a committed offset starts: `earliest` or `latest` |
//! | `group_protocol` | `classic` | `classic` (client-side assignment, eager or cooperative) or `consumer` (KIP-848: the broker assigns, incrementally; Kafka 4.0+) |
//! | `session_timeout` | librdkafka's (45 s) | group session timeout ([humantime]; `classic` only: with `consumer` the broker's `group.consumer.session.timeout.ms` applies) |
//! | `commit_interval` | `1s` | how often stored watermarks are committed |
//! | `buffer` | `1024` | messages fetched ahead of the handlers before partitions are paused |
//! | `partitions` | `1` | partitions of the topics [`KafkaClient::declare`](crate::KafkaClient::declare) creates (a group has at most this many members at work) |
//! | `max_uncommitted` | `10000` | offsets one partition may run ahead of its committable watermark (waiting behind an unsettled one) before that partition alone is paused |
//! | `create_topics` | `true` | create missing dead-letter and retry topics at start-up (with the source topic's partition count and the broker's default replication); `false`: a missing one is a start-up error |
//! | `retry` | `lane` | `lane` (retry inside the key's lane, order kept) or `topic` (republish to the retry topic) |
//! | `retry_topic` | `<topic>.retry` | where `retry=topic` republishes (one per source topic) |
//! | `dead_letter_topic` | `<topic>.dlq` | where `DeadLetter` settlements publish |
//! | `sasl_mechanism` | `PLAIN` | `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (SCRAM needs the `ssl` feature) |
//! | `tls_ca_file` | system roots | PEM file of root certificates (with `kafka+ssl`) |
//! | `rdkafka.<property>` | | any other librdkafka property, passed through |
//!
//! The producer is idempotent (`acks=all`) with `linger.ms=1` and
//! `message.timeout.ms=30000`: a publish (and a retry-topic or dead-letter copy) the
//! brokers have not acknowledged within 30 s fails with an error instead of waiting out
//! librdkafka's default of five minutes. `rdkafka.message.timeout.ms` (or its alias
//! `rdkafka.delivery.timeout.ms`) changes it.
//!
//! Unknown parameters are errors (a typo never silently falls back to a default), and so
//! are pass-through properties the adapter manages itself (`bootstrap.servers`,
//! `group.id`, the offset-commit settings).
//!
//! # Secrets
//!
//! The SASL password lives in a [`Secret`], whose `Debug` prints `***`; pass-through
//! properties whose name mentions a password, secret, key or token are redacted the same
//! way. No error message repeats the URL or a secret value, and librdkafka's own
//! configuration errors are reported by property name only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use wharf::adapter::broker_url::{self, decode};
use wharf::Error;

pub use wharf::adapter::secret::Secret;

/// How long a publish (and a dead-letter or retry-topic copy) waits for the brokers'
/// acknowledgement: the producer's `message.timeout.ms` unless set, and the bound on
/// waiting for room in its queue.
pub(crate) const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// How `Retry { after }` is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RetryMode {
    /// The runtime waits `after` inside the message's key lane and runs it again: order
    /// per key is kept, other keys of the partition keep flowing, and the partition's
    /// committed offset waits for the message. The default.
    #[default]
    Lane,
    /// The message is republished to the retry topic (with `wharf-attempt` raised and a
    /// not-before time) and its offset settled; the subscriber also consumes the retry
    /// topic and runs the copy once it is due. **Not order-preserving**: later messages
    /// of the same key run before the retry.
    Topic,
}

/// The consumer group protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GroupProtocol {
    /// The classic protocol: members join, the group leader assigns. The assignment
    /// strategy is librdkafka's (`range,roundrobin`, eager: every rebalance revokes
    /// every partition) unless `rdkafka.partition.assignment.strategy` says otherwise
    /// (`cooperative-sticky` moves only the partitions that change owner). The default;
    /// every Kafka broker has it.
    #[default]
    Classic,
    /// KIP-848's `consumer` protocol (Kafka 4.0+): the broker assigns partitions
    /// incrementally and owns the session timeout and heartbeat interval
    /// (`group.consumer.*` broker settings), so `session_timeout`,
    /// `session.timeout.ms`, `heartbeat.interval.ms` and
    /// `partition.assignment.strategy` are refused with it.
    Consumer,
}

impl GroupProtocol {
    fn as_str(self) -> &'static str {
        match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
        }
    }
}

/// The SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SaslMechanism {
    /// User and password in the clear (use it with TLS).
    #[default]
    Plain,
    /// SCRAM-SHA-256 (needs the `ssl` feature).
    ScramSha256,
    /// SCRAM-SHA-512 (needs the `ssl` feature).
    ScramSha512,
}

impl SaslMechanism {
    fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Sasl {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// The user name (not secret).
    pub username: String,
    /// The password.
    pub password: Secret,
}

impl fmt::Debug for Sasl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sasl")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// Where a group without a committed offset starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// From the oldest retained message. The default: nothing published before the
    /// group's first start is skipped.
    #[default]
    Earliest,
    /// From the end: only messages published after the group joined.
    Latest,
}

/// A pass-through librdkafka property value; redacted in `Debug` when its name suggests
/// a secret.
#[derive(Clone, PartialEq, Eq)]
struct OptionValue {
    value: String,
    secret: bool,
}

/// Names of properties whose values are never printed.
fn is_secret_property(name: &str) -> bool {
    ["password", "secret", "key", "token", "jaas", "pem"]
        .iter()
        .any(|s| name.contains(s))
}

/// Properties the adapter sets itself; passing them through would break its guarantees.
const MANAGED_PROPERTIES: &[(&str, &str)] = &[
    (
        "bootstrap.servers",
        "set the brokers in the URL or with `brokers`",
    ),
    (
        "metadata.broker.list",
        "set the brokers in the URL or with `brokers`",
    ),
    ("group.id", "set it with `group`"),
    ("group.protocol", "set it with `group_protocol`"),
    (
        "enable.auto.commit",
        "the adapter commits settled watermarks itself",
    ),
    (
        "enable.auto.offset.store",
        "the adapter stores settled watermarks itself",
    ),
    ("auto.commit.interval.ms", "set it with `commit_interval`"),
    ("enable.idempotence", "the publisher is always idempotent"),
    (
        "acks",
        "the publisher always waits for all in-sync replicas",
    ),
    ("sasl.password", "set it with `sasl`, which keeps it secret"),
];

/// Everything the adapter needs: brokers, topics, group, security, tuning.
///
/// Build it from a URL (`"kafka://127.0.0.1:9092/orders?group=billing".parse()`, see the
/// [module docs](self)) or with [`KafkaConfig::new`] and the setters.
/// [`validate`](Self::validate) runs before connecting, so a bad setting fails at start-up
/// as [`wharf::Error::Config`] naming the field.
///
/// ```
/// use std::time::Duration;
/// use wharf_kafka::KafkaConfig;
///
/// let from_url: KafkaConfig =
///     "kafka://app:s3cret@127.0.0.1:9092/orders?group=billing&session_timeout=6s".parse()?;
/// let built = KafkaConfig::new("127.0.0.1:9092", ["orders"])
///     .group("billing")
///     .sasl_plain("app", "s3cret")
///     .session_timeout(Duration::from_secs(6));
/// assert_eq!(from_url, built);
/// assert!(!format!("{from_url:?}").contains("s3cret"));
/// # Ok::<(), wharf::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    brokers: Vec<String>,
    topics: Vec<String>,
    group: Option<String>,
    client_id: String,
    tls: bool,
    tls_ca_file: Option<PathBuf>,
    sasl: Option<Sasl>,
    offset_reset: OffsetReset,
    group_protocol: GroupProtocol,
    session_timeout: Option<Duration>,
    commit_interval: Duration,
    buffer: usize,
    max_uncommitted: usize,
    partitions: i32,
    create_topics: bool,
    retry: RetryMode,
    retry_topic: Option<String>,
    dead_letter_topic: Option<String>,
    options: BTreeMap<String, OptionValue>,
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Options<'a>(&'a BTreeMap<String, OptionValue>);
        impl fmt::Debug for Options<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(
                        self.0
                            .iter()
                            .map(|(k, v)| (k, if v.secret { "***" } else { v.value.as_str() })),
                    )
                    .finish()
            }
        }
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topics", &self.topics)
            .field("group", &self.group)
            .field("client_id", &self.client_id)
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("sasl", &self.sasl)
            .field("offset_reset", &self.offset_reset)
            .field("group_protocol", &self.group_protocol)
            .field("session_timeout", &self.session_timeout)
            .field("commit_interval", &self.commit_interval)
            .field("buffer", &self.buffer)
            .field("max_uncommitted", &self.max_uncommitted)
            .field("partitions", &self.partitions)
            .field("create_topics", &self.create_topics)
            .field("retry", &self.retry)
            .field("retry_topic", &self.retry_topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("options", &Options(&self.options))
            .finish()
    }
}

impl KafkaConfig {
    /// Brokers (`host:port`, comma-separated for several) and the topics to consume;
    /// every other setting default.
    pub fn new<I, T>(brokers: impl Into<String>, topics: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        KafkaConfig {
            brokers: brokers
                .into()
                .split(',')
                .map(|b| b.trim().to_owned())
                .collect(),
            topics: topics.into_iter().map(Into::into).collect(),
            group: None,
            client_id: "wharf".to_owned(),
            tls: false,
            tls_ca_file: None,
            sasl: None,
            offset_reset: OffsetReset::Earliest,
            group_protocol: GroupProtocol::Classic,
            session_timeout: None,
            commit_interval: Duration::from_secs(1),
            buffer: 1024,
            max_uncommitted: 10_000,
            partitions: 1,
            create_topics: true,
            retry: RetryMode::Lane,
            retry_topic: None,
            dead_letter_topic: None,
            options: BTreeMap::new(),
        }
    }

    /// Parses a URL (see the [module docs](self)) and validates it.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        parse_url(url)
    }

    /// The consumer group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Replaces the topics to consume.
    pub fn topics<I, T>(mut self, topics: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.topics = topics.into_iter().map(Into::into).collect();
        self
    }

    /// The client id the broker logs.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// Use TLS (`security.protocol` `ssl`, or `sasl_ssl` with SASL). Needs the `ssl`
    /// feature.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Root certificates (PEM) to trust for TLS.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// SASL `PLAIN` with user and password.
    pub fn sasl_plain(self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.sasl(SaslMechanism::Plain, username, password)
    }

    /// SASL with the given mechanism.
    pub fn sasl(
        mut self,
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.sasl = Some(Sasl {
            mechanism,
            username: username.into(),
            password: Secret::new(password),
        });
        self
    }

    /// Where a group without a committed offset starts.
    pub fn offset_reset(mut self, reset: OffsetReset) -> Self {
        self.offset_reset = reset;
        self
    }

    /// The consumer group protocol (default [`GroupProtocol::Classic`]).
    pub fn group_protocol(mut self, protocol: GroupProtocol) -> Self {
        self.group_protocol = protocol;
        self
    }

    /// The group session timeout: how long the coordinator waits for a silent member
    /// before handing its partitions to others.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = Some(timeout);
        self
    }

    /// How often stored watermarks are committed (also on revoke and at shutdown).
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// Offsets one partition may hold between its committable watermark and its newest
    /// record handed out (settled ones waiting behind an unsettled one included); at
    /// that many the partition alone is paused until half of them are committable, so a
    /// stuck message (a dead letter that cannot be published) bounds memory instead of
    /// letting every later offset pile up.
    pub fn max_uncommitted(mut self, offsets: usize) -> Self {
        self.max_uncommitted = offsets;
        self
    }

    /// Partitions of the topics [`KafkaClient::declare`](crate::KafkaClient::declare)
    /// creates (default 1): the most members of one group that get work.
    pub fn partitions(mut self, partitions: i32) -> Self {
        self.partitions = partitions;
        self
    }

    /// Whether missing dead-letter and retry topics are created at start-up (default
    /// `true`, see the [module docs](self)).
    pub fn create_topics(mut self, create: bool) -> Self {
        self.create_topics = create;
        self
    }

    /// Messages fetched ahead of the handlers; beyond it the subscriber pauses its
    /// partitions (and keeps polling, so the group membership stays alive).
    pub fn buffer(mut self, messages: usize) -> Self {
        self.buffer = messages;
        self
    }

    /// How `Retry` is carried out (see [`RetryMode`]).
    pub fn retry_mode(mut self, mode: RetryMode) -> Self {
        self.retry = mode;
        self
    }

    /// The retry topic for [`RetryMode::Topic`] (default `<topic>.retry` per source topic).
    pub fn retry_topic(mut self, topic: impl Into<String>) -> Self {
        self.retry_topic = Some(topic.into());
        self
    }

    /// Where `DeadLetter` settlements publish (default `<topic>.dlq` per source topic).
    pub fn dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter_topic = Some(topic.into());
        self
    }

    /// Sets any other librdkafka property (`fetch.min.bytes`, `linger.ms`, ...).
    /// Checked at start-up: managed properties are refused, unknown ones are reported by
    /// librdkafka.
    pub fn option(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        let secret = is_secret_property(&name);
        self.options.insert(
            name,
            OptionValue {
                value: value.into(),
                secret,
            },
        );
        self
    }

    // ===== accessors =====

    /// The brokers (`host:port`), without credentials.
    pub fn brokers(&self) -> &[String] {
        &self.brokers
    }

    /// The topics consumed.
    pub fn topic_names(&self) -> &[String] {
        &self.topics
    }

    /// The consumer group, if set.
    pub fn group_id(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// Messages fetched ahead of the handlers.
    pub fn buffer_size(&self) -> usize {
        self.buffer
    }

    /// Offsets a partition may run ahead of its committable watermark before it is paused.
    pub fn max_uncommitted_offsets(&self) -> usize {
        self.max_uncommitted
    }

    /// Partitions of the topics `declare` creates.
    pub fn partition_count(&self) -> i32 {
        self.partitions
    }

    /// Whether missing dead-letter and retry topics are created at start-up.
    pub fn creates_topics(&self) -> bool {
        self.create_topics
    }

    /// How `Retry` is carried out.
    pub fn retry(&self) -> RetryMode {
        self.retry
    }

    /// The retry topic for messages from `topic`.
    pub fn retry_topic_for(&self, topic: &str) -> String {
        self.retry_topic
            .clone()
            .unwrap_or_else(|| format!("{topic}.retry"))
    }

    /// The dead-letter topic for messages from `topic`.
    pub fn dead_letter_topic_for(&self, topic: &str) -> String {
        self.dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{topic}.dlq"))
    }

    /// Checks every setting; the error names the first bad field.
    pub fn validate(&self) -> Result<(), Error> {
        if self.brokers.is_empty() || self.brokers.iter().all(String::is_empty) {
            return Err(Error::config("brokers", "at least one broker is required"));
        }
        for broker in &self.brokers {
            validate_broker(broker)?;
        }
        for topic in &self.topics {
            validate_topic("topics", topic)?;
        }
        if let Some(group) = &self.group {
            if group.trim().is_empty() || group.chars().any(char::is_control) {
                return Err(Error::config(
                    "group",
                    "must not be empty or contain control characters",
                ));
            }
        }
        if self.client_id.is_empty() || self.client_id.chars().any(char::is_control) {
            return Err(Error::config(
                "client_id",
                "must not be empty or contain control characters",
            ));
        }
        if let Some(sasl) = &self.sasl {
            if sasl.username.is_empty() {
                return Err(Error::config("sasl.username", "must not be empty"));
            }
        }
        if let Some(t) = self.session_timeout {
            if t < Duration::from_millis(1) || t > Duration::from_secs(3600) {
                return Err(Error::config(
                    "session_timeout",
                    "must be between 1ms and 1h",
                ));
            }
        }
        if self.group_protocol == GroupProtocol::Consumer {
            if self.session_timeout.is_some() {
                return Err(Error::config(
                    "session_timeout",
                    "not used with group_protocol=consumer: the broker's group.consumer.session.timeout.ms applies",
                ));
            }
            for name in [
                "session.timeout.ms",
                "heartbeat.interval.ms",
                "partition.assignment.strategy",
            ] {
                if self.options.contains_key(name) {
                    return Err(Error::config(
                        format!("rdkafka.{name}"),
                        "not used with group_protocol=consumer: the broker decides it",
                    ));
                }
            }
        }
        if self.commit_interval.is_zero() || self.commit_interval > Duration::from_secs(86_400) {
            return Err(Error::config(
                "commit_interval",
                "must be positive and at most a day",
            ));
        }
        if self.partitions < 1 {
            return Err(Error::config("partitions", "must be at least 1"));
        }
        if self.max_uncommitted < 2 {
            return Err(Error::config("max_uncommitted", "must be at least 2"));
        }
        if self.buffer == 0 {
            return Err(Error::config("buffer", "must be at least 1"));
        }
        if let Some(t) = &self.retry_topic {
            validate_topic("retry_topic", t)?;
        }
        if let Some(t) = &self.dead_letter_topic {
            validate_topic("dead_letter_topic", t)?;
        }
        for topic in &self.topics {
            if self.retry == RetryMode::Topic && self.retry_topic_for(topic) == *topic {
                return Err(Error::config(
                    "retry_topic",
                    format!("must differ from the source topic `{topic}`"),
                ));
            }
            if self.dead_letter_topic_for(topic) == *topic {
                return Err(Error::config(
                    "dead_letter_topic",
                    format!("must differ from the source topic `{topic}`"),
                ));
            }
        }
        for name in self.options.keys() {
            if let Some((_, why)) = MANAGED_PROPERTIES.iter().find(|(p, _)| p == name) {
                return Err(Error::config(format!("rdkafka.{name}"), *why));
            }
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Error::config(
                    "rdkafka",
                    "property names must be non-empty words",
                ));
            }
        }
        Ok(())
    }

    /// The librdkafka settings shared by the consumer and the producer.
    pub(crate) fn client_config(&self) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", self.brokers.join(","));
        c.set("client.id", &self.client_id);
        let protocol = match (self.tls, self.sasl.is_some()) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        c.set("security.protocol", protocol);
        if let Some(ca) = &self.tls_ca_file {
            c.set("ssl.ca.location", ca.to_string_lossy());
        }
        if let Some(sasl) = &self.sasl {
            c.set("sasl.mechanisms", sasl.mechanism.as_str());
            c.set("sasl.username", &sasl.username);
            c.set("sasl.password", sasl.password.expose());
        }
        for (k, v) in &self.options {
            c.set(k, &v.value);
        }
        c
    }

    /// The consumer's settings: manual offset store, commits on an interval and on
    /// revoke, classic group protocol.
    pub(crate) fn consumer_config(&self, group: &str) -> rdkafka::ClientConfig {
        let mut c = self.client_config();
        c.set("group.id", group);
        c.set("group.protocol", self.group_protocol.as_str());
        c.set("enable.auto.commit", "true");
        c.set(
            "auto.commit.interval.ms",
            self.commit_interval.as_millis().max(1).to_string(),
        );
        c.set("enable.auto.offset.store", "false");
        c.set("enable.partition.eof", "false");
        c.set(
            "auto.offset.reset",
            match self.offset_reset {
                OffsetReset::Earliest => "earliest",
                OffsetReset::Latest => "latest",
            },
        );
        if let Some(t) = self.session_timeout {
            c.set("session.timeout.ms", t.as_millis().max(1).to_string());
            // The heartbeat must be well below the session timeout.
            if !self.options.contains_key("heartbeat.interval.ms") {
                c.set(
                    "heartbeat.interval.ms",
                    (t.as_millis() / 3).clamp(1, 3000).to_string(),
                );
            }
        }
        // Options given for the consumer win over the defaults above where allowed.
        for (k, v) in &self.options {
            c.set(k, &v.value);
        }
        c
    }

    /// The producer's settings: idempotent, `acks=all`.
    /// The largest record the producer sends, as `wharf::adapter::dead_letter::encoded_len`
    /// counts it: librdkafka's `message.max.bytes` (default 1,000,000) less room for the
    /// record's framing.
    pub(crate) fn max_record_bytes(&self) -> usize {
        const FRAMING: usize = 512;
        self.producer_config()
            .get("message.max.bytes")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1_000_000)
            .saturating_sub(FRAMING)
    }

    pub(crate) fn producer_config(&self) -> rdkafka::ClientConfig {
        let mut c = self.client_config();
        c.set("enable.idempotence", "true");
        c.set("acks", "all");
        if !self.options.contains_key("linger.ms") {
            c.set("linger.ms", "1");
        }
        if !self.options.contains_key("message.timeout.ms")
            && !self.options.contains_key("delivery.timeout.ms")
        {
            c.set(
                "message.timeout.ms",
                PUBLISH_TIMEOUT.as_millis().to_string(),
            );
        }
        for (k, v) in &self.options {
            c.set(k, &v.value);
        }
        c
    }

    /// Turns librdkafka's configuration error into one that names the property and never
    /// repeats its value.
    pub(crate) fn creation_error(&self, error: rdkafka::error::KafkaError) -> Error {
        use rdkafka::error::KafkaError as K;
        match error {
            K::ClientConfig(_, description, key, _value) => {
                let field = if self.options.contains_key(&key) {
                    format!("rdkafka.{key}")
                } else {
                    key.clone()
                };
                let reason = if is_secret_property(&key) {
                    "librdkafka rejected the value".to_owned()
                } else {
                    description
                };
                Error::config(field, reason)
            }
            other => Error::config("rdkafka", other.to_string()),
        }
    }
}

impl FromStr for KafkaConfig {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        parse_url(s)
    }
}

/// `host:port` with a host and a numeric port.
fn validate_broker(broker: &str) -> Result<(), Error> {
    let (host, port) = broker
        .rsplit_once(':')
        .ok_or_else(|| Error::config("brokers", format!("`{broker}` is not `host:port`")))?;
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return Err(Error::config(
            "brokers",
            format!("`{broker}` has no valid host"),
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(Error::config(
            "brokers",
            format!("`{broker}` has no valid port"),
        )),
    }
}

/// A Kafka topic name: 1 to 249 of `[A-Za-z0-9._-]`, not `.` or `..`.
pub(crate) fn validate_topic(field: &str, topic: &str) -> Result<(), Error> {
    if topic.is_empty() || topic.len() > 249 {
        return Err(Error::config(field, "topic names have 1 to 249 characters"));
    }
    if topic == "." || topic == ".." {
        return Err(Error::config(field, "`.` and `..` are not topic names"));
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Error::config(
            field,
            format!(
                "`{topic}` contains {c:?}; topic names use only letters, digits, `.`, `_` and `-`"
            ),
        ));
    }
    Ok(())
}

// ===== URL parsing =====

fn parse_url(input: &str) -> Result<KafkaConfig, Error> {
    // Never echo `input` in an error: it may hold a password.
    let url = broker_url::parse(input, &["kafka", "kafka+ssl"])?;
    let topics: Vec<String> = if url.path.is_empty() {
        Vec::new()
    } else {
        url.path.split(',').map(|t| t.trim().to_owned()).collect()
    };
    let mut config = KafkaConfig::new(url.hosts.join(","), topics).tls(url.scheme == "kafka+ssl");
    let userinfo = url.userinfo.as_deref();

    let mut sasl_user = None;
    let mut sasl_password = None;
    if let Some(userinfo) = userinfo {
        let (user, password) = userinfo
            .split_once(':')
            .ok_or_else(|| Error::config("url", "credentials must be `user:password@`"))?;
        sasl_user = Some(decode(user, "user")?);
        sasl_password = Some(decode(password, "password")?);
    }
    let mut mechanism = SaslMechanism::Plain;

    for (name, value) in url.query {
        match name.as_str() {
            "group" => config.group = Some(value),
            "client_id" => config.client_id = value,
            "offset_reset" => {
                config.offset_reset = match value.as_str() {
                    "earliest" => OffsetReset::Earliest,
                    "latest" => OffsetReset::Latest,
                    _ => {
                        return Err(Error::config(
                            "offset_reset",
                            format!("expected earliest or latest, got `{value}`"),
                        ))
                    }
                }
            }
            "group_protocol" => {
                config.group_protocol = match value.as_str() {
                    "classic" => GroupProtocol::Classic,
                    "consumer" => GroupProtocol::Consumer,
                    _ => {
                        return Err(Error::config(
                            "group_protocol",
                            format!("expected classic or consumer, got `{value}`"),
                        ))
                    }
                }
            }
            "session_timeout" => {
                config.session_timeout = Some(parse_duration("session_timeout", &value)?)
            }
            "commit_interval" => {
                config.commit_interval = parse_duration("commit_interval", &value)?
            }
            "buffer" => {
                config.buffer = value.parse().map_err(|_| {
                    Error::config("buffer", format!("expected a number, got `{value}`"))
                })?
            }
            "partitions" => {
                config.partitions = value.parse().map_err(|_| {
                    Error::config("partitions", format!("expected a number, got `{value}`"))
                })?
            }
            "max_uncommitted" => {
                config.max_uncommitted = value.parse().map_err(|_| {
                    Error::config(
                        "max_uncommitted",
                        format!("expected a number, got `{value}`"),
                    )
                })?
            }
            "create_topics" => {
                config.create_topics = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(Error::config(
                            "create_topics",
                            format!("expected true or false, got `{value}`"),
                        ))
                    }
                }
            }
            "retry" => {
                config.retry = match value.as_str() {
                    "lane" => RetryMode::Lane,
                    "topic" => RetryMode::Topic,
                    _ => {
                        return Err(Error::config(
                            "retry",
                            format!("expected lane or topic, got `{value}`"),
                        ))
                    }
                }
            }
            "retry_topic" => config.retry_topic = Some(value),
            "dead_letter_topic" => config.dead_letter_topic = Some(value),
            "sasl_mechanism" => {
                mechanism = match value.to_ascii_uppercase().as_str() {
                    "PLAIN" => SaslMechanism::Plain,
                    "SCRAM-SHA-256" => SaslMechanism::ScramSha256,
                    "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
                    _ => {
                        return Err(Error::config(
                            "sasl_mechanism",
                            format!(
                                "expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got `{value}`"
                            ),
                        ))
                    }
                }
            }
            "tls_ca_file" => config.tls_ca_file = Some(PathBuf::from(value)),
            other => match other.strip_prefix("rdkafka.") {
                Some(property) if !property.is_empty() => {
                    config = config.option(property, value);
                }
                _ => {
                    return Err(Error::config(
                        other,
                        "unknown parameter (librdkafka properties go as `rdkafka.<name>=...`)",
                    ))
                }
            },
        }
    }
    if let (Some(user), Some(password)) = (sasl_user, sasl_password) {
        config = config.sasl(mechanism, user, password);
    }
    config.validate()?;
    Ok(config)
}

fn parse_duration(field: &str, value: &str) -> Result<Duration, Error> {
    humantime::parse_duration(value)
        .map_err(|e| Error::config(field, format!("`{value}` is not a duration: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(result: Result<KafkaConfig, Error>) -> String {
        match result {
            Err(Error::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn url_and_builder_agree() {
        let url: KafkaConfig = "kafka://127.0.0.1:9092,10.0.0.2:9093/orders,payments?group=g&client_id=c&offset_reset=latest&session_timeout=6s&commit_interval=250ms&buffer=64&max_uncommitted=500&create_topics=false&retry=topic&retry_topic=orders-retry&dead_letter_topic=dead&rdkafka.fetch.min.bytes=1"
            .parse()
            .unwrap();
        let built = KafkaConfig::new("127.0.0.1:9092,10.0.0.2:9093", ["orders", "payments"])
            .group("g")
            .client_id("c")
            .offset_reset(OffsetReset::Latest)
            .session_timeout(Duration::from_secs(6))
            .commit_interval(Duration::from_millis(250))
            .buffer(64)
            .max_uncommitted(500)
            .create_topics(false)
            .retry_mode(RetryMode::Topic)
            .retry_topic("orders-retry")
            .dead_letter_topic("dead")
            .option("fetch.min.bytes", "1");
        assert_eq!(url, built);
        assert_eq!(url.dead_letter_topic_for("orders"), "dead");
    }

    #[test]
    fn group_protocol_reaches_librdkafka() {
        let classic: KafkaConfig = "kafka://127.0.0.1:9092/orders?group=g&session_timeout=6s"
            .parse()
            .unwrap();
        let c = classic.consumer_config("g");
        assert_eq!(c.get("group.protocol"), Some("classic"));
        assert_eq!(c.get("session.timeout.ms"), Some("6000"));
        let consumer: KafkaConfig = "kafka://127.0.0.1:9092/orders?group=g&group_protocol=consumer"
            .parse()
            .unwrap();
        let c = consumer.consumer_config("g");
        assert_eq!(c.get("group.protocol"), Some("consumer"));
        assert_eq!(c.get("session.timeout.ms"), None);
        assert_eq!(c.get("heartbeat.interval.ms"), None);
    }

    #[test]
    fn defaults_derive_topics_from_the_source() {
        let c: KafkaConfig = "kafka://127.0.0.1:9092/orders?group=g".parse().unwrap();
        assert_eq!(c.retry_topic_for("orders"), "orders.retry");
        assert_eq!(c.dead_letter_topic_for("orders"), "orders.dlq");
        assert_eq!(c.retry(), RetryMode::Lane);
        assert_eq!(c.buffer_size(), 1024);
    }

    #[test]
    fn bad_settings_name_their_field() {
        let cases = [
            ("kafka://127.0.0.1:9092/orders?group=g&buffer=0", "buffer"),
            ("kafka://127.0.0.1:9092/orders?group=g&buffer=x", "buffer"),
            (
                "kafka://127.0.0.1:9092/orders?group=g&max_uncommitted=1",
                "max_uncommitted",
            ),
            (
                "kafka://127.0.0.1:9092/orders?group=g&create_topics=yes",
                "create_topics",
            ),
            ("kafka://127.0.0.1:9092/orders?group=g&retry=later", "retry"),
            (
                "kafka://127.0.0.1:9092/orders?group=g&offset_reset=middle",
                "offset_reset",
            ),
            (
                "kafka://127.0.0.1:9092/orders?group=g&session_timeout=soon",
                "session_timeout",
            ),
            (
                "kafka://127.0.0.1:9092/orders?group=g&commit_interval=0s",
                "commit_interval",
            ),
            ("kafka://127.0.0.1:9092/or ders?group=g", "topics"),
            (
                "kafka://127.0.0.1:9092/orders?group=g&group_protocol=new",
                "group_protocol",
            ),
            (
                "kafka://127.0.0.1:9092/orders?group=g&group_protocol=consumer&session_timeout=6s",
                "session_timeout",
            ),
            (
                "kafka://127.0.0.1:9092/orders?group=g&group_protocol=consumer&rdkafka.partition.assignment.strategy=range",
                "rdkafka.partition.assignment.strategy",
            ),
            (
                "kafka://127.0.0.1:9092/orders?group=g&rdkafka.group.protocol=consumer",
                "rdkafka.group.protocol",
            ),
            (
                "kafka://127.0.0.1:9092/orders?group=g&colour=blue",
                "colour",
            ),
            ("kafka://127.0.0.1/orders?group=g", "brokers"),
            ("kafka://127.0.0.1:0/orders?group=g", "brokers"),
            ("http://127.0.0.1:9092/orders", "url"),
            (
                "kafka://127.0.0.1:9092/orders?rdkafka.group.id=x",
                "rdkafka.group.id",
            ),
            (
                "kafka://127.0.0.1:9092/orders?rdkafka.enable.auto.commit=false",
                "rdkafka.enable.auto.commit",
            ),
            (
                "kafka://127.0.0.1:9092/orders?dead_letter_topic=orders",
                "dead_letter_topic",
            ),
            (
                "kafka://127.0.0.1:9092/orders?retry=topic&retry_topic=orders",
                "retry_topic",
            ),
            (
                "kafka://127.0.0.1:9092/orders?sasl_mechanism=GSSAPI",
                "sasl_mechanism",
            ),
        ];
        for (url, field) in cases {
            assert_eq!(field_of(url.parse()), field, "{url}");
        }
    }

    #[test]
    fn secrets_never_show() {
        let c: KafkaConfig =
            "kafka://app:s3cret%21@127.0.0.1:9092/orders?group=g&rdkafka.ssl.key.password=hunter2"
                .parse()
                .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("app"), "{debug}");
        // Errors from a URL with credentials never repeat them.
        let err = "kafka://app:s3cret@127.0.0.1:9092/orders?buffer=0"
            .parse::<KafkaConfig>()
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        let err = "kafka://app:s3cret@/orders"
            .parse::<KafkaConfig>()
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn librdkafka_errors_name_the_property_without_secret_values() {
        let c = KafkaConfig::new("127.0.0.1:9092", ["t"]).option("ssl.key.password", "hunter2");
        let e = c.creation_error(rdkafka::error::KafkaError::ClientConfig(
            rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"hunter2\" for configuration property".to_owned(),
            "ssl.key.password".to_owned(),
            "hunter2".to_owned(),
        ));
        let text = e.to_string();
        assert!(text.contains("rdkafka.ssl.key.password"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[tokio::test]
    async fn librdkafka_rejects_bad_pass_through_properties_at_start_up() {
        let err = crate::KafkaClient::connect(
            KafkaConfig::new("127.0.0.1:9092", ["t"]).option("no.such.property", "1"),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("no.such.property"), "{err}");
        let c = KafkaConfig::new("127.0.0.1:9092", ["t"]).option("session.timeout.ms", "soon");
        let err = c
            .consumer_config("g")
            .create::<rdkafka::consumer::BaseConsumer>();
        let text = c.creation_error(err.err().unwrap()).to_string();
        assert!(text.contains("rdkafka.session.timeout.ms"), "{text}");
    }
}
