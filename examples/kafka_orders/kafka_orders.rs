//! What is particular to Kafka: **different keys of one partition are handled in
//! parallel while each key keeps its order**, a retry waits inside its key's lane (the
//! key's later records wait, other keys flow), and offsets are committed only below what
//! is settled.
//!
//! Run with `cargo run --example kafka_orders` (a Kafka broker on 127.0.0.1:9092, or
//! `WHARF_KAFKA_URL`). 40 customers send 10 numbered events each to a fresh 3-partition
//! topic, keyed by customer; the handler takes 5 ms and checks each customer's order.
//! `c07`'s event 3 fails once; one record is not JSON (dead-lettered to `<topic>.dlq`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wharf::adapter::DeadLetterReader;
use wharf::{Attempt, Consumer, Handler, HandlerError, Json, Message, Publisher, State};
use wharf_kafka::KafkaClient;
use wharf_middleware::stack::RecommendedLayer;

#[derive(Serialize, Deserialize)]
struct OrderEvent {
    customer: String,
    seq: u32,
}

/// Last event per customer, events out of order, and in flight now / at most.
#[derive(Clone, Default)]
struct Seen(
    Arc<Mutex<(HashMap<String, u32>, usize)>>,
    Arc<[AtomicUsize; 2]>,
);

async fn record(
    Json(event): Json<OrderEvent>,
    Attempt(attempt): Attempt,
    State(seen): State<Seen>,
) -> Result<(), HandlerError> {
    let now = seen.1[0].fetch_add(1, Ordering::SeqCst) + 1;
    seen.1[1].fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(5)).await;
    seen.1[0].fetch_sub(1, Ordering::SeqCst);
    if event.customer == "c07" && event.seq == 3 && attempt == 1 {
        return Err(HandlerError::transient("warehouse unavailable"));
    }
    let mut state = seen.0.lock().unwrap_or_else(|e| e.into_inner());
    let last = state.0.insert(event.customer, event.seq).unwrap_or(0);
    state.1 += usize::from(event.seq != last + 1);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("WHARF_KAFKA_URL")
        .unwrap_or_else(|_| "kafka://127.0.0.1:9092?partitions=3".into());
    let kafka = KafkaClient::connect(url.parse()?).await?;
    let topic = format!("orders-{}", std::process::id());
    kafka.declare(&topic, &["order-service"]).await?; // `topic` and `topic.dlq`

    let publisher = kafka.publisher();
    for seq in 1..=10 {
        for c in 0..40 {
            let event = OrderEvent {
                customer: format!("c{c:02}"),
                seq,
            };
            let message = Message::json(&event)?.with_key(event.customer.clone());
            publisher.publish(&topic, message).await?;
        }
    }
    publisher
        .publish(
            &topic,
            Message::with_id("garbled-1", "not json").with_key("c99"),
        )
        .await?;

    let seen = Seen::default();
    let stack = RecommendedLayer::new(publisher).service(record.with_state(seen.clone()));
    let subscriber = kafka.subscriber(&topic, "order-service").await?;
    let summary = Consumer::new("order-service", subscriber, stack)
        .max_in_flight(64)
        .stop_when_idle(Duration::from_secs(3))
        .run(wharf::shutdown::signal())
        .await?;

    let (customers, out_of_order) = seen.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let peak = seen.1[1].load(Ordering::SeqCst);
    println!("{summary:?}\nmost events in flight at once: {peak} (a partition-serial consumer: 3)");
    println!(
        "customers complete: {}, events out of order: {out_of_order}",
        customers.values().filter(|&&s| s == 10).count()
    );
    let dead_letters = kafka.dead_letters();
    let letters = dead_letters
        .list(&dead_letters.destination(&topic, "order-service"), 10)
        .await?;
    assert!(peak > 3 && out_of_order == 0 && customers.values().all(|&s| s == 10));
    assert_eq!(
        (letters.len(), summary.dead_lettered),
        (1, 1),
        "garbled-1 dead-lettered"
    );
    Ok(())
}
