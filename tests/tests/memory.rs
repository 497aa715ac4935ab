//! The whole conformance suite on the in-memory broker.
//!
//! Each test gets a fresh [`MemoryBroker`]; the suite's unique topic names would let them
//! share one just as well.

use wharf::Capabilities;
use wharf_conformance::{conformance_tests, AdapterFactory, DeadLetterRecord};
use wharf_memory::{MemoryBroker, MemorySubscriber};

/// Runs the suite on a fresh in-memory broker.
#[derive(Debug)]
struct MemoryFactory {
    broker: MemoryBroker,
    capabilities: Capabilities,
}

impl MemoryFactory {
    fn new() -> Self {
        let broker = MemoryBroker::new();
        let capabilities = broker.capabilities();
        MemoryFactory {
            broker,
            capabilities,
        }
    }
}

impl AdapterFactory for MemoryFactory {
    type Subscriber = MemorySubscriber;
    type Publisher = MemoryBroker;

    fn name(&self) -> &str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn prepare(&self, topic: &str, groups: &[&str]) -> Result<(), wharf::Error> {
        for group in groups {
            self.broker.declare_group(topic, group);
        }
        Ok(())
    }

    async fn publisher(&self) -> Result<MemoryBroker, wharf::Error> {
        Ok(self.broker.clone())
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<MemorySubscriber, wharf::Error> {
        Ok(self.broker.subscribe(topic, group))
    }

    async fn dead_letters(
        &self,
        topic: &str,
        group: &str,
    ) -> Result<Vec<DeadLetterRecord>, wharf::Error> {
        Ok(self
            .broker
            .native_dead_letters(topic, group)
            .into_iter()
            .map(|d| DeadLetterRecord::new(d.message, Some(d.failure.reason().to_string())))
            .collect())
    }
}

conformance_tests!(MemoryFactory::new());
