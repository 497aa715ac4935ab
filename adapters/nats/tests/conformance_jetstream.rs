//! The conformance suite on JetStream: a stream per topic, a durable pull consumer per
//! group, dead letters read back from the dead-letter stream.

mod support;

use std::time::Duration;

use wharf::Capabilities;
use wharf_conformance::{AdapterFactory, DeadLetterRecord};
use wharf_nats::{JetStreamSource, JetStreamSubscriber, NatsClient, NatsConfig, NatsPublisher};

use support::Ticket;

/// Builds JetStream subscribers and publishers on the local nats-server.
#[derive(Debug)]
struct JetStreamFactory {
    nats: NatsClient,
    ticket: Ticket,
}

impl JetStreamFactory {
    async fn connect() -> Self {
        let ticket = Ticket::take().await;
        let nats = support::connect(NatsConfig::jetstream("unused", "unused")).await;
        support::remove_stale_streams(&nats).await;
        JetStreamFactory { nats, ticket }
    }

    fn source(topic: &str, group: &str) -> JetStreamSource {
        let mut source = JetStreamSource::new(topic, group);
        // Short enough that a message delivered to a pull request of a closed subscriber
        // comes back within the suite's waits.
        source.ack_wait = Duration::from_secs(5);
        source
    }
}

impl AdapterFactory for JetStreamFactory {
    type Subscriber = JetStreamSubscriber;
    type Publisher = NatsPublisher;

    fn name(&self) -> &str {
        "nats-jetstream"
    }

    fn capabilities(&self) -> Capabilities {
        wharf_nats::subscriber::jetstream_capabilities()
    }

    async fn prepare(&self, topic: &str, groups: &[&str]) -> Result<(), wharf::Error> {
        for group in groups {
            self.nats.declare(&Self::source(topic, group)).await?;
        }
        Ok(())
    }

    async fn publisher(&self) -> Result<NatsPublisher, wharf::Error> {
        Ok(NatsPublisher::jetstream(self.nats.client().clone())
            // The suite publishes one id twice and expects two deliveries (`duplicate_is_skipped`);
            // broker deduplication is checked in `publish_dedup.rs`.
            .broker_dedup(false))
    }

    async fn subscribe(
        &self,
        topic: &str,
        group: &str,
    ) -> Result<JetStreamSubscriber, wharf::Error> {
        self.nats
            .jetstream_subscriber_for(Self::source(topic, group))
            .await
    }

    async fn dead_letters(
        &self,
        topic: &str,
        group: &str,
    ) -> Result<Vec<DeadLetterRecord>, wharf::Error> {
        let letters = self.nats.dead_letters(&Self::source(topic, group)).await?;
        Ok(letters
            .into_iter()
            .filter(|m| m.headers().get_str("wharf-dlq-consumer") == Some(group))
            .map(|m| {
                let reason = m.headers().get_str("wharf-dlq-reason").map(str::to_owned);
                DeadLetterRecord::new(m, reason)
            })
            .collect())
    }

    async fn restart_broker(&self) -> Result<bool, wharf::Error> {
        self.ticket.restart_broker().await;
        Ok(true)
    }

    fn large_payload_size(&self) -> usize {
        // nats-server's default max_payload is 1 MiB including headers.
        1_000_000
    }
}

mod jetstream {
    use super::*;

    wharf_conformance::conformance_tests!(ignore = "needs nats", JetStreamFactory::connect().await);
}
