//! A timed-out attempt is a transient failure with reason `timeout`: the retry layer
//! retries it, and the consumer keeps processing other messages.
#![cfg(all(feature = "retry", feature = "timeout"))]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower::ServiceBuilder;
use wharf::{Handler, HandlerError, Message};
use wharf_memory::Harness;
use wharf_middleware::retry::{RetryLayer, RetryPolicy};
use wharf_middleware::timeout::TimeoutLayer;

/// Hangs for an hour when the payload says so (or on the first call when it says
/// `hang-once`); otherwise returns at once. Counts calls.
fn sometimes_hangs(calls: Arc<AtomicU32>) -> impl Handler<(Message,)> + Clone {
    move |msg: Message| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let hang = match msg.payload().as_ref() {
                b"hang" => true,
                b"hang-once" => msg.attempt() == 1,
                _ => false,
            };
            if hang {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Ok::<_, HandlerError>(())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_retried_and_the_consumer_stays_alive() {
    let calls = Arc::new(AtomicU32::new(0));
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(
            RetryPolicy::new()
                .max_attempts(3)
                .initial_delay(Duration::from_secs(1)),
        ))
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .service(sometimes_hangs(calls.clone()).into_service());
    let mut harness = Harness::new(stack);
    let slow_once = harness.publish(Message::new("hang-once"));
    let stuck = harness.publish(Message::new("hang"));
    let fine = harness.publish(Message::new("fine"));

    let virtual_start = tokio::time::Instant::now();
    let report = harness.run_until_idle().await;

    report
        .assert_acked(&slow_once)
        .assert_retried(&slow_once, 1);
    report.assert_acked(&fine).assert_retried(&fine, 0);
    // Timed out on every attempt: dead-lettered (natively here, with no dead-letter
    // layer) once the attempts were spent, and the error says why.
    report
        .assert_dead_lettered(&stuck, "retries-exhausted")
        .assert_retried(&stuck, 2);
    let native = &report.native_dead_letters()[0];
    assert_eq!(
        native.failure.error(),
        "retries exhausted after 3 attempts; last error (timeout): handler timed out after 5s"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2 + 3 + 1);
    assert!(
        virtual_start.elapsed() < Duration::from_secs(3600),
        "no attempt ran to the end of its hour"
    );
}

#[tokio::test(start_paused = true)]
async fn a_policy_can_decline_timeouts_and_dead_letter_them_as_timeout() {
    let calls = Arc::new(AtomicU32::new(0));
    let policy = RetryPolicy::new()
        .max_attempts(5)
        .retry_if(|e| !e.is::<wharf_middleware::timeout::Elapsed>());
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .service(sometimes_hangs(calls.clone()).into_service());
    let mut harness = Harness::new(stack);
    let stuck = harness.publish(Message::new("hang"));
    let fine = harness.publish(Message::new("fine"));
    let report = harness.run_until_idle().await;

    report
        .assert_dead_lettered(&stuck, "timeout")
        .assert_retried(&stuck, 0);
    report.assert_acked(&fine);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn without_a_retry_layer_the_runtime_redelivers_a_timeout() {
    let calls = Arc::new(AtomicU32::new(0));
    let stack = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .service(sometimes_hangs(calls.clone()).into_service());
    let mut harness = Harness::new(stack);
    let slow_once = harness.publish(Message::new("hang-once"));
    let report = harness.run_until_idle().await;
    report
        .assert_acked(&slow_once)
        .assert_retried(&slow_once, 1);
}
