//! `RetryMode::Topic`: a `Retry { after }` republishes the message to `<topic>.retry` with
//! `wharf-attempt` raised and a not-before time, and settles the original; the
//! subscriber reads the retry topic too and hands the copy out once it is due, as
//! attempt 2, with the original topic as its source (so dead letters of retried
//! messages still go to `<topic>.dlq`). The other messages do not wait for it.
//!
//! Runs on librdkafka's in-process mock cluster: no broker needed.

#![allow(clippy::unwrap_used)]

mod mock;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use wharf::{Consumer, Handler as _, HandlerError, Message};
use wharf_kafka::{KafkaClient, RetryMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_goes_through_the_retry_topic_and_comes_back_due() {
    const AFTER: Duration = Duration::from_millis(500);
    let topic = mock::unique("retry-topic");
    let group = mock::unique("group");
    let cluster = mock::cluster(1, &topic);
    cluster
        .create_topic(&format!("{topic}.retry"), mock::PARTITIONS, 1)
        .unwrap();
    let kafka =
        KafkaClient::new(mock::config(cluster, &topic, &group).retry_mode(RetryMode::Topic))
            .unwrap();
    let subscriber = kafka.subscriber().await.unwrap();
    assert!(wharf::Subscriber::capabilities(&subscriber).native_delay);
    assert!(!wharf::Subscriber::capabilities(&subscriber).retry_in_lane);
    mock::wait_assigned(&subscriber, 2 * mock::PARTITIONS as usize).await;

    // (id, attempt, source, when)
    type Log = Arc<Mutex<Vec<(String, u32, String, Instant)>>>;
    let log: Log = Arc::default();
    let handler = {
        let log = log.clone();
        move |m: Message| {
            let log = log.clone();
            async move {
                let id = m.id().to_string();
                log.lock().unwrap().push((
                    id.clone(),
                    m.attempt(),
                    m.origin().source().to_owned(),
                    Instant::now(),
                ));
                if id == "m3" && m.attempt() == 1 {
                    return Err(HandlerError::transient("fails once on purpose"));
                }
                Ok(())
            }
        }
    };
    let messages: Vec<Message> = (0..10)
        .map(|i| mock::keyed(&format!("m{i}"), &format!("k{i}")))
        .collect();
    mock::publish_all(&kafka.publisher(), &topic, messages).await;

    let done = {
        let log = log.clone();
        async move {
            mock::eventually("every message handled and m3 retried", || {
                let n = log.lock().unwrap().len();
                async move { n >= 11 }
            })
            .await;
        }
    };
    let summary = Consumer::new("retry-topic", subscriber, handler.into_service())
        .retry_delay(AFTER)
        .run(done)
        .await
        .unwrap();

    let log = log.lock().unwrap().clone();
    let m3: Vec<_> = log.iter().filter(|e| e.0 == "m3").collect();
    assert_eq!(m3.len(), 2, "m3 handled twice: {log:?}");
    assert_eq!(
        (m3[0].1, m3[1].1),
        (1, 2),
        "attempts carried in wharf-attempt"
    );
    assert_eq!(
        m3[1].2, topic,
        "the copy keeps the original topic as its source"
    );
    let waited = m3[1].3 - m3[0].3;
    assert!(
        waited >= AFTER * 8 / 10,
        "the copy came back after {waited:?}, before its not-before time"
    );
    for i in 0..10 {
        let id = format!("m{i}");
        assert!(log.iter().any(|e| e.0 == id), "{id} handled");
    }
    // The others did not wait for the retry.
    let others_done = log
        .iter()
        .filter(|e| e.0 != "m3")
        .map(|e| e.3)
        .max()
        .unwrap();
    assert!(
        others_done < m3[1].3,
        "other messages were held behind the retry"
    );
    assert_eq!(summary.retried, 1, "{summary:?}");
    assert_eq!(summary.retried_in_lane, 0, "{summary:?}");
    assert_eq!(summary.acked, 10, "{summary:?}");

    // The original is settled: the source topic is committed to its end.
    let bootstrap = cluster.bootstrap_servers();
    let ends = mock::end_offsets(&bootstrap, &topic).await;
    mock::eventually("source topic committed to its end", || {
        let (bootstrap, group, topic, ends) = (
            bootstrap.clone(),
            group.clone(),
            topic.clone(),
            ends.clone(),
        );
        async move {
            let committed = mock::committed(&bootstrap, &group, &topic).await;
            ends.iter()
                .all(|(p, end)| *end == 0 || committed.get(p).copied().flatten() == Some(*end))
        }
    })
    .await;
}
