//! A partition stuck behind a dead letter that cannot be published holds a bounded
//! window, not every later offset (issue 13, item 1).
//!
//! The first record of one partition fails permanently and the broker refuses its
//! dead-letter copy (the produce requests are refused on the mock cluster, as a missing
//! or forbidden topic would). The copy is retried while the record stays owned, so the
//! partition's watermark cannot move. With `max_uncommitted(100)` the test checks that
//!
//! - the stuck partition is paused after about 100 offsets: at most 200 of its ~500 later
//!   records are handled while the copy cannot be published (before: all of them, each
//!   one's offset kept in memory);
//! - the other partitions are not held up;
//! - nothing is committed past the stuck record;
//! - once the broker accepts the copy, the dead letter lands, the partition resumes and
//!   every partition is committed to its end.
//!
//! Runs on librdkafka's in-process mock cluster: no broker needed.

#![allow(clippy::unwrap_used)]

mod mock;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wharf::{Consumer, Handler as _, HandlerError, Message};
use wharf_kafka::rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use wharf_kafka::KafkaClient;

const MESSAGES: usize = 1500;
const WINDOW: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_partition_holds_a_bounded_window() {
    let topic = mock::unique("stuck");
    let group = mock::unique("stuck-group");
    let cluster = mock::cluster(1, &topic);
    let dlq = format!("{topic}.dlq");
    let kafka = KafkaClient::connect(mock::config(cluster, &topic, &group).max_uncommitted(WINDOW))
        .await
        .unwrap();
    let mut batch = vec![mock::keyed("poison", "k-poison")];
    batch.extend((0..MESSAGES).map(|i| mock::keyed(&format!("m{i}"), &format!("k{i}"))));
    mock::publish_all(&kafka.publisher(), &topic, batch).await;
    let bootstrap = cluster.bootstrap_servers();
    let ends = mock::end_offsets(&bootstrap, &topic).await;

    // From now on the broker refuses produce requests: the dead letter's copy.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 1000],
    );

    // Handled messages by partition: (id, offset).
    type Log = Arc<Mutex<BTreeMap<i32, Vec<(String, i64)>>>>;
    let log: Log = Arc::default();
    let handler = {
        let log = log.clone();
        move |m: Message| {
            let log = log.clone();
            async move {
                let origin = m.origin();
                let partition = i32::try_from(origin.partition().unwrap()).unwrap();
                let offset = i64::try_from(origin.offset().unwrap()).unwrap();
                log.lock()
                    .unwrap()
                    .entry(partition)
                    .or_default()
                    .push((m.id().to_string(), offset));
                if m.id().as_str() == "poison" {
                    return Err(HandlerError::permanent("never valid"));
                }
                Ok(())
            }
        }
    };
    let subscriber = kafka.configured_subscriber().await.unwrap();

    let checks = {
        let (log, bootstrap, group, topic, ends) = (
            log.clone(),
            bootstrap.clone(),
            group.clone(),
            topic.clone(),
            ends.clone(),
        );
        async move {
            mock::eventually("the poison record ran", || {
                let ran = log
                    .lock()
                    .unwrap()
                    .values()
                    .flatten()
                    .any(|(id, _)| id == "poison");
                async move { ran }
            })
            .await;
            let stuck = *log
                .lock()
                .unwrap()
                .iter()
                .find(|(_, list)| list.iter().any(|(id, _)| id == "poison"))
                .unwrap()
                .0;
            let poison_offset = log.lock().unwrap()[&stuck]
                .iter()
                .find(|(id, _)| id == "poison")
                .unwrap()
                .1;
            // The other partitions are handled to their end.
            mock::eventually("the other partitions handled", || {
                let log = log.lock().unwrap();
                let done = ends
                    .iter()
                    .all(|(p, end)| *p == stuck || log.get(p).map_or(0, Vec::len) as i64 == *end);
                async move { done }
            })
            .await;
            // Give the stuck partition time to run ahead if nothing stops it.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let ran_ahead = log.lock().unwrap()[&stuck].len() - 1;
            let later = usize::try_from(ends[&stuck] - poison_offset - 1).unwrap();
            assert!(
                later > 2 * WINDOW,
                "the stuck partition needs more than {} later records: {later}",
                2 * WINDOW
            );
            assert!(
                ran_ahead <= 2 * WINDOW,
                "the stuck partition ran {ran_ahead} of {later} records ahead of its unsettled record (max_uncommitted {WINDOW})"
            );
            let committed = mock::committed(&bootstrap, &group, &topic).await;
            assert!(
                committed[&stuck].is_none_or(|c| c <= poison_offset),
                "nothing committed past the stuck record: {committed:?}"
            );
            (stuck, ends)
        }
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let run = tokio::spawn(
        Consumer::new("stuck", subscriber, handler.into_service()).run(async move {
            let _ = done_rx.await;
        }),
    );
    let (stuck, ends) = checks.await;

    // The broker accepts the copy now: it lands, the partition resumes and commits move.
    cluster.clear_request_errors(RDKafkaApiKey::Produce);
    mock::dead_letter_landed_and_committed(
        Duration::from_secs(60),
        &bootstrap,
        &dlq,
        &group,
        &topic,
        &ends,
    )
    .await;
    let _ = done_tx.send(());
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.dead_lettered, 1, "{summary:?}");
    let handled_on_stuck = log.lock().unwrap()[&stuck].len() as i64;
    assert!(
        handled_on_stuck >= ends[&stuck],
        "every record of the stuck partition handled after it resumed"
    );
}
