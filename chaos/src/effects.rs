//! The effects table the children write and the harness counts.

use std::collections::{HashMap, HashSet};

use tokio_postgres::{Client, NoTls};

/// One row per effect: `at` orders them as they were written.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS wharf_chaos_effects (
    at      bigserial PRIMARY KEY,
    run     text    NOT NULL,
    id      text    NOT NULL,
    key     text    NOT NULL,
    seq     bigint  NOT NULL,
    attempt integer NOT NULL,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
ALTER TABLE wharf_chaos_effects
    ADD COLUMN IF NOT EXISTS written_at timestamptz NOT NULL DEFAULT clock_timestamp();
CREATE INDEX IF NOT EXISTS wharf_chaos_effects_run ON wharf_chaos_effects (run);
";

/// The inbox table of the `inbox` children.
pub(crate) const INBOX_TABLE: &str = "wharf_chaos_inbox";

/// The statement a handler runs for its effect.
pub(crate) const INSERT: &str =
    "INSERT INTO wharf_chaos_effects (run, id, key, seq, attempt) VALUES ($1, $2, $3, $4, $5)";

/// A connection to the effects database.
pub(crate) async fn connect() -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(crate::POSTGRES, NoTls)
        .await
        .map_err(|e| format!("connecting to PostgreSQL ({}): {e}", crate::POSTGRES))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Creates the table (once per database).
pub(crate) async fn create(db: &Client) -> Result<(), String> {
    // Two harnesses creating it at once may race on the catalog: the loser retries.
    for _ in 0..3 {
        if db.batch_execute(SCHEMA).await.is_ok() {
            return Ok(());
        }
    }
    db.batch_execute(SCHEMA)
        .await
        .map_err(|e| format!("creating the effects table: {e}"))
}

/// Distinct messages that took effect in `run`.
pub(crate) async fn distinct(db: &Client, run: &str) -> Result<u64, String> {
    let row = db
        .query_one(
            "SELECT count(DISTINCT id) FROM wharf_chaos_effects WHERE run = $1",
            &[&run],
        )
        .await
        .map_err(|e| format!("counting effects: {e}"))?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// What the children of one run did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    /// Effect rows written.
    pub(crate) rows: u64,
    /// Messages that took effect at least once.
    pub(crate) distinct: u64,
    /// Rows beyond the first of their message.
    pub(crate) duplicates: u64,
    /// Messages whose (first) effect was written by a redelivery (attempt > 1, where the
    /// broker counts deliveries).
    pub(crate) redelivered: u64,
    /// First effects of a key written with a lower sequence number than an earlier one.
    pub(crate) order_breaks: u64,
}

/// Counts run `run`'s effects.
pub(crate) async fn tally(db: &Client, run: &str) -> Result<Tally, String> {
    let rows = db
        .query(
            "SELECT id, key, seq, attempt FROM wharf_chaos_effects WHERE run = $1 ORDER BY at",
            &[&run],
        )
        .await
        .map_err(|e| format!("reading effects: {e}"))?;
    let mut t = Tally {
        rows: rows.len() as u64,
        ..Tally::default()
    };
    let mut seen: HashSet<String> = HashSet::with_capacity(rows.len());
    let mut last_seq: HashMap<String, i64> = HashMap::new();
    for row in rows {
        let (id, key, seq, attempt): (String, String, i64, i32) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if !seen.insert(id) {
            t.duplicates += 1;
            continue;
        }
        t.distinct += 1;
        if attempt > 1 {
            t.redelivered += 1;
        }
        let last = last_seq.entry(key).or_insert(-1);
        if seq < *last {
            t.order_breaks += 1;
        } else {
            *last = seq;
        }
    }
    Ok(t)
}

/// The database's clock (the one `written_at` reads).
pub(crate) async fn now(db: &Client) -> Result<std::time::SystemTime, String> {
    db.query_one("SELECT clock_timestamp()", &[])
        .await
        .map(|row| row.get(0))
        .map_err(|e| format!("reading the database's clock: {e}"))
}

/// Distinct messages of `run` that took effect within `window` before `at`.
pub(crate) async fn written_before(
    db: &Client,
    run: &str,
    at: std::time::SystemTime,
    window: std::time::Duration,
) -> Result<u64, String> {
    let from = at - window;
    let row = db
        .query_one(
            "SELECT count(DISTINCT id) FROM wharf_chaos_effects
             WHERE run = $1 AND written_at BETWEEN $2 AND $3",
            &[&run, &from, &at],
        )
        .await
        .map_err(|e| format!("counting effects before a kill: {e}"))?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// Deletes run `run`'s rows.
pub(crate) async fn forget(db: &Client, run: &str) -> Result<(), String> {
    db.execute("DELETE FROM wharf_chaos_effects WHERE run = $1", &[&run])
        .await
        .map_err(|e| format!("deleting the run's effects: {e}"))?;
    Ok(())
}
