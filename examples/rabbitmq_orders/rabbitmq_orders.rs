//! A typed handler with the recommended stack on RabbitMQ: transient failures come back
//! through the retry tier queues, failures that never heal are dead-lettered to
//! `<queue>.dlq` with the reason and attempt count, duplicates are skipped.
//!
//! Run with `cargo run --example rabbitmq_orders` against a local broker
//! (`WHARF_RABBITMQ_URL`, default `amqp://guest:guest@127.0.0.1:5672/%2f`;
//! `RUST_LOG=wharf=debug` shows each decision). The queue has a fresh name per run and
//! expires ten minutes after its last use.
//!
//! Four orders are published:
//!
//! - `order-1` is accepted at once;
//! - `order-2` meets a flaky warehouse once, is retried through the 1 s tier, then accepted;
//! - `order-3` is refused by a business rule: dead-lettered at once (`permanent`);
//! - `order-1` again (same message id): a transport duplicate, skipped by dedup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use wharf::headers::names;
use wharf::{Consumer, Handler, HandlerError, Json, Message, Publisher};
use wharf_middleware::retry::RetryPolicy;
use wharf_middleware::stack::RecommendedLayer;
use wharf_rabbitmq::{inspect, RabbitConfig, RabbitPublisher, RabbitSubscriber};

#[derive(Debug, Deserialize)]
struct Order {
    id: String,
    quantity: u32,
    /// How many times the (simulated) warehouse fails before it answers.
    warehouse_failures: u32,
}

#[derive(Debug)]
struct WarehouseBusy;

impl std::fmt::Display for WarehouseBusy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("warehouse busy")
    }
}

impl std::error::Error for WarehouseBusy {}

/// What happened to each order, as the handler saw it.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<HashMap<String, Vec<String>>>>);

impl Journal {
    fn note(&self, order: &str, what: String) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(order.to_owned())
            .or_default()
            .push(what);
    }
}

struct ReserveStock {
    journal: Journal,
}

impl Handler<(Json<Order>, Message)> for ReserveStock {
    async fn handle(
        &self,
        (Json(order), message): (Json<Order>, Message),
    ) -> Result<(), HandlerError> {
        let attempt = message.attempt();
        if order.quantity > 100 {
            self.journal
                .note(&order.id, format!("attempt {attempt}: refused"));
            return Err(HandlerError::permanent(format!(
                "order {} asks for {} items; the limit is 100",
                order.id, order.quantity
            )));
        }
        if attempt <= order.warehouse_failures {
            self.journal
                .note(&order.id, format!("attempt {attempt}: warehouse busy"));
            return Err(HandlerError::transient(WarehouseBusy));
        }
        self.journal
            .note(&order.id, format!("attempt {attempt}: reserved"));
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into()),
        )
        .init();

    let url = std::env::var("WHARF_RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let queue = format!(
        "example-orders-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let config = RabbitConfig::builder_from_url(&url)?
        .queue(&queue)
        .prefetch(16)
        .retry_tiers([Duration::from_secs(1), Duration::from_secs(10)])
        .queue_expires(Duration::from_secs(600))
        .consumer_tag("order-service")
        .build()?;

    // Connecting declares the work queue, its retry tiers and `<queue>.dlq`.
    let subscriber = RabbitSubscriber::connect(&config).await?;
    let publisher = Arc::new(RabbitPublisher::connect(&config).await?);
    let orders = [
        (
            "order-1",
            r#"{"id":"order-1","quantity":2,"warehouse_failures":0}"#,
        ),
        (
            "order-2",
            r#"{"id":"order-2","quantity":5,"warehouse_failures":1}"#,
        ),
        (
            "order-3",
            r#"{"id":"order-3","quantity":500,"warehouse_failures":0}"#,
        ),
        (
            "order-1",
            r#"{"id":"order-1","quantity":2,"warehouse_failures":0}"#,
        ),
    ];
    for (id, body) in orders {
        publisher
            .publish(&queue, Message::with_id(id, body))
            .await?;
    }

    let journal = Journal::default();
    let stack = RecommendedLayer::new(publisher.clone())
        .retry(
            RetryPolicy::new()
                .max_attempts(3)
                .initial_delay(Duration::from_millis(500))
                .jitter(0.0),
        )
        .timeout(Duration::from_secs(5))
        .service(
            ReserveStock {
                journal: journal.clone(),
            }
            .into_service(),
        );

    // Run until every order is settled for good: three handled, one dead letter.
    let done = {
        let (journal, config, dlq) = (journal.clone(), config.clone(), format!("{queue}.dlq"));
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let reserved = journal
                    .0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .filter(|v| v.iter().any(|w| w.ends_with("reserved")))
                    .count();
                let dead = inspect::peek(&config, &dlq, 10)
                    .await
                    .map(|v| v.len())
                    .unwrap_or(0);
                if (reserved >= 2 && dead >= 1) || tokio::time::Instant::now() > deadline {
                    // A moment for the duplicate to be skipped and acked.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let summary = Consumer::new("order-service", subscriber, stack)
        .owner("team-orders")
        .max_in_flight(16)
        .run(done)
        .await?;

    let mut seen: Vec<(String, Vec<String>)> = journal
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .into_iter()
        .collect();
    seen.sort();
    for (order, steps) in seen {
        println!("{order}: {}", steps.join(", "));
    }
    for letter in inspect::peek(&config, &format!("{queue}.dlq"), 10).await? {
        println!(
            "dead letter {}: reason {}, attempts {}, error: {}",
            letter.id(),
            letter.headers().get_str(names::DLQ_REASON).unwrap_or("?"),
            letter.headers().get_str(names::DLQ_ATTEMPTS).unwrap_or("?"),
            letter.headers().get_str(names::DLQ_ERROR).unwrap_or("?"),
        );
    }
    println!(
        "received {}, acked {}, retried {}, dead-lettered {}",
        summary.received, summary.acked, summary.retried, summary.dead_lettered
    );
    publisher.close().await;
    if summary.dead_lettered != 1 || summary.received < 5 {
        // One dead letter (order-3, published by the dead-letter layer and counted as a
        // dead letter, not an ack); five deliveries: four published plus order-2's retry.
        return Err(format!("unexpected summary: {summary:?}").into());
    }
    Ok(())
}
