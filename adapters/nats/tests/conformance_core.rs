//! The conformance suite on Core NATS: a subject per topic, a queue group per group. Core
//! promises no acknowledgements, so the redelivery, restart and dead-letter tests skip
//! themselves; delivery, groups, order and reconnection are checked.

mod support;

use wharf_conformance::AdapterFactory;
use wharf_nats::{NatsClient, NatsConfig, NatsPublisher, NatsSubscriber};

use support::Ticket;

/// Reaches the local nats-server through a `nats://` `NatsClient`: a queue group per
/// group.
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
    type Client = NatsClient;
    type Subscriber = NatsSubscriber;
    type Publisher = NatsPublisher;

    fn name(&self) -> &str {
        "nats-core"
    }

    fn client(&self) -> &NatsClient {
        &self.nats
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
