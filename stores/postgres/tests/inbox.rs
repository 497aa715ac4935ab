//! The transactional inbox against the local PostgreSQL: the handler's writes and the
//! message id commit together, a redelivery of a committed message does not run the
//! handler, a failure leaves nothing, concurrent copies run once.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower::{Service, ServiceExt};
use wharf::{HandlerError, Message, Origin, Outcome};
use wharf_postgres::{Inbox, InboxHandler, PostgresStoreConfig, Transaction};

const DB: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Inserts the payload into `orders_table`; fails while `failures` is above zero.
struct SaveOrder {
    table: String,
    runs: Arc<AtomicUsize>,
    failures: AtomicUsize,
    pause: Duration,
}

#[async_trait::async_trait]
impl InboxHandler for SaveOrder {
    async fn handle(&self, tx: &Transaction<'_>, message: &Message) -> Result<(), HandlerError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let body = String::from_utf8_lossy(message.payload()).into_owned();
        tx.execute(
            &format!("INSERT INTO {} (body) VALUES ($1)", self.table),
            &[&body],
        )
        .await?;
        tokio::time::sleep(self.pause).await;
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(HandlerError::transient("the warehouse is down"));
        }
        Ok(())
    }
}

struct Setup {
    inbox: Inbox<SaveOrder>,
    runs: Arc<AtomicUsize>,
    client: tokio_postgres::Client,
    orders: String,
}

async fn setup(name: &str, failures: usize, pause: Duration) -> Setup {
    let (client, connection) = tokio_postgres::connect(DB, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let orders = format!("inbox_orders_{name}_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {orders}; CREATE TABLE {orders} (body text NOT NULL)"
        ))
        .await
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let handler = SaveOrder {
        table: orders.clone(),
        runs: runs.clone(),
        failures: AtomicUsize::new(failures),
        pause,
    };
    // The cleanup test deletes every old id of its table: it has a table of its own.
    let table = if name == "cleanup" {
        "wharf_inbox_cleanup_test"
    } else {
        "wharf_inbox_test"
    };
    let config: PostgresStoreConfig = format!("{DB}?table={table}").parse().unwrap();
    let inbox = Inbox::connect(config, handler).await.unwrap();
    Setup {
        inbox,
        runs,
        client,
        orders,
    }
}

fn order(id: &str, consumer: &str) -> Message {
    Message::with_id(
        format!("{id}-{}", uuid::Uuid::new_v4().simple()),
        format!("order {id}"),
    )
    .with_origin(Origin::new("orders").with_consumer(consumer))
}

async fn rows(s: &Setup) -> i64 {
    s.client
        .query_one(&format!("SELECT count(*) FROM {}", s.orders), &[])
        .await
        .unwrap()
        .get(0)
}

async fn call(inbox: &mut Inbox<SaveOrder>, message: Message) -> Result<Outcome, wharf::BoxError> {
    inbox.ready().await.unwrap().call(message).await
}

#[tokio::test]
#[ignore = "needs postgres"]
async fn a_redelivered_committed_message_does_not_run_again() {
    let mut s = setup("redelivery", 0, Duration::ZERO).await;
    let message = order("o-1", "billing");
    assert_eq!(
        call(&mut s.inbox, message.clone()).await.unwrap(),
        Outcome::Ack
    );
    // The process died after the commit, before the ack: the broker delivers it again.
    assert_eq!(
        call(&mut s.inbox, message.clone()).await.unwrap(),
        Outcome::Ack
    );
    assert_eq!(s.runs.load(Ordering::SeqCst), 1, "the handler ran once");
    assert_eq!(rows(&s).await, 1, "one effect");
    // Another consumer of the same message is another key.
    let other = message.with_origin(Origin::new("orders").with_consumer("shipping"));
    call(&mut s.inbox, other).await.unwrap();
    assert_eq!((s.runs.load(Ordering::SeqCst), rows(&s).await), (2, 2));
}

#[tokio::test]
#[ignore = "needs postgres"]
async fn a_failed_handler_leaves_no_effect_and_no_id() {
    let mut s = setup("failure", 1, Duration::ZERO).await;
    let message = order("o-2", "billing");
    let err = call(&mut s.inbox, message.clone()).await.unwrap_err();
    assert!(err.to_string().contains("warehouse"), "{err}");
    assert_eq!(
        rows(&s).await,
        0,
        "the handler's insert rolled back with the id"
    );
    assert_eq!(call(&mut s.inbox, message).await.unwrap(), Outcome::Ack);
    assert_eq!((s.runs.load(Ordering::SeqCst), rows(&s).await), (2, 1));
}

#[tokio::test]
#[ignore = "needs postgres"]
async fn concurrent_copies_run_once() {
    let s = setup("concurrent", 0, Duration::from_millis(300)).await;
    let message = order("o-3", "billing");
    let copies: Vec<_> = (0..4)
        .map(|_| {
            let (mut inbox, message) = (s.inbox.clone(), message.clone());
            tokio::spawn(async move { call(&mut inbox, message).await.unwrap() })
        })
        .collect();
    for copy in copies {
        assert_eq!(copy.await.unwrap(), Outcome::Ack);
    }
    assert_eq!(
        s.runs.load(Ordering::SeqCst),
        1,
        "one copy ran; the others waited and skipped"
    );
    assert_eq!(rows(&s).await, 1);
}

#[tokio::test]
#[ignore = "needs postgres"]
async fn cleanup_removes_ids_past_the_window() {
    let mut s = setup("cleanup", 0, Duration::ZERO).await;
    call(&mut s.inbox, order("o-4", "billing")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Everything older than 10 ms (this test's id, and other runs' rows) goes.
    let mut removed = 0;
    loop {
        let n = s
            .inbox
            .cleanup_older_than(Duration::from_millis(10), 100)
            .await
            .unwrap();
        removed += n;
        if n < 100 {
            break;
        }
    }
    assert!(removed >= 1, "removed {removed}");
    assert_eq!(
        s.inbox
            .cleanup_older_than(Duration::from_millis(10), 100)
            .await
            .unwrap(),
        0
    );
}
