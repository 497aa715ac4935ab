//! What is particular to NATS JetStream: a retry is a **delayed redelivery** by the
//! server (`Nak` with a delay; the attempt is the server's delivery count, so it
//! survives a crash), a handler slower than `ack_wait` is kept alive with progress acks,
//! and dead letters are kept in a stream of their own (`<stream>_dlq`), read back here.
//!
//! Run with `cargo run --example nats_orders` (nats-server with JetStream on
//! 127.0.0.1:4222, or `WHARF_NATS_URL`). `order-2` fails on its first delivery;
//! `order-3` is refused for good; `order-4` is not JSON. The streams are deleted at the end.

use std::time::Duration;

use serde::Deserialize;
use wharf::adapter::DeadLetterReader;
use wharf::{Attempt, Consumer, Handler, HandlerError, Json, Message, Publisher};
use wharf_middleware::retry::RetryPolicy;
use wharf_middleware::stack::RecommendedLayer;
use wharf_nats::NatsClient;

#[derive(Deserialize)]
struct Order {
    id: String,
    quantity: u32,
}

async fn place(Json(order): Json<Order>, Attempt(attempt): Attempt) -> Result<(), HandlerError> {
    println!("{} delivery {attempt}", order.id);
    if order.quantity > 100 {
        return Err(HandlerError::permanent("over the per-order limit"));
    }
    if order.id == "order-2" && attempt == 1 {
        return Err(HandlerError::transient("warehouse unavailable"));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("WHARF_NATS_URL")
        .unwrap_or_else(|_| "nats+jetstream://127.0.0.1:4222?ack_wait=30s&max_deliver=10".into());
    let nats = NatsClient::connect(url.parse()?).await?;
    let source = format!("orders-{}", std::process::id());
    // Stream `orders-N` capturing subject `orders-N`, durable `billing`, stream `orders-N_dlq`.
    let subscriber = nats.subscriber(&source, "billing").await?;

    let publisher = nats.publisher();
    for (id, body) in [
        ("order-1", r#"{"id":"order-1","quantity":2}"#),
        ("order-2", r#"{"id":"order-2","quantity":1}"#),
        ("order-3", r#"{"id":"order-3","quantity":5000}"#),
        ("order-4", "not json"),
    ] {
        publisher
            .publish(&source, Message::with_id(id, body))
            .await?;
    }

    let stack = RecommendedLayer::new(publisher)
        .retry(RetryPolicy::new().initial_delay(Duration::from_millis(300)))
        .service(place.into_service());
    let summary = Consumer::new("billing", subscriber, stack)
        .stop_when_idle(Duration::from_secs(2))
        .run(wharf::shutdown::signal())
        .await?;
    println!("{summary:?}");

    let dead_letters = nats.dead_letters();
    let subject = dead_letters.destination(&source, "billing");
    let letters = dead_letters.list(&subject, 10).await?;
    for letter in &letters {
        let reason = letter.headers().get_str("wharf-dlq-reason").unwrap_or("?");
        println!("dead letter {} on {subject}: {reason}", letter.id());
    }
    let stream = wharf_nats::stream_name(&source);
    nats.delete_stream(&stream).await?;
    nats.delete_stream(&format!("{stream}_dlq")).await?;
    assert_eq!(
        (summary.acked, summary.dead_lettered, letters.len()),
        (2, 2, 2)
    );
    Ok(())
}
