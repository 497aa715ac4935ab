//! NATS Core: the plain loop is an async-nats subscription read with `next()` (Core has
//! no acknowledgements: at-most-once).
//!
//! Core keeps no backlog, so every drain publishes while it consumes: a publisher on its
//! own connection stays at most [`WINDOW`] messages ahead of what the consumer has
//! handled, which keeps the subscription's buffer (and the server's slow-consumer limit)
//! far from full, so nothing is dropped and the consumer, not the publisher's burst,
//! sets the pace. The clock runs from the first message handled to the last. Needs
//! nats-server on 127.0.0.1:4222.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use wharf_nats::{NatsClient, NatsConfig};

use crate::{Settings, Variant};

const URL: &str = "127.0.0.1:4222";
/// How far the publisher may run ahead of the consumer.
const WINDOW: usize = 20_000;
/// The publisher checks the window after every batch this large.
const BATCH: usize = 1_000;

fn fail(doing: &str, e: impl std::fmt::Display) -> ! {
    panic!("{doing} failed: {e} (is nats-server running on {URL}?)")
}

/// Publishes `settings.messages` messages to `subject`, never more than [`WINDOW`] ahead
/// of `handled`.
async fn publish_paced(subject: String, settings: Settings, handled: Arc<AtomicUsize>) {
    let client = async_nats::connect(URL)
        .await
        .unwrap_or_else(|e| fail("connecting the publisher", e));
    let payload = bytes::Bytes::from(vec![b'x'; settings.size]);
    let mut published = 0;
    while published < settings.messages {
        while published - handled.load(Ordering::Relaxed) > WINDOW - BATCH {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let batch = BATCH.min(settings.messages - published);
        for _ in 0..batch {
            client
                .publish(subject.clone(), payload.clone())
                .await
                .unwrap_or_else(|e| fail("publishing", e));
        }
        client
            .flush()
            .await
            .unwrap_or_else(|e| fail("flushing the publisher", e));
        published += batch;
    }
}

pub(crate) async fn drain(variant: Variant, settings: &Settings, round: usize) -> Duration {
    let subject = format!(
        "bench.core.{}.{round}.{}",
        std::process::id(),
        variant.tag()
    );
    let handled = Arc::new(AtomicUsize::new(0));
    let elapsed = match variant {
        Variant::Raw => {
            let client = async_nats::connect(URL)
                .await
                .unwrap_or_else(|e| fail("connecting", e));
            let mut subscription = client
                .subscribe(subject.clone())
                .await
                .unwrap_or_else(|e| fail("subscribing", e));
            client.flush().await.unwrap_or_else(|e| fail("flushing", e));
            let publisher = tokio::spawn(publish_paced(
                subject.clone(),
                settings.clone(),
                handled.clone(),
            ));
            let mut first = None;
            for _ in 0..settings.messages {
                match subscription.next().await {
                    Some(_message) => {
                        first.get_or_insert_with(Instant::now);
                        handled.fetch_add(1, Ordering::Relaxed);
                    }
                    None => fail("receiving", "the subscription ended"),
                }
            }
            let elapsed = first.map(|f| f.elapsed()).unwrap_or_default();
            publisher.await.unwrap_or_else(|e| fail("the publisher", e));
            elapsed
        }
        Variant::Bare | Variant::Recommended | Variant::Idempotent(_) => {
            let config: NatsConfig = format!("nats://{URL}/{subject}")
                .parse()
                .unwrap_or_else(|e| fail("the config", e));
            let nats = NatsClient::connect(config)
                .await
                .unwrap_or_else(|e| fail("connecting", e));
            // Subscribed (and flushed) before the publisher starts.
            let subscriber = nats
                .core_subscriber()
                .await
                .unwrap_or_else(|e| fail("subscribing", e));
            let publisher = tokio::spawn(publish_paced(
                subject.clone(),
                settings.clone(),
                handled.clone(),
            ));
            let elapsed = crate::drain::with_wharf(
                variant,
                settings,
                subscriber,
                Arc::new(nats.publisher()),
                handled,
            )
            .await
            .first_to_last;
            publisher.await.unwrap_or_else(|e| fail("the publisher", e));
            elapsed
        }
    };
    elapsed
}
