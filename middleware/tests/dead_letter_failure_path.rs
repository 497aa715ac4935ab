//! When the dead letter itself cannot be published (issue 13, item 2).
//!
//! - A copy that would exceed the destination's size limit is cut to fit (error text
//!   first, then the original's largest own headers), marked `wharf-dlq-trimmed`, and
//!   lands: before, the publish failed on every redelivery, for ever.
//! - A copy that cannot be published at all is redelivered with a backoff that doubles
//!   with the message's attempt up to a cap, never a fixed short loop, and each failure
//!   is counted in `wharf_settle_failures_total{reason="dead_letter_publish"}`.
#![cfg(all(feature = "dead-letter", feature = "metrics"))]
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::{service_fn, ServiceBuilder, ServiceExt as _};
use wharf::headers::names;
use wharf::{BoxError, HandlerError, Message, Origin, Outcome, PublishError, Publisher};
use wharf_middleware::dead_letter::DeadLetterLayer;

/// A broker with a size limit (counted as `wharf::adapter::dead_letter::encoded_len`), or one
/// that refuses everything.
#[derive(Default)]
struct Broker {
    limit: Option<usize>,
    refuse_all: bool,
    stored: Mutex<Vec<Message>>,
}

#[async_trait]
impl Publisher for Broker {
    async fn publish(&self, destination: &str, message: Message) -> Result<(), PublishError> {
        let too_large = self
            .limit
            .is_some_and(|limit| wharf::adapter::dead_letter::encoded_len(&message) > limit);
        if self.refuse_all || too_large {
            return Err(PublishError::new(destination, message, "message too large"));
        }
        self.stored.lock().unwrap().push(message);
        Ok(())
    }

    fn max_message_bytes(&self) -> Option<usize> {
        self.limit
    }
}

async fn fails(_: Message) -> Result<Outcome, BoxError> {
    Err(HandlerError::permanent("x".repeat(3000)).into())
}

#[tokio::test]
async fn a_copy_near_the_limit_is_cut_to_fit_and_lands() {
    const LIMIT: usize = 100_000;
    let broker = Arc::new(Broker {
        limit: Some(LIMIT),
        ..Broker::default()
    });
    // The original fits; with the dlq headers and a 3,000-byte error the copy would not.
    let message = Message::new(vec![b'p'; LIMIT - 700])
        .with_key("k")
        .with_header("tenant", "acme")
        .with_origin(Origin::new("orders"));
    assert!(wharf::adapter::dead_letter::encoded_len(&message) < LIMIT);
    let stack = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(broker.clone()))
        .service(service_fn(fails));
    let outcome = stack.oneshot(message.clone()).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Ack,
        "dead-lettered, so the original is acked"
    );
    let stored = broker.stored.lock().unwrap();
    assert_eq!(stored.len(), 1);
    let copy = &stored[0];
    assert_eq!(
        copy.payload(),
        message.payload(),
        "the payload is never cut"
    );
    assert_eq!(copy.id(), message.id());
    let h = copy.headers();
    assert_eq!(h.get_str(names::DLQ_TRIMMED), Some("error"));
    assert_eq!(h.get_str(names::DLQ_REASON), Some("permanent"));
    assert_eq!(h.get_str("tenant"), Some("acme"));
    assert!(wharf::adapter::dead_letter::encoded_len(copy) <= LIMIT);
}

#[tokio::test]
async fn a_copy_that_cannot_be_published_backs_off_and_is_counted() {
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);
    let broker = Arc::new(Broker {
        refuse_all: true,
        ..Broker::default()
    });
    let layer = DeadLetterLayer::new(broker.clone())
        .retry_after_publish_failure(Duration::from_secs(1))
        .max_retry_after_publish_failure(Duration::from_secs(60));
    let mut delays = Vec::new();
    for attempt in [1, 2, 3, 6, 7, 40, u32::MAX] {
        let stack = ServiceBuilder::new()
            .layer(layer.clone())
            .service(service_fn(fails));
        let message = Message::new("p")
            .with_origin(Origin::new("orders"))
            .with_attempt(attempt);
        match stack.oneshot(message).await.unwrap() {
            Outcome::Retry { after } => delays.push(after.as_secs()),
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    assert_eq!(delays, [1, 2, 4, 32, 60, 60, 60]);
    assert!(broker.stored.lock().unwrap().is_empty());

    let snapshot = recorder.snapshotter().snapshot().into_vec();
    let counted = snapshot.iter().find_map(|(key, _, _, value)| {
        let key = key.key();
        let reason = key
            .labels()
            .find(|l| l.key() == "reason")?
            .value()
            .to_owned();
        (key.name() == wharf::metric_names::SETTLE_FAILURES && reason == "dead_letter_publish")
            .then_some(value)
    });
    assert_eq!(counted, Some(&DebugValue::Counter(7)), "{snapshot:?}");
}
