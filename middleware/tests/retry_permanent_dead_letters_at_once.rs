//! A permanent failure is dead-lettered on the first attempt with its own reason,
//! whatever the retry policy allows; the messages after it are still processed.
#![cfg(all(feature = "retry", feature = "dead-letter"))]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use tower::ServiceBuilder;
use wharf::headers::names;
use wharf::{Handler, HandlerError, Json, Message, Outcome};
use wharf_memory::{Harness, MemoryBroker};
use wharf_middleware::dead_letter::DeadLetterLayer;
use wharf_middleware::retry::{RetryLayer, RetryPolicy};

/// Every retry the policy can give: it must not matter for a permanent error.
fn generous() -> RetryPolicy {
    RetryPolicy::new()
        .max_attempts(10)
        .in_process_retries(3)
        .retry_if(|_| true)
}

#[derive(serde::Deserialize)]
struct Invoice {
    amount: i64,
}

#[tokio::test(start_paused = true)]
async fn permanent_and_decode_errors_are_not_retried() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let handler = move |Json(invoice): Json<Invoice>| {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            if invoice.amount < 0 {
                return Err(HandlerError::permanent("negative amount"));
            }
            Ok(())
        }
    };
    let broker = MemoryBroker::new();
    let stack = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(Arc::new(broker.clone())))
        .layer(RetryLayer::new(generous()))
        .service(handler.into_service());
    let mut harness = Harness::with_broker(broker, stack).consumer_name("billing");
    let negative = harness.publish(Message::new(r#"{"amount":-5}"#).with_key("c-1"));
    let garbage = harness.publish(Message::new("not json").with_key("c-1"));
    let later = harness.publish(Message::new(r#"{"amount":5}"#).with_key("c-1"));
    let report = harness.run_until_idle().await;

    report
        .assert_dead_lettered(&negative, "permanent")
        .assert_retried(&negative, 0);
    report
        .assert_dead_lettered(&garbage, "decode")
        .assert_retried(&garbage, 0);
    report.assert_acked(&later);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "once for the negative amount, once for the later message; never for garbage"
    );
    for id in [&negative, &garbage] {
        let record = report.record(id).unwrap();
        assert_eq!(record.deliveries, 1, "first attempt");
        assert_eq!(
            record.outcomes,
            [Outcome::Ack],
            "acked after the dead letter"
        );
    }

    // The dead letter carries every diagnostic header.
    let copy = report.dead_letter(&negative).expect("the dead letter");
    let h = copy.headers();
    assert_eq!(h.get_str(names::DLQ_REASON), Some("permanent"));
    assert_eq!(h.get_str(names::DLQ_ERROR), Some("negative amount"));
    assert_eq!(h.get_str(names::DLQ_SOURCE), Some("input"));
    assert_eq!(h.get_str(names::DLQ_OFFSET), Some("0"));
    assert_eq!(h.get_str(names::DLQ_CONSUMER), Some("billing"));
    assert_eq!(h.get_str(names::DLQ_ATTEMPTS), Some("1"));
    assert!(h.get_str(names::DLQ_FAILED_AT).is_some());
    assert_eq!(copy.payload().as_ref(), br#"{"amount":-5}"#);
}

#[tokio::test(start_paused = true)]
async fn an_error_the_predicate_declines_is_given_up_at_once() {
    #[derive(Debug)]
    struct AccountClosed;
    impl std::fmt::Display for AccountClosed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("account closed")
        }
    }
    impl std::error::Error for AccountClosed {}

    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let handler = move |_: Message| {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            // `?` makes it transient; the policy knows better.
            Err::<(), _>(AccountClosed)?;
            Ok(())
        }
    };
    let policy = generous().retry_if(|e| !e.is::<AccountClosed>());
    let broker = MemoryBroker::new();
    let stack = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(Arc::new(broker.clone())))
        .layer(RetryLayer::new(policy))
        .service(handler.into_service());
    let mut harness = Harness::with_broker(broker, stack);
    let id = harness.publish(Message::new("x"));
    let report = harness.run_until_idle().await;

    report
        .assert_dead_lettered(&id, "permanent")
        .assert_retried(&id, 0);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let copy = report.dead_letter(&id).unwrap();
    assert_eq!(
        copy.headers().get_str(names::DLQ_ERROR),
        Some("account closed")
    );
}
