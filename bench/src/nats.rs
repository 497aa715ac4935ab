//! NATS JetStream: the plain loop is an async-nats durable pull consumer that acks each
//! message explicitly (`messages()` + `ack()`), as in the async-nats docs.
//!
//! Every drain gets a fresh stream with the backlog already stored; publishing is not
//! timed. Needs nats-server with JetStream on 127.0.0.1:4222.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy};
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::time::Instant;
use wharf::{Consumer, Handler, HandlerError, Message};
use wharf_middleware::stack::RecommendedLayer;
use wharf_nats::{NatsClient, NatsConfig};

use crate::{Sample, Settings, Variant};

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

async fn drain(variant: Variant, settings: &Settings, round: usize) -> Sample {
    let client = async_nats::connect(URL)
        .await
        .unwrap_or_else(|e| fail("connecting", e));
    let js = jetstream::new(client.clone());
    let tag = format!("{}{round}{}", std::process::id(), variant as u8);
    let (stream, subject, durable) = (format!("BENCH{tag}"), format!("bench.{tag}"), "bench");
    backlog(&js, &stream, &subject, settings).await;

    let handled = Arc::new(AtomicUsize::new(0));
    let all_done = Arc::new(Notify::new());
    let handler = {
        let (handled, all_done, n) = (handled.clone(), all_done.clone(), settings.messages);
        move |_m: Message| {
            let (handled, all_done) = (handled.clone(), all_done.clone());
            async move {
                if handled.fetch_add(1, Ordering::Relaxed) + 1 == n {
                    all_done.notify_one();
                }
                Ok::<(), HandlerError>(())
            }
        }
    };
    let url = format!(
        "nats+jetstream://{URL}/{stream}?subject={subject}&durable={durable}&max_ack_pending={}",
        settings.in_flight
    );
    let start;
    match variant {
        Variant::Raw => {
            let consumer = js
                .get_stream(&stream)
                .await
                .unwrap_or_else(|e| fail("binding the stream", e))
                .create_consumer(pull::Config {
                    durable_name: Some(durable.to_owned()),
                    ack_policy: AckPolicy::Explicit,
                    max_ack_pending: settings.in_flight as i64,
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| fail("creating the consumer", e));
            start = Instant::now();
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
            client.flush().await.unwrap_or_else(|e| fail("flushing", e));
        }
        Variant::Bare | Variant::Recommended => {
            let config: NatsConfig = url.parse().unwrap_or_else(|e| fail("the config", e));
            let nats = NatsClient::connect(config)
                .await
                .unwrap_or_else(|e| fail("connecting", e));
            let subscriber = nats
                .jetstream_subscriber()
                .await
                .unwrap_or_else(|e| fail("subscribing", e));
            let done = {
                let all_done = all_done.clone();
                async move { all_done.notified().await }
            };
            start = Instant::now();
            let summary = if variant == Variant::Bare {
                Consumer::new("bench", subscriber, handler.into_service())
                    .max_in_flight(settings.in_flight)
                    .run(done)
                    .await
            } else {
                let stack = RecommendedLayer::new("bench", Arc::new(nats.publisher()))
                    .service(handler.into_service());
                Consumer::new("bench", subscriber, stack)
                    .max_in_flight(settings.in_flight)
                    .run(done)
                    .await
            };
            summary.unwrap_or_else(|e| fail("the consumer", e));
            nats.flush().await.unwrap_or_else(|e| fail("flushing", e));
        }
    }
    let elapsed = start.elapsed();
    let _ = js.delete_stream(&stream).await;
    Sample {
        variant,
        elapsed,
        messages: settings.messages,
    }
}

pub(crate) async fn run(settings: &Settings) -> Vec<Sample> {
    let mut samples = Vec::new();
    for round in 0..settings.rounds {
        for v in Variant::ALL {
            samples.push(drain(v, settings, round).await);
        }
    }
    samples
}
