//! Claims and completions batched: one statement (one commit) for every operation that
//! arrived while the previous statement ran.
//!
//! Each operation of a store is a committed write, and a commit waits for the WAL to
//! reach the disk; done one by one, that wait, not the round trip, bounds the store
//! (about 10 k claim + complete pairs per second on the test machine). A task per kind
//! (claims, completions) takes the first waiting operation, every other one already
//! queued (up to [`MAX_BATCH`]), and runs them as one statement over arrays
//! (`unnest`): under load a batch holds what arrived during the previous commit; alone,
//! an operation waits for nothing. A key that appears twice in one batch (a statement
//! may not touch a row twice) waits for the next batch, which also gives it the answer
//! the first one left (in flight). Keys are inserted in sorted order, so batches of two
//! replicas lock rows in the same order and cannot deadlock each other.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use wharf::BoxError;
use wharf_middleware::idempotency::{Claim, ClaimToken};

/// Most operations in one statement.
pub(crate) const MAX_BATCH: usize = 512;

/// One queued operation: a claim (`retention` unused) or a completion (`lease` unused).
pub(crate) struct Op {
    pub(crate) consumer: String,
    pub(crate) key: String,
    pub(crate) token: i64,
    /// Lease (claims) or retention (completions), in milliseconds.
    pub(crate) millis: f64,
    pub(crate) reply: oneshot::Sender<Result<Claim, String>>,
}

/// Where to send operations of one kind.
pub(crate) type Queue = mpsc::UnboundedSender<Op>;

/// What a batch statement does.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Claims,
    Completions,
}

/// Starts the batching task for `kind`; it ends when every sender is dropped.
pub(crate) fn start(pool: Pool, sql: Arc<str>, kind: Kind) -> Queue {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(pool, sql, kind, rx));
    tx
}

async fn run(pool: Pool, sql: Arc<str>, kind: Kind, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut carried: Vec<Op> = Vec::new();
    loop {
        let mut waiting = std::mem::take(&mut carried);
        if waiting.is_empty() {
            match rx.recv().await {
                Some(op) => waiting.push(op),
                None => return,
            }
        }
        while waiting.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => waiting.push(op),
                Err(_) => break,
            }
        }
        let mut seen = HashSet::new();
        let mut batch = Vec::with_capacity(waiting.len());
        for op in waiting {
            if seen.insert((op.consumer.clone(), op.key.clone())) {
                batch.push(op);
            } else {
                carried.push(op);
            }
        }
        batch.sort_by(|a, b| (&a.consumer, &a.key).cmp(&(&b.consumer, &b.key)));
        match execute(&pool, &sql, kind, &batch).await {
            Ok(answers) => {
                for op in batch {
                    let answer = match kind {
                        Kind::Claims => match answers.get(&(op.consumer, op.key)) {
                            Some(2) => Claim::Claimed(ClaimToken::new(op.token as u64)),
                            Some(1) => Claim::Completed,
                            _ => Claim::InFlight,
                        },
                        // A completion answers nothing; `Completed` stands for "done".
                        Kind::Completions => Claim::Completed,
                    };
                    let _ = op.reply.send(Ok(answer));
                }
            }
            Err(e) => {
                let e = e.to_string();
                for op in batch {
                    let _ = op.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Runs one batch; for claims, the answer per (consumer, key): 2 claimed, 1 completed,
/// 0 in flight.
async fn execute(
    pool: &Pool,
    sql: &str,
    kind: Kind,
    batch: &[Op],
) -> Result<HashMap<(String, String), i16>, BoxError> {
    let consumers: Vec<&str> = batch.iter().map(|o| o.consumer.as_str()).collect();
    let keys: Vec<&str> = batch.iter().map(|o| o.key.as_str()).collect();
    let tokens: Vec<i64> = batch.iter().map(|o| o.token).collect();
    let millis: Vec<f64> = batch.iter().map(|o| o.millis).collect();
    let client = pool.get().await?;
    let statement = client.prepare_cached(sql).await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&consumers, &keys, &tokens, &millis];
    match kind {
        Kind::Claims => Ok(client
            .query(&statement, &params)
            .await?
            .iter()
            .map(|row| ((row.get(0), row.get(1)), row.get(2)))
            .collect()),
        Kind::Completions => {
            client.execute(&statement, &params).await?;
            Ok(HashMap::new())
        }
    }
}
