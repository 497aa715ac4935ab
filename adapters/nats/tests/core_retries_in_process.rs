//! Core NATS with the recommended stack loses no transient failure.
//!
//! Core cannot redeliver, so the runtime carries out the retry layer's `Retry` itself
//! (`Capabilities::retry_in_lane`): the message runs again in its lane with its attempt
//! raised, and once the policy's attempts are spent the dead-letter layer publishes it.
//! Before: the first `Retry` reached the Core acker, which could only log that the
//! message was lost.
//!
//! - `flaky` fails transiently on attempts 1 and 2 and succeeds on attempt 3 (a handler
//!   deciding by `Message::attempt` sees in-process attempts);
//! - `broken` always fails transiently and lands on `<subject>.dlq` with reason
//!   `retries-exhausted` after 3 attempts.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::oneshot;
use wharf::{Consumer, Handler as _, HandlerError, Message, Publisher as _};
use wharf_middleware::retry::RetryPolicy;
use wharf_middleware::stack::RecommendedLayer;
use wharf_nats::{CoreSource, NatsConfig, NatsPublisher};

#[tokio::test]
#[ignore = "needs nats"]
async fn core_retries_in_process() {
    let _ticket = support::Ticket::take().await;
    let nats = support::connect(NatsConfig::core("unused")).await;
    let subject = format!("core-retry.{}", uuid::Uuid::new_v4().simple());
    let mut dead_letters = nats
        .client()
        .subscribe(format!("{subject}.dlq"))
        .await
        .unwrap();
    let subscriber = nats
        .core_subscriber_for(&CoreSource {
            subject: subject.clone(),
            queue_group: None,
        })
        .await
        .unwrap();
    let publisher = NatsPublisher::core(nats.client().clone());

    let calls: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let handler = {
        let calls = calls.clone();
        move |m: Message| {
            let calls = calls.clone();
            async move {
                calls
                    .lock()
                    .unwrap()
                    .push((m.id().to_string(), m.attempt()));
                match (m.id().as_str(), m.attempt()) {
                    ("flaky", 3..) => Ok(()),
                    _ => Err(HandlerError::transient("not yet")),
                }
            }
        }
    };
    let stack = RecommendedLayer::new(Arc::new(publisher.clone())).retry(
        RetryPolicy::new()
            .max_attempts(3)
            .initial_delay(Duration::from_millis(20))
            .jitter(0.0),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let consumer = tokio::spawn(
        Consumer::new(
            "core-retry",
            subscriber,
            stack.service(handler.into_service()),
        )
        .run(async move {
            let _ = stopped.await;
        }),
    );

    publisher
        .publish(&subject, Message::with_id("flaky", "f"))
        .await
        .unwrap();
    publisher
        .publish(&subject, Message::with_id("broken", "b"))
        .await
        .unwrap();

    let copy = tokio::time::timeout(Duration::from_secs(20), dead_letters.next())
        .await
        .expect("the dead letter within 20 s")
        .unwrap();
    let headers = copy.headers.unwrap();
    assert_eq!(
        headers.get("wharf-dlq-reason").map(|v| v.as_str()),
        Some("retries-exhausted")
    );
    assert_eq!(
        headers.get("wharf-dlq-attempts").map(|v| v.as_str()),
        Some("3")
    );
    assert_eq!(&copy.payload[..], b"b");

    // Let flaky finish (it is in its own lane).
    for _ in 0..200 {
        if calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c == &("flaky".into(), 3))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    let summary = consumer.await.unwrap().unwrap();

    let mut calls = calls.lock().unwrap().clone();
    calls.sort();
    let expected: Vec<(String, u32)> = ["broken", "flaky"]
        .iter()
        .flat_map(|id| (1..=3).map(move |a| ((*id).to_owned(), a)))
        .collect();
    assert_eq!(calls, expected, "each ran attempts 1, 2 and 3, in process");
    assert_eq!(summary.retried_in_lane, 4, "{summary:?}");
    assert_eq!(summary.acked, 1, "flaky handled: {summary:?}");
    assert_eq!(
        summary.dead_lettered, 1,
        "broken dead-lettered: {summary:?}"
    );
}
