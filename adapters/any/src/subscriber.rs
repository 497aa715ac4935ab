//! [`AnySubscriber`] and its [`AnyAcker`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt};
use wharf::adapter::{Acker, Capabilities, Delivery, Subscriber};
use wharf::adapter::{Description, Lease};
use wharf::{BoxError, Error, Outcome};

use crate::dispatch::{each, each_into};

/// The subscriber of an [`AnyClient`](crate::AnyClient).
#[derive(Debug)]
#[non_exhaustive]
pub enum AnySubscriber {
    /// The in-memory broker.
    Memory(wharf_memory::MemorySubscriber),
    /// RabbitMQ.
    #[cfg(feature = "rabbitmq")]
    RabbitMq(wharf_rabbitmq::RabbitSubscriber),
    /// Kafka.
    #[cfg(feature = "kafka")]
    Kafka(wharf_kafka::KafkaSubscriber),
    /// NATS.
    #[cfg(feature = "nats")]
    Nats(wharf_nats::NatsSubscriber),
}

impl Stream for AnySubscriber {
    type Item = Result<Delivery<AnyAcker>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut *self {
            AnySubscriber::Memory(s) => s
                .poll_next_unpin(cx)
                .map_ok(|d| d.map_acker(AnyAcker::Memory)),
            #[cfg(feature = "rabbitmq")]
            AnySubscriber::RabbitMq(s) => s
                .poll_next_unpin(cx)
                .map_ok(|d| d.map_acker(AnyAcker::RabbitMq)),
            #[cfg(feature = "kafka")]
            AnySubscriber::Kafka(s) => s
                .poll_next_unpin(cx)
                .map_ok(|d| d.map_acker(AnyAcker::Kafka)),
            #[cfg(feature = "nats")]
            AnySubscriber::Nats(s) => s
                .poll_next_unpin(cx)
                .map_ok(|d| d.map_acker(AnyAcker::Nats)),
        }
    }
}

impl Subscriber for AnySubscriber {
    type Acker = AnyAcker;

    fn capabilities(&self) -> Capabilities {
        each!(self, AnySubscriber, s => s.capabilities())
    }

    fn describe(&self) -> Description {
        each!(self, AnySubscriber, s => s.describe())
    }

    async fn close(self) -> Result<(), Error> {
        each!(self, AnySubscriber, s => s.close().await)
    }
}

/// The acker of an [`AnySubscriber`]'s deliveries.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyAcker {
    /// The in-memory broker.
    Memory(wharf_memory::MemoryAcker),
    /// RabbitMQ.
    #[cfg(feature = "rabbitmq")]
    RabbitMq(wharf_rabbitmq::RabbitAcker),
    /// Kafka.
    #[cfg(feature = "kafka")]
    Kafka(wharf_kafka::KafkaAcker),
    /// NATS.
    #[cfg(feature = "nats")]
    Nats(wharf_nats::NatsAcker),
}

impl Acker for AnyAcker {
    type Future = AnySettle;

    fn settle(self, outcome: Outcome) -> AnySettle {
        each_into!(self, AnyAcker, AnySettle, a => a.settle(outcome))
    }

    fn lease(&self) -> Option<&Lease> {
        each!(self, AnyAcker, a => a.lease())
    }
}

/// The settlement future of an [`AnyAcker`]: the adapter's own, unboxed.
#[non_exhaustive]
pub enum AnySettle {
    /// The in-memory broker.
    Memory(<wharf_memory::MemoryAcker as Acker>::Future),
    /// RabbitMQ.
    #[cfg(feature = "rabbitmq")]
    RabbitMq(<wharf_rabbitmq::RabbitAcker as Acker>::Future),
    /// Kafka.
    #[cfg(feature = "kafka")]
    Kafka(<wharf_kafka::KafkaAcker as Acker>::Future),
    /// NATS.
    #[cfg(feature = "nats")]
    Nats(<wharf_nats::NatsAcker as Acker>::Future),
}

impl std::fmt::Debug for AnySettle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnySettle")
    }
}

impl Future for AnySettle {
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every adapter's settlement future is `Unpin` (the `Acker` contract).
        each!(&mut *self, AnySettle, f => Pin::new(f).poll(cx))
    }
}
