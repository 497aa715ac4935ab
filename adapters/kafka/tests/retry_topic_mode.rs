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

/// What each test starts from: a cluster with `<topic>` and `<topic>.retry`, a client
/// in `RetryMode::Topic` (with `buffer` if given) and a member assigned both topics.
struct RetrySetup {
    topic: String,
    group: String,
    cluster: &'static mock::Cluster,
    kafka: KafkaClient,
    subscriber: wharf_kafka::KafkaSubscriber,
}

async fn retry_setup(prefix: &str, buffer: Option<usize>) -> RetrySetup {
    let topic = mock::unique(prefix);
    let group = mock::unique("group");
    let cluster = mock::cluster(1, &topic);
    cluster
        .create_topic(&format!("{topic}.retry"), mock::PARTITIONS, 1)
        .unwrap();
    let mut config = mock::config(cluster, &topic, &group).retry_mode(RetryMode::Topic);
    if let Some(buffer) = buffer {
        config = config.buffer(buffer);
    }
    let kafka = KafkaClient::connect(config).await.unwrap();
    let subscriber = kafka.configured_subscriber().await.unwrap();
    mock::wait_assigned(&subscriber, 2 * mock::PARTITIONS as usize).await;
    RetrySetup {
        topic,
        group,
        cluster,
        kafka,
        subscriber,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_goes_through_the_retry_topic_and_comes_back_due() {
    const AFTER: Duration = Duration::from_millis(500);
    let RetrySetup {
        topic,
        group,
        cluster,
        kafka,
        subscriber,
    } = retry_setup("retry-topic", None).await;
    assert!(wharf::adapter::Subscriber::capabilities(&subscriber).native_delay);
    assert!(!wharf::adapter::Subscriber::capabilities(&subscriber).retry_in_lane);

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
        async move { mock::committed_to_end(&bootstrap, &group, &topic, &ends).await }
    })
    .await;
}

/// Extreme values never panic (issue 13, item 6): a record carrying `wharf-attempt:
/// 4294967295` retried with `Retry { after: Duration::MAX }` (what a retry policy with
/// `max_delay(Duration::MAX)` can answer). Before the fix the acker's `attempt + 1`
/// overflowed and `SystemTime::now() + after` panicked inside the settle call. The copy
/// is written with the attempt saturated and a not-before time saturated at `u64::MAX`
/// milliseconds, the subscriber holds it without panicking on the far-future time, and
/// the next record still flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_attempt_and_delay_saturate() {
    use wharf::adapter::Acker as _;
    use wharf::Outcome;

    let RetrySetup {
        topic,
        cluster,
        kafka,
        mut subscriber,
        ..
    } = retry_setup("retry-extreme", None).await;
    let retry_topic = format!("{topic}.retry");
    let first = mock::keyed("m1", "k").with_header(wharf::headers::names::ATTEMPT, "4294967295");
    mock::publish_all(&kafka.publisher(), &topic, vec![first]).await;

    let (message, acker) = mock::next(&mut subscriber).await;
    assert_eq!(message.id().as_str(), "m1");
    assert_eq!(message.attempt(), u32::MAX);
    acker
        .settle(Outcome::Retry {
            after: Duration::MAX,
        })
        .await
        .unwrap();

    // The subscriber reads the far-future copy and keeps going.
    mock::publish_all(&kafka.publisher(), &topic, vec![mock::keyed("m2", "k2")]).await;
    let (message, acker) = mock::next(&mut subscriber).await;
    assert_eq!(
        message.id().as_str(),
        "m2",
        "the held copy is not handed out"
    );
    acker.settle(Outcome::Ack).await.unwrap();

    let copies = mock::records(&cluster.bootstrap_servers(), &retry_topic).await;
    assert_eq!(copies.len(), 1, "{copies:?}");
    let headers = &copies[0].headers;
    assert_eq!(
        headers[wharf::headers::names::ATTEMPT],
        "4294967295",
        "{headers:?}"
    );
    assert_eq!(
        headers["wharf-retry-not-before"],
        u64::MAX.to_string(),
        "{headers:?}"
    );
}

/// Held retry copies never stop the main topics (issue 13, item 5). With `buffer(4)`,
/// twenty messages fail once and their twenty copies wait 3 s in the retry topic, five
/// times the buffer. Twenty fresh messages published while the copies are held are all
/// handled before any copy comes due. Before: held copies counted against `buffer`, so
/// after four of them the driver stopped taking records and the fresh messages waited
/// behind the retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_retries_do_not_stop_the_main_topic() {
    const AFTER: Duration = Duration::from_secs(3);
    const FAILING: usize = 20;
    const FRESH: usize = 20;
    let RetrySetup {
        topic,
        kafka,
        subscriber,
        ..
    } = retry_setup("retry-held", Some(4)).await;

    // (id, attempt)
    type Log = Arc<Mutex<Vec<(String, u32)>>>;
    let log: Log = Arc::default();
    let handler = {
        let log = log.clone();
        move |m: Message| {
            let log = log.clone();
            async move {
                let id = m.id().to_string();
                log.lock().unwrap().push((id.clone(), m.attempt()));
                if id.starts_with("fail") && m.attempt() == 1 {
                    return Err(HandlerError::transient("fails once on purpose"));
                }
                Ok(())
            }
        }
    };
    let failing: Vec<Message> = (0..FAILING)
        .map(|i| mock::keyed(&format!("fail{i}"), &format!("k{i}")))
        .collect();
    mock::publish_all(&kafka.publisher(), &topic, failing).await;

    let publisher = kafka.publisher();
    let (log2, topic2) = (log.clone(), topic.clone());
    let done = async move {
        // Once every failing message ran once (their copies are on their way to being
        // held), publish the fresh ones.
        mock::eventually("every failing message ran once", || {
            let n = log2.lock().unwrap().len();
            async move { n >= FAILING }
        })
        .await;
        let fresh: Vec<Message> = (0..FRESH)
            .map(|i| mock::keyed(&format!("fresh{i}"), &format!("f{i}")))
            .collect();
        mock::publish_all(&publisher, &topic2, fresh).await;
        mock::eventually("everything handled", || {
            let n = log2.lock().unwrap().len();
            async move { n >= 2 * FAILING + FRESH }
        })
        .await;
    };
    let summary = Consumer::new("retry-held", subscriber, handler.into_service())
        .retry_delay(AFTER)
        .run(done)
        .await
        .unwrap();

    let log = log.lock().unwrap().clone();
    let first_retry = log.iter().position(|e| e.1 == 2).expect("copies handled");
    let last_fresh = log
        .iter()
        .rposition(|e| e.0.starts_with("fresh"))
        .expect("fresh handled");
    assert!(
        last_fresh < first_retry,
        "every fresh message is handled before the first held copy comes due: {log:?}"
    );
    assert_eq!(summary.retried, FAILING as u64, "{summary:?}");
    assert_eq!(summary.acked, (FAILING + FRESH) as u64, "{summary:?}");
}
