//! What is particular to RabbitMQ behind the client surface: a producer that declares its
//! source before any consumer group exists.

// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use futures_util::StreamExt;
use wharf::adapter::Acker;
use wharf::{Message, Outcome, Publisher};
use wharf_rabbitmq::RabbitClient;

/// `declare(source, &[])` creates the exchange, so the publisher knows `source` for an
/// exchange from its first publish: a message published before any group is bound is
/// refused (unroutable, handed back), and once a group subscribes, publishing reaches it.
/// (Failed before: `declare` with no groups created nothing, the publisher took `source`
/// for a queue and remembered that, and every later publish was unroutable.)
#[tokio::test]
#[ignore = "needs rabbitmq"]
async fn a_producer_that_declares_first_reaches_groups_that_subscribe_later() {
    let rabbit = RabbitClient::connect(common::base()).await.unwrap();
    let source = common::unique("producer-first");
    rabbit.declare(&source, &[]).await.unwrap();
    let publisher = rabbit.publisher();
    let early = publisher.publish(&source, Message::new("early")).await;
    assert!(
        early.is_err(),
        "no queue is bound yet: the broker returns the message"
    );

    let mut subscriber = rabbit.subscriber(&source, "g").await.unwrap();
    publisher
        .publish(&source, Message::with_id("late", "x"))
        .await
        .unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), subscriber.next())
        .await
        .expect("the group receives what is published after it subscribed")
        .unwrap()
        .unwrap();
    let (message, acker) = delivery.into_parts();
    assert_eq!(message.id().as_str(), "late");
    acker.settle(Outcome::Ack).await.unwrap();
}
