//! What every broker's bench shares: the rounds, the counting handler, and running wharf
//! with a bare or the recommended stack until the whole backlog is handled.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use wharf::adapter::Subscriber;
use wharf::{Consumer, Handler, HandlerError, Message, Publisher};
use wharf_middleware::idempotency::IdempotencyLayer;
use wharf_middleware::stack::RecommendedLayer;

use crate::stores::BenchStore;
use crate::{Sample, Settings, Variant};

/// Runs `drain(variant, round)` (the time one drain took) for every variant in every
/// round, alternating them so drift hits all three alike.
pub(crate) async fn rounds<F, Fut>(settings: &Settings, mut drain: F) -> Vec<Sample>
where
    F: FnMut(Variant, usize) -> Fut,
    Fut: Future<Output = Duration>,
{
    let mut samples = Vec::new();
    for round in 0..settings.rounds {
        for &variant in &settings.variants {
            samples.push(Sample {
                variant,
                elapsed: drain(variant, round).await,
                messages: settings.messages,
            });
        }
    }
    samples
}

/// How long a drain with wharf took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// From the start of the run until the consumer shut down.
    pub(crate) since_start: Duration,
    /// From the first handler call to the last message handled: for brokers where
    /// joining (a Kafka group) takes longer than the drain, or without a backlog (NATS
    /// Core).
    pub(crate) first_to_last: Duration,
}

/// Drains `subscriber` with wharf (bare or recommended stack, dead letters through
/// `publisher`) until `settings.messages` messages were handled, counting them in
/// `handled` as they go (NATS Core's publisher paces itself by it); returns when the
/// consumer has shut down.
pub(crate) async fn with_wharf<S: Subscriber>(
    variant: Variant,
    settings: &Settings,
    subscriber: S,
    publisher: Arc<dyn Publisher>,
    handled: Arc<AtomicUsize>,
) -> Timing {
    let first: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let last: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let all_done = Arc::new(Notify::new());
    let handler = {
        let (handled, all_done, n) = (handled.clone(), all_done.clone(), settings.messages);
        let (first, last) = (first.clone(), last.clone());
        move |_m: Message| {
            let (handled, all_done) = (handled.clone(), all_done.clone());
            let (first, last) = (first.clone(), last.clone());
            async move {
                first.get_or_init(Instant::now);
                if handled.fetch_add(1, Ordering::Relaxed) + 1 == n {
                    let _ = last.set(Instant::now());
                    all_done.notify_one();
                }
                Ok::<(), HandlerError>(())
            }
        }
    };
    let done = async move { all_done.notified().await };
    // Connected before the clock starts.
    let store = match variant {
        Variant::Idempotent(kind) => Some(BenchStore::open(kind, settings.in_flight).await),
        _ => None,
    };
    let start = Instant::now();
    let summary = match variant {
        Variant::Idempotent(_) => {
            let store = store.as_ref().expect("opened above").store.clone();
            let idempotency = IdempotencyLayer::new(store)
                // The bench publishes no keys: the message id stands in for one.
                .key_with(|m| Some(m.id().to_string()))
                // Rows expire at once (the same work for the store), so the bench leaves
                // nothing behind once it tidies up.
                .retention(Duration::from_millis(1));
            let stack = RecommendedLayer::new(publisher)
                .idempotency(idempotency)
                .service(handler.into_service());
            Consumer::new("bench", subscriber, stack)
                .max_in_flight(settings.in_flight)
                .run(done)
                .await
        }
        Variant::Recommended => {
            let stack = RecommendedLayer::new(publisher).service(handler.into_service());
            Consumer::new("bench", subscriber, stack)
                .max_in_flight(settings.in_flight)
                .run(done)
                .await
        }
        _ => {
            Consumer::new("bench", subscriber, handler.into_service())
                .max_in_flight(settings.in_flight)
                .run(done)
                .await
        }
    };
    if let Err(e) = summary {
        panic!("the consumer failed: {e}");
    }
    let since_start = start.elapsed();
    if let Some(store) = store {
        store.tidy().await;
    }
    match (first.get(), last.get()) {
        (Some(first), Some(last)) => Timing {
            since_start,
            first_to_last: *last - *first,
        },
        _ => panic!("the consumer stopped before handling every message"),
    }
}
