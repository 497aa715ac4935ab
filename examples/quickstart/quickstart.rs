//! The wharf quickstart: a typed handler with the dead-letter layer, on the in-memory
//! broker. No broker to install, nothing to configure.
//!
//! Run with `cargo run --example quickstart`.
//!
//! It publishes four orders — two good, one the handler rejects for good, one that is not
//! JSON at all — runs a consumer until every message is settled, and prints what happened
//! to each: acked, or dead-lettered with the reason the copy on `orders.dlq` carries.

use serde::Deserialize;
use tower::ServiceBuilder;
use wharf::headers::names;
use wharf::{Consumer, Handler, HandlerError, Json, Message};
use wharf_memory::MemoryBroker;
use wharf_middleware::dead_letter::DeadLetterLayer;

#[derive(Debug, Deserialize)]
struct Order {
    id: String,
    amount_cents: i64,
}

/// The application's handler: says what went wrong, never acks or nacks.
async fn place_order(Json(order): Json<Order>) -> Result<(), HandlerError> {
    if order.amount_cents <= 0 {
        // No retry will fix this order: permanent, so it is dead-lettered at once.
        return Err(HandlerError::permanent(format!(
            "order {} has a non-positive amount ({})",
            order.id, order.amount_cents
        )));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = MemoryBroker::new();
    let published = [
        ("order-1", r#"{"id":"order-1","amount_cents":1250}"#),
        ("order-2", r#"{"id":"order-2","amount_cents":-5}"#),
        ("order-3", r#"{"id":"order-3","amount_cents":990}"#),
        ("order-4", "this is not JSON"),
    ];
    broker.declare_group("orders", "order-service");
    for (id, body) in published {
        broker.publish("orders", Message::with_id(id, body))?;
    }

    // The stack: dead-letter layer around the typed handler. Permanent errors and
    // payloads that do not decode are published to `orders.dlq`, then acked.
    let stack = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(broker.clone()))
        .service(place_order.into_service());

    // Run until every message is settled, then shut down gracefully.
    let idle = {
        let broker = broker.clone();
        async move { broker.idle("orders", "order-service").await }
    };
    let summary = Consumer::new(
        "order-service",
        broker.subscribe("orders", "order-service"),
        stack,
    )
    .owner("team-checkout")
    .run(idle)
    .await?;

    let dead_letters = broker.messages("orders.dlq");
    for (id, _) in published {
        match dead_letters.iter().find(|m| m.id().as_str() == id) {
            Some(letter) => println!(
                "{id}: dead-lettered (reason: {}, error: {})",
                letter.headers().get_str(names::DLQ_REASON).unwrap_or("?"),
                letter.headers().get_str(names::DLQ_ERROR).unwrap_or("?"),
            ),
            None => {
                let record = broker
                    .record("orders", "order-service", &id.into())
                    .ok_or("message was never delivered")?;
                println!("{id}: {}", record.final_outcome().ok_or("never settled")?);
            }
        }
    }
    println!(
        "received {}, acked {}, dead-lettered {} (copies on orders.dlq: {})",
        summary.received,
        summary.acked,
        summary.dead_lettered,
        dead_letters.len()
    );
    Ok(())
}
