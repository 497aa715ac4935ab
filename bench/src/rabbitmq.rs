//! RabbitMQ: the plain loop is lapin's consumer with `basic.qos` at the same prefetch,
//! acking each delivery and awaiting the ack before the next (the usual at-least-once
//! loop). Every drain gets a fresh quorum queue (declared by wharf's topology, so all
//! three drain the same kind of queue) with the backlog already in it; publishing is not
//! timed. Needs RabbitMQ on 127.0.0.1:5672 (guest/guest).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::time::Instant;
use wharf_rabbitmq::{RabbitConfig, RabbitPublisher, RabbitSubscriber};

use crate::{Settings, Variant};

const URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn fail(doing: &str, e: impl std::fmt::Display) -> ! {
    panic!("{doing} failed: {e} (is RabbitMQ running on 127.0.0.1:5672?)")
}

/// Declares the queue's topology and fills it, pipelining confirms 1,000 at a time.
/// Returns the connection and every queue declared (to delete afterwards).
async fn backlog(
    config: &RabbitConfig,
    queue: &str,
    settings: &Settings,
) -> (Connection, Vec<String>) {
    let topology = wharf_rabbitmq::topology::declare(config)
        .await
        .unwrap_or_else(|e| fail("declaring the queue", e));
    let queues: Vec<String> = [topology.work_queue(), topology.dead_letter_queue()]
        .into_iter()
        .chain(topology.tiers().map(|(_, q)| q))
        .map(str::to_owned)
        .collect();
    let conn = Connection::connect(URI, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| fail("connecting", e));
    let channel = conn
        .create_channel()
        .await
        .unwrap_or_else(|e| fail("opening a channel", e));
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap_or_else(|e| fail("confirm_select", e));
    let payload = vec![b'x'; settings.size];
    let mut pending = Vec::with_capacity(1000);
    for i in 0..settings.messages {
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &payload,
                BasicProperties::default()
                    .with_message_id(format!("m{i}").into())
                    .with_delivery_mode(2),
            )
            .await
            .unwrap_or_else(|e| fail("publishing", e));
        pending.push(confirm);
        if pending.len() == 1000 {
            for c in pending.drain(..) {
                c.await.unwrap_or_else(|e| fail("publish confirm", e));
            }
        }
    }
    for c in pending {
        c.await.unwrap_or_else(|e| fail("publish confirm", e));
    }
    (conn, queues)
}

pub(crate) async fn drain(variant: Variant, settings: &Settings, round: usize) -> Duration {
    let queue = format!(
        "wharf-bench-{}-{round}-{}",
        std::process::id(),
        variant.tag()
    );
    let prefetch = settings.in_flight.min(u16::MAX as usize);
    let config = RabbitConfig::from_url(&format!("{URI}?queue={queue}&prefetch={prefetch}"))
        .unwrap_or_else(|e| fail("the config", e));
    let (conn, queues) = backlog(&config, &queue, settings).await;

    let elapsed = match variant {
        Variant::Raw => {
            let channel = conn
                .create_channel()
                .await
                .unwrap_or_else(|e| fail("opening a channel", e));
            channel
                .basic_qos(prefetch as u16, BasicQosOptions::default())
                .await
                .unwrap_or_else(|e| fail("basic.qos", e));
            let start = Instant::now();
            let mut consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap_or_else(|e| fail("basic.consume", e));
            let mut n = 0;
            while n < settings.messages {
                let delivery = match consumer.next().await {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => fail("receiving", e),
                    None => fail("receiving", "the consumer ended"),
                };
                delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .unwrap_or_else(|e| fail("acking", e));
                n += 1;
            }
            start.elapsed()
        }
        Variant::Bare | Variant::Recommended | Variant::Idempotent(_) => {
            let subscriber = RabbitSubscriber::connect(&config)
                .await
                .unwrap_or_else(|e| fail("subscribing", e));
            let publisher = RabbitPublisher::connect(&config)
                .await
                .unwrap_or_else(|e| fail("the publisher", e));
            crate::drain::with_wharf(
                variant,
                settings,
                subscriber,
                Arc::new(publisher),
                Arc::default(),
            )
            .await
            .since_start
        }
    };
    if let Ok(channel) = conn.create_channel().await {
        for q in &queues {
            let _ = channel
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
    elapsed
}
