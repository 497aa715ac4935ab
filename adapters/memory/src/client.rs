//! The [`Client`] surface of the in-memory broker, and its dead-letter reader.

use async_trait::async_trait;
use wharf::adapter::dead_letter::same_letter;
use wharf::adapter::{Backlog, Capabilities, PartitionBacklog};
use wharf::adapter::{Client, DeadLetterReader};
use wharf::{Error, Message};

use crate::broker::{dead_letter_topic, MemoryBroker};
use crate::subscriber::MemorySubscriber;

impl MemoryBroker {
    /// Creates each of `groups` on `source`, so messages published from now on are kept
    /// for them ([`declare_group`](Self::declare_group) for each). Never fails.
    pub async fn declare(&self, source: &str, groups: &[&str]) -> Result<(), Error> {
        for group in groups {
            self.declare_group(source, group);
        }
        Ok(())
    }

    /// Joins consumer group `group` on topic `source` ([`subscribe`](Self::subscribe)).
    /// Never fails.
    pub async fn subscriber(&self, source: &str, group: &str) -> Result<MemorySubscriber, Error> {
        Ok(self.subscribe(source, group))
    }

    /// A publisher: the broker itself (a clone shares the topics).
    pub fn publisher(&self) -> MemoryBroker {
        self.clone()
    }

    /// The reader of the dead letters on `<topic>.dlq` topics.
    pub fn dead_letters(&self) -> MemoryDeadLetters {
        MemoryDeadLetters {
            broker: self.clone(),
        }
    }

    /// What `group` has not settled on `source`: pending (unsent, in flight, waiting to
    /// retry), handed out and unsettled, settled offsets, and the messages on
    /// `<source>.dlq` (every group's). An error
    /// when the group was never declared or subscribed.
    pub async fn backlog(&self, source: &str, group: &str) -> Result<Backlog, Error> {
        let (pending, unsettled, settled) = self
            .with_group(source, group, |st, g| {
                (st.pending(g), st.unsettled(g), st.settled(g))
            })
            .ok_or_else(|| {
                Error::Subscribe(
                    format!("group `{group}` on topic `{source}` does not exist").into(),
                )
            })?;
        let mut partition = PartitionBacklog::new(None, pending);
        partition.unsettled = Some(unsettled);
        partition.settled = Some(settled);
        let mut backlog = Backlog::new(vec![partition]);
        backlog.dead_letters = Some(self.message_count(&dead_letter_topic(source)) as u64);
        Ok(backlog)
    }
}

impl Client for MemoryBroker {
    type Subscriber = MemorySubscriber;
    type Publisher = MemoryBroker;
    type DeadLetters = MemoryDeadLetters;

    fn capabilities(&self) -> Capabilities {
        MemoryBroker::capabilities(self)
    }

    async fn declare(&self, source: &str, groups: &[&str]) -> Result<(), Error> {
        MemoryBroker::declare(self, source, groups).await
    }

    async fn subscriber(&self, source: &str, group: &str) -> Result<MemorySubscriber, Error> {
        MemoryBroker::subscriber(self, source, group).await
    }

    fn publisher(&self) -> MemoryBroker {
        MemoryBroker::publisher(self)
    }

    async fn backlog(&self, source: &str, group: &str) -> Result<Backlog, Error> {
        MemoryBroker::backlog(self, source, group).await
    }

    fn dead_letters(&self) -> MemoryDeadLetters {
        MemoryBroker::dead_letters(self)
    }
}

/// Reads and removes the dead letters on the in-memory broker.
///
/// Dead letters of topic `t` are on topic `t.dlq`, for every group: both those the
/// dead-letter layer publishes and the native ones (a `DeadLetter` settled with no
/// layer in the stack). Tell groups apart by `wharf-dlq-consumer`.
#[derive(Debug, Clone)]
pub struct MemoryDeadLetters {
    broker: MemoryBroker,
}

#[async_trait]
impl DeadLetterReader for MemoryDeadLetters {
    fn destination(&self, source: &str, _group: &str) -> String {
        dead_letter_topic(source)
    }

    async fn list(&self, destination: &str, max: usize) -> Result<Vec<Message>, Error> {
        let mut messages = self.broker.messages(destination);
        messages.truncate(max);
        Ok(messages)
    }

    async fn remove(&self, destination: &str, letter: &Message) -> Result<bool, Error> {
        Ok(self
            .broker
            .remove_where(destination, |m| same_letter(m, letter), 1)?
            > 0)
    }
}
