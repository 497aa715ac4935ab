//! Testing a handler with the harness: publish, run until idle, assert on what happened
//! to each message. Virtual time makes the 10-minute backoff below instant.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use wharf::{Handler, HandlerError, Json, Message, Outcome};
use wharf_memory::Harness;

#[derive(Deserialize)]
struct Payment {
    amount: i64,
}

#[tokio::test(start_paused = true)]
async fn the_harness_reports_each_message() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    // Fails transiently on the first attempt of every message; the runtime redelivers
    // after its retry delay.
    let handler = move |(Json(p), msg): (Json<Payment>, Message)| {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            if msg.attempt() == 1 {
                return Err(HandlerError::transient("payment service busy"));
            }
            if p.amount < 0 {
                return Err(HandlerError::permanent("negative amount"));
            }
            Ok(())
        }
    };
    let mut harness = Harness::new(handler.into_service());
    let ok = harness.publish(Message::new(r#"{"amount":5}"#));
    let negative = harness.publish(Message::new(r#"{"amount":-5}"#));
    let garbage = harness.publish(Message::new("garbage"));

    let started = std::time::Instant::now();
    let report = harness.run_until_idle().await;
    assert!(started.elapsed() < Duration::from_secs(5), "virtual time");

    report.assert_acked(&ok).assert_retried(&ok, 1);
    report.assert_dead_lettered(&negative, "permanent");
    report
        .assert_dead_lettered(&garbage, "decode")
        .assert_retried(&garbage, 0);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "garbage never reaches the handler"
    );
    assert_eq!(report.summary().received, 5);
    assert_eq!(
        report.outcome(&ok),
        Some(&Outcome::Ack),
        "final outcome of the good message"
    );
}
