//! Backpressure never stops the polling: while a handler runs longer than
//! `max.poll.interval.ms` and the small queue is full, the subscriber pauses its
//! partitions and keeps polling, so it stays in its group. If it stopped polling while full, librdkafka
//! would leave the group after the interval, and the rejoin would deliver the
//! uncommitted messages a second time.
//!
//! Runs on librdkafka's in-process mock cluster: no broker needed.

#![allow(clippy::unwrap_used)]

mod mock;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wharf::{Consumer, Handler as _, HandlerError, Message};
use wharf_kafka::KafkaClient;

const MESSAGES: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handlers_pause_partitions_and_keep_the_group() {
    let topic = mock::unique("slow");
    let group = mock::unique("slow-group");
    let cluster = mock::cluster(1, &topic);
    // A 6 s poll interval (its minimum here: the session timeout), one handler call of
    // 8 s, and a queue of 4 records.
    let config = mock::config(cluster, &topic, &group)
        .buffer(4)
        .option("max.poll.interval.ms", "6000");
    let kafka = KafkaClient::connect(config).await.unwrap();
    let messages = (0..MESSAGES)
        .map(|i| mock::keyed(&format!("m{i}"), &format!("key-{i}")))
        .collect();
    mock::publish_all(&kafka.publisher(), &topic, messages).await;

    let subscriber = kafka.configured_subscriber().await.unwrap();
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let handler = {
        let seen = seen.clone();
        move |m: Message| {
            let seen = seen.clone();
            async move {
                // One message takes longer than the poll interval; while it runs the
                // queue is full.
                let pause = if m.id().as_str() == "m5" { 8000 } else { 10 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
                *seen.lock().unwrap().entry(m.id().to_string()).or_default() += 1;
                Ok::<(), HandlerError>(())
            }
        }
    };
    let done = {
        let seen = seen.clone();
        async move {
            mock::eventually_within(Duration::from_secs(60), "every message handled", || {
                let n = seen.lock().unwrap().len();
                async move { n == MESSAGES }
            })
            .await;
        }
    };
    let summary = Consumer::new("slow", subscriber, handler.into_service())
        .max_in_flight(1)
        .run(done)
        .await
        .unwrap();

    let seen = seen.lock().unwrap();
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "handled more than once (the member left the group and rejoined): {twice:?}"
    );
    assert_eq!(summary.received, MESSAGES as u64, "{summary:?}");
}
