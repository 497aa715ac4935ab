//! The middleware on the adapter: dead letters written through the adapter's publisher,
//! and duplicates (same message id) skipped by the dedup layer.

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::Duration;

use tower::ServiceBuilder;
use wharf::headers::names;
use wharf::{Consumer, DeliveryOrder, Handler, HandlerError, Message, Publisher};
use wharf_middleware::dead_letter::{DeadLetterLayer, Destination};
use wharf_middleware::dedup::{DedupLayer, MemoryDedupStore};
use wharf_middleware::retry::{RetryLayer, RetryPolicy};

use crate::factory::AdapterFactory;
use crate::support::{
    eventually, prepare, publish_all, publisher, receive, settle, skip, start, subscribe,
    unique_group, unique_topic, Log,
};

/// A handler that always fails transiently, behind the retry layer (3 attempts, short
/// backoff) and the dead-letter layer writing to a second topic through the adapter's
/// publisher: the message is delivered 3 times, then exactly one dead letter arrives on
/// the dead-letter topic with the original id, key, headers and payload and the full
/// `wharf-dlq-*` header set (`reason = retries-exhausted`, `attempts = 3`).
pub async fn retry_then_dead_letter_with_headers<F: AdapterFactory>(f: &F) {
    const ATTEMPTS: u32 = 3;
    if !f.capabilities().acknowledgements {
        skip(
            f,
            "retry_then_dead_letter_with_headers",
            "redelivery is not promised",
        );
        return;
    }
    let topic = unique_topic("retry-dlq");
    let group = unique_group("failing");
    let dlq_topic = format!("{topic}-dlq");
    let dlq_group = unique_group("dlq-reader");
    prepare(f, &topic, &[&group]).await;
    prepare(f, &dlq_topic, &[&dlq_group]).await;

    let dlq_publisher: Arc<dyn Publisher> = Arc::new(publisher(f).await);
    let calls: Log<u32> = Log::new();
    let handler = {
        let calls = calls.clone();
        move |m: Message| {
            let calls = calls.clone();
            async move {
                calls.push(m.attempt());
                Err::<(), _>(HandlerError::transient(std::io::Error::other(
                    "downstream unavailable",
                )))
            }
        }
    };
    let stack = ServiceBuilder::new()
        .layer(
            DeadLetterLayer::new(dlq_publisher)
                .destination(Destination::Fixed(f.destination(&dlq_topic).into())),
        )
        .layer(RetryLayer::new(
            RetryPolicy::new()
                .max_attempts(ATTEMPTS)
                .initial_delay(Duration::from_millis(50))
                .jitter(0.0),
        ))
        .service(handler.into_service());

    let sent = Message::with_id(format!("{topic}-poison"), "payload-kept")
        .with_key("key-kept")
        .with_header("conformance-header", "kept");
    publish_all(&publisher(f).await, &f.destination(&topic), [sent.clone()]).await;
    let running = start(Consumer::new(
        "conformance-consumer",
        subscribe(f, &topic, &group).await,
        stack,
    ));

    let mut reader = subscribe(f, &dlq_topic, &dlq_group).await;
    let delivery = receive(&mut reader, f.timeout(), || {
        format!("the dead letter of {} on `{dlq_topic}`", sent.id())
    })
    .await;
    let (letter, acker) = delivery.into_parts();
    settle(acker, wharf::Outcome::Ack, letter.id(), f.timeout()).await;
    running.stop(f.timeout()).await;

    assert_eq!(
        calls.snapshot(),
        (1..=ATTEMPTS).collect::<Vec<_>>(),
        "the handler must see attempts 1..={ATTEMPTS}, counted by the broker or `wharf-attempt`"
    );
    assert_eq!(
        letter.id(),
        sent.id(),
        "the dead letter keeps the message id"
    );
    assert_eq!(
        letter.payload(),
        sent.payload(),
        "the dead letter keeps the payload"
    );
    assert_eq!(letter.key(), sent.key(), "the dead letter keeps the key");
    let h = letter.headers();
    assert_eq!(h.get_str("conformance-header"), Some("kept"));
    assert_eq!(h.get_str(names::DLQ_REASON), Some("retries-exhausted"));
    assert_eq!(h.get_str(names::DLQ_ATTEMPTS), Some("3"));
    assert_eq!(h.get_str(names::DLQ_CONSUMER), Some("conformance-consumer"));
    assert!(
        h.get_str(names::DLQ_ERROR)
            .is_some_and(|e| e.contains("downstream unavailable")),
        "wharf-dlq-error: {:?}",
        h.get_str(names::DLQ_ERROR)
    );
    assert!(
        h.get_str(names::DLQ_SOURCE).is_some_and(|s| !s.is_empty()),
        "wharf-dlq-source must name where the message came from"
    );
    let failed_at = h.get_str(names::DLQ_FAILED_AT).unwrap_or_default();
    assert!(
        humantime::parse_rfc3339(failed_at).is_ok(),
        "wharf-dlq-failed-at must be RFC 3339, got {failed_at:?}"
    );
}

/// The same message (same id) published twice reaches the stack twice; the dedup layer
/// runs the handler once and acks the second copy without running it.
pub async fn duplicate_is_skipped<F: AdapterFactory>(f: &F) {
    if !f.capabilities().acknowledgements {
        skip(f, "duplicate_is_skipped", "settlements are not promised");
        return;
    }
    let topic = unique_topic("duplicate");
    let group = unique_group("dedup");
    prepare(f, &topic, &[&group]).await;

    let handled = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicUsize::new(0));
    let handler = {
        let handled = handled.clone();
        move |_m: Message| {
            let handled = handled.clone();
            async move {
                handled.fetch_add(1, AtomicOrdering::SeqCst);
                Ok::<(), HandlerError>(())
            }
        }
    };
    let stack = ServiceBuilder::new()
        .map_request({
            let delivered = delivered.clone();
            move |m: Message| {
                delivered.fetch_add(1, AtomicOrdering::SeqCst);
                m
            }
        })
        .layer(DedupLayer::new(MemoryDedupStore::default()))
        .service(handler.into_service());

    let original = Message::with_id(format!("{topic}-dup"), "once").with_key("k");
    let control = Message::with_id(format!("{topic}-other"), "other").with_key("k");
    publish_all(
        &publisher(f).await,
        &f.destination(&topic),
        [original.clone(), original.clone(), control],
    )
    .await;
    let running = start(
        Consumer::new(
            "conformance-consumer",
            subscribe(f, &topic, &group).await,
            stack,
        )
        .ordering(DeliveryOrder::Sequential),
    );
    eventually(
        f.timeout(),
        || delivered.load(AtomicOrdering::SeqCst) >= 3 && handled.load(AtomicOrdering::SeqCst) >= 2,
        || {
            format!(
                "3 deliveries and 2 handled (delivered {}, handled {})",
                delivered.load(AtomicOrdering::SeqCst),
                handled.load(AtomicOrdering::SeqCst)
            )
        },
    )
    .await;
    // Give a wrongly re-run duplicate the chance to show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.stop(f.timeout()).await;
    assert_eq!(
        handled.load(AtomicOrdering::SeqCst),
        2,
        "the duplicate must be skipped: the handler runs once per distinct id"
    );
    assert_eq!(
        delivered.load(AtomicOrdering::SeqCst),
        3,
        "both copies are delivered"
    );
}
