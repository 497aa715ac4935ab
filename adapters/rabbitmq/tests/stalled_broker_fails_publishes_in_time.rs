//! A publisher whose broker stops answering (a partition: the connection stays open,
//! nothing gets through) gets an error within the publish bound (30 s), never a hang;
//! once traffic flows again, publishing works on its own.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use wharf::{Message, Publisher};
use wharf_conformance::net::{publish_fails_within, publish_recovers, Proxy};
use wharf_rabbitmq::{RabbitClient, RabbitConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_stalled_connection_fails_the_publish_in_time_and_recovers() {
    let proxy = Proxy::start(([127, 0, 0, 1], 5672).into()).await.unwrap();
    let config: RabbitConfig = format!(
        "amqp://guest:guest@127.0.0.1:{}/%2f?queue_type=classic",
        proxy.addr().port()
    )
    .parse()
    .unwrap();
    let rabbit = RabbitClient::connect(config).await.unwrap();
    let queue = common::unique("stalled-publish");
    rabbit.declare(&queue, &["g"]).await.unwrap();
    let publisher = rabbit.publisher();
    publisher
        .publish(&queue, Message::with_id("before", "1"))
        .await
        .expect("publishing through the proxy");

    proxy.stall();
    publish_fails_within(
        &publisher,
        &queue,
        Message::with_id("during", "2"),
        Duration::from_secs(30),
    )
    .await;
    proxy.resume();
    publish_recovers(&publisher, &queue, Message::with_id("after", "3")).await;
}
