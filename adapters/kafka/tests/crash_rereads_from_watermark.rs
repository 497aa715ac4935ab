//! A member that goes away without `close` while one offset of each partition is still
//! unsettled loses nothing and replays almost nothing: every later offset was acked, the
//! group's committed offset stops exactly at the unsettled one (never past it), and the
//! commit carries the acked offsets above it (the offset map, in the commit's
//! metadata). The next member starts each partition at the unsettled offset and hands
//! out only that record: the acked ones after it are skipped, not handled again (before
//! offset maps, every one of them was).
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
    // ...with the acked offsets above it in the commit's metadata.
    mock::eventually("the offset maps committed", || {
        let (bootstrap, group, topic) = (&bootstrap, &group, &topic);
        async move {
            let committed = mock::committed_with_metadata(bootstrap, group, topic).await;
            committed
                .values()
                .all(|(_, map)| map.starts_with("wharf1:"))
        }
    })
    .await;

    // Crash: the member and its unsettled ackers go away without `close`.
    drop(kept);
    drop(first);

    // The next member starts each partition at the unsettled offset and hands out that
    // record only.
    let mut second = kafka.configured_subscriber().await.unwrap();
    let deliveries = mock::read(&mut second, held.len()).await;
    for (partition, list) in &deliveries {
        let offsets: Vec<i64> = list.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offsets,
            vec![held[partition]],
            "partition {partition}: only the unsettled record is handled again"
        );
    }
    assert_eq!(deliveries.len(), ends.len(), "every partition's record");
    // Without offset maps everything from the unsettled offset on was handed out again.
    let without_maps: i64 = ends.iter().map(|(p, end)| end - held[p]).sum();
    eprintln!(
        "handled again after the crash: {} records (without offset maps: {without_maps})",
        held.len()
    );
    let more = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        futures_util::StreamExt::next(&mut second),
    )
    .await;
    assert!(
        more.is_err(),
        "the acked records after the unsettled ones are not handed out again: {:?}",
        more.ok()
            .flatten()
            .map(|d| d.map(|d| d.message().origin().offset()))
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
