//! PostgreSQL idempotency store for wharf.
//!
//! [`PostgresStore`] implements the idempotency layer's
//! [`IdempotencyStore`] in one table
//! shared by every replica of a consumer, so a duplicate is skipped whichever replica
//! receives it, after a restart too, and a key being handled by one replica is never run
//! by another at the same time.
//!
//! ```no_run
//! use std::sync::Arc;
//! use wharf_middleware::idempotency::IdempotencyLayer;
//! use wharf_postgres::PostgresStore;
//!
//! # async fn run() -> Result<(), wharf::Error> {
//! let store = PostgresStore::connect("postgres://app:secret@127.0.0.1:5432/orders?pool_size=16".parse()?).await?;
//! let layer = IdempotencyLayer::new(Arc::new(store));
//! # Ok(()) }
//! ```
//!
//! # The table
//!
//! [`PostgresStore::connect`] creates it (and records the schema version) unless it
//! exists; the versioned migrations ship with the crate (`migrations/`, applied in order
//! under an advisory lock, so replicas starting together do not race):
//!
//! | column | |
//! |---|---|
//! | `consumer text`, `key text` | the primary key: replicas of one consumer share rows, consumers never collide |
//! | `state smallint` | 0: a claim in flight; 1: a completion |
//! | `token bigint` | the claim's fencing token (random), so a holder that outlived its lease cannot touch its successor's claim |
//! | `until timestamptz` | when the claim's lease or the completion's retention ends, on the database's clock |
//!
//! # One round trip per operation
//!
//! - **claim**: `INSERT … ON CONFLICT (consumer, key) DO UPDATE … WHERE until <= now()
//!   RETURNING`, with the answer for an existing live row read in the same statement:
//!   `Claimed`, `InFlight` or `Completed`.
//! - **complete**: an upsert that turns the holder's own claim (same token) into a
//!   completion, or records one where the key's row has expired; it never overwrites a
//!   live claim of another holder or a live completion.
//! - **release**: deletes the row only if it is still this holder's claim.
//!
//! Expired rows stay until [`cleanup_expired`](PostgresStore::cleanup_expired) deletes
//! them, in batches by `ctid` (row locks only, never a table lock);
//! [`spawn_cleanup`](PostgresStore::spawn_cleanup) runs it on an interval.
//!
//! # Errors
//!
//! Every database error reaches the layer, which treats it as transient (the delivery is
//! retried; the handler never runs without a claim). Start-up errors are
//! [`wharf::Error::Config`] (a bad URL or option, naming it) or
//! [`wharf::Error::Connection`]; the password never appears in either.
//!
//! # Why tokio-postgres and deadpool
//!
//! The store runs three fixed statements; `tokio-postgres` prepares and caches them per
//! connection with no compile-time database, macro layer or second runtime, and
//! `deadpool-postgres` is a small pool made for it. `sqlx` would bring its query macros
//! (which want a database or offline data at build time) and its own pool for no gain
//! here.

mod batch;
mod config;
mod inbox;
mod migrations;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use wharf::{BoxError, Error};
use wharf_middleware::idempotency::{Claim, ClaimToken, IdempotencyKey, IdempotencyStore};

pub use config::PostgresStoreConfig;
pub use inbox::{Inbox, InboxHandler};
/// Re-exported: the transaction an [`InboxHandler`] writes through.
pub use tokio_postgres::Transaction;

/// The idempotency store on PostgreSQL; see the [crate docs](crate).
///
/// Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    sql: Arc<Statements>,
    table: Arc<str>,
    claims: batch::Queue,
    completions: batch::Queue,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.table)
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// The statements, with the table name in place.
struct Statements {
    claims: Arc<str>,
    completions: Arc<str>,
    release: String,
    cleanup: String,
}

impl Statements {
    fn for_table(t: &str) -> Self {
        Statements {
            // Every claim of a batch (see `batch`) in one statement: the insert or
            // takeover, then the answer per key: claimed by this statement, or the state
            // of the live row it left alone. A row committed by a concurrent statement
            // after this one's snapshot is invisible to the join: no live row, which
            // answers "in flight" (another holder just took the key).
            claims: format!(
                "WITH input AS (
                     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[])
                         AS i(consumer, key, token, lease)),
                 claimed AS (
                     INSERT INTO {t} AS c (consumer, key, state, token, until)
                     SELECT consumer, key, 0, token, now() + lease * interval '1 millisecond'
                         FROM input ORDER BY consumer, key
                     ON CONFLICT (consumer, key) DO UPDATE
                         SET state = 0, token = EXCLUDED.token, until = EXCLUDED.until
                         WHERE c.until <= now()
                     RETURNING c.consumer, c.key)
                 SELECT i.consumer, i.key,
                        CASE WHEN cl.key IS NOT NULL THEN 2::smallint
                             ELSE COALESCE(live.state, 0::smallint) END
                 FROM input i
                 LEFT JOIN claimed cl ON cl.consumer = i.consumer AND cl.key = i.key
                 LEFT JOIN {t} live ON live.consumer = i.consumer AND live.key = i.key
                                   AND live.until > now()"
            )
            .into(),
            // Turns each holder's own claim (same token) into a completion, or records
            // one where the key's row expired; never touches a live claim of another
            // holder or a live completion.
            completions: format!(
                "INSERT INTO {t} AS c (consumer, key, state, token, until)
                 SELECT consumer, key, 1, token, now() + retention * interval '1 millisecond'
                     FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[])
                         AS i(consumer, key, token, retention)
                     ORDER BY consumer, key
                 ON CONFLICT (consumer, key) DO UPDATE
                     SET state = 1, token = EXCLUDED.token, until = EXCLUDED.until
                     WHERE (c.state = 0 AND c.token = EXCLUDED.token) OR c.until <= now()"
            )
            .into(),
            release: format!(
                "DELETE FROM {t} WHERE consumer = $1 AND key = $2 AND state = 0 AND token = $3"
            ),
            cleanup: format!(
                "DELETE FROM {t} WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM {t} WHERE until < now() ORDER BY until LIMIT $1))"
            ),
        }
    }
}

/// Milliseconds for `$4`, saturating (a lease of centuries is "for ever").
fn millis(d: Duration) -> f64 {
    d.as_millis().min(i64::MAX as u128) as f64
}

impl PostgresStore {
    /// Connects (checking the database answers), creates or migrates the table, and
    /// returns the store.
    pub async fn connect(config: PostgresStoreConfig) -> Result<Self, Error> {
        let pool = pool(&config)?;
        let mut client = checked_out(&pool).await?;
        migrations::apply(&mut client, config.table(), migrations::CLAIMS)
            .await
            .map_err(|e| Error::Connection(format!("creating the claim table: {e}").into()))?;
        drop(client);
        let sql = Statements::for_table(config.table());
        Ok(PostgresStore {
            claims: batch::start(pool.clone(), sql.claims.clone(), batch::Kind::Claims),
            completions: batch::start(
                pool.clone(),
                sql.completions.clone(),
                batch::Kind::Completions,
            ),
            pool,
            sql: Arc::new(sql),
            table: config.table().into(),
        })
    }

    /// Deletes up to `batch` rows whose lease or retention has ended, oldest first;
    /// returns how many. Row locks only: claims keep flowing while it runs.
    pub async fn cleanup_expired(&self, batch: i64) -> Result<u64, BoxError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&self.sql.cleanup).await?;
        Ok(client.execute(&statement, &[&batch]).await?)
    }

    /// Runs [`cleanup_expired`](Self::cleanup_expired) every `interval`, in batches of
    /// `batch` until a batch comes back short. Errors are logged; the task runs until
    /// aborted (drop the handle does not stop it).
    pub fn spawn_cleanup(&self, interval: Duration, batch: i64) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                loop {
                    match store.cleanup_expired(batch).await {
                        Ok(n) if (n as i64) < batch => break,
                        Ok(_) => tokio::task::yield_now().await,
                        Err(e) => {
                            tracing::warn!(table = %store.table, error = %e, "cleaning up expired claims failed");
                            break;
                        }
                    }
                }
            }
        })
    }
}

/// The connection pool `config` describes (nothing connects yet).
pub(crate) fn pool(config: &PostgresStoreConfig) -> Result<Pool, Error> {
    let manager = Manager::from_config(
        config.postgres_config()?,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_size())
        .wait_timeout(Some(config.connect_timeout()))
        .create_timeout(Some(config.connect_timeout()))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| Error::config("pool_size", e.to_string()))
}

/// A connection from `pool`: the check that the database answers.
pub(crate) async fn checked_out(pool: &Pool) -> Result<deadpool_postgres::Object, Error> {
    pool.get().await.map_err(|e| {
        Error::Connection(format!("connecting to PostgreSQL: {}", pool_error(&e)).into())
    })
}

impl PostgresStore {
    /// Queues one operation for its batch and waits for the answer.
    async fn queue(
        &self,
        queue: &batch::Queue,
        key: &IdempotencyKey,
        token: i64,
        duration: Duration,
    ) -> Result<Claim, BoxError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        queue
            .send(batch::Op {
                consumer: key.consumer().to_owned(),
                key: key.key().to_owned(),
                token,
                millis: millis(duration),
                reply,
            })
            .map_err(|_| "the store's batching task stopped")?;
        answer
            .await
            .map_err(|_| "the store's batching task stopped")?
            .map_err(Into::into)
    }
}

/// A pool error's text without anything the configuration holds.
fn pool_error(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => e.to_string(),
        other => other.to_string(),
    }
}

#[async_trait]
impl IdempotencyStore for PostgresStore {
    async fn claim(&self, key: &IdempotencyKey, lease: Duration) -> Result<Claim, BoxError> {
        let token = rand::random::<i64>();
        self.queue(&self.claims, key, token, lease).await
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: ClaimToken,
        retention: Duration,
    ) -> Result<(), BoxError> {
        if retention.is_zero() {
            // Nothing to remember: free the claim.
            return self.release(key, token).await;
        }
        self.queue(&self.completions, key, token.get() as i64, retention)
            .await
            .map(drop)
    }

    async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), BoxError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&self.sql.release).await?;
        client
            .execute(
                &statement,
                &[&key.consumer(), &key.key(), &(token.get() as i64)],
            )
            .await?;
        Ok(())
    }
}
