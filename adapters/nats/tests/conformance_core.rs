//! The conformance suite on Core NATS: a subject per topic, a queue group per group. Core
//! promises no acknowledgements, so the redelivery, restart and dead-letter tests skip
//! themselves; delivery, groups, order and reconnection are checked.

mod support;

use wharf::Capabilities;
use wharf_conformance::{AdapterFactory, DeadLetterRecord};
use wharf_nats::{CoreSource, CoreSubscriber, NatsClient, NatsConfig, NatsPublisher};

use support::Ticket;

/// Builds Core NATS subscribers and publishers on the local nats-server.
#[derive(Debug)]
struct CoreFactory {
    nats: NatsClient,
    ticket: Ticket,
}

impl CoreFactory {
    async fn connect() -> Self {
        let ticket = Ticket::take().await;
        let nats = support::connect(NatsConfig::core("unused")).await;
        CoreFactory { nats, ticket }
    }
}

impl AdapterFactory for CoreFactory {
    type Subscriber = CoreSubscriber;
    type Publisher = NatsPublisher;

    fn name(&self) -> &str {
        "nats-core"
    }

    fn capabilities(&self) -> Capabilities {
        wharf_nats::subscriber::core_capabilities(true)
    }

    async fn prepare(&self, _topic: &str, _groups: &[&str]) -> Result<(), wharf::Error> {
        Ok(())
    }

    async fn publisher(&self) -> Result<NatsPublisher, wharf::Error> {
        Ok(NatsPublisher::core(self.nats.client().clone()))
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<CoreSubscriber, wharf::Error> {
        self.nats
            .core_subscriber_for(&CoreSource {
                subject: topic.to_owned(),
                queue_group: Some(group.to_owned()),
            })
            .await
    }

    async fn dead_letters(&self, _: &str, _: &str) -> Result<Vec<DeadLetterRecord>, wharf::Error> {
        Ok(Vec::new())
    }

    async fn restart_broker(&self) -> Result<bool, wharf::Error> {
        self.ticket.restart_broker().await;
        // Both clients (subscriber and publisher share one) must be back before anything
        // is published: Core keeps nothing for a subscription that is not there yet.
        self.nats.flush().await?;
        Ok(true)
    }

    fn large_payload_size(&self) -> usize {
        1_000_000
    }
}

mod core {
    use super::*;

    wharf_conformance::conformance_tests!(ignore = "needs nats", CoreFactory::connect().await);
}
