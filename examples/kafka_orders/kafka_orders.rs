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
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
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

/// What the handler saw: each customer's last event, and how many ran at once.
#[derive(Clone, Default)]
struct Seen {
    last: Arc<Mutex<HashMap<String, u32>>>,
    out_of_order: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

async fn record(
    Json(event): Json<OrderEvent>,
    Attempt(attempt): Attempt,
    State(seen): State<Seen>,
) -> Result<(), HandlerError> {
    let now = seen.in_flight.fetch_add(1, SeqCst) + 1;
    seen.peak.fetch_max(now, SeqCst);
    tokio::time::sleep(Duration::from_millis(5)).await; // a database write, say
    seen.in_flight.fetch_sub(1, SeqCst);
    if event.customer == "c07" && event.seq == 3 && attempt == 1 {
        return Err(HandlerError::transient("warehouse unavailable"));
    }
    let last = seen
        .last
        .lock()
        .expect("not poisoned")
        .insert(event.customer, event.seq);
    if last.unwrap_or(0) + 1 != event.seq {
        seen.out_of_order.fetch_add(1, SeqCst);
    }
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
        for customer in (0..40).map(|c| format!("c{c:02}")) {
            let key = customer.clone();
            let event = Message::json(&OrderEvent { customer, seq })?.with_key(key);
            publisher.publish(&topic, event).await?;
        }
    }
    let garbled = Message::with_id("garbled-1", "not json");
    publisher.publish(&topic, garbled).await?;

    let seen = Seen::default();
    let stack = RecommendedLayer::new(publisher).service(record.with_state(seen.clone()));
    let subscriber = kafka.subscriber(&topic, "order-service").await?;
    let summary = Consumer::new("order-service", subscriber, stack)
        .max_in_flight(64)
        .stop_when_idle(Duration::from_secs(3))
        .run(wharf::shutdown::signal())
        .await?;

    let peak = seen.peak.load(SeqCst);
    let out_of_order = seen.out_of_order.load(SeqCst);
    println!(
        "{summary:?}\nat most {peak} at once (partition-serial: 3), {out_of_order} out of order"
    );
    let dead_letters = kafka.dead_letters();
    let dlq = dead_letters.destination(&topic, "order-service");
    let letters = dead_letters.list(&dlq, 10).await?;
    let last = seen.last.lock().expect("not poisoned").clone();
    assert!(peak > 3 && out_of_order == 0 && last.values().all(|&seq| seq == 10));
    assert_eq!((letters.len(), summary.dead_lettered), (1, 1), "garbled-1");
    Ok(())
}
