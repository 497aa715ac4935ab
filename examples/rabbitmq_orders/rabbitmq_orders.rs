//! What is particular to RabbitMQ: retries wait in **TTL tier queues** (a retry goes to
//! the nearest tier, then back to the work queue), dead letters land in the group's
//! `<source>.<group>.dlq` queue, and a duplicate message id is skipped by the dedup layer.
//!
//! Run with `cargo run --example rabbitmq_orders` (`WHARF_RABBITMQ_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). Queues get fresh names and expire after an
//! hour. `order-2` fails once and comes back through the 1 s tier; `order-3` is refused
//! for good; `order-1` is published twice with one id.

use std::time::Duration;

use serde::Deserialize;
use wharf::adapter::DeadLetterReader;
use wharf::{Attempt, Consumer, Handler, HandlerError, Json, Message, Publisher};
use wharf_middleware::retry::RetryPolicy;
use wharf_middleware::stack::RecommendedLayer;
use wharf_rabbitmq::{RabbitClient, RabbitConfig};

#[derive(Deserialize)]
struct Order {
    id: String,
    quantity: u32,
}

async fn reserve(Json(order): Json<Order>, Attempt(attempt): Attempt) -> Result<(), HandlerError> {
    println!("{} attempt {attempt}", order.id);
    if order.quantity > 100 {
        return Err(HandlerError::permanent("over the per-order limit"));
    }
    if order.id == "order-2" && attempt == 1 {
        return Err(HandlerError::transient("warehouse busy"));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("WHARF_RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let config = RabbitConfig::from_url(&url)?
        .retry_tiers([Duration::from_secs(1), Duration::from_secs(10)])
        .queue_expires(Duration::from_secs(3600));
    let rabbit = RabbitClient::connect(config).await?;
    let source = format!("orders-{}", std::process::id());
    // Exchange `orders-N`, queue `orders-N.stock` with tiers `.retry.1s`, `.retry.10s`, `.dlq`.
    let subscriber = rabbit.subscriber(&source, "stock").await?;

    let publisher = rabbit.publisher();
    for (id, body) in [
        ("order-1", r#"{"id":"order-1","quantity":2}"#),
        ("order-2", r#"{"id":"order-2","quantity":5}"#),
        ("order-3", r#"{"id":"order-3","quantity":500}"#),
        ("order-1", r#"{"id":"order-1","quantity":2}"#),
    ] {
        publisher
            .publish(&source, Message::with_id(id, body))
            .await?;
    }

    let stack = RecommendedLayer::new(publisher)
        .retry(RetryPolicy::new().initial_delay(Duration::from_millis(500)))
        .service(reserve.into_service());
    let summary = Consumer::new("stock", subscriber, stack)
        .stop_when_idle(Duration::from_secs(3))
        .run(wharf::shutdown::signal())
        .await?;
    println!("{summary:?}");

    let dead_letters = rabbit.dead_letters();
    let dlq = dead_letters.destination(&source, "stock");
    for letter in dead_letters.list(&dlq, 10).await? {
        let reason = letter.headers().get_str("wharf-dlq-reason").unwrap_or("?");
        println!("dead letter {} in {dlq}: {reason}", letter.id());
    }
    // Four published plus order-2's retry; order-1's copy skipped; order-3 dead-lettered.
    assert_eq!(
        (summary.received, summary.acked, summary.dead_lettered),
        (5, 3, 1)
    );
    Ok(())
}
