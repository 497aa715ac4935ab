//! A member that goes away without `close` while one offset of each partition is still
//! unsettled loses nothing: every later offset was acked, yet the group's committed
//! offset stops exactly at the unsettled one (never past it), and the next member of the
//! group starts each partition exactly there, reading the acked records after the gap
//! again (at-least-once).
//!
//! Runs on librdkafka's in-process mock cluster: no broker needed.

#![allow(clippy::unwrap_used)]

mod mock;

use std::collections::BTreeMap;

use wharf::adapter::Acker as _;
use wharf::Outcome;

const MESSAGES: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_rereads_from_the_unsettled_offset() {
    let mock::Published {
        kafka,
        bootstrap,
        topic,
        group,
        ends,
    } = mock::published("crash", MESSAGES).await;
    for (p, end) in &ends {
        assert!(
            *end >= 3,
            "partition {p} has {end} records; the test needs 3 or more in each"
        );
    }

    // First member: reads everything, acks every offset except the middle one of each
    // partition, whose acker it keeps.
    let mut first = kafka.configured_subscriber().await.unwrap();
    let deliveries = mock::read(&mut first, MESSAGES).await;
    assert_eq!(
        deliveries.keys().copied().collect::<Vec<_>>(),
        ends.keys().copied().collect::<Vec<_>>(),
        "every partition was read"
    );
    let mut held = BTreeMap::new();
    let mut kept = Vec::new();
    for (partition, list) in deliveries {
        let offsets: Vec<i64> = list.iter().map(|(o, _)| *o).collect();
        let expected: Vec<i64> = (0..ends[&partition]).collect();
        assert_eq!(
            offsets, expected,
            "partition {partition} is handed out once, in offset order"
        );
        let middle = ends[&partition] / 2;
        held.insert(partition, middle);
        for (offset, acker) in list {
            if offset == middle {
                kept.push(acker);
            } else {
                acker.settle(Outcome::Ack).await.unwrap();
            }
        }
    }

    // The committed offset reaches the unsettled offset and never goes past it, though
    // everything after it was acked.
    mock::eventually("the watermark committed", || {
        let (bootstrap, group, topic, held) = (&bootstrap, &group, &topic, &held);
        async move {
            let committed = mock::committed(bootstrap, group, topic).await;
            for (p, offset) in &committed {
                if let Some(offset) = offset {
                    assert!(
                        *offset <= held[p],
                        "partition {p}: committed {offset}, past the unsettled offset {}",
                        held[p]
                    );
                }
            }
            committed.iter().all(|(p, o)| *o == Some(held[p]))
        }
    })
    .await;

    // Crash: the member and its unsettled ackers go away without `close`.
    drop(kept);
    drop(first);

    // The next member starts each partition at the unsettled offset and reads the acked
    // records after it again.
    let mut second = kafka.configured_subscriber().await.unwrap();
    let again: usize = ends.iter().map(|(p, end)| (end - held[p]) as usize).sum();
    let deliveries = mock::read(&mut second, again).await;
    for (partition, list) in &deliveries {
        let offsets: Vec<i64> = list.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offsets.first(),
            Some(&held[partition]),
            "partition {partition}: the first record read again is the unsettled one"
        );
        let expected: Vec<i64> = (held[partition]..ends[partition]).collect();
        assert_eq!(
            offsets, expected,
            "partition {partition}: everything from the unsettled offset on, once, in order"
        );
    }
    assert_eq!(
        deliveries.len(),
        ends.len(),
        "every partition was read again"
    );

    // Settling everything commits the ends.
    for (_, list) in deliveries {
        for (_, acker) in list {
            acker.settle(Outcome::Ack).await.unwrap();
        }
    }
    wharf::adapter::Subscriber::close(second).await.unwrap();
    let committed = mock::committed(&bootstrap, &group, &topic).await;
    for (p, end) in &ends {
        assert_eq!(
            committed[p],
            Some(*end),
            "partition {p}: committed to its end"
        );
    }
}
