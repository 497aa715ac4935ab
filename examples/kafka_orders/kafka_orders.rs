//! The recommended stack on Kafka, with what sets wharf apart there: **different keys of
//! one partition are handled in parallel while each key keeps its order**, and offsets
//! are committed only below what is settled.
//!
//! Run with `cargo run --example kafka_orders` (needs a Kafka-compatible broker on
//! 127.0.0.1:9092, such as Apache Kafka as `scripts/brokers.sh` starts it; `KAFKA_BROKERS` points
//! elsewhere; `RUST_LOG=wharf=debug` shows each decision).
//!
//! 40 customers each send 10 order events (numbered 1..=10 per customer) to a fresh
//! topic with 3 partitions; the customer id is the record key. The handler takes 5 ms
//! per event (a database write, say) and checks that each customer's events arrive in
//! order. Besides:
//!
//! - customer `c07`'s event 3 hits a warehouse that is down on its first attempt: it is
//!   retried **inside its key's lane** (the customer's later events wait, everyone
//!   else's keep flowing) and accepted on attempt 2;
//! - one event is not JSON: dead-lettered at once (`decode`) to `<topic>.dlq`.
//!
//! It prints how many events of one partition were in flight at once (a
//! partition-serial consumer would show 1), whether every customer's order held, and
//! the dead letter read back from the broker; it exits non-zero if anything is off.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wharf::headers::names;
use wharf::{Consumer, Handler, HandlerError, Json, Message, Publisher};
use wharf_kafka::{KafkaClient, KafkaConfig};
use wharf_middleware::retry::RetryPolicy;
use wharf_middleware::stack::RecommendedLayer;

const CUSTOMERS: usize = 40;
const EVENTS: u32 = 10;

#[derive(Debug, Serialize, Deserialize)]
struct OrderEvent {
    customer: String,
    seq: u32,
}

#[derive(Debug)]
struct WarehouseDown;

impl std::fmt::Display for WarehouseDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("warehouse service unavailable")
    }
}

impl std::error::Error for WarehouseDown {}

#[derive(Default)]
struct Seen {
    /// Last event number per customer.
    last: HashMap<String, u32>,
    /// Events that arrived out of order.
    out_of_order: Vec<String>,
    handled: usize,
    retried_accepted: Option<u32>,
}

#[derive(Clone, Default)]
struct RecordOrder {
    seen: Arc<Mutex<Seen>>,
    /// In flight right now, and the most seen at once, per partition.
    in_flight: Arc<[AtomicUsize; 3]>,
    peak: Arc<[AtomicUsize; 3]>,
}

impl Handler<(Json<OrderEvent>, Message)> for RecordOrder {
    async fn handle(
        &self,
        (Json(event), message): (Json<OrderEvent>, Message),
    ) -> Result<(), HandlerError> {
        let partition = message.origin().partition().unwrap_or(0) as usize % 3;
        let now = self.in_flight[partition].fetch_add(1, Ordering::SeqCst) + 1;
        self.peak[partition].fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.in_flight[partition].fetch_sub(1, Ordering::SeqCst);

        if event.customer == "c07" && event.seq == 3 && message.attempt() == 1 {
            // `?` on an ordinary error is transient: worth retrying.
            Err(WarehouseDown)?;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let last = seen.last.get(&event.customer).copied().unwrap_or(0);
        if event.seq != last + 1 {
            seen.out_of_order
                .push(format!("{} #{} after #{last}", event.customer, event.seq));
        }
        seen.last.insert(event.customer.clone(), event.seq);
        seen.handled += 1;
        if event.customer == "c07" && event.seq == 3 {
            seen.retried_accepted = Some(message.attempt());
        }
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

    let brokers = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topic = format!(
        "example-orders-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let config = KafkaConfig::new(brokers, [topic.as_str()])
        .group("order-service")
        // A short session timeout: a member that dies is replaced within seconds.
        .session_timeout(Duration::from_secs(6));
    let kafka = KafkaClient::connect(config).await?;
    kafka.create_topic(&topic, 3).await?;
    kafka.create_topic(&format!("{topic}.dlq"), 1).await?;

    let publisher = Arc::new(kafka.publisher());
    for seq in 1..=EVENTS {
        for c in 0..CUSTOMERS {
            let customer = format!("c{c:02}");
            let event = OrderEvent {
                customer: customer.clone(),
                seq,
            };
            let message = Message::json(&event)?
                .with_key(customer.clone())
                .with_header(names::IDEMPOTENCY_KEY, format!("{customer}-{seq}"));
            publisher.publish(&topic, message).await?;
        }
    }
    publisher
        .publish(
            &topic,
            Message::with_id("garbled-1", "this is not json").with_key("c99"),
        )
        .await?;
    let total = CUSTOMERS * EVENTS as usize;

    let handler = RecordOrder::default();
    let stack = RecommendedLayer::new(publisher.clone())
        .retry(
            RetryPolicy::new()
                .max_attempts(4)
                .initial_delay(Duration::from_millis(200))
                .max_delay(Duration::from_secs(2)),
        )
        .timeout(Duration::from_secs(10))
        .service(handler.clone().into_service());

    let subscriber = kafka.configured_subscriber().await?;
    let done = {
        let seen = handler.seen.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
            while tokio::time::Instant::now() < deadline {
                if seen.lock().unwrap_or_else(|e| e.into_inner()).handled >= total {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            eprintln!("gave up waiting after 90 s");
        }
    };
    let summary = Consumer::new("order-service", subscriber, stack)
        .owner("team-orders")
        .max_in_flight(64)
        .run(done)
        .await?;

    let seen = std::mem::take(&mut *handler.seen.lock().unwrap_or_else(|e| e.into_inner()));
    let peaks: Vec<usize> = handler
        .peak
        .iter()
        .map(|p| p.load(Ordering::SeqCst))
        .collect();
    println!("handled {} of {total} events", seen.handled);
    println!("most events of one partition in flight at once, per partition: {peaks:?}");
    if seen.out_of_order.is_empty() {
        println!("every customer's events were handled in order");
    } else {
        println!("OUT OF ORDER: {:?}", seen.out_of_order);
    }
    println!(
        "c07 #3: accepted on attempt {:?} after a retry inside its key's lane",
        seen.retried_accepted
    );
    let dead = kafka
        .read_topic(&format!("{topic}.dlq"), Duration::from_secs(10))
        .await?;
    for letter in &dead {
        let h = letter.headers();
        println!(
            "{}: dead-lettered to {topic}.dlq (reason: {}, partition {}, offset {})",
            letter.id(),
            h.get_str(names::DLQ_REASON).unwrap_or("?"),
            h.get_str(names::DLQ_PARTITION).unwrap_or("?"),
            h.get_str(names::DLQ_OFFSET).unwrap_or("?"),
        );
    }
    println!("{summary:?}");

    let ok = seen.handled == total
        && seen.out_of_order.is_empty()
        && seen.retried_accepted == Some(2)
        && peaks.iter().any(|&p| p > 1)
        && dead.len() == 1
        && dead[0].id().as_str() == "garbled-1";
    if !ok {
        return Err("the run did not go as described".into());
    }
    Ok(())
}
