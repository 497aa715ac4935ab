//! Reconnecting: the broker drops every connection in the middle of 1,000 messages; the
//! subscriber reconnects, the broker redelivers what was in flight, deduplication
//! absorbs the copies, and every message is handled exactly once.
//!
//! Uses `rabbitmqctl close_all_connections`, so it lives in its own test binary (cargo
//! runs test binaries one after another, never beside the conformance suite).

// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tower::ServiceBuilder;
use wharf::{Consumer, Handler, HandlerError, Message, MessageId, Publisher};
use wharf_middleware::dedup::{DedupLayer, MemoryDedupStore};
use wharf_rabbitmq::{inspect, RabbitPublisher, RabbitSubscriber};

const N: usize = 1000;

type Counts = Arc<Mutex<HashMap<MessageId, usize>>>;

fn bump(counts: &Counts, id: &MessageId) {
    *counts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(id.clone())
        .or_insert(0) += 1;
}

fn snapshot(counts: &Counts) -> HashMap<MessageId, usize> {
    counts.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn dropped_connection_mid_stream_loses_nothing_and_dedup_absorbs_duplicates() {
    let queue = common::unique("reconnect");
    let config = common::base()
        .queue(&queue)
        .prefetch(16)
        .reconnect_backoff(Duration::from_millis(100), Duration::from_secs(2));

    // 1,000 messages, confirmed, before anything consumes.
    let subscriber = RabbitSubscriber::connect(&config).await.unwrap();
    let stats = subscriber.stats();
    let publisher = RabbitPublisher::connect(&config).await.unwrap();
    let ids: Vec<MessageId> = (0..N)
        .map(|i| MessageId::from(format!("{queue}-{i}")))
        .collect();
    for id in &ids {
        publisher
            .publish(&queue, Message::with_id(id.clone(), "order"))
            .await
            .unwrap();
    }
    publisher.close().await;

    // Deliveries reaching the stack, and handler successes, per id.
    let delivered: Counts = Arc::default();
    let handled: Counts = Arc::default();
    let handler = {
        let handled = handled.clone();
        move |m: Message| {
            let handled = handled.clone();
            async move {
                // Slow enough that the drop lands in the middle of the stream.
                tokio::time::sleep(Duration::from_millis(30)).await;
                bump(&handled, m.id());
                Ok::<(), HandlerError>(())
            }
        }
    };
    let stack = ServiceBuilder::new()
        .map_request({
            let delivered = delivered.clone();
            move |m: Message| {
                bump(&delivered, m.id());
                m
            }
        })
        .layer(DedupLayer::new(MemoryDedupStore::new(10_000)))
        .service(handler.into_service());
    let stop = Arc::new(tokio::sync::Notify::new());
    let running = tokio::spawn(
        Consumer::new("reconnect", subscriber, stack)
            .max_in_flight(16)
            .run({
                let stop = stop.clone();
                async move { stop.notified().await }
            }),
    );

    // Drop every connection once a tenth is handled (`rabbitmqctl` takes a while to start).
    let deadline = Instant::now() + Duration::from_secs(60);
    while snapshot(&handled).len() < N / 10 {
        assert!(Instant::now() < deadline, "the first tenth was not handled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    common::rabbitmqctl(&["close_all_connections", "wharf reconnect test"]).await;
    let handled_at_drop = snapshot(&handled).len();

    while snapshot(&handled).len() < N {
        assert!(
            Instant::now() < deadline,
            "only {} of {N} messages handled after the reconnect (stats {stats:?})",
            snapshot(&handled).len()
        );
        assert!(!running.is_finished(), "the consumer stopped on its own");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let late redeliveries arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.notify_one();
    let summary = running.await.unwrap().unwrap();

    let handled = snapshot(&handled);
    let delivered = snapshot(&delivered);
    assert!(
        handled_at_drop < N,
        "the connection was dropped after every message was handled: nothing was tested"
    );
    assert_eq!(handled.len(), N, "every message is handled");
    let twice: Vec<_> = handled.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    let duplicates: usize = delivered.values().map(|n| n - 1).sum();
    eprintln!(
        "handled {handled_at_drop} before the drop; {duplicates} redelivered copies absorbed; \
         stats {stats:?}; summary {summary:?}"
    );
    assert!(
        stats.reconnects() >= 1,
        "the subscriber reconnected: {stats:?}"
    );

    // Nothing is left behind on the queue.
    let left = inspect::peek(&config, &queue, 10).await.unwrap();
    assert!(left.is_empty(), "messages left on the queue: {left:?}");
}
