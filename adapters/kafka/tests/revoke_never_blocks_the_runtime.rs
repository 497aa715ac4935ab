//! A rebalance never blocks a runtime thread.
//!
//! The revoke callback runs inside the driver's `recv()`, on a runtime worker. A
//! synchronous commit there would hold that worker for a broker round trip: on a
//! current-thread runtime, every task of the process. The test runs on a current-thread
//! runtime against a mock broker with a 2 s round trip, keeps a 10 ms ticker running,
//! makes a second member join (member A's partitions are revoked), and checks that the
//! ticker never stalls for a round trip (before the fix: one gap ≥ 2 s, the synchronous
//! commit in the revoke callback). That the revoke still commits what A settled is
//! `revoke_commits_the_settled_watermark.rs`, on Apache Kafka (the mock broker refuses
//! commits while the group is joining, which a real broker accepts).
//!
//! Runs on librdkafka's in-process mock cluster: no broker needed.

#![allow(clippy::unwrap_used)]

mod mock;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wharf::adapter::Acker as _;
use wharf::Outcome;
use wharf_kafka::KafkaClient;

const MESSAGES: usize = 30;
const ROUND_TRIP: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "current_thread")]
async fn revoke_never_blocks_the_runtime() {
    let topic = mock::unique("revoke-rtt");
    let group = mock::unique("revoke-rtt-group");
    let cluster = mock::cluster(1, &topic);
    let config = mock::config(cluster, &topic, &group).commit_interval(Duration::from_secs(3600));
    let kafka = KafkaClient::connect(config).await.unwrap();
    let batch = (0..MESSAGES)
        .map(|i| mock::keyed(&format!("m{i}"), &format!("key-{i}")))
        .collect();
    mock::publish_all(&kafka.publisher(), &topic, batch).await;

    // A reads and settles everything, so the revoke has watermarks to commit.
    let mut a = kafka.configured_subscriber().await.unwrap();
    for (_, list) in mock::read(&mut a, MESSAGES).await {
        for (_, acker) in list {
            acker.settle(Outcome::Ack).await.unwrap();
        }
    }

    // Every request to the broker now takes a round trip of 2 s.
    cluster.broker_round_trip_time(-1, ROUND_TRIP).unwrap();
    let longest_gap = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let longest_gap = longest_gap.clone();
        async move {
            let mut last = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let now = std::time::Instant::now();
                let gap = u64::try_from((now - last).as_millis()).unwrap();
                longest_gap.fetch_max(gap, Ordering::Relaxed);
                last = now;
            }
        }
    });

    // B joins: A's partitions are revoked (eager assignment: all of them).
    let b = kafka.configured_subscriber().await.unwrap();
    mock::eventually_within(Duration::from_secs(60), "the group rebalanced", || {
        let (na, nb) = (a.assigned().len(), b.assigned().len());
        async move { na > 0 && nb > 0 && na + nb == mock::PARTITIONS as usize }
    })
    .await;
    ticker.abort();

    let gap = Duration::from_millis(longest_gap.load(Ordering::Relaxed));
    assert!(
        gap < ROUND_TRIP / 2,
        "the runtime stalled for {gap:?} during the rebalance (a broker call on a runtime thread)"
    );

    drop((a, b));
}
