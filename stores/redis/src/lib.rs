//! Redis idempotency store for wharf.
//!
//! [`RedisStore`] implements the idempotency layer's [`IdempotencyStore`] with one Redis
//! key per (consumer, key), shared by every replica of a consumer: a duplicate is skipped
//! whichever replica receives it, and a key handled by one replica is never run by
//! another at the same time.
//!
//! ```no_run
//! use std::sync::Arc;
//! use wharf_middleware::idempotency::IdempotencyLayer;
//! use wharf_redis::RedisStore;
//!
//! # async fn run() -> Result<(), wharf::Error> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379/0?prefix=orders".parse()?).await?;
//! let layer = IdempotencyLayer::new(Arc::new(store));
//! # Ok(()) }
//! ```
//!
//! # The protocol
//!
//! Each operation is one Lua script on one key, so one round trip, atomic, and safe on a
//! Redis Cluster (a script touches only the key it names). The value is `i:<token>` for
//! a claim in flight and `d:<token>` for a completion; Redis' own expiry (`PX`) ends the
//! lease or the retention, on the server's clock.
//!
//! - **claim**: `SET key i:<token> NX PX <lease>`; if the key exists, its value says
//!   `InFlight` or `Completed`.
//! - **complete**: if the key is this holder's claim (`i:<token>`), or gone (the lease
//!   ran out and nobody took over: the work was done), `SET key d:<token> PX
//!   <retention>`; a successor's claim or a completion is left alone (fencing by token).
//! - **release**: deletes the key only if it is this holder's claim.
//!
//! # Keys
//!
//! `<prefix>:<length of consumer>:<consumer>:<key>` (prefix `wharf` by default): the
//! length keeps `a:b` + `c` apart from `a` + `b:c`. No hash tags: every script names one
//! key, so cluster slots never matter, and one busy consumer is not pinned to one node.
//!
//! # Errors
//!
//! Every Redis error reaches the layer, which treats it as transient (the delivery is
//! retried; the handler never runs without a claim). The connection manager reconnects
//! by itself. Start-up errors are [`wharf::Error::Config`] or
//! [`wharf::Error::Connection`]; the password never appears in either.
//!
//! # Persistence: what the promise needs from the server
//!
//! The store remembers completions only as long as Redis does. A Redis that crashes
//! without persistence (or with only periodic snapshots) comes back having forgotten
//! completions and claims: copies arriving after it run again (at-least-once, never
//! lost). For exactly-once effects across a Redis crash, run it with the append-only
//! file fsynced on every write (`appendonly yes`, `appendfsync always`; `everysec` may
//! forget the last second), or on a replicated setup that acknowledges writes only once
//! persisted (`WAIT`/`WAITAOF` are not used by this store). Test:
//! `tests/restart_mid_stream.rs` (`SIGKILL` of such a server mid-stream: nothing lost,
//! nothing twice).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use wharf::adapter::secret::Secret;
use wharf::{BoxError, Error};
use wharf_middleware::idempotency::{Claim, ClaimToken, IdempotencyKey, IdempotencyStore};

const CLAIM: &str = r#"
if redis.call('SET', KEYS[1], 'i:' .. ARGV[1], 'NX', 'PX', ARGV[2]) then return 2 end
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 2) == 'd:' then return 1 end
return 0
"#;

const COMPLETE: &str = r#"
local v = redis.call('GET', KEYS[1])
if (not v) or v == 'i:' .. ARGV[1] then
  redis.call('SET', KEYS[1], 'd:' .. ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#;

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == 'i:' .. ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Where the store connects, and its key prefix.
///
/// Parsed from a `redis://` (or `rediss://`, with a TLS-enabled build of the `redis`
/// crate) URL; the store's own option `prefix` (default `wharf`) is taken out of the
/// query, the rest goes to the `redis` crate. `Debug` never prints the URL.
///
/// ```
/// use wharf_redis::RedisStoreConfig;
///
/// let config: RedisStoreConfig = "redis://:s3cret@127.0.0.1:6379/0?prefix=billing".parse()?;
/// assert_eq!(config.prefix(), "billing");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), wharf::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisStoreConfig {
    url: Secret,
    prefix: String,
    timeout: Duration,
}

impl fmt::Debug for RedisStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreConfig")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisStoreConfig {
    /// Parses `url` (see the [type docs](Self)).
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        if !(base.starts_with("redis://") || base.starts_with("rediss://")) {
            return Err(Error::config("url", "expected `redis://...`"));
        }
        let mut prefix = "wharf".to_owned();
        let mut passed = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("prefix", value)) => {
                    prefix = wharf::adapter::broker_url::decode(value, "prefix")?
                }
                _ => passed.push(pair),
            }
        }
        let url = match passed.is_empty() {
            true => base.to_owned(),
            false => format!("{base}?{}", passed.join("&")),
        };
        let config = RedisStoreConfig {
            url: Secret::new(url),
            prefix,
            timeout: Duration::from_secs(5),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the URL and the prefix; [`Error::Config`] names the bad one.
    pub fn validate(&self) -> Result<(), Error> {
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            return Err(Error::config("prefix", "must be non-empty, without spaces"));
        }
        self.client().map(drop)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Bound on connecting and on each command (default 5 s): a Redis that stops
    /// answering is an error the layer retries, not a hang.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn client(&self) -> Result<redis::Client, Error> {
        redis::Client::open(self.url.expose())
            .map_err(|_| Error::config("url", "not a Redis URL (redis://[:password@]host:port/db)"))
    }
}

impl FromStr for RedisStoreConfig {
    type Err = Error;

    /// [`RedisStoreConfig::from_url`].
    fn from_str(url: &str) -> Result<Self, Error> {
        RedisStoreConfig::from_url(url)
    }
}

/// The idempotency store on Redis; see the [crate docs](crate). Cheap to clone (one
/// multiplexed connection, reconnected by itself).
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    scripts: Arc<[Script; 3]>,
    prefix: Arc<str>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects (checking Redis answers) and returns the store.
    pub async fn connect(config: RedisStoreConfig) -> Result<Self, Error> {
        let client = config.client()?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2);
        let mut connection = ConnectionManager::new_with_config(client, manager)
            .await
            .map_err(|e| {
                Error::Connection(format!("connecting to Redis: {}", e.kind_text()).into())
            })?;
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(|e| {
                Error::Connection(format!("Redis does not answer: {}", e.kind_text()).into())
            })?;
        Ok(RedisStore {
            connection,
            scripts: Arc::new([
                Script::new(CLAIM),
                Script::new(COMPLETE),
                Script::new(RELEASE),
            ]),
            prefix: config.prefix.into(),
        })
    }

    /// The Redis key of `key`.
    pub fn redis_key(&self, key: &IdempotencyKey) -> String {
        format!(
            "{}:{}:{}:{}",
            self.prefix,
            key.consumer().len(),
            key.consumer(),
            key.key()
        )
    }

    async fn run(
        &self,
        script: usize,
        key: &IdempotencyKey,
        token: u64,
        millis: u64,
    ) -> Result<i64, BoxError> {
        let mut connection = self.connection.clone();
        Ok(self.scripts[script]
            .key(self.redis_key(key))
            .arg(token)
            .arg(millis)
            .invoke_async(&mut connection)
            .await?)
    }
}

/// A Redis error's kind and message, which never hold the URL.
trait KindText {
    fn kind_text(&self) -> String;
}

impl KindText for redis::RedisError {
    fn kind_text(&self) -> String {
        format!(
            "{:?}: {}",
            self.kind(),
            self.detail().unwrap_or("no detail")
        )
    }
}

/// Milliseconds for `PX` (at least 1; at most about 292 million years).
fn millis(d: Duration) -> u64 {
    d.as_millis().clamp(1, u128::from(u64::MAX >> 1)) as u64
}

#[async_trait]
impl IdempotencyStore for RedisStore {
    async fn claim(&self, key: &IdempotencyKey, lease: Duration) -> Result<Claim, BoxError> {
        let token = rand::random::<u64>() >> 1;
        Ok(match self.run(0, key, token, millis(lease)).await? {
            2 => Claim::Claimed(ClaimToken::new(token)),
            1 => Claim::Completed,
            _ => Claim::InFlight,
        })
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: ClaimToken,
        retention: Duration,
    ) -> Result<(), BoxError> {
        if retention.is_zero() {
            return self.release(key, token).await;
        }
        self.run(1, key, token.get(), millis(retention))
            .await
            .map(drop)
    }

    async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), BoxError> {
        self.run(2, key, token.get(), 0).await.map(drop)
    }
}
