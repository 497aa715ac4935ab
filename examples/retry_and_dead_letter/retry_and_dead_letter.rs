//! The recommended stack on the in-memory broker: transient failures are retried with
//! backoff, failures that never heal are dead-lettered with the reason and attempt count,
//! and duplicates are skipped.
//!
//! Run with `cargo run --example retry_and_dead_letter`
//! (`RUST_LOG=wharf=debug` shows each decision).
//!
//! Five payments are published:
//!
//! - `pay-1` succeeds at once;
//! - `pay-2` hits a flaky gateway twice, then succeeds on the third delivery;
//! - `pay-3` hits a gateway that stays down: retried until attempts are spent, then
//!   dead-lettered with reason `retries-exhausted`;
//! - `pay-4` is refused by a business rule: dead-lettered at once with reason `permanent`;
//! - `pay-1` again (a transport duplicate, same message id): skipped by dedup.
//!
//! Backoffs are short here so the example finishes in about a second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use wharf::headers::names;
use wharf::{Consumer, Handler, HandlerError, Json, Message, Outcome};
use wharf_memory::MemoryBroker;
use wharf_middleware::retry::RetryPolicy;
use wharf_middleware::stack::RecommendedLayer;

#[derive(Debug, Deserialize)]
struct Payment {
    id: String,
    amount_cents: i64,
    /// How many calls the (simulated) gateway fails before it answers; `-1`: never.
    gateway_failures: i64,
}

/// The gateway client's error.
#[derive(Debug)]
struct GatewayDown;

impl std::fmt::Display for GatewayDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("payment gateway unavailable")
    }
}

impl std::error::Error for GatewayDown {}

/// Counts gateway calls per payment, standing in for a real client.
#[derive(Clone, Default)]
struct Gateway {
    calls: Arc<Mutex<HashMap<String, i64>>>,
}

/// Handler invocations per offset, so the example can tell what dedup skipped.
#[derive(Clone, Default)]
struct Invocations(Arc<Mutex<HashMap<u64, u32>>>);

impl Gateway {
    fn charge(&self, payment: &Payment) -> Result<(), GatewayDown> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let n = calls.entry(payment.id.clone()).or_insert(0);
        *n += 1;
        let failures = payment.gateway_failures;
        if failures < 0 || *n <= failures {
            Err(GatewayDown)
        } else {
            Ok(())
        }
    }
}

struct ChargePayment {
    gateway: Gateway,
    invocations: Invocations,
}

impl Handler<(Json<Payment>, Message)> for ChargePayment {
    async fn handle(
        &self,
        (Json(payment), message): (Json<Payment>, Message),
    ) -> Result<(), HandlerError> {
        let offset = message.origin().offset().unwrap_or_default();
        *self
            .invocations
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(offset)
            .or_default() += 1;
        if payment.amount_cents > 1_000_000 {
            return Err(HandlerError::permanent(format!(
                "payment {} exceeds the single-payment limit",
                payment.id
            )));
        }
        // `?` makes a gateway error transient: worth retrying.
        self.gateway.charge(&payment)?;
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

    let broker = MemoryBroker::new();
    broker.declare_group("payments", "payment-service");
    let payments = [
        (
            "pay-1",
            r#"{"id":"pay-1","amount_cents":500,"gateway_failures":0}"#,
        ),
        (
            "pay-2",
            r#"{"id":"pay-2","amount_cents":700,"gateway_failures":2}"#,
        ),
        (
            "pay-3",
            r#"{"id":"pay-3","amount_cents":900,"gateway_failures":-1}"#,
        ),
        (
            "pay-4",
            r#"{"id":"pay-4","amount_cents":5000000,"gateway_failures":0}"#,
        ),
        (
            "pay-1",
            r#"{"id":"pay-1","amount_cents":500,"gateway_failures":0}"#,
        ),
    ];
    for (id, body) in payments {
        broker.publish("payments", Message::with_id(id, body))?;
    }

    let gateway = Gateway::default();
    let invocations = Invocations::default();
    let stack = RecommendedLayer::new(Arc::new(broker.clone()))
        .retry(
            RetryPolicy::new()
                .max_attempts(4)
                .initial_delay(Duration::from_millis(50))
                .max_delay(Duration::from_millis(400)),
        )
        .timeout(Duration::from_secs(5))
        .service(
            ChargePayment {
                gateway: gateway.clone(),
                invocations: invocations.clone(),
            }
            .into_service(),
        );

    let idle = {
        let broker = broker.clone();
        async move { broker.idle("payments", "payment-service").await }
    };
    Consumer::new(
        "payment-service",
        broker.subscribe("payments", "payment-service"),
        stack,
    )
    .owner("team-payments")
    .run(idle)
    .await?;

    let dead_letters = broker.messages("payments.dlq");
    let invoked = invocations
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for record in broker.records("payments", "payment-service") {
        let id = record.id();
        let settled: Vec<&str> = record.outcomes.iter().map(Outcome::as_str).collect();
        let offset = record.message.origin().offset().unwrap_or_default();
        let handler_calls = invoked.get(&offset).copied().unwrap_or(0);
        let fate = match dead_letters.iter().find(|m| {
            m.id() == id && m.headers().get_str(names::DLQ_OFFSET) == Some(&offset.to_string())
        }) {
            Some(letter) => format!(
                "dead-lettered (reason: {}, attempts: {}, error: {})",
                letter.headers().get_str(names::DLQ_REASON).unwrap_or("?"),
                letter.headers().get_str(names::DLQ_ATTEMPTS).unwrap_or("?"),
                letter.headers().get_str(names::DLQ_ERROR).unwrap_or("?"),
            ),
            None if handler_calls == 0 => {
                "acked without running the handler: a duplicate".to_owned()
            }
            None => format!(
                "acked after {} deliveries ({handler_calls} handler calls)",
                record.deliveries
            ),
        };
        println!("{id} (offset {offset}): {fate}; settlements: {settled:?}");
    }
    Ok(())
}
