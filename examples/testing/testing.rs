//! Testing a handler: the in-memory [`Harness`](wharf_memory::Harness) runs the real
//! consumer and stack, and tokio's paused clock makes every backoff take no wall time.
//!
//! Run with `cargo run --example testing`.
//!
//! The handler charges payments through a gateway it gets as [`State`](wharf::State).
//! The test publishes three payments — one the gateway refuses twice before it works,
//! one with a negative amount, one that is not JSON — runs the consumer until every
//! message is settled, and asserts what happened to each: retried twice and acked,
//! dead-lettered as `permanent`, dead-lettered as `decode`. The retries wait 1 s and 2 s
//! of virtual time; the run takes milliseconds.
//!
//! In a test suite the same code sits in `#[tokio::test(start_paused = true)]`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use wharf::{Attempt, Handler, HandlerError, Json, Message, State};
use wharf_memory::{Harness, MemoryBroker};
use wharf_middleware::retry::RetryPolicy;
use wharf_middleware::stack::RecommendedLayer;

#[derive(Deserialize)]
struct Payment {
    id: String,
    amount_cents: i64,
}

/// A fake payment gateway: refuses each payment `flaky` times, then accepts it.
#[derive(Clone, Default)]
struct Gateway {
    refusals_left: Arc<Mutex<HashMap<String, u32>>>,
    charged: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    fn flaky(self, payment: &str, times: u32) -> Self {
        self.refusals_left
            .lock()
            .expect("not poisoned")
            .insert(payment.to_owned(), times);
        self
    }

    fn charge(&self, payment: &Payment) -> Result<(), &'static str> {
        let mut refusals = self.refusals_left.lock().expect("not poisoned");
        match refusals.get_mut(&payment.id) {
            Some(left) if *left > 0 => {
                *left -= 1;
                Err("gateway timeout")
            }
            _ => {
                self.charged
                    .lock()
                    .expect("not poisoned")
                    .push(payment.id.clone());
                Ok(())
            }
        }
    }
}

/// The handler under test.
async fn charge(
    Json(payment): Json<Payment>,
    Attempt(attempt): Attempt,
    State(gateway): State<Gateway>,
) -> Result<(), HandlerError> {
    if payment.amount_cents <= 0 {
        return Err(HandlerError::permanent(format!(
            "payment {} has a non-positive amount",
            payment.id
        )));
    }
    // `?` on any error makes it transient: retried with backoff.
    gateway
        .charge(&payment)
        .map_err(|e| HandlerError::transient(format!("attempt {attempt}: {e}")))?;
    Ok(())
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let broker = MemoryBroker::new();
    let gateway = Gateway::default().flaky("p-1", 2);
    let stack = RecommendedLayer::new(broker.clone())
        .retry(
            RetryPolicy::new()
                .max_attempts(5)
                .initial_delay(Duration::from_secs(1))
                .jitter(0.0),
        )
        .service(charge.with_state(gateway.clone()));
    let mut harness = Harness::with_broker(broker, stack)
        .topic("payments")
        .consumer_name("billing");

    let flaky = harness.publish(Message::new(r#"{"id":"p-1","amount_cents":1250}"#));
    let negative = harness.publish(Message::new(r#"{"id":"p-2","amount_cents":-5}"#));
    let garbage = harness.publish(Message::new("not json"));

    let wall = std::time::Instant::now();
    let virtual_start = tokio::time::Instant::now();
    let report = harness.run_until_idle().await;

    report.assert_acked(&flaky).assert_retried(&flaky, 2);
    report.assert_dead_lettered(&negative, "permanent");
    report.assert_dead_lettered(&garbage, "decode");
    assert_eq!(*gateway.charged.lock().expect("not poisoned"), ["p-1"]);
    let copy = report.dead_letter(&negative).expect("a dead letter");
    assert_eq!(
        copy.headers().get_str("wharf-dlq-consumer"),
        Some("billing")
    );

    println!(
        "p-1 retried twice then acked; p-2 dead-lettered (permanent); garbage dead-lettered (decode)"
    );
    println!(
        "virtual time: {:?} of backoff; wall time: {:?}",
        virtual_start.elapsed(),
        wall.elapsed()
    );
}
