//! NATS JetStream: the plain loop is an async-nats durable pull consumer that acks each
//! message explicitly (`messages()` + `ack()`), as in the async-nats docs.
//!
//! Every drain gets a fresh stream with the backlog already stored; publishing is not
//! timed. Needs nats-server with JetStream on 127.0.0.1:4222.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy};
use futures_util::StreamExt;
use tokio::time::Instant;
use wharf_nats::{NatsClient, NatsConfig};

use crate::{Settings, Variant};

const URL: &str = "127.0.0.1:4222";

fn fail(doing: &str, e: impl std::fmt::Display) -> ! {
    panic!("{doing} failed: {e} (is nats-server with JetStream running on {URL}?)")
}

/// Creates stream `name` capturing `subject` and stores the backlog in it.
async fn backlog(js: &jetstream::Context, name: &str, subject: &str, settings: &Settings) {
    js.create_stream(jetstream::stream::Config {
        name: name.to_owned(),
        subjects: vec![subject.to_owned()],
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| fail("creating the stream", e));
    let payload = bytes::Bytes::from(vec![b'x'; settings.size]);
    // Pipelined: up to 1,000 publishes awaiting their acks at once.
    let mut pending = Vec::with_capacity(1000);
    for _ in 0..settings.messages {
        let ack = js
            .publish(subject.to_owned(), payload.clone())
            .await
            .unwrap_or_else(|e| fail("publishing", e));
        pending.push(ack);
        if pending.len() == 1000 {
            for ack in pending.drain(..) {
                ack.await.unwrap_or_else(|e| fail("publish ack", e));
            }
        }
    }
    for ack in pending {
        ack.await.unwrap_or_else(|e| fail("publish ack", e));
    }
}

/// A fresh stream holding the backlog, with the connection that filled it.
struct BenchStream {
    client: async_nats::Client,
    js: jetstream::Context,
    name: String,
    /// The wharf URL of a durable `bench` consumer on it.
    url: String,
}

/// Creates stream `BENCH<pid><tag>` and stores the backlog in it.
async fn fresh_stream(settings: &Settings, tag: &str) -> BenchStream {
    let client = async_nats::connect(URL)
        .await
        .unwrap_or_else(|e| fail("connecting", e));
    let js = jetstream::new(client.clone());
    let tag = format!("{}{tag}", std::process::id());
    let (name, subject) = (format!("BENCH{tag}"), format!("bench.{tag}"));
    backlog(&js, &name, &subject, settings).await;
    let url = format!(
        "nats+jetstream://{URL}/{name}?subject={subject}&durable={DURABLE}&max_ack_pending={}",
        settings.in_flight
    );
    BenchStream {
        client,
        js,
        name,
        url,
    }
}

/// The durable consumer every variant drains through.
const DURABLE: &str = "bench";

/// A wharf client and JetStream subscriber for `url`.
async fn wharf_subscriber(url: &str) -> (NatsClient, wharf_nats::JetStreamSubscriber) {
    let config: NatsConfig = url.parse().unwrap_or_else(|e| fail("the config", e));
    let nats = NatsClient::connect(config)
        .await
        .unwrap_or_else(|e| fail("connecting", e));
    let subscriber = nats
        .jetstream_subscriber()
        .await
        .unwrap_or_else(|e| fail("subscribing", e));
    (nats, subscriber)
}

pub(crate) async fn drain(variant: Variant, settings: &Settings, round: usize) -> Duration {
    let stream = fresh_stream(settings, &format!("{round}{}", variant.tag())).await;
    let elapsed = match variant {
        Variant::Raw => {
            let consumer = stream
                .js
                .get_stream(&stream.name)
                .await
                .unwrap_or_else(|e| fail("binding the stream", e))
                .create_consumer(pull::Config {
                    durable_name: Some(DURABLE.to_owned()),
                    ack_policy: AckPolicy::Explicit,
                    max_ack_pending: settings.in_flight as i64,
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| fail("creating the consumer", e));
            let start = Instant::now();
            let mut messages = consumer
                .messages()
                .await
                .unwrap_or_else(|e| fail("pulling", e));
            let mut n = 0;
            while n < settings.messages {
                let m = match messages.next().await {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => fail("receiving", e),
                    None => fail("receiving", "the stream ended"),
                };
                m.ack().await.unwrap_or_else(|e| fail("acking", e));
                n += 1;
            }
            stream
                .client
                .flush()
                .await
                .unwrap_or_else(|e| fail("flushing", e));
            start.elapsed()
        }
        Variant::Bare | Variant::Recommended | Variant::Idempotent(_) => {
            let (nats, subscriber) = wharf_subscriber(&stream.url).await;
            let elapsed = crate::drain::with_wharf(
                variant,
                settings,
                subscriber,
                Arc::new(nats.publisher()),
                Arc::default(),
            )
            .await
            .since_start;
            nats.flush().await.unwrap_or_else(|e| fail("flushing", e));
            elapsed
        }
    };
    let _ = stream.js.delete_stream(&stream.name).await;
    elapsed
}

/// A fresh stream with the backlog stored and a wharf subscriber on it, for the memory
/// scenario; the returned future deletes the stream.
pub(crate) async fn prepared(
    settings: &Settings,
    tag: &str,
) -> (
    wharf_nats::JetStreamSubscriber,
    Arc<dyn wharf::Publisher>,
    impl std::future::Future<Output = ()>,
) {
    let stream = fresh_stream(settings, tag).await;
    let (nats, subscriber) = wharf_subscriber(&stream.url).await;
    let publisher: Arc<dyn wharf::Publisher> = Arc::new(nats.publisher());
    let cleanup = async move {
        let _ = nats.flush().await;
        let _ = stream.js.delete_stream(&stream.name).await;
    };
    (subscriber, publisher, cleanup)
}
