//! The in-process tier calls the handler again within one delivery: same delivery,
//! backoff between the calls, order per key kept, and other keys not blocked.
#![cfg(feature = "retry")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower::ServiceBuilder;
use wharf::{Handler, HandlerError, Message};
use wharf_memory::Harness;
use wharf_middleware::retry::{RetryLayer, RetryPolicy};

/// Each handler call: payload, attempt seen, virtual time.
type Log = Arc<Mutex<Vec<(String, u32, Instant)>>>;

/// Logs every call; `flaky` fails its first two calls.
fn logging(log: Log) -> impl Handler<(Message,)> + Clone {
    move |msg: Message| {
        let log = log.clone();
        async move {
            let payload = String::from_utf8_lossy(msg.payload()).into_owned();
            let failures_so_far = {
                let mut log = log.lock().expect("log lock");
                let n = log.iter().filter(|(p, ..)| *p == payload).count();
                log.push((payload.clone(), msg.attempt(), Instant::now()));
                n
            };
            if payload == "flaky" && failures_so_far < 2 {
                return Err(HandlerError::transient("deadlock detected"));
            }
            Ok(())
        }
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy::new()
        .max_attempts(3)
        .initial_delay(Duration::from_secs(10))
        .jitter(0.0)
}

fn payloads(log: &Log) -> Vec<String> {
    log.lock()
        .expect("log lock")
        .iter()
        .map(|(p, ..)| p.clone())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn retries_stay_in_the_delivery_and_wait_the_backoff() {
    let log = Log::default();
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(policy().in_process_retries(2)))
        .service(logging(log.clone()).into_service());
    let mut harness = Harness::new(stack);
    let id = harness.publish(Message::new("flaky"));
    let report = harness.run_until_idle().await;

    report.assert_acked(&id).assert_retried(&id, 0);
    assert_eq!(report.record(&id).unwrap().deliveries, 1, "one delivery");
    let calls = log.lock().unwrap().clone();
    assert_eq!(calls.len(), 3);
    assert!(
        calls.iter().all(|(_, attempt, _)| *attempt == 1),
        "the handler saw the same delivery every time"
    );
    assert_eq!(
        calls[1].2 - calls[0].2,
        Duration::from_secs(10),
        "first backoff"
    );
    assert_eq!(
        calls[2].2 - calls[1].2,
        Duration::from_secs(20),
        "second backoff"
    );
}

#[tokio::test(start_paused = true)]
async fn order_per_key_holds_and_other_keys_go_on() {
    let log = Log::default();
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(policy().in_process_retries(2)))
        .service(logging(log.clone()).into_service());
    let mut harness = Harness::new(stack);
    harness.publish(Message::new("flaky").with_key("account-1"));
    harness.publish(Message::new("next").with_key("account-1"));
    harness.publish(Message::new("other").with_key("account-2"));
    let report = harness.run_until_idle().await;
    assert_eq!(report.acked().len(), 3);

    let order = payloads(&log);
    let position = |p: &str| order.iter().rposition(|x| x == p).unwrap();
    assert!(
        position("next") > position("flaky"),
        "the next message of the key waited for the retrying one: {order:?}"
    );
    assert!(
        position("other") < position("flaky"),
        "another key was not blocked by the wait: {order:?}"
    );
}

/// The contrast: by redelivery, a later message with the same key overtakes.
#[tokio::test(start_paused = true)]
async fn by_redelivery_a_later_message_of_the_key_overtakes() {
    let log = Log::default();
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(policy()))
        .service(logging(log.clone()).into_service());
    let mut harness = Harness::new(stack);
    let flaky = harness.publish(Message::new("flaky").with_key("account-1"));
    harness.publish(Message::new("next").with_key("account-1"));
    let report = harness.run_until_idle().await;

    report.assert_acked(&flaky).assert_retried(&flaky, 2);
    assert_eq!(report.record(&flaky).unwrap().deliveries, 3);
    let order = payloads(&log);
    assert_eq!(order, ["flaky", "next", "flaky", "flaky"]);
}
