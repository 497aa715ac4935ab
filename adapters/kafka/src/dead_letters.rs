//! [`KafkaDeadLetters`]: reading and removing the records of dead-letter topics.

use std::time::Duration;

use async_trait::async_trait;
use wharf::adapter::DeadLetterReader;
use wharf::headers::names;
use wharf::{Error, Message, MessageId, Publisher};

use crate::client::KafkaClient;

/// How long reading a dead-letter topic may take before it gives up.
const READ_WAIT: Duration = Duration::from_secs(30);

/// Reads and removes the dead letters on Kafka's dead-letter topics (`<topic>.dlq`, or
/// the configured `dead_letter_topic`).
///
/// Reading consumes the topic from its oldest retained record without joining a group
/// or committing anything. Kafka cannot delete one record, so removing one appends a
/// *marker* (empty payload, header `wharf-dlq-removed: <id>`) to the same topic; this
/// reader skips markers and the dead letters they name, and the topic's retention
/// removes both in time. Other readers of a dead-letter topic should skip records that
/// carry `wharf-dlq-removed`.
#[derive(Clone, Debug)]
pub struct KafkaDeadLetters {
    pub(crate) client: KafkaClient,
}

impl KafkaDeadLetters {
    /// Every dead letter in `topic` that no marker removed, oldest first per partition.
    async fn live(&self, topic: &str) -> Result<Vec<Message>, Error> {
        let records = self.client.read_topic(topic, READ_WAIT).await?;
        let removed: std::collections::HashSet<String> = records
            .iter()
            .filter_map(|m| m.headers().get_str(names::DLQ_REMOVED).map(str::to_owned))
            .collect();
        Ok(records
            .into_iter()
            .filter(|m| {
                m.headers().get_str(names::DLQ_REMOVED).is_none()
                    && !removed.contains(m.id().as_str())
            })
            .collect())
    }
}

#[async_trait]
impl DeadLetterReader for KafkaDeadLetters {
    fn destination(&self, source: &str, _group: &str) -> String {
        self.client.config().dead_letter_topic_for(source)
    }

    async fn list(&self, destination: &str, max: usize) -> Result<Vec<Message>, Error> {
        let mut live = self.live(destination).await?;
        live.truncate(max);
        Ok(live)
    }

    async fn remove(&self, destination: &str, id: &MessageId) -> Result<bool, Error> {
        let Some(letter) = self
            .live(destination)
            .await?
            .into_iter()
            .find(|m| m.id() == id)
        else {
            return Ok(false);
        };
        let mut marker = Message::with_id(format!("{id}.removed"), "")
            .with_header(names::DLQ_REMOVED, id.as_str().to_owned());
        if let Some(key) = letter.key() {
            // The marker goes to the dead letter's partition.
            marker = marker.with_key(key.clone());
        }
        self.client.publisher().publish(destination, marker).await?;
        Ok(true)
    }
}
