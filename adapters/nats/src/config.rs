//! Configuration: a URL or a builder, validated before anything connects.
//!
//! # URL forms
//!
//! ```text
//! nats://[user:password@ | token@]host:port[,host:port...]/<subject>?queue_group=<group>
//! nats+jetstream://[user:password@ | token@]host:port[,...]/<stream>?durable=<name>&subject=<subject>
//! ```
//!
//! `nats://` is **Core NATS** (at-most-once, see the [crate docs](crate)); the path is the
//! subject to subscribe to (wildcards allowed) and `queue_group` the consumer group.
//! `nats+jetstream://` is **JetStream**; the path is the stream name and `durable` the
//! durable pull consumer (the consumer group). Every query parameter:
//!
//! | parameter | mode | default | meaning |
//! |---|---|---|---|
//! | `queue_group` | Core | none (every subscriber gets everything) | queue group = consumer group |
//! | `durable` | JetStream | required | durable pull consumer name |
//! | `subject` | JetStream | the stream name | subject the stream captures (wildcards allowed) |
//! | `ack_wait` | JetStream | `30s` | redelivery timeout of an unacked message ([humantime]) |
//! | `max_deliver` | JetStream | unlimited | deliveries before the broker gives up (a crash-loop backstop) |
//! | `max_ack_pending` | JetStream | `1000` | unacked messages the broker hands this group at most |
//! | `batch` | JetStream | `128` | messages per pull request (the prefetch) |
//! | `dead_letter_subject` | JetStream | `<stream>.dlq` | where `DeadLetter` settlements publish |
//! | `dead_letter_stream` | JetStream | `<stream>_dlq` | the stream that keeps the dead letters |
//! | `storage` | JetStream | `file` | `file` or `memory` |
//! | `retention` | JetStream | `limits` | `limits`, `interest` or `workqueue` |
//! | `duplicate_window` | JetStream | `2m` | `Nats-Msg-Id` deduplication window of new streams |
//! | `progress` | JetStream | `true` | send in-progress acks for handlers running longer than `ack_wait / 3` |
//! | `name` | both | none | connection name shown by the server |
//! | `tls` | both | `false` | require TLS |
//! | `tls_ca_file` | both | system roots | PEM file of root certificates |
//! | `tls_cert_file`, `tls_key_file` | both | none | client certificate and key (both or neither) |
//! | `tls_first` | both | `false` | TLS handshake before the server's INFO |
//! | `creds_file` | both | none | `.creds` file (JWT + nkey seed) |
//! | `nkey_seed_file` | both | none | file holding an nkey seed |
//!
//! Unknown parameters are errors (a typo never silently falls back to a default).
//!
//! # Secrets
//!
//! Passwords and tokens live in a [`Secret`], whose `Debug` prints `***` and which has no
//! `Display`. [`NatsConfig`]'s `Debug` is written by hand, and no error message ever
//! repeats the URL, so credentials never reach logs or errors.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use url::Url;
use wharf::adapter::broker_url::{self, decode};
use wharf::Error;

pub use wharf::adapter::secret::Secret;

/// How the client authenticates.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// A token (`nats://token@host`).
    Token(Secret),
    /// User and password (`nats://user:password@host`).
    UserPassword {
        /// The user name (not secret).
        user: String,
        /// The password.
        password: Secret,
    },
    /// A `.creds` file with a JWT and an nkey seed.
    CredentialsFile(PathBuf),
    /// A file holding an nkey seed.
    NkeySeedFile(PathBuf),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Token(_) => f.write_str("Token(***)"),
            Auth::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"***")
                .finish(),
            Auth::CredentialsFile(p) => f.debug_tuple("CredentialsFile").field(p).finish(),
            Auth::NkeySeedFile(p) => f.debug_tuple("NkeySeedFile").field(p).finish(),
        }
    }
}

/// TLS options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// Refuse to connect without TLS.
    pub required: bool,
    /// Root certificates (PEM) to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), with [`key_file`](Self::key_file).
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM), with [`cert_file`](Self::cert_file).
    pub key_file: Option<PathBuf>,
    /// Do the TLS handshake before the server sends INFO (servers with `handshake_first`).
    pub first: bool,
}

/// Where a JetStream stream keeps its messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Storage {
    /// On disk: survives a server restart.
    #[default]
    File,
    /// In memory: lost on a server restart.
    Memory,
}

/// When a JetStream stream removes messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Retention {
    /// Until a limit (age, count, bytes) is reached; every durable gets every message.
    #[default]
    Limits,
    /// Until every consumer that exists has acked it.
    Interest,
    /// Until one consumer acked it; only one (unfiltered) consumer per stream.
    WorkQueue,
}

/// Core NATS source: a subject and an optional queue group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreSource {
    /// Subject to subscribe to (wildcards `*` and `>` allowed).
    pub subject: String,
    /// Queue group: members share the messages. `None`: every subscriber gets everything.
    pub queue_group: Option<String>,
}

/// JetStream source: a stream, the subject it captures, and a durable pull consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamSource {
    /// Stream name.
    pub stream: String,
    /// Subject the stream captures (default: the stream name).
    pub subject: String,
    /// Durable pull consumer name: the consumer group.
    pub durable: String,
    /// Redelivery timeout of an unacked message.
    pub ack_wait: Duration,
    /// Deliveries before the broker stops redelivering (`None`: unlimited).
    pub max_deliver: Option<u32>,
    /// Unacked messages the broker hands this consumer at most.
    pub max_ack_pending: u32,
    /// Messages per pull request: how far the subscriber fetches ahead.
    pub batch: u32,
    /// Subject `DeadLetter` settlements publish to (default `<stream>.dlq`).
    pub dead_letter_subject: String,
    /// Stream that captures the dead-letter subject (default `<stream>_dlq`).
    pub dead_letter_stream: String,
    /// Storage of streams this adapter creates.
    pub storage: Storage,
    /// Retention of the stream, if this adapter creates it.
    pub retention: Retention,
    /// Deduplication window (`Nats-Msg-Id`) of streams this adapter creates.
    pub duplicate_window: Duration,
    /// Send in-progress acks for deliveries held longer than `ack_wait / 3`.
    pub progress: bool,
}

impl JetStreamSource {
    /// A source on `stream` with durable consumer `durable`, every other setting default.
    pub fn new(stream: impl Into<String>, durable: impl Into<String>) -> Self {
        let stream = stream.into();
        JetStreamSource {
            subject: stream.clone(),
            durable: durable.into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: None,
            max_ack_pending: 1000,
            batch: 128,
            dead_letter_subject: format!("{stream}.dlq"),
            dead_letter_stream: format!("{stream}_dlq"),
            storage: Storage::File,
            retention: Retention::Limits,
            duplicate_window: Duration::from_secs(120),
            progress: true,
            stream,
        }
    }
}

/// Core NATS or JetStream, with the source's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Core NATS: at-most-once.
    Core(CoreSource),
    /// JetStream: at-least-once.
    JetStream(JetStreamSource),
}

/// Everything the adapter needs: servers, credentials, TLS, and the source.
///
/// Build it from a URL (`"nats+jetstream://127.0.0.1:4222/ORDERS?durable=billing".parse()`,
/// see the [module docs](self)) or with [`NatsConfig::core`] / [`NatsConfig::jetstream`]
/// and the setters. [`validate`](Self::validate) runs before connecting, so a bad setting
/// fails at start-up as [`wharf::Error::Config`] naming the field.
///
/// ```
/// use std::time::Duration;
/// use wharf_nats::NatsConfig;
///
/// let from_url: NatsConfig =
///     "nats+jetstream://app:s3cret@127.0.0.1:4222/ORDERS?durable=billing&ack_wait=10s"
///         .parse()?;
/// let built = NatsConfig::jetstream("ORDERS", "billing")
///     .server("nats://127.0.0.1:4222")
///     .user_password("app", "s3cret")
///     .ack_wait(Duration::from_secs(10));
/// assert_eq!(from_url, built);
/// assert!(!format!("{from_url:?}").contains("s3cret"));
/// # Ok::<(), wharf::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct NatsConfig {
    servers: Vec<String>,
    auth: Auth,
    tls: Tls,
    name: Option<String>,
    mode: Mode,
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Servers never hold credentials (they are moved into `auth` when parsed), and
        // `Auth`'s Debug hides every secret.
        f.debug_struct("NatsConfig")
            .field("servers", &self.servers)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("name", &self.name)
            .field("mode", &self.mode)
            .finish()
    }
}

const DEFAULT_SERVER: &str = "nats://127.0.0.1:4222";

impl NatsConfig {
    /// Core NATS on `subject`, server `nats://127.0.0.1:4222` until [`server`](Self::server).
    pub fn core(subject: impl Into<String>) -> Self {
        NatsConfig {
            servers: vec![DEFAULT_SERVER.to_owned()],
            auth: Auth::None,
            tls: Tls::default(),
            name: None,
            mode: Mode::Core(CoreSource {
                subject: subject.into(),
                queue_group: None,
            }),
        }
    }

    /// JetStream stream `stream` with durable pull consumer `durable`, server
    /// `nats://127.0.0.1:4222` until [`server`](Self::server).
    pub fn jetstream(stream: impl Into<String>, durable: impl Into<String>) -> Self {
        NatsConfig {
            mode: Mode::JetStream(JetStreamSource::new(stream, durable)),
            ..NatsConfig::core("")
        }
    }

    /// Parses a URL (see the [module docs](self)) and validates it.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        parse_url(url)
    }

    // ===== connection =====

    /// Replaces the servers with one (`nats://host:port`, `tls://host:port` or
    /// `host:port`). Credentials in it are moved into the auth settings.
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.servers = vec![server.into()];
        self
    }

    /// Adds a server to connect to (the client picks one and fails over to the others).
    pub fn add_server(mut self, server: impl Into<String>) -> Self {
        self.servers.push(server.into());
        self
    }

    /// Authenticates with a token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Token(Secret::new(token));
        self
    }

    /// Authenticates with user and password.
    pub fn user_password(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::UserPassword {
            user: user.into(),
            password: Secret::new(password),
        };
        self
    }

    /// Authenticates with a `.creds` file (JWT and nkey seed).
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth = Auth::CredentialsFile(path.into());
        self
    }

    /// Authenticates with an nkey seed read from a file.
    pub fn nkey_seed_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth = Auth::NkeySeedFile(path.into());
        self
    }

    /// Replaces the TLS options.
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// The connection name the server shows.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    // ===== Core =====

    /// Core: the queue group (consumer group). Ignored on JetStream.
    pub fn queue_group(mut self, group: impl Into<String>) -> Self {
        if let Mode::Core(core) = &mut self.mode {
            core.queue_group = Some(group.into());
        }
        self
    }

    // ===== JetStream =====

    fn js(mut self, f: impl FnOnce(&mut JetStreamSource)) -> Self {
        if let Mode::JetStream(js) = &mut self.mode {
            f(js);
        }
        self
    }

    /// JetStream: the subject the stream captures. Ignored on Core.
    pub fn subject(self, subject: impl Into<String>) -> Self {
        let subject = subject.into();
        self.js(|js| js.subject = subject)
    }

    /// JetStream: redelivery timeout of an unacked message.
    pub fn ack_wait(self, ack_wait: Duration) -> Self {
        self.js(|js| js.ack_wait = ack_wait)
    }

    /// JetStream: deliveries before the broker stops redelivering (`None`: unlimited).
    pub fn max_deliver(self, max_deliver: Option<u32>) -> Self {
        self.js(|js| js.max_deliver = max_deliver)
    }

    /// JetStream: unacked messages the broker hands this group at most. Set it at least to
    /// the consumer's `max_in_flight` times the number of members.
    pub fn max_ack_pending(self, max_ack_pending: u32) -> Self {
        self.js(|js| js.max_ack_pending = max_ack_pending)
    }

    /// JetStream: messages per pull request.
    pub fn batch(self, batch: u32) -> Self {
        self.js(|js| js.batch = batch)
    }

    /// JetStream: where `DeadLetter` settlements publish.
    pub fn dead_letter_subject(self, subject: impl Into<String>) -> Self {
        let subject = subject.into();
        self.js(|js| js.dead_letter_subject = subject)
    }

    /// JetStream: the stream keeping dead letters.
    pub fn dead_letter_stream(self, stream: impl Into<String>) -> Self {
        let stream = stream.into();
        self.js(|js| js.dead_letter_stream = stream)
    }

    /// JetStream: storage of streams the adapter creates.
    pub fn storage(self, storage: Storage) -> Self {
        self.js(|js| js.storage = storage)
    }

    /// JetStream: retention of the stream, if the adapter creates it.
    pub fn retention(self, retention: Retention) -> Self {
        self.js(|js| js.retention = retention)
    }

    /// JetStream: deduplication window of streams the adapter creates.
    pub fn duplicate_window(self, window: Duration) -> Self {
        self.js(|js| js.duplicate_window = window)
    }

    /// JetStream: in-progress acks for long-running handlers (default on).
    pub fn progress(self, on: bool) -> Self {
        self.js(|js| js.progress = on)
    }

    // ===== accessors =====

    /// The servers, without credentials.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// The authentication settings.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The TLS settings.
    pub fn tls_options(&self) -> &Tls {
        &self.tls
    }

    /// The connection name.
    pub fn connection_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Core or JetStream, with the source's settings.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The source settings, to change them (the conformance tests do, per topic).
    pub fn mode_mut(&mut self) -> &mut Mode {
        &mut self.mode
    }

    /// Checks every setting; the error names the first bad field.
    pub fn validate(&self) -> Result<(), Error> {
        if self.servers.is_empty() {
            return Err(Error::config("servers", "at least one server is required"));
        }
        for s in &self.servers {
            validate_server(s)?;
        }
        match &self.auth {
            Auth::Token(t) if t.expose().is_empty() => {
                return Err(Error::config("token", "must not be empty"))
            }
            Auth::UserPassword { user, .. } if user.is_empty() => {
                return Err(Error::config("user", "must not be empty"))
            }
            _ => {}
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(Error::config(
                "tls_cert_file",
                "a client certificate needs a key (tls_key_file) and the other way round",
            ));
        }
        if let Some(name) = &self.name {
            if name.contains(['\r', '\n']) {
                return Err(Error::config("name", "must be one line"));
            }
        }
        match &self.mode {
            // A connection-only configuration: the source comes with each subscriber.
            Mode::Core(core) if core.subject.is_empty() => {}
            Mode::JetStream(js) if js.stream.is_empty() && js.durable.is_empty() => {
                // Check the other settings, as they will apply to every source.
                let mut named = js.clone();
                named.stream = "source".into();
                named.subject = "source".into();
                named.durable = "group".into();
                named.dead_letter_subject = "source.dlq".into();
                named.dead_letter_stream = "source_dlq".into();
                validate_jetstream(&named)?
            }
            Mode::Core(core) => {
                validate_subject("subject", &core.subject, true)?;
                if let Some(q) = &core.queue_group {
                    validate_name("queue_group", q)?;
                }
            }
            Mode::JetStream(js) => validate_jetstream(js)?,
        }
        Ok(())
    }
}

impl FromStr for NatsConfig {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        parse_url(s)
    }
}

pub(crate) fn validate_jetstream(js: &JetStreamSource) -> Result<(), Error> {
    validate_name("stream", &js.stream)?;
    validate_name("durable", &js.durable)?;
    validate_name("dead_letter_stream", &js.dead_letter_stream)?;
    if js.dead_letter_stream == js.stream {
        return Err(Error::config(
            "dead_letter_stream",
            "must differ from the stream: a dead letter keeps its `Nats-Msg-Id`, which the \
             stream's deduplication window would discard",
        ));
    }
    validate_subject("subject", &js.subject, true)?;
    validate_subject("dead_letter_subject", &js.dead_letter_subject, false)?;
    if subject_matches(&js.subject, &js.dead_letter_subject) {
        return Err(Error::config(
            "dead_letter_subject",
            format!(
                "`{}` is captured by the stream's subject `{}`: dead letters would land in \
                 the stream they came from",
                js.dead_letter_subject, js.subject
            ),
        ));
    }
    if js.ack_wait < Duration::from_secs(1) {
        return Err(Error::config("ack_wait", "must be at least 1s"));
    }
    if js.max_deliver == Some(0) {
        return Err(Error::config(
            "max_deliver",
            "must be at least 1 (leave it unset for unlimited)",
        ));
    }
    if js.max_ack_pending == 0 {
        return Err(Error::config("max_ack_pending", "must be at least 1"));
    }
    if js.batch == 0 {
        return Err(Error::config("batch", "must be at least 1"));
    }
    if js.duplicate_window.is_zero() {
        return Err(Error::config("duplicate_window", "must be positive"));
    }
    Ok(())
}

/// A stream, consumer or queue-group name: no whitespace, `.`, `*`, `>`, `/` or `\`.
pub(crate) fn validate_name(field: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::config(field, "must not be empty"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        return Err(Error::config(
            field,
            format!("`{name}` contains {c:?}; names may not contain whitespace, `.`, `*`, `>`, `/` or `\\`"),
        ));
    }
    Ok(())
}

/// A subject: dot-separated non-empty tokens, no whitespace; wildcards only if allowed,
/// `*` as a whole token and `>` as the last one.
pub(crate) fn validate_subject(field: &str, subject: &str, wildcards: bool) -> Result<(), Error> {
    if subject.is_empty() {
        return Err(Error::config(field, "must not be empty"));
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::config(
            field,
            format!("`{subject}` contains whitespace"),
        ));
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, t) in tokens.iter().enumerate() {
        if t.is_empty() {
            return Err(Error::config(
                field,
                format!("`{subject}` has an empty token"),
            ));
        }
        let wild = *t == "*" || *t == ">";
        if wild && !wildcards {
            return Err(Error::config(
                field,
                format!("`{subject}` may not contain wildcards"),
            ));
        }
        if *t == ">" && i + 1 != tokens.len() {
            return Err(Error::config(
                field,
                format!("`{subject}`: `>` must be the last token"),
            ));
        }
        if !wild && (t.contains('*') || t.contains('>')) {
            return Err(Error::config(
                field,
                format!("`{subject}`: wildcards must be whole tokens"),
            ));
        }
    }
    Ok(())
}

/// Whether `pattern` (with wildcards) matches the literal subject `subject`.
pub(crate) fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn validate_server(server: &str) -> Result<(), Error> {
    let with_scheme = if server.contains("://") {
        server.to_owned()
    } else {
        format!("nats://{server}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|e| Error::config("servers", format!("not a server address: {e}")))?;
    if !matches!(url.scheme(), "nats" | "tls" | "ws" | "wss") {
        return Err(Error::config(
            "servers",
            format!(
                "unsupported scheme `{}` (nats, tls, ws or wss)",
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::config("servers", "a server needs a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config(
            "servers",
            "credentials belong in the auth settings (token, user_password), not in a server address",
        ));
    }
    Ok(())
}

// ===== URL parsing =====

fn parse_url(input: &str) -> Result<NatsConfig, Error> {
    // Never echo `input` in an error: it may hold a password or a token.
    let url = broker_url::parse(input, &["nats", "nats+jetstream"])?;
    let jetstream = url.scheme == "nats+jetstream";
    let path = url.path.clone();
    let (userinfo, hosts) = (url.userinfo.as_deref(), &url.hosts);

    let mut config = if jetstream {
        NatsConfig::jetstream(path.clone(), String::new())
    } else {
        NatsConfig::core(path.clone())
    };
    config.servers = hosts.iter().map(|h| format!("nats://{h}")).collect();
    if let Some(userinfo) = userinfo {
        config.auth = match userinfo.split_once(':') {
            Some((user, password)) => Auth::UserPassword {
                user: decode(user, "user")?,
                password: Secret::new(decode(password, "password")?),
            },
            None => Auth::Token(Secret::new(decode(userinfo, "token")?)),
        };
    }

    for (key, value) in url.query.iter().cloned() {
        let key = key.as_str();
        match (key, &mut config.mode) {
            ("name", _) => config.name = Some(value),
            ("tls", _) => config.tls.required = parse_bool(key, &value)?,
            ("tls_first", _) => config.tls.first = parse_bool(key, &value)?,
            ("tls_ca_file", _) => config.tls.ca_file = Some(value.into()),
            ("tls_cert_file", _) => config.tls.cert_file = Some(value.into()),
            ("tls_key_file", _) => config.tls.key_file = Some(value.into()),
            ("creds_file", _) => config.auth = Auth::CredentialsFile(value.into()),
            ("nkey_seed_file", _) => config.auth = Auth::NkeySeedFile(value.into()),
            ("queue_group", Mode::Core(core)) => core.queue_group = Some(value),
            ("durable", Mode::JetStream(js)) => js.durable = value,
            ("subject", Mode::JetStream(js)) => js.subject = value,
            ("ack_wait", Mode::JetStream(js)) => js.ack_wait = parse_duration(key, &value)?,
            ("max_deliver", Mode::JetStream(js)) => {
                js.max_deliver = match value.as_str() {
                    "unlimited" | "-1" => None,
                    v => Some(parse_num(key, v)?),
                }
            }
            ("max_ack_pending", Mode::JetStream(js)) => {
                js.max_ack_pending = parse_num(key, &value)?
            }
            ("batch", Mode::JetStream(js)) => js.batch = parse_num(key, &value)?,
            ("dead_letter_subject", Mode::JetStream(js)) => js.dead_letter_subject = value,
            ("dead_letter_stream", Mode::JetStream(js)) => js.dead_letter_stream = value,
            ("storage", Mode::JetStream(js)) => {
                js.storage = match value.as_str() {
                    "file" => Storage::File,
                    "memory" => Storage::Memory,
                    _ => return Err(Error::config(key, "expected `file` or `memory`")),
                }
            }
            ("retention", Mode::JetStream(js)) => {
                js.retention = match value.as_str() {
                    "limits" => Retention::Limits,
                    "interest" => Retention::Interest,
                    "workqueue" => Retention::WorkQueue,
                    _ => {
                        return Err(Error::config(
                            key,
                            "expected `limits`, `interest` or `workqueue`",
                        ))
                    }
                }
            }
            ("duplicate_window", Mode::JetStream(js)) => {
                js.duplicate_window = parse_duration(key, &value)?
            }
            ("progress", Mode::JetStream(js)) => js.progress = parse_bool(key, &value)?,
            (_, mode) => {
                let which = match mode {
                    Mode::Core(_) => "Core NATS (nats://)",
                    Mode::JetStream(_) => "JetStream (nats+jetstream://)",
                };
                return Err(Error::config(key, format!("unknown parameter for {which}")));
            }
        }
    }
    if let Mode::JetStream(js) = &config.mode {
        // Without a stream in the path the URL names a connection only, for
        // `NatsClient::subscriber(source, group)`.
        if js.durable.is_empty() && !js.stream.is_empty() {
            return Err(Error::config(
                "durable",
                "JetStream needs a durable consumer name (`?durable=<name>`)",
            ));
        }
    }
    config.validate()?;
    Ok(config)
}

fn parse_bool(field: &str, value: &str) -> Result<bool, Error> {
    match value {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::config(
            field,
            format!("expected true or false, got `{value}`"),
        )),
    }
}

fn parse_num(field: &str, value: &str) -> Result<u32, Error> {
    value.parse().map_err(|_| {
        Error::config(
            field,
            format!("expected a non-negative integer, got `{value}`"),
        )
    })
}

fn parse_duration(field: &str, value: &str) -> Result<Duration, Error> {
    humantime::parse_duration(value).map_err(|e| {
        Error::config(
            field,
            format!("expected a duration like `30s`, got `{value}`: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_matching() {
        assert!(subject_matches("orders.>", "orders.dlq"));
        assert!(subject_matches("orders.*", "orders.dlq"));
        assert!(!subject_matches("orders.*", "orders.a.b"));
        assert!(subject_matches("ORDERS", "ORDERS"));
        assert!(!subject_matches("ORDERS", "ORDERS.dlq"));
        assert!(!subject_matches("a.>", "a"));
    }
}
