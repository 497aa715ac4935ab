//! The whole conformance suite on the in-memory broker.
//!
//! Each test gets a fresh [`MemoryBroker`]; the suite's unique topic names would let them
//! share one just as well.

use wharf_conformance::{conformance_tests, AdapterFactory};
use wharf_memory::{MemoryBroker, MemorySubscriber};

/// Runs the suite on a fresh in-memory broker, through its `Client` surface.
#[derive(Debug)]
struct MemoryFactory {
    broker: MemoryBroker,
}

impl AdapterFactory for MemoryFactory {
    type Client = MemoryBroker;
    type Subscriber = MemorySubscriber;
    type Publisher = MemoryBroker;

    fn name(&self) -> &str {
        "memory"
    }

    fn client(&self) -> &MemoryBroker {
        &self.broker
    }
}

conformance_tests!(MemoryFactory {
    broker: MemoryBroker::new()
});
