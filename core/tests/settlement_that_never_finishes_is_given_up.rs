//! A settlement that never finishes (an ack future lost with its connection) is given
//! up at the settle timeout while the consumer runs: its in-flight slot and its key's
//! lane are freed, it is counted as abandoned, and the consumer goes on. (Found by the
//! chaos harness: after a third RabbitMQ restart, in-flight acks on the dead connection
//! never resolved and held every slot; the consumer stalled with 64 fresh deliveries
//! waiting.)

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use wharf::{Consumer, Handler, HandlerError, Message, Outcome};

async fn ok(_msg: Message) -> Result<(), HandlerError> {
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_hung_settlement_frees_its_slot_and_lane_at_the_settle_timeout() {
    let (sub, script) = support::scripted(true);
    script.send("hang-settle-1", Some("k"));
    script.send("next-1", Some("k")); // same key: waits for the lane
    script.send("other", None);
    let settlements = script.settlements.clone();
    let done = async move {
        while settlements.of("next-1").is_empty() || settlements.of("other").is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let started = tokio::time::Instant::now();
    let summary = tokio::time::timeout(
        Duration::from_secs(3600),
        Consumer::new("t", sub, ok.into_service())
            .max_in_flight(1) // the hung settlement holds the only slot
            .settle_timeout(Duration::from_secs(5))
            .run(done),
    )
    .await
    .expect("the consumer went on after the settle timeout")
    .unwrap();
    assert_eq!(script.settlements.of("next-1"), vec![Outcome::Ack]);
    assert_eq!(script.settlements.of("other"), vec![Outcome::Ack]);
    assert_eq!(summary.abandoned, 1, "{summary:?}");
    assert_eq!(summary.settle_failures, 1, "{summary:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(60),
        "given up at the settle timeout, not before or long after: {waited:?}"
    );
}
