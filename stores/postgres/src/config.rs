//! [`PostgresStoreConfig`]: a `postgres://` URL plus the store's own options.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use wharf::adapter::secret::Secret;
use wharf::Error;

/// Where the store's table lives, and the pool.
///
/// Parsed from a `postgres://` (or `postgresql://`) URL. The store's own options are
/// taken out of the query; every other option goes to tokio-postgres as written
/// (`sslmode`, `application_name`, `connect_timeout`, ...):
///
/// | option | default | |
/// |---|---|---|
/// | `pool_size` | 16 | connections in the pool |
/// | `table` | `wharf_claims` (store), `wharf_inbox` ([`Inbox`](crate::Inbox)) | the table (a plain lower-case SQL identifier) |
/// | `connect_timeout` | 10 s | also bounds waiting for a pooled connection (seconds, as tokio-postgres reads it) |
///
/// `Debug` never prints the URL (it may hold a password).
///
/// ```
/// use wharf_postgres::PostgresStoreConfig;
///
/// let config: PostgresStoreConfig =
///     "postgres://app:s3cret@127.0.0.1:5432/orders?pool_size=4&table=billing_claims".parse()?;
/// assert_eq!((config.pool_size(), config.table()), (4, "billing_claims"));
/// assert!(!format!("{config:?}").contains("s3cret"));
/// let err = "postgres://127.0.0.1/db?table=drop%20table".parse::<PostgresStoreConfig>().unwrap_err();
/// assert!(err.to_string().contains("`table`"));
/// # Ok::<(), wharf::Error>(())
/// ```
#[derive(Clone)]
pub struct PostgresStoreConfig {
    /// The URL without the store's options, handed to tokio-postgres.
    url: Secret,
    pool_size: usize,
    /// `None`: the default of what uses it (`wharf_claims`, `wharf_inbox`).
    table: Option<String>,
    connect_timeout: Duration,
}

impl fmt::Debug for PostgresStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStoreConfig")
            .field("url", &self.url)
            .field("pool_size", &self.pool_size)
            .field("table", &self.table)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl PostgresStoreConfig {
    /// Parses `url` (see the [type docs](Self)).
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        if !(base.starts_with("postgres://") || base.starts_with("postgresql://")) {
            return Err(Error::config("url", "expected `postgres://...`"));
        }
        let mut config = PostgresStoreConfig {
            url: Secret::new(base),
            pool_size: 16,
            table: None,
            connect_timeout: Duration::from_secs(10),
        };
        let mut passed = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "pool_size" => {
                    config.pool_size = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        Error::config("pool_size", "expected a number of connections, at least 1")
                    })?
                }
                "table" => config.table = Some(wharf::adapter::broker_url::decode(value, "table")?),
                "connect_timeout" => {
                    let seconds: u64 = value.parse().map_err(|_| {
                        Error::config("connect_timeout", "expected a number of seconds")
                    })?;
                    config.connect_timeout = Duration::from_secs(seconds.max(1));
                    passed.push(pair);
                }
                _ => passed.push(pair),
            }
        }
        if !passed.is_empty() {
            config.url = Secret::new(format!("{base}?{}", passed.join("&")));
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the options; [`Error::Config`] names the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        let t = self.table();
        let plain = t.len() <= 48
            && t.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            return Err(Error::config(
                "table",
                "must be a plain SQL identifier: lower-case letters, digits and `_`, at most 48 bytes",
            ));
        }
        self.postgres_config().map(drop)
    }

    /// Connections in the pool.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// The claim table (`table`, default `wharf_claims`).
    pub fn table(&self) -> &str {
        self.table.as_deref().unwrap_or("wharf_claims")
    }

    /// The inbox table (`table`, default `wharf_inbox`).
    pub fn inbox_table(&self) -> &str {
        self.table.as_deref().unwrap_or("wharf_inbox")
    }

    /// How long connecting, or waiting for a pooled connection, may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Sets the pool size.
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// Sets the claim table (checked by [`validate`](Self::validate)).
    pub fn with_table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// The tokio-postgres configuration (the error never quotes the URL).
    pub(crate) fn postgres_config(&self) -> Result<tokio_postgres::Config, Error> {
        let mut config: tokio_postgres::Config = self.url.expose().parse().map_err(|_| {
            Error::config(
                "url",
                "not a PostgreSQL connection URL (postgres://user:password@host:port/database?options)",
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.connect_timeout);
        }
        Ok(config)
    }
}

impl FromStr for PostgresStoreConfig {
    type Err = Error;

    /// [`PostgresStoreConfig::from_url`].
    fn from_str(url: &str) -> Result<Self, Error> {
        PostgresStoreConfig::from_url(url)
    }
}
