//! A record close to `message.max.bytes` whose handler fails permanently still gets its
//! dead letter (issue 13, item 2): the copy (payload plus the `wharf-dlq-*` headers and
//! a long error text) would exceed the producer's limit, so the acker cuts the error
//! text to fit and marks the copy `wharf-dlq-trimmed: error`. Before, librdkafka refused
//! the copy (`MessageSizeTooLarge`) on every attempt and the partition never committed.
//!
//! Runs on librdkafka's in-process mock cluster: no broker needed.

#![allow(clippy::unwrap_used)]

mod mock;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use wharf::headers::names;
use wharf::{Consumer, Handler as _, HandlerError, Message};
use wharf_kafka::KafkaClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_near_the_limit_is_cut_to_fit() {
    // librdkafka's default message.max.bytes is 1,000,000; the record itself fits.
    const PAYLOAD: usize = 998_000;
    let topic = mock::unique("dlq-size");
    let group = mock::unique("group");
    let cluster = mock::cluster(1, &topic);
    let dlq = format!("{topic}.dlq");
    let kafka = KafkaClient::connect(mock::config(cluster, &topic, &group))
        .await
        .unwrap();
    let big = Message::with_id("big", vec![b'p'; PAYLOAD]).with_key("k".to_owned());
    mock::publish_all(&kafka.publisher(), &topic, vec![big]).await;

    let calls = Arc::new(AtomicU32::new(0));
    let handler = {
        let calls = calls.clone();
        move |_: Message| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(HandlerError::permanent("e".repeat(4000)))
            }
        }
    };
    let subscriber = kafka.configured_subscriber().await.unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let done = {
        let (bootstrap, dlq) = (bootstrap.clone(), dlq.clone());
        async move {
            mock::eventually("the dead letter landed", || {
                let (bootstrap, dlq) = (bootstrap.clone(), dlq.clone());
                async move {
                    mock::end_offsets(&bootstrap, &dlq)
                        .await
                        .values()
                        .sum::<i64>()
                        == 1
                }
            })
            .await;
        }
    };
    let summary = Consumer::new("dlq-size", subscriber, handler.into_service())
        .run(done)
        .await
        .unwrap();
    assert_eq!(summary.dead_lettered, 1, "{summary:?}");
    assert_eq!(summary.settle_failures, 0, "{summary:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "handled once, not looped");

    let copies = mock::records(&bootstrap, &dlq).await;
    assert_eq!(copies.len(), 1);
    let copy = &copies[0];
    assert_eq!(copy.payload.len(), PAYLOAD, "the payload is never cut");
    assert_eq!(
        copy.headers[names::DLQ_TRIMMED],
        "error",
        "{:?}",
        copy.headers.keys()
    );
    assert_eq!(copy.headers[names::DLQ_REASON], "permanent");
    assert!(copy.headers[names::DLQ_ERROR].len() < 4000);
}
