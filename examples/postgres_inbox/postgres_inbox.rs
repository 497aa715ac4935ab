//! The transactional inbox: each order is written exactly once, however often it is
//! delivered.
//!
//! Run with `cargo run --example postgres_inbox` (PostgreSQL on 127.0.0.1:5432, database
//! `test`, or `WHARF_POSTGRES_URL`). 50 orders are published to the in-memory broker; the
//! handler inserts each into a table **in the inbox's transaction**, so the row and the
//! message id commit together. The consumer is killed mid-run (its task aborted: what it
//! held unacked comes back), run again to the end, then every order is published a second
//! time and run once more. The table ends with one row per order.

use std::time::Duration;

use wharf::{Consumer, HandlerError, Message, ResultExt};
use wharf_memory::MemoryBroker;
use wharf_postgres::{Inbox, InboxHandler, Transaction};

struct SaveOrder;

#[async_trait::async_trait]
impl InboxHandler for SaveOrder {
    async fn handle(&self, tx: &Transaction<'_>, message: &Message) -> Result<(), HandlerError> {
        let order = std::str::from_utf8(message.payload()).permanent()?;
        tx.execute(
            "INSERT INTO inbox_example_orders (id) VALUES ($1)",
            &[&order],
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(10)).await; // more work in the transaction
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("WHARF_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    db.batch_execute(
        // A fresh start each run: the orders, and the inbox's memory of handled ids.
        "DROP TABLE IF EXISTS inbox_example_orders, inbox_example, inbox_example_schema;
         CREATE TABLE inbox_example_orders (id text NOT NULL)",
    )
    .await?;
    let inbox = Inbox::connect(format!("{url}?table=inbox_example").parse()?, SaveOrder).await?;

    let broker = MemoryBroker::new();
    let run = |name: &'static str| {
        let consumer = Consumer::new(
            "orders-writer",
            broker.subscribe("orders", "writer"),
            inbox.clone(),
        )
        .max_in_flight(8)
        .stop_when_idle(Duration::from_millis(300));
        tokio::spawn(async move { (name, consumer.run(std::future::pending()).await) })
    };
    let publish_all = || -> Result<(), wharf::PublishError> {
        for n in 0..50 {
            broker.publish(
                "orders",
                Message::with_id(format!("order-{n}"), format!("order-{n}")),
            )?;
        }
        Ok(())
    };

    publish_all()?;
    let first = run("first run");
    let count = "SELECT count(*) FROM inbox_example_orders";
    let started = std::time::Instant::now();
    while db.query_one(count, &[]).await?.get::<_, i64>(0) < 15 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the first run wrote nothing"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    first.abort(); // killed mid-run: what it held unacked comes back
    let (_, summary) = run("second run").await?;
    let summary = summary?;
    println!("after the kill, the second run: {summary:?}");
    assert!(summary.received > 0, "the kill left orders to redeliver");
    publish_all()?; // every order again, as a careless producer would
    let (_, summary) = run("third run").await?;
    println!("after every order was published again: {:?}", summary?);

    let row = db
        .query_one(
            "SELECT count(*), count(DISTINCT id) FROM inbox_example_orders",
            &[],
        )
        .await?;
    let (rows, distinct): (i64, i64) = (row.get(0), row.get(1));
    println!("{rows} rows for {distinct} orders");
    assert_eq!((rows, distinct), (50, 50), "one row per order");
    Ok(())
}
