//! `close` commits every partition's watermark, even the part a settlement left for the
//! periodic store (stores are coalesced: a settlement stores only every 64 offsets or
//! when its partition has nothing left in flight). A member that settles the first half
//! of each partition, keeps the rest in flight and closes at once has committed exactly
//! the first half.
//!
//! Runs on librdkafka's in-process mock cluster: no broker needed.

#![allow(clippy::unwrap_used)]

mod mock;

use std::collections::BTreeMap;

use wharf::adapter::{Acker as _, Subscriber as _};
use wharf::Outcome;

const MESSAGES: usize = 90;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_commits_the_settled_prefix() {
    let mock::Published {
        kafka,
        bootstrap,
        topic,
        group,
        ends,
    } = mock::published("close", MESSAGES).await;

    let mut member = kafka.configured_subscriber().await.unwrap();
    let deliveries = mock::read(&mut member, MESSAGES).await;
    // Settle the first half of each partition, in order; keep the rest unsettled (so each
    // partition still has work in flight and its stores are left for later).
    let mut settled_to = BTreeMap::new();
    let mut kept = Vec::new();
    for (partition, list) in deliveries {
        let half = ends[&partition] / 2;
        settled_to.insert(partition, half);
        for (offset, acker) in list {
            if offset < half {
                acker.settle(Outcome::Ack).await.unwrap();
            } else {
                kept.push(acker);
            }
        }
    }
    assert!(
        settled_to.values().all(|half| (2..64).contains(half)),
        "each partition needs 4 to 127 records: {ends:?}"
    );

    member.close().await.unwrap();
    drop(kept);

    let committed = mock::committed(&bootstrap, &group, &topic).await;
    for (partition, half) in &settled_to {
        assert_eq!(
            committed[partition],
            Some(*half),
            "partition {partition}: close commits the settled prefix exactly"
        );
    }
}
