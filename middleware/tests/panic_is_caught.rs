//! A panicking handler is a transient failure with reason `handler-panic`: retried by
//! the retry layer, dead-lettered with the panic message once attempts are spent, and
//! the consumer keeps processing the messages after it.
#![cfg(all(feature = "retry", feature = "catch-panic"))]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower::{Service, ServiceBuilder};
use wharf::{BoxError, DeliveryOrder as Lanes, Handler, HandlerError, Message, Outcome};
use wharf_memory::{Harness, Report};
use wharf_middleware::catch_panic::CatchPanicLayer;
use wharf_middleware::retry::{RetryLayer, RetryPolicy};

/// Runs the harness, failing (on virtual time) instead of hanging if a message never
/// settles for good.
async fn run<S>(harness: &mut Harness<S>) -> Report
where
    S: Service<Message, Response = Outcome> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    tokio::time::timeout(Duration::from_secs(24 * 3600), harness.run_until_idle())
        .await
        .expect("every message settled for good within a (virtual) day")
}

/// Panics when the payload says so (or on the first attempt for `panic-once`).
fn sometimes_panics(calls: Arc<AtomicU32>) -> impl Handler<(Message,)> + Clone {
    move |msg: Message| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            match msg.payload().as_ref() {
                b"panic" => panic!("invariant broken for {}", msg.id()),
                b"panic-once" if msg.attempt() == 1 => panic!("flaky invariant"),
                _ => Ok::<_, HandlerError>(()),
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_retried_and_the_consumer_stays_alive() {
    let calls = Arc::new(AtomicU32::new(0));
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(
            RetryPolicy::new()
                .max_attempts(3)
                .initial_delay(Duration::from_secs(1)),
        ))
        .layer(CatchPanicLayer::new())
        .service(sometimes_panics(calls.clone()).into_service());
    // One at a time: the messages after a panic run on the same consumer, after it.
    let mut harness = Harness::new(stack).ordering(Lanes::Sequential);
    let once = harness.publish(Message::new("panic-once"));
    let always = harness.publish(Message::new("panic"));
    let after = harness.publish(Message::new("fine"));
    let report = run(&mut harness).await;

    report.assert_acked(&once).assert_retried(&once, 1);
    report.assert_acked(&after).assert_retried(&after, 0);
    report
        .assert_dead_lettered(&always, "retries-exhausted")
        .assert_retried(&always, 2);
    let native = &report.native_dead_letters()[0];
    assert_eq!(
        native.failure.error(),
        format!(
            "retries exhausted after 3 attempts; last error (handler-panic): handler panicked: invariant broken for {always}"
        )
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2 + 3 + 1);
    assert_eq!(report.summary().received, 6, "every delivery was handled");
}

#[tokio::test(start_paused = true)]
async fn a_panic_retried_in_process_stays_in_its_delivery() {
    let calls = Arc::new(AtomicU32::new(0));
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(
            RetryPolicy::new().max_attempts(1).in_process_retries(2),
        ))
        .layer(CatchPanicLayer::new())
        .service(sometimes_panics(calls.clone()).into_service());
    let mut harness = Harness::new(stack);
    let always = harness.publish(Message::new("panic"));
    let after = harness.publish(Message::new("fine"));
    let report = run(&mut harness).await;

    report.assert_dead_lettered(&always, "retries-exhausted");
    assert_eq!(report.record(&always).unwrap().deliveries, 1);
    report.assert_acked(&after);
    assert_eq!(calls.load(Ordering::SeqCst), 3 + 1);
}
