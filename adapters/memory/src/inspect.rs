//! What happened to each message: records the broker keeps for tests and tools.

use wharf::{Failure, Message, MessageId, Outcome};

/// The delivery history of one message in one consumer group.
///
/// Kept only when the broker records history (see
/// [`MemoryBrokerBuilder::record_history`](crate::MemoryBrokerBuilder::record_history);
/// on by default and always on in the [`Harness`](crate::Harness)).
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    /// The message as first delivered (origin and attempt 1).
    pub message: Message,
    /// How many times it was delivered.
    pub deliveries: u32,
    /// Each settlement, in order. The last one is the final outcome, unless the message
    /// is still pending.
    pub outcomes: Vec<Outcome>,
}

impl DeliveryRecord {
    pub(crate) fn new(message: Message) -> Self {
        DeliveryRecord {
            message,
            deliveries: 0,
            outcomes: Vec::new(),
        }
    }

    /// The message id.
    pub fn id(&self) -> &MessageId {
        self.message.id()
    }

    /// The last settlement, if any.
    pub fn final_outcome(&self) -> Option<&Outcome> {
        self.outcomes.last()
    }

    /// How many times the message was settled `Retry`.
    pub fn retries(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Retry { .. }))
            .count()
    }
}

/// A message dead-lettered through the broker's native path (a `DeadLetter` settlement
/// with no dead-letter layer in the stack).
#[derive(Debug, Clone)]
pub struct NativeDeadLetter {
    /// The message as published.
    pub message: Message,
    /// Why it was given up on.
    pub failure: Failure,
    /// Deliveries made.
    pub attempts: u32,
}
