//! A JetStream publisher whose server stops answering (a partition: the connection stays
//! open, nothing gets through) gets an error within the publish bound, never a hang; once
//! traffic flows again, publishing works on its own.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use wharf::{Message, Publisher};
use wharf_conformance::net::Proxy;
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
    let started = Instant::now();
    let stalled = tokio::time::timeout(
        Duration::from_secs(60),
        publisher.publish(&stream, Message::with_id("during", "2")),
    )
    .await
    .expect("a publish to a server that stopped answering must not hang");
    let took = started.elapsed();
    let Err(error) = stalled else {
        panic!("nothing was acknowledged: the publish must fail");
    };
    eprintln!("stalled for {took:?}: {error}");
    assert!(took < Duration::from_secs(45), "failed after {took:?}");
    assert_eq!(error.message().id().as_str(), "during");

    proxy.resume();
    let started = Instant::now();
    loop {
        match publisher
            .publish(&stream, Message::with_id("after", "3"))
            .await
        {
            Ok(()) => break,
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "publishing did not recover after the stall: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    nats.jetstream().delete_stream(&stream).await.ok();
}
