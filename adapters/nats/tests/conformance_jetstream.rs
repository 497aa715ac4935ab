//! The conformance suite on JetStream, through a `nats+jetstream://` `NatsClient`: a
//! stream per topic, a durable pull consumer per group, dead letters read back from the
//! dead-letter stream.

mod support;

use std::time::Duration;

use wharf_conformance::AdapterFactory;
use wharf_nats::{NatsClient, NatsConfig, NatsPublisher, NatsSubscriber};

use support::Ticket;

/// Reaches the local nats-server through a `nats+jetstream://` `NatsClient`.
#[derive(Debug)]
struct JetStreamFactory {
    nats: NatsClient,
    ticket: Ticket,
}

impl JetStreamFactory {
    async fn connect() -> Self {
        let ticket = Ticket::take().await;
        // `ack_wait` short enough that a message delivered to a pull request of a closed
        // subscriber comes back within the suite's waits.
        let config = NatsConfig::jetstream("unused", "unused").ack_wait(Duration::from_secs(5));
        let nats = support::connect(config).await;
        support::remove_stale_streams(&nats).await;
        JetStreamFactory { nats, ticket }
    }
}

impl AdapterFactory for JetStreamFactory {
    type Client = NatsClient;
    type Subscriber = NatsSubscriber;
    type Publisher = NatsPublisher;

    fn name(&self) -> &str {
        "nats-jetstream"
    }

    fn client(&self) -> &NatsClient {
        &self.nats
    }

    async fn publisher(&self) -> Result<NatsPublisher, wharf::Error> {
        Ok(self
            .nats
            .publisher()
            // The suite publishes one id twice and expects two deliveries (`duplicate_is_skipped`);
            // broker deduplication is checked in `publish_dedup.rs`.
            .broker_dedup(false))
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
