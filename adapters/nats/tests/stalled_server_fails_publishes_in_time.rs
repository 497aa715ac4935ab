//! A JetStream publisher whose server stops answering (a partition: the connection stays
//! open, nothing gets through) gets an error within the publish bound, never a hang; once
//! traffic flows again, publishing works on its own.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use wharf::{Message, Publisher};
use wharf_conformance::net::{publish_fails_within, publish_recovers, Proxy};
use wharf_nats::{JetStreamSource, NatsConfig, NatsPublisher};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats"]
async fn a_stalled_connection_fails_the_publish_in_time_and_recovers() {
    let _ticket = support::Ticket::take().await;
    let proxy = Proxy::start(([127, 0, 0, 1], 4222).into()).await.unwrap();
    let nats = wharf_nats::NatsClient::connect(
        NatsConfig::jetstream("unused", "unused")
            .server(format!("nats://127.0.0.1:{}", proxy.addr().port())),
    )
    .await
    .unwrap();
    let stream = support::unique("stalled");
    nats.declare_jetstream(&JetStreamSource::new(&stream, "stalled"))
        .await
        .unwrap();
    let publisher = NatsPublisher::jetstream(nats.client().clone());
    publisher
        .publish(&stream, Message::with_id("before", "1"))
        .await
        .expect("publishing through the proxy");

    proxy.stall();
    publish_fails_within(
        &publisher,
        &stream,
        Message::with_id("during", "2"),
        Duration::from_secs(5),
    )
    .await;
    proxy.resume();
    publish_recovers(&publisher, &stream, Message::with_id("after", "3")).await;
    nats.jetstream().delete_stream(&stream).await.ok();
}
