//! Configuration: parsed from an `amqp://` URL, or built with setters, the same style
//! as every adapter's (`FromStr`, consuming setters, [`RabbitConfig::validate`], which
//! every connecting call runs first).
//!
//! ```
//! use std::time::Duration;
//! use wharf_rabbitmq::RabbitConfig;
//!
//! let from_url: RabbitConfig =
//!     "amqp://app:s3cret@127.0.0.1:5672/%2f?prefetch=32&retry_tiers=1s,10s".parse()?;
//! let built = RabbitConfig::new()
//!     .credentials("app", "s3cret")
//!     .prefetch(32)
//!     .retry_tiers([Duration::from_secs(10), Duration::from_secs(1)]);
//! assert_eq!(from_url, built);
//! built.validate()?;
//! // The password never prints.
//! assert!(!format!("{from_url:?}").contains("s3cret"));
//! // A bad value names its field:
//! let err = RabbitConfig::new().prefetch(0).validate().unwrap_err();
//! assert!(err.to_string().contains("`prefetch`"));
//! # Ok::<(), wharf::Error>(())
//! ```
//!
//! # URL
//!
//! `amqp://user:password@host:port/vhost?option=value&...` (`amqps://` for TLS, with the
//! `tls` feature). The user, password and vhost are percent-decoded (`%2f` is the default
//! vhost `/`, which is also what an empty path means). Options:
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `queue` | none (required to subscribe) | the work queue |
//! | `prefetch` | 64 | `basic.qos` prefetch: deliveries in flight per subscriber |
//! | `queue_type` | `quorum` | `quorum` or `classic`, for every queue declared |
//! | `exchange` | none | an exchange (topic kind, durable) the work queue is bound to |
//! | `binding_key` | `#` | the binding key from `exchange` to the work queue |
//! | `consumer_tag` | server-generated | the consumer tag (also the `wharf-dlq-consumer` of native dead letters) |
//! | `declare` | `true` | declare the topology; `false` only verifies it exists (passive declares) |
//! | `retry_tiers` | `1s,2s,5s,10s,30s,1m,5m,10m` | delays of the retry tier queues (humantime durations); a retry goes to the nearest on a log scale |
//! | `queue_expires` | none | `x-expires` on every declared queue (tests, temporary queues) |
//! | `delivery_limit` | `20` | quorum work queue: `x-delivery-limit`, with the broker dead-lettering to `<queue>.dlq` past it (crash loops end there, `wharf-dlq-reason: rabbitmq-delivery-limit`); `none` for no limit |
//! | `heartbeat` | broker's | heartbeat interval in seconds |
//! | `connect_timeout` | `10s` | bound on connecting and declaring |
//! | `reconnect_min`, `reconnect_max` | `100ms`, `10s` | reconnect backoff bounds |
//! | `connection_name` | `wharf` | the connection name shown by the management tools |
//! | `tls_ca_file` | the platform's roots | `amqps://` only: a PEM file of root certificates trusted besides the platform's (a private CA) |
//!
//! An unknown option, or an invalid value, is an [`Error::Config`] naming it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lapin::types::ShortString;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use wharf::adapter::broker_url::{self, decode};
use wharf::adapter::secret::Secret;
use wharf::Error;

/// The type of every queue the adapter declares (work, retry tiers, dead letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// Replicated, durable, with a broker-side delivery count (`x-delivery-count`): the
    /// attempt number survives a crash. The default.
    #[default]
    Quorum,
    /// Classic durable queue: no delivery count, only the `redelivered` flag.
    Classic,
}

impl QueueType {
    /// `quorum` or `classic`, as in `x-queue-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

/// How to reach RabbitMQ and what to consume.
///
/// Parse it from a URL ([`RabbitConfig::from_url`], `str::parse`) or start from
/// [`RabbitConfig::new`], and change it with the setters; [`validate`](Self::validate)
/// (run by every connecting call) fails with [`Error::Config`] naming the field. `Debug`
/// never prints the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RabbitConfig {
    pub(crate) tls: bool,
    pub(crate) tls_ca_file: Option<PathBuf>,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) vhost: String,
    pub(crate) username: String,
    pub(crate) password: Secret,
    pub(crate) heartbeat: Option<u16>,
    pub(crate) queue: Option<String>,
    pub(crate) exchange: Option<String>,
    pub(crate) binding_key: String,
    pub(crate) prefetch: u16,
    pub(crate) queue_type: QueueType,
    pub(crate) consumer_tag: Option<String>,
    pub(crate) declare: bool,
    pub(crate) retry_tiers: Vec<Duration>,
    pub(crate) queue_expires: Option<Duration>,
    pub(crate) delivery_limit: Option<u32>,
    pub(crate) connect_timeout: Duration,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) connection_name: String,
}

impl RabbitConfig {
    /// Default prefetch (`basic.qos`).
    pub const DEFAULT_PREFETCH: u16 = 64;

    /// The defaults: `amqp://guest:guest@127.0.0.1:5672/%2f`, no queue.
    pub fn new() -> Self {
        RabbitConfig::default()
    }

    /// Parses and validates a configuration from an `amqp://` or `amqps://` URL (see
    /// the [module docs](self)); the setters change it further.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let config = parse_url(url)?;
        config.validate()?;
        Ok(config)
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The type of every declared queue.
    pub fn queue_kind(&self) -> QueueType {
        self.queue_type
    }

    /// The work queue, or a configuration error naming `queue`.
    pub(crate) fn require_queue(&self) -> Result<&str, Error> {
        self.queue
            .as_deref()
            .ok_or_else(|| Error::config("queue", "a work queue is required to subscribe"))
    }

    /// The URI lapin connects to (holds the password: never print it).
    pub(crate) fn amqp_uri(&self) -> AMQPUri {
        AMQPUri {
            scheme: if self.tls {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: self.username.clone(),
                    password: self.password.expose().to_owned(),
                },
                host: self.host.clone(),
                port: self.port,
            },
            vhost: self.vhost.clone(),
            query: AMQPQueryString {
                heartbeat: self.heartbeat,
                connection_timeout: Some(self.connect_timeout.as_millis() as u64),
                ..AMQPQueryString::default()
            },
        }
    }

    /// Checks every field; [`Error::Config`] names the first bad one. Every connecting
    /// call ([`RabbitClient::connect`](crate::RabbitClient::connect), ...) runs it first.
    pub fn validate(&self) -> Result<(), Error> {
        if self.tls && !cfg!(feature = "tls") {
            return Err(Error::config(
                "url",
                "`amqps://` needs the `tls` feature of wharf-rabbitmq",
            ));
        }
        if let Some(path) = &self.tls_ca_file {
            if !self.tls {
                return Err(Error::config(
                    "tls_ca_file",
                    "is for `amqps://` only (this URL is plain `amqp://`)",
                ));
            }
            read_ca_file(path)?;
        }
        if self.host.is_empty() {
            return Err(Error::config("host", "must not be empty"));
        }
        if self.prefetch == 0 {
            return Err(Error::config(
                "prefetch",
                "must be at least 1 (0 would mean unbounded in AMQP)",
            ));
        }
        if self.retry_tiers.is_empty() {
            return Err(Error::config("retry_tiers", "at least one tier is needed"));
        }
        for tier in &self.retry_tiers {
            if tier.as_millis() == 0 {
                return Err(Error::config(
                    "retry_tiers",
                    "every tier must be at least 1 ms",
                ));
            }
            if tier.as_millis() > u128::from(u32::MAX) {
                return Err(Error::config(
                    "retry_tiers",
                    "a tier must fit `x-message-ttl` (at most about 49 days)",
                ));
            }
        }
        if let Some(expires) = self.queue_expires {
            let largest = self.retry_tiers.last().copied().unwrap_or_default();
            if expires <= largest {
                return Err(Error::config(
                    "queue_expires",
                    "must be longer than the largest retry tier, or a tier queue could expire \
                     with messages in it",
                ));
            }
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            return Err(Error::config(
                "reconnect_min",
                "must be above zero and at most `reconnect_max`",
            ));
        }
        if self.delivery_limit == Some(0) {
            return Err(Error::config(
                "delivery_limit",
                "must be at least 1 (or `none` for no limit)",
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::config("connect_timeout", "must be above zero"));
        }
        if let Some(queue) = &self.queue {
            if queue.is_empty() {
                return Err(Error::config("queue", "must not be empty"));
            }
            // The longest derived name is the largest tier's (or the dead-letter queue).
            for name in crate::topology::Topology::names_for(queue, &self.retry_tiers) {
                short_string("queue", &name)?;
            }
        }
        if let Some(exchange) = &self.exchange {
            if exchange.is_empty() {
                return Err(Error::config(
                    "exchange",
                    "must not be empty (leave it unset for the default exchange)",
                ));
            }
            short_string("exchange", exchange)?;
        }
        short_string("binding_key", &self.binding_key)?;
        if let Some(tag) = &self.consumer_tag {
            short_string("consumer_tag", tag)?;
        }
        Ok(())
    }
}

/// The PEM text of a `tls_ca_file`: readable, and holding at least one certificate.
pub(crate) fn read_ca_file(path: &Path) -> Result<String, Error> {
    let pem = std::fs::read_to_string(path).map_err(|e| {
        Error::config(
            "tls_ca_file",
            format!("cannot read `{}`: {e}", path.display()),
        )
    })?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::config(
            "tls_ca_file",
            format!("`{}` holds no PEM certificate", path.display()),
        ));
    }
    Ok(pem)
}

/// Checks that `value` fits an AMQP short string (255 bytes).
pub(crate) fn short_string(field: &str, value: &str) -> Result<ShortString, Error> {
    ShortString::try_new(value).map_err(|_| {
        Error::config(
            field,
            format!(
                "`{}…` is {} bytes long; AMQP names are at most 255 bytes",
                value.chars().take(32).collect::<String>(),
                value.len()
            ),
        )
    })
}

impl std::str::FromStr for RabbitConfig {
    type Err = Error;

    /// [`RabbitConfig::from_url`].
    fn from_str(url: &str) -> Result<Self, Error> {
        RabbitConfig::from_url(url)
    }
}

impl fmt::Debug for RabbitConfig {
    /// Everything but the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitConfig")
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("vhost", &self.vhost)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("queue", &self.queue)
            .field("exchange", &self.exchange)
            .field("binding_key", &self.binding_key)
            .field("prefetch", &self.prefetch)
            .field("queue_type", &self.queue_type)
            .field("consumer_tag", &self.consumer_tag)
            .field("declare", &self.declare)
            .field("retry_tiers", &self.retry_tiers)
            .field("queue_expires", &self.queue_expires)
            .field("delivery_limit", &self.delivery_limit)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for RabbitConfig {
    fn default() -> Self {
        RabbitConfig {
            tls: false,
            tls_ca_file: None,
            host: "127.0.0.1".into(),
            port: 5672,
            vhost: "/".into(),
            username: "guest".into(),
            password: Secret::new("guest"),
            heartbeat: None,
            queue: None,
            exchange: None,
            binding_key: "#".into(),
            prefetch: RabbitConfig::DEFAULT_PREFETCH,
            queue_type: QueueType::Quorum,
            consumer_tag: None,
            declare: true,
            retry_tiers: [1, 2, 5, 10, 30, 60, 300, 600]
                .map(Duration::from_secs)
                .to_vec(),
            queue_expires: None,
            delivery_limit: Some(20),
            connect_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(10),
            connection_name: "wharf".into(),
        }
    }
}

fn parse_duration(field: &str, value: &str) -> Result<Duration, Error> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        Error::config(
            field,
            format!("`{value}` is not a duration like `500ms` or `10s`: {e}"),
        )
    })
}

fn parse_bool(field: &str, value: &str) -> Result<bool, Error> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(Error::config(
            field,
            format!("`{value}` is not `true` or `false`"),
        )),
    }
}

/// Parses an `amqp://` or `amqps://` URL (see the [module docs](self)), unvalidated.
fn parse_url(url: &str) -> Result<RabbitConfig, Error> {
    // `broker_url` never quotes the input in an error and takes the credentials up to
    // the last `@`, so no part of a password reaches the host, vhost or options.
    let parsed = broker_url::parse(url, &["amqp", "amqps"])?;
    let mut config = RabbitConfig::default();
    let c = &mut config;
    c.tls = parsed.scheme == "amqps";
    let [host] = parsed.hosts.as_slice() else {
        return Err(Error::config(
            "host",
            format!(
                "{} hosts given; a RabbitMQ URL names one",
                parsed.hosts.len()
            ),
        ));
    };
    (c.host, c.port) = broker_url::host_port(host, if c.tls { 5671 } else { 5672 }, "host")?;
    if let Some(userinfo) = &parsed.userinfo {
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        c.username = decode(user, "username")?;
        c.password = Secret::new(decode(password, "password")?);
    }
    c.vhost = if parsed.path.is_empty() {
        "/".into()
    } else {
        parsed.path.clone()
    };
    for (key, value) in &parsed.query {
        let value = value.as_str();
        match key.as_str() {
            "queue" => c.queue = Some(value.to_owned()),
            "exchange" => c.exchange = Some(value.to_owned()),
            "binding_key" => c.binding_key = value.to_owned(),
            "prefetch" => {
                c.prefetch = value.parse().map_err(|_| {
                    Error::config(
                        "prefetch",
                        format!("`{value}` is not a number in 1..=65535"),
                    )
                })?
            }
            "queue_type" => {
                c.queue_type = match value {
                    "quorum" => QueueType::Quorum,
                    "classic" => QueueType::Classic,
                    other => {
                        return Err(Error::config(
                            "queue_type",
                            format!("`{other}` is not `quorum` or `classic`"),
                        ))
                    }
                }
            }
            "consumer_tag" => c.consumer_tag = Some(value.to_owned()),
            "declare" => c.declare = parse_bool("declare", value)?,
            "retry_tiers" => {
                c.retry_tiers = value
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| parse_duration("retry_tiers", s))
                    .collect::<Result<_, _>>()?
            }
            "queue_expires" => c.queue_expires = Some(parse_duration("queue_expires", value)?),
            "delivery_limit" => {
                c.delivery_limit = match value {
                    "none" => None,
                    n => Some(n.parse().map_err(|_| {
                        Error::config(
                            "delivery_limit",
                            format!("`{n}` is not a number of deliveries or `none`"),
                        )
                    })?),
                }
            }
            "heartbeat" => {
                c.heartbeat = Some(value.parse().map_err(|_| {
                    Error::config("heartbeat", format!("`{value}` is not a number of seconds"))
                })?)
            }
            "connect_timeout" => c.connect_timeout = parse_duration("connect_timeout", value)?,
            "reconnect_min" => c.reconnect_min = parse_duration("reconnect_min", value)?,
            "reconnect_max" => c.reconnect_max = parse_duration("reconnect_max", value)?,
            "connection_name" => c.connection_name = value.to_owned(),
            "tls_ca_file" => c.tls_ca_file = Some(value.into()),
            other => {
                return Err(Error::config(
                    other,
                    "unknown option (see wharf_rabbitmq::config for the list)",
                ))
            }
        }
    }
    config.retry_tiers.sort();
    config.retry_tiers.dedup();
    Ok(config)
}

impl RabbitConfig {
    /// Host name or address.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Virtual host (`/` by default).
    pub fn vhost(mut self, vhost: impl Into<String>) -> Self {
        self.vhost = vhost.into();
        self
    }

    /// User name and password.
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.username = username.into();
        self.password = Secret::new(password);
        self
    }

    /// TLS (`amqps`); needs the `tls` feature.
    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// A PEM file of root certificates trusted besides the platform's (a private CA);
    /// `amqps://` only. [`validate`](Self::validate) reads it, so a missing or empty file
    /// fails at start-up naming `tls_ca_file`.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// The work queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// An exchange (topic kind, durable) to bind the work queue to.
    pub fn exchange(mut self, exchange: impl Into<String>) -> Self {
        self.exchange = Some(exchange.into());
        self
    }

    /// The binding key from the exchange to the work queue (`#` by default).
    pub fn binding_key(mut self, key: impl Into<String>) -> Self {
        self.binding_key = key.into();
        self
    }

    /// Prefetch (`basic.qos`): deliveries in flight per subscriber (64 by default).
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// Queue type of every declared queue (quorum by default).
    pub fn queue_type(mut self, queue_type: QueueType) -> Self {
        self.queue_type = queue_type;
        self
    }

    /// Consumer tag (else generated by the broker).
    pub fn consumer_tag(mut self, tag: impl Into<String>) -> Self {
        self.consumer_tag = Some(tag.into());
        self
    }

    /// `true` (default) declares the topology; `false` verifies that it exists.
    pub fn declare(mut self, declare: bool) -> Self {
        self.declare = declare;
        self
    }

    /// Retry tier delays (any order; duplicates are merged).
    pub fn retry_tiers(mut self, tiers: impl IntoIterator<Item = Duration>) -> Self {
        let mut tiers: Vec<Duration> = tiers.into_iter().collect();
        tiers.sort();
        tiers.dedup();
        self.retry_tiers = tiers;
        self
    }

    /// `x-expires` on every declared queue: the broker deletes a queue unused that long.
    /// For tests and temporary consumers.
    pub fn queue_expires(mut self, expires: Duration) -> Self {
        self.queue_expires = Some(expires);
        self
    }

    /// The quorum work queue's delivery limit (see [`RabbitConfig::delivery_limit`]);
    /// `None` for no limit.
    pub fn delivery_limit(mut self, limit: Option<u32>) -> Self {
        self.delivery_limit = limit;
        self
    }

    /// Heartbeat interval in seconds.
    pub fn heartbeat(mut self, seconds: u16) -> Self {
        self.heartbeat = Some(seconds);
        self
    }

    /// Bound on connecting and declaring (10 s by default).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Reconnect backoff: the first wait, doubled per failure up to `max`.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max;
        self
    }

    /// Connection name shown by the management tools (`wharf` by default).
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = name.into();
        self
    }
}
