//! A dead letter whose publish fails is retried with backoff until it lands (issue 13,
//! item 1): the broker refuses the first produce requests (injected on the mock
//! cluster), the record that failed permanently stays owned meanwhile, the records
//! after it are handled, and once the copy lands the partition's commits move on to the
//! end. Before, the first failed publish gave up: the dead letter never landed and the
//! partition never committed past the failed record.
//!
//! Runs on librdkafka's in-process mock cluster: no broker needed.

#![allow(clippy::unwrap_used)]

mod mock;

use wharf::{Consumer, Handler as _, HandlerError, Message};
use wharf_kafka::rdkafka::types::RDKafkaApiKey;
use wharf_kafka::rdkafka::types::RDKafkaRespErr;
use wharf_kafka::KafkaClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dead_letter_is_retried_until_it_lands() {
    let topic = mock::unique("dlq-refused");
    let group = mock::unique("group");
    let cluster = mock::cluster(1, &topic);
    let dlq = format!("{topic}.dlq");
    let kafka = KafkaClient::connect(mock::config(cluster, &topic, &group))
        .await
        .unwrap();
    let mut batch = vec![mock::keyed("poison", "k-poison")];
    batch.extend((0..30).map(|i| mock::keyed(&format!("m{i}"), &format!("k{i}"))));
    mock::publish_all(&kafka.publisher(), &topic, batch).await;
    let bootstrap = cluster.bootstrap_servers();
    let ends = mock::end_offsets(&bootstrap, &topic).await;

    // From now on the broker refuses the next four produce requests: the dead letter's.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 4],
    );
    let handler = |m: Message| async move {
        if m.id().as_str() == "poison" {
            return Err(HandlerError::permanent("never valid"));
        }
        Ok(())
    };
    let subscriber = kafka.configured_subscriber().await.unwrap();
    let done = {
        let (bootstrap, dlq, topic, group, ends) = (
            bootstrap.clone(),
            dlq.clone(),
            topic.clone(),
            group.clone(),
            ends.clone(),
        );
        async move {
            mock::dead_letter_landed_and_committed(
                std::time::Duration::from_secs(20),
                &bootstrap,
                &dlq,
                &group,
                &topic,
                &ends,
            )
            .await;
        }
    };
    let summary = Consumer::new("dlq-refused", subscriber, handler.into_service())
        .run(done)
        .await
        .unwrap();
    assert_eq!(summary.dead_lettered, 1, "{summary:?}");
    assert_eq!(summary.acked, 30, "{summary:?}");
    assert_eq!(
        summary.settle_failures, 0,
        "retried until it landed: {summary:?}"
    );
    let copies = mock::records(&bootstrap, &dlq).await;
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].headers["wharf-dlq-reason"], "permanent");
}
