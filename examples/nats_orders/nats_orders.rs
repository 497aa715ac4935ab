//! The recommended stack on NATS JetStream: a transient failure is retried as a delayed
//! redelivery (`Nak` with a delay, attempt counted by the broker), failures that never
//! heal are dead-lettered to the dead-letter stream with the reason and attempt count.
//!
//! Run with `cargo run --example nats_orders` (needs nats-server with JetStream on
//! 127.0.0.1:4222; `RUST_LOG=wharf=debug` shows each decision).
//!
//! Four orders are published to a fresh stream:
//!
//! - `order-1` is accepted at once;
//! - `order-2` hits a warehouse that is down for its first delivery, and is accepted on
//!   the redelivery;
//! - `order-3` is refused by a business rule: dead-lettered at once (`permanent`);
//! - `order-4` is not JSON: dead-lettered at once (`decode`).
//!
//! The example waits until every order is settled, prints what happened, deletes its
//! streams and exits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use wharf::adapter::DeadLetterReader;
use wharf::headers::names;
use wharf::{Consumer, Handler, HandlerError, Json, Message, Publisher};
use wharf_middleware::retry::RetryPolicy;
use wharf_middleware::stack::RecommendedLayer;
use wharf_nats::{NatsClient, NatsConfig};

#[derive(Debug, Deserialize)]
struct Order {
    id: String,
    quantity: u32,
}

#[derive(Debug)]
struct WarehouseDown;

impl std::fmt::Display for WarehouseDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("warehouse service unavailable")
    }
}

impl std::error::Error for WarehouseDown {}

/// Accepted orders with the attempt that accepted them.
type Accepted = Arc<Mutex<HashMap<String, u32>>>;

#[derive(Clone)]
struct PlaceOrder {
    accepted: Accepted,
}

impl Handler<(Json<Order>, Message)> for PlaceOrder {
    async fn handle(
        &self,
        (Json(order), message): (Json<Order>, Message),
    ) -> Result<(), HandlerError> {
        if order.quantity > 100 {
            return Err(HandlerError::permanent(format!(
                "order {} exceeds the per-order limit",
                order.id
            )));
        }
        if order.id == "order-2" && message.attempt() == 1 {
            // `?` on an ordinary error is transient: worth retrying.
            Err(WarehouseDown)?;
        }
        self.accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(order.id, message.attempt());
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

    let stream = format!(
        "example-orders-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let config: NatsConfig = format!(
        "nats+jetstream://127.0.0.1:4222/{stream}?durable=order-service&ack_wait=30s&max_deliver=10"
    )
    .parse()?;
    let wharf_nats::Mode::JetStream(source) = config.mode().clone() else {
        unreachable!("a nats+jetstream:// URL");
    };
    let nats = NatsClient::connect(config).await?;
    let subscriber = nats.jetstream_subscriber().await?;
    let publisher = Arc::new(nats.publisher());

    let orders = [
        ("order-1", r#"{"id":"order-1","quantity":2}"#),
        ("order-2", r#"{"id":"order-2","quantity":1}"#),
        ("order-3", r#"{"id":"order-3","quantity":5000}"#),
        ("order-4", "this is not json"),
    ];
    for (id, body) in orders {
        publisher
            .publish(&stream, Message::with_id(id, body))
            .await?;
    }

    let accepted: Accepted = Arc::default();
    // Dead letters go to `<source>.dlq`: the stream's dead-letter subject.
    let stack = RecommendedLayer::new(publisher.clone())
        .retry(
            RetryPolicy::new()
                .max_attempts(4)
                .initial_delay(Duration::from_millis(300))
                .max_delay(Duration::from_secs(2)),
        )
        .timeout(Duration::from_secs(10))
        .service(
            PlaceOrder {
                accepted: accepted.clone(),
            }
            .into_service(),
        );

    // Stop once two orders are accepted and two dead-lettered (or after 60 s).
    let done = {
        let (nats, source, accepted) = (nats.clone(), source.clone(), accepted.clone());
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while tokio::time::Instant::now() < deadline {
                let ok = accepted.lock().unwrap_or_else(|e| e.into_inner()).len();
                let dead = nats
                    .dead_letters()
                    .list(&source.dead_letter_subject, 100)
                    .await
                    .map(|d| d.len())
                    .unwrap_or(0);
                if ok == 2 && dead == 2 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            eprintln!("gave up waiting after 60 s");
        }
    };
    let summary = Consumer::new("order-service", subscriber, stack)
        .owner("team-orders")
        .run(done)
        .await?;

    let accepted = accepted.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let dead = nats
        .dead_letters()
        .list(&source.dead_letter_subject, 100)
        .await?;
    for (id, _) in orders {
        if let Some(attempt) = accepted.get(id) {
            println!("{id}: accepted on delivery {attempt}");
        } else if let Some(letter) = dead.iter().find(|m| m.id().as_str() == id) {
            let h = letter.headers();
            println!(
                "{id}: dead-lettered to {} (reason: {}, attempts: {}, error: {})",
                source.dead_letter_subject,
                h.get_str(names::DLQ_REASON).unwrap_or("?"),
                h.get_str(names::DLQ_ATTEMPTS).unwrap_or("?"),
                h.get_str(names::DLQ_ERROR).unwrap_or("?"),
            );
        } else {
            println!("{id}: not settled");
        }
    }
    println!("{summary:?}");
    nats.delete_stream(&source.stream).await?;
    nats.delete_stream(&source.dead_letter_stream).await?;
    let complete = accepted.len() == 2 && dead.len() == 2;
    if !complete {
        return Err("not every order was settled".into());
    }
    Ok(())
}
