//! One handler binary on every broker: the broker is chosen by `WHARF_URL` at run time.
//!
//! ```text
//! cargo run --example any_broker                                    # memory://
//! WHARF_URL=amqp://guest:guest@127.0.0.1:5672/%2f cargo run --example any_broker
//! WHARF_URL=kafka://127.0.0.1:9092 cargo run --example any_broker
//! WHARF_URL=nats://127.0.0.1:4222 cargo run --example any_broker   # Core NATS
//! WHARF_URL=nats+jetstream://127.0.0.1:4222 cargo run --example any_broker
//! ```
//!
//! Four orders: one accepted, one accepted after a transient failure (retried the way
//! the broker does it best), one refused for good and one that is not JSON (both
//! dead-lettered). The consumer stops once idle; the dead letters are read back (where
//! the broker keeps them) and removed. Exits non-zero if anything went otherwise.

use std::time::Duration;

use serde::Deserialize;
use wharf::adapter::DeadLetterReader;
use wharf::{Attempt, Consumer, Handler, HandlerError, Json, Message, Publisher};
use wharf_middleware::retry::RetryPolicy;
use wharf_middleware::stack::RecommendedLayer;

#[derive(Deserialize)]
struct Order {
    id: String,
    quantity: u32,
}

async fn place_order(
    Json(order): Json<Order>,
    Attempt(attempt): Attempt,
) -> Result<(), HandlerError> {
    if order.quantity > 100 {
        return Err(HandlerError::permanent(format!(
            "order {} is over the limit",
            order.id
        )));
    }
    if order.id == "order-2" && attempt == 1 {
        return Err(HandlerError::transient("warehouse unavailable"));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("WHARF_URL").unwrap_or_else(|_| "memory://".into());
    let client = wharf_any::connect(&url).await?;
    let source = format!("orders-{}", std::process::id());
    client.declare(&source, &["billing"]).await?;
    // Subscribed before publishing: Core NATS keeps nothing for a group not listening.
    let subscriber = client.subscriber(&source, "billing").await?;

    let publisher = client.publisher();
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
        .retry(RetryPolicy::new().initial_delay(Duration::from_millis(200)))
        .service(place_order.into_service());
    let summary = Consumer::new("billing", subscriber, stack)
        .stop_when_idle(Duration::from_secs(5))
        .run(wharf::shutdown::signal())
        .await?;
    println!("{}: {summary:?}", client.broker());

    let dead_letters = client.dead_letters();
    let destination = dead_letters.destination(&source, "billing");
    match dead_letters.list(&destination, 100).await {
        Ok(letters) => {
            for letter in &letters {
                let reason = letter.headers().get_str("wharf-dlq-reason").unwrap_or("?");
                println!("dead letter {} on {destination}: {reason}", letter.id());
                dead_letters.remove(&destination, letter).await?;
            }
            assert_eq!(letters.len(), 2, "two dead letters kept");
        }
        Err(e) => println!("dead letters on {destination} are not kept: {e}"),
    }
    assert_eq!(
        (summary.acked, summary.dead_lettered),
        (2, 2),
        "{summary:?}"
    );
    Ok(())
}
