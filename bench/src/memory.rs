//! The in-memory broker: the plain loop is the subscriber and acker used directly.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use wharf::adapter::Acker;
use wharf::{HandlerError, Message, Outcome};
use wharf_memory::MemoryBroker;

use crate::{Settings, Variant};

async fn handler(_m: Message) -> Result<(), HandlerError> {
    Ok(())
}

pub(crate) fn backlog(settings: &Settings, topic: &str) -> MemoryBroker {
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

pub(crate) async fn drain(variant: Variant, settings: &Settings) -> Duration {
    let topic = "bench";
    let broker = backlog(settings, topic);
    let subscriber = broker.subscribe(topic, "bench");
    let elapsed = match variant {
        Variant::Raw => {
            let mut sub = subscriber;
            let start = Instant::now();
            for _ in 0..settings.messages {
                match sub.next().await {
                    Some(Ok(d)) => {
                        let (m, acker) = d.into_parts();
                        if handler(m).await.is_ok() {
                            let _ = acker.settle(Outcome::Ack).await;
                        }
                    }
                    other => panic!("the memory subscriber stopped: {other:?}"),
                }
            }
            start.elapsed()
        }
        Variant::Bare | Variant::Recommended | Variant::Idempotent(_) => {
            crate::drain::with_wharf(
                variant,
                settings,
                subscriber,
                Arc::new(broker.clone()),
                Arc::default(),
            )
            .await
            .since_start
        }
    };
    elapsed
}
