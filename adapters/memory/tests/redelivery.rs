//! Messages stay until acked: retries come back after their delay with the attempt
//! count incremented; unsettled deliveries come back when their consumer goes away.

use std::time::Duration;

use futures_util::StreamExt;
use wharf::adapter::{Acker, Subscriber};
use wharf::{Failure, FailureReason, Message, Outcome};
use wharf_memory::MemoryBroker;

#[tokio::test(start_paused = true)]
async fn retry_comes_back_after_its_delay_with_the_next_attempt() {
    let broker = MemoryBroker::new();
    let id = broker.publish("t", Message::new("x")).unwrap();
    let mut s = broker.subscribe("t", "g");
    let (m, acker) = s.next().await.unwrap().unwrap().into_parts();
    assert_eq!(m.attempt(), 1);
    assert_eq!(m.origin().source(), "t");
    assert_eq!(m.origin().offset(), Some(0));
    let start = tokio::time::Instant::now();
    acker
        .settle(Outcome::retry_after(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(broker.pending("t", "g"), 1);
    let (m, acker) = s.next().await.unwrap().unwrap().into_parts();
    assert!(
        start.elapsed() >= Duration::from_secs(30),
        "came back early"
    );
    assert_eq!(m.id(), &id);
    assert_eq!(m.attempt(), 2);
    acker.settle(Outcome::Ack).await.unwrap();
    let record = broker.record("t", "g", &id).unwrap();
    assert_eq!(record.deliveries, 2);
    assert_eq!(
        record.outcomes,
        vec![Outcome::retry_after(Duration::from_secs(30)), Outcome::Ack]
    );
}

#[tokio::test(start_paused = true)]
async fn a_delayed_retry_does_not_block_other_messages() {
    let broker = MemoryBroker::new();
    broker.publish("t", Message::with_id("first", "x")).unwrap();
    broker
        .publish("t", Message::with_id("second", "y"))
        .unwrap();
    let mut s = broker.subscribe("t", "g");
    let (m, acker) = s.next().await.unwrap().unwrap().into_parts();
    assert_eq!(m.id().as_str(), "first");
    let start = tokio::time::Instant::now();
    acker
        .settle(Outcome::retry_after(Duration::from_secs(60)))
        .await
        .unwrap();
    let (m, _acker) = s.next().await.unwrap().unwrap().into_parts();
    assert_eq!(m.id().as_str(), "second");
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn an_unsettled_delivery_comes_back_when_its_subscriber_goes_away() {
    let broker = MemoryBroker::new();
    broker.publish("t", Message::with_id("m", "x")).unwrap();
    broker.publish("t", Message::with_id("n", "y")).unwrap();
    {
        let mut s = broker.subscribe("t", "g");
        let d = s.next().await.unwrap().unwrap();
        assert_eq!(broker.in_flight("t", "g"), 2, "prefetched both");
        // Crash: subscriber and delivery dropped without settling.
        drop(d);
        s.close().await.unwrap();
    }
    assert_eq!(broker.in_flight("t", "g"), 0);
    let mut s = broker.subscribe("t", "g");
    let (m, _a) = s.next().await.unwrap().unwrap().into_parts();
    assert_eq!(m.id().as_str(), "m");
    assert_eq!(m.attempt(), 2, "the broker counts the attempt");
    let (n, _b) = s.next().await.unwrap().unwrap().into_parts();
    assert_eq!(n.id().as_str(), "n");
}

#[tokio::test]
async fn dead_letter_and_drop_settle_through_the_native_path() {
    let broker = MemoryBroker::new();
    broker.publish("t", Message::with_id("bad", "x")).unwrap();
    broker.publish("t", Message::with_id("gone", "x")).unwrap();
    let mut s = broker.subscribe("t", "g");
    let (_, a) = s.next().await.unwrap().unwrap().into_parts();
    a.settle(Outcome::DeadLetter(Failure::new(
        FailureReason::Decode,
        "not json",
    )))
    .await
    .unwrap();
    let (_, b) = s.next().await.unwrap().unwrap().into_parts();
    b.settle(Outcome::Drop(Failure::new(
        FailureReason::Permanent,
        "obsolete",
    )))
    .await
    .unwrap();
    let dl = broker.native_dead_letters("t", "g");
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].message.id().as_str(), "bad");
    assert_eq!(dl[0].failure.reason(), &FailureReason::Decode);
    assert_eq!(broker.pending("t", "g"), 0);
    let dropped = broker.record("t", "g", &"gone".into()).unwrap();
    assert!(matches!(dropped.final_outcome(), Some(Outcome::Drop(_))));
}

#[tokio::test]
async fn injected_publish_failures_hand_the_message_back() {
    let broker = MemoryBroker::new();
    broker.fail_next_publishes("t", 1);
    let err = broker.publish("t", Message::with_id("m", "x")).unwrap_err();
    assert_eq!(err.into_message().id().as_str(), "m");
    broker.publish("t", Message::with_id("m", "x")).unwrap();
    assert_eq!(broker.messages("t").len(), 1);
}
