//! The in-memory broker: the plain loop is the subscriber and acker used directly.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::time::Instant;
use wharf::{Acker, Consumer, Handler, HandlerError, Message, Outcome};
use wharf_memory::MemoryBroker;
use wharf_middleware::stack::RecommendedLayer;

use crate::{Sample, Settings, Variant};

async fn handler(_m: Message) -> Result<(), HandlerError> {
    Ok(())
}

fn backlog(settings: &Settings, topic: &str) -> MemoryBroker {
    let broker = MemoryBroker::builder()
        .record_history(false)
        .prefetch(settings.in_flight.min(1024))
        .build();
    broker.declare_group(topic, "bench");
    let payload = vec![b'x'; settings.size];
    for i in 0..settings.messages {
        if let Err(e) = broker.publish(topic, Message::with_id(format!("m{i}"), payload.clone())) {
            panic!("publishing the backlog failed: {e}");
        }
    }
    broker
}

async fn drain(variant: Variant, settings: &Settings) -> Sample {
    let topic = "bench";
    let broker = backlog(settings, topic);
    let idle = {
        let b = broker.clone();
        async move { b.idle(topic, "bench").await }
    };
    let start = Instant::now();
    let handled = match variant {
        Variant::Raw => {
            let mut sub = broker.subscribe(topic, "bench");
            let mut n = 0;
            while n < settings.messages {
                match sub.next().await {
                    Some(Ok(d)) => {
                        let (m, acker) = d.into_parts();
                        if handler(m).await.is_ok() {
                            let _ = acker.settle(Outcome::Ack).await;
                        }
                        n += 1;
                    }
                    other => panic!("the memory subscriber stopped: {other:?}"),
                }
            }
            n
        }
        Variant::Bare => {
            let summary = Consumer::new(
                "bench",
                broker.subscribe(topic, "bench"),
                handler.into_service(),
            )
            .max_in_flight(settings.in_flight)
            .run(idle)
            .await;
            summary
                .map(|s| s.acked as usize)
                .unwrap_or_else(|e| panic!("consumer failed: {e}"))
        }
        Variant::Recommended => {
            let stack = RecommendedLayer::new("bench", Arc::new(broker.clone()))
                .service(handler.into_service());
            let summary = Consumer::new("bench", broker.subscribe(topic, "bench"), stack)
                .max_in_flight(settings.in_flight)
                .run(idle)
                .await;
            summary
                .map(|s| s.acked as usize)
                .unwrap_or_else(|e| panic!("consumer failed: {e}"))
        }
    };
    Sample {
        variant,
        elapsed: start.elapsed(),
        messages: handled,
    }
}

pub(crate) async fn run(settings: &Settings) -> Vec<Sample> {
    let mut samples = Vec::new();
    for _ in 0..settings.rounds {
        for v in Variant::ALL {
            samples.push(drain(v, settings).await);
        }
    }
    samples
}
