//! [`Inbox`]: the transactional inbox. The handler's writes and the message's id commit
//! together or not at all.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio_postgres::Transaction;
use wharf::{BoxError, Error, HandlerError, Message, Outcome};

use crate::config::PostgresStoreConfig;
use crate::migrations;

/// A handler that writes through the inbox's transaction.
///
/// Whatever it writes with `tx` commits together with the message's id; an error rolls
/// both back (and goes to the layers like any handler error: retried if transient,
/// dead-lettered if permanent).
#[async_trait]
pub trait InboxHandler: Send + Sync + 'static {
    /// Handles `message` inside `tx`. Do not commit or roll back `tx`: the inbox does.
    async fn handle(&self, tx: &Transaction<'_>, message: &Message) -> Result<(), HandlerError>;
}

/// The transactional inbox on PostgreSQL: a `tower::Service<Message, Response =
/// Outcome>` for [`Consumer`](wharf::Consumer) and the layers, around an
/// [`InboxHandler`].
///
/// For each message, in one transaction on a pooled connection:
///
/// 1. `INSERT` (consumer, message id) into the inbox table, `ON CONFLICT DO NOTHING`;
/// 2. if the id was there already, the message was handled and committed before (a
///    redelivery after a crash between commit and ack, a republished duplicate): the
///    handler does **not** run, and the outcome is `Ack`;
/// 3. otherwise the handler runs with the transaction; `Ok` commits its writes and the
///    id together, then the outcome is `Ack` (the runtime acks only after the commit);
///    an error rolls both back.
///
/// A copy of the message handled by another replica at the same moment waits on the
/// row's unique key until the first transaction ends: it is then a duplicate (first one
/// committed) or runs (first one rolled back). So the handler's database effects happen
/// exactly once per (consumer, message id), across replicas and crashes.
///
/// **When to use it instead of a claim store**: when the handler's effects are writes to
/// the same PostgreSQL database. What stays at-least-once: anything the handler does
/// outside the transaction (HTTP calls, messages it publishes, other databases) may be
/// repeated when the transaction rolls back or the process dies before the commit;
/// make those idempotent, or record them in the transaction and send them afterwards (an
/// outbox).
///
/// The consumer is the name the runtime stamps on the message
/// ([`Origin::consumer`](wharf::Origin::consumer)); the key is the message id. Rows are
/// kept until [`cleanup_older_than`](Inbox::cleanup_older_than) removes them (the
/// duplicate window: NServiceBus keeps 7 days, MassTransit 30 minutes; choose more than
/// the longest a redelivery or a replay can arrive late).
///
/// ```no_run
/// use wharf::{HandlerError, Message, ResultExt};
/// use wharf_postgres::{Inbox, InboxHandler, Transaction};
///
/// struct SaveOrder;
///
/// #[async_trait::async_trait]
/// impl InboxHandler for SaveOrder {
///     async fn handle(&self, tx: &Transaction<'_>, message: &Message) -> Result<(), HandlerError> {
///         let body = std::str::from_utf8(message.payload()).permanent()?;
///         tx.execute("INSERT INTO orders (body) VALUES ($1)", &[&body]).await?;
///         Ok(())
///     }
/// }
///
/// # async fn run() -> Result<(), wharf::Error> {
/// let inbox = Inbox::connect("postgres://app@127.0.0.1/shop".parse()?, SaveOrder).await?;
/// // `inbox` is the service: wrap it in layers and hand it to `Consumer::new`.
/// # Ok(()) }
/// ```
pub struct Inbox<H> {
    pool: Pool,
    handler: Arc<H>,
    sql: Arc<InboxSql>,
}

impl<H> Clone for Inbox<H> {
    fn clone(&self) -> Self {
        Inbox {
            pool: self.pool.clone(),
            handler: self.handler.clone(),
            sql: self.sql.clone(),
        }
    }
}

impl<H> std::fmt::Debug for Inbox<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("table", &self.sql.table)
            .finish_non_exhaustive()
    }
}

struct InboxSql {
    table: String,
    insert: String,
    cleanup: String,
}

impl<H: InboxHandler> Inbox<H> {
    /// Connects, creates or migrates the inbox table (`config`'s `table`, default
    /// `wharf_inbox`), and wraps `handler`.
    pub async fn connect(config: PostgresStoreConfig, handler: H) -> Result<Self, Error> {
        let pool = crate::pool(&config)?;
        let table = config.inbox_table().to_owned();
        let mut client = crate::checked_out(&pool).await?;
        migrations::apply(&mut client, &table, migrations::INBOX)
            .await
            .map_err(|e| Error::Connection(format!("creating the inbox table: {e}").into()))?;
        Ok(Inbox {
            pool,
            handler: Arc::new(handler),
            sql: Arc::new(InboxSql {
                insert: format!(
                    "INSERT INTO {table} (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                ),
                cleanup: format!(
                    "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
                         SELECT ctid FROM {table}
                         WHERE received_at < now() - $1 * interval '1 millisecond'
                         ORDER BY received_at LIMIT $2))"
                ),
                table,
            }),
        })
    }
}

impl<H> Inbox<H> {
    /// Deletes up to `batch` rows received more than `age` ago, oldest first; returns how
    /// many. Row locks only.
    pub async fn cleanup_older_than(&self, age: Duration, batch: i64) -> Result<u64, BoxError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&self.sql.cleanup).await?;
        let millis = age.as_millis().min(i64::MAX as u128) as f64;
        Ok(client.execute(&statement, &[&millis, &batch]).await?)
    }
}

/// What one message did in the inbox.
async fn handle<H: InboxHandler>(
    pool: Pool,
    handler: Arc<H>,
    sql: Arc<InboxSql>,
    message: Message,
) -> Result<Outcome, BoxError> {
    let consumer = message
        .origin()
        .consumer()
        .unwrap_or(wharf_middleware::UNNAMED)
        .to_owned();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let insert = tx.prepare_cached(&sql.insert).await?;
    let inserted = tx
        .execute(&insert, &[&consumer, &message.id().as_str()])
        .await?;
    if inserted == 0 {
        tracing::debug!(message_id = %message.id(), consumer, "inbox: already handled; not run again");
        tx.rollback().await?;
        return Ok(Outcome::Ack);
    }
    match handler.handle(&tx, &message).await {
        Ok(()) => {
            tx.commit().await?;
            Ok(Outcome::Ack)
        }
        Err(e) => {
            // Dropping the transaction would roll back too; say it, and report a failed
            // rollback after the handler's error (the handler's error decides).
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "inbox: rolling back failed (the connection is dropped)");
            }
            Err(e.into())
        }
    }
}

impl<H: InboxHandler> tower::Service<Message> for Inbox<H> {
    type Response = Outcome;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Outcome, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, message: Message) -> Self::Future {
        Box::pin(handle(
            self.pool.clone(),
            self.handler.clone(),
            self.sql.clone(),
            message,
        ))
    }
}
