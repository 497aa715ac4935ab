//! The connection: one async-nats client shared by subscribers and publishers.

use std::time::Duration;

use async_nats::jetstream::Context as JetStream;
use async_nats::{Client, ConnectOptions, ServerAddr};
use wharf::adapter::{Backlog, Client as WharfClient};
use wharf::Error;

use crate::config::{Auth, CoreSource, JetStreamSource, Mode, NatsConfig};
use crate::dead_letters::NatsDeadLetters;
use crate::error;
use crate::publisher::NatsPublisher;
use crate::subscriber::{CoreSubscriber, JetStreamSubscriber, NatsSubscriber};
use crate::topology;

/// A connection to NATS, with the [`NatsConfig`] it was made from.
///
/// Cheap to clone (the client is shared). async-nats reconnects by itself, without a
/// limit, and re-sends subscriptions; the JetStream subscriber also re-issues its pulls
/// (see [`subscriber`](crate::subscriber)).
#[derive(Clone)]
pub struct NatsClient {
    client: Client,
    js: JetStream,
    config: NatsConfig,
}

impl std::fmt::Debug for NatsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NatsClient {
    /// Validates `config` and connects. Fails with [`Error::Config`] naming the field for
    /// a bad setting, and [`Error::Connection`] when no server answers.
    pub async fn connect(config: NatsConfig) -> Result<Self, Error> {
        config.validate()?;
        ensure_crypto_provider();
        let mut options = match config.auth() {
            Auth::None => ConnectOptions::new(),
            Auth::Token(t) => ConnectOptions::with_token(t.expose().to_owned()),
            Auth::UserPassword { user, password } => {
                ConnectOptions::with_user_and_password(user.clone(), password.expose().to_owned())
            }
            Auth::CredentialsFile(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| Error::config("creds_file", format!("cannot be read: {e}")))?,
            Auth::NkeySeedFile(path) => {
                let seed = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| Error::config("nkey_seed_file", format!("cannot be read: {e}")))?;
                ConnectOptions::with_nkey(seed.trim().to_owned())
            }
        };
        let tls = config.tls_options();
        if tls.required {
            options = options.require_tls(true);
        }
        if tls.first {
            options = options.tls_first();
        }
        if let Some(ca) = &tls.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if let Some(name) = config.connection_name() {
            options = options.name(name);
        }
        let servers: Vec<ServerAddr> = config
            .servers()
            .iter()
            .map(|s| {
                s.parse::<ServerAddr>()
                    .map_err(|e| Error::config("servers", format!("not a server address: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let client = options
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("NATS connected"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!("NATS disconnected; reconnecting")
                    }
                    other => tracing::warn!(event = %other, "NATS event"),
                }
            })
            .connect(servers)
            .await
            .map_err(|e| error::connection("connecting to NATS", e))?;
        let js = async_nats::jetstream::new(client.clone());
        Ok(NatsClient { client, js, config })
    }

    /// The configuration this client was made from.
    pub fn config(&self) -> &NatsConfig {
        &self.config
    }

    /// The underlying async-nats client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The JetStream context of the client.
    pub fn jetstream(&self) -> &JetStream {
        &self.js
    }

    /// A subscriber for the configured JetStream source. [`Error::Config`] if the config
    /// is Core NATS (use [`core_subscriber`](Self::core_subscriber)).
    pub async fn jetstream_subscriber(&self) -> Result<JetStreamSubscriber, Error> {
        match self.config.mode() {
            Mode::JetStream(source) => self.jetstream_subscriber_for(source.clone()).await,
            Mode::Core(_) => Err(Error::config(
                "url",
                "a JetStream subscriber needs a `nats+jetstream://` configuration",
            )),
        }
    }

    /// A subscriber for `source` (declaring its streams and durable consumer) on this
    /// connection.
    pub async fn jetstream_subscriber_for(
        &self,
        source: JetStreamSource,
    ) -> Result<JetStreamSubscriber, Error> {
        crate::config::validate_jetstream(&source)?;
        JetStreamSubscriber::start(self.client.clone(), self.js.clone(), source).await
    }

    /// A subscriber for the configured Core NATS source. [`Error::Config`] if the config
    /// is JetStream.
    pub async fn core_subscriber(&self) -> Result<CoreSubscriber, Error> {
        match self.config.mode() {
            Mode::Core(source) => self.core_subscriber_for(source).await,
            Mode::JetStream(_) => Err(Error::config(
                "url",
                "a Core NATS subscriber needs a `nats://` configuration",
            )),
        }
    }

    /// A Core NATS subscriber for `source` on this connection.
    pub async fn core_subscriber_for(&self, source: &CoreSource) -> Result<CoreSubscriber, Error> {
        crate::config::validate_subject("subject", &source.subject, true)?;
        CoreSubscriber::start(
            self.client.clone(),
            &source.subject,
            source.queue_group.as_deref(),
        )
        .await
    }

    /// A publisher of the configured kind: JetStream (confirmed by the stream) for a
    /// `nats+jetstream://` configuration, Core NATS otherwise.
    pub fn publisher(&self) -> NatsPublisher {
        match self.config.mode() {
            Mode::JetStream(_) => NatsPublisher::jetstream(self.client.clone()),
            Mode::Core(_) => NatsPublisher::core(self.client.clone()),
        }
    }

    /// Creates or binds the streams and durable consumer of `source` (what
    /// [`jetstream_subscriber_for`](Self::jetstream_subscriber_for) does first), so
    /// messages published from now on are kept for the group.
    pub async fn declare_jetstream(&self, source: &JetStreamSource) -> Result<(), Error> {
        crate::config::validate_jetstream(source)?;
        topology::declare(&self.js, source).await.map(|_| ())
    }

    /// Whether this client's URL chose JetStream (`nats+jetstream://`).
    pub fn is_jetstream(&self) -> bool {
        matches!(self.config.mode(), Mode::JetStream(_))
    }

    /// What subscribers of this client promise.
    pub fn capabilities(&self) -> wharf::adapter::Capabilities {
        match self.is_jetstream() {
            true => crate::subscriber::jetstream_capabilities(),
            false => crate::subscriber::core_capabilities(true),
        }
    }

    /// The JetStream source of group `group` on subject `source`: a stream named after
    /// the subject ([`stream_name`]) capturing it, a durable consumer `group`, dead
    /// letters to subject `<stream>.dlq` in stream `<stream>_dlq`; every other setting
    /// (`ack_wait`, `max_deliver`, `batch`, storage, ...) from the configuration.
    pub fn jetstream_source(&self, source: &str, group: &str) -> JetStreamSource {
        let stream = stream_name(source);
        let mut js = match self.config.mode() {
            Mode::JetStream(template) => template.clone(),
            Mode::Core(_) => JetStreamSource::new(stream.clone(), group),
        };
        js.subject = source.to_owned();
        js.durable = group.to_owned();
        js.dead_letter_subject = format!("{stream}.dlq");
        js.dead_letter_stream = format!("{stream}_dlq");
        js.stream = stream;
        js
    }

    /// JetStream: creates or binds, for each of `groups`, the stream capturing subject
    /// `source`, its dead-letter stream and the group's durable consumer (see
    /// [`jetstream_source`](Self::jetstream_source)). Core NATS has nothing to declare
    /// (and keeps nothing for a group that is not subscribed).
    pub async fn declare(&self, source: &str, groups: &[&str]) -> Result<(), Error> {
        if self.is_jetstream() {
            for group in groups {
                let js = self.jetstream_source(source, group);
                self.declare_jetstream(&js).await?;
                topology::check_captures(&self.js, &js.stream, &js.subject).await?;
            }
        }
        Ok(())
    }

    /// Joins group `group` on subject `source`: a durable pull consumer on JetStream
    /// (declared first), a queue group on Core NATS.
    pub async fn subscriber(&self, source: &str, group: &str) -> Result<NatsSubscriber, Error> {
        // An empty queue group would mean none: every member would get every message.
        crate::config::validate_name("group", group)?;
        if self.is_jetstream() {
            let js = self.jetstream_source(source, group);
            let (stream, subject) = (js.stream.clone(), js.subject.clone());
            let subscriber = self.jetstream_subscriber_for(js).await?;
            topology::check_captures(&self.js, &stream, &subject).await?;
            Ok(NatsSubscriber::JetStream(subscriber))
        } else {
            let core = CoreSource {
                subject: source.to_owned(),
                queue_group: Some(group.to_owned()),
            };
            Ok(NatsSubscriber::Core(self.core_subscriber_for(&core).await?))
        }
    }

    /// The reader of the dead letters kept in JetStream streams.
    pub fn dead_letters(&self) -> NatsDeadLetters {
        NatsDeadLetters {
            client: self.clone(),
        }
    }

    /// The backlog of group `group` on subject `source` (JetStream): its durable
    /// consumer's pending and ack-pending messages, the settled position (last delivered
    /// sequence less the unacked count), the age of the first unacked message, and the
    /// messages in the
    /// dead-letter stream (every group's). Core NATS keeps no backlog: an error naming
    /// the URL.
    pub async fn backlog(&self, source: &str, group: &str) -> Result<Backlog, Error> {
        crate::backlog::backlog(self, source, group).await
    }

    /// Deletes a stream (tests, cleanup); `Ok(false)` if it did not exist.
    pub async fn delete_stream(&self, name: &str) -> Result<bool, Error> {
        topology::delete_stream(&self.js, name).await
    }

    /// Sends everything buffered in the client (acks included) and waits for the server.
    pub async fn flush(&self) -> Result<(), Error> {
        self.client
            .flush()
            .await
            .map_err(|e| error::connection("flushing", e))
    }
}

/// The JetStream stream name for subject `subject`: the subject with every character a
/// stream name may not hold (`.`, `*`, `>`, `/`, `\\`, whitespace) replaced by `_`
/// (`orders.created` → `orders_created`).
pub fn stream_name(subject: &str) -> String {
    subject
        .chars()
        .map(|c| match c {
            '.' | '*' | '>' | '/' | '\\' => '_',
            c if c.is_whitespace() => '_',
            c => c,
        })
        .collect()
}

impl WharfClient for NatsClient {
    type Subscriber = NatsSubscriber;
    type Publisher = NatsPublisher;
    type DeadLetters = NatsDeadLetters;

    fn capabilities(&self) -> wharf::adapter::Capabilities {
        NatsClient::capabilities(self)
    }

    async fn declare(&self, source: &str, groups: &[&str]) -> Result<(), Error> {
        NatsClient::declare(self, source, groups).await
    }

    async fn subscriber(&self, source: &str, group: &str) -> Result<NatsSubscriber, Error> {
        NatsClient::subscriber(self, source, group).await
    }

    fn publisher(&self) -> NatsPublisher {
        NatsClient::publisher(self)
    }

    fn dead_letters(&self) -> NatsDeadLetters {
        NatsClient::dead_letters(self)
    }

    async fn backlog(&self, source: &str, group: &str) -> Result<Backlog, Error> {
        NatsClient::backlog(self, source, group).await
    }
}

/// async-nats builds its TLS settings on rustls's process-level crypto provider. When an
/// application's dependencies turn on both of rustls's providers (ring, which this adapter
/// uses, and aws-lc-rs, which lapin's TLS and many HTTP clients turn on), rustls cannot
/// choose and async-nats panics at the first TLS connection. So ring is installed as the
/// process default unless one is installed already (by the application, or another
/// library). Found when the workspace's `wharf-any/tls` feature put both in one build:
/// `tests/tls.rs` panicked.
fn ensure_crypto_provider() {
    use async_nats::rustls::crypto::{ring, CryptoProvider};
    if CryptoProvider::get_default().is_none() {
        // Losing a race to another thread's install is fine: one is installed.
        let _ = ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stream_names_replace_what_streams_may_not_hold() {
        assert_eq!(super::stream_name("orders"), "orders");
        assert_eq!(super::stream_name("orders.created"), "orders_created");
        assert_eq!(super::stream_name("a.*.b >"), "a___b__");
    }
}
