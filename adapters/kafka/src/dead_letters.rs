//! [`KafkaDeadLetters`]: reading and removing the records of dead-letter topics.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use wharf::adapter::dead_letter::same_letter;
use wharf::adapter::DeadLetterReader;
use wharf::headers::names;
use wharf::{Error, Message, Publisher};

use crate::client::KafkaClient;

/// How long reading a dead-letter topic may take before it gives up.
const READ_WAIT: Duration = Duration::from_secs(30);

/// Reads and removes the dead letters on Kafka's dead-letter topics (`<topic>.dlq`, or
/// the configured `dead_letter_topic`).
///
/// Reading consumes the topic from its oldest retained record without joining a group
/// or committing anything, to the end of every partition as it was when reading began
/// (an error if that takes longer than 30 s, or the topic does not exist). Kafka cannot
/// delete one record, so removing one appends a *marker* to the same topic: empty
/// payload, header `wharf-dlq-removed: <partition>:<offset>` naming exactly the record
/// removed, keyed like it. This reader skips markers and the records they name; a later
/// dead letter of the same message (after a replay) is a different record and stays
/// visible. Retention removes both in time. Other readers of a dead-letter topic should
/// skip records that carry `wharf-dlq-removed`.
#[derive(Clone, Debug)]
pub struct KafkaDeadLetters {
    pub(crate) client: KafkaClient,
}

/// `partition:offset` of a record read back from a topic.
fn position(message: &Message) -> Option<String> {
    let origin = message.origin();
    Some(format!("{}:{}", origin.partition()?, origin.offset()?))
}

impl KafkaDeadLetters {
    /// Every dead letter in `topic` that no marker removed, oldest first per partition.
    async fn live(&self, topic: &str) -> Result<Vec<Message>, Error> {
        let records = self.client.read_topic_fully(topic, READ_WAIT).await?;
        let removed: HashSet<String> = records
            .iter()
            .filter_map(|m| m.headers().get_str(names::DLQ_REMOVED).map(str::to_owned))
            .collect();
        Ok(records
            .into_iter()
            .filter(|m| {
                m.headers().get_str(names::DLQ_REMOVED).is_none()
                    && position(m).is_none_or(|p| !removed.contains(&p))
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

    async fn remove(&self, destination: &str, letter: &Message) -> Result<bool, Error> {
        let Some(found) = self
            .live(destination)
            .await?
            .into_iter()
            .find(|m| same_letter(m, letter))
        else {
            return Ok(false);
        };
        let Some(position) = position(&found) else {
            return Ok(false);
        };
        let mut marker = Message::with_id(format!("{}.removed.{position}", found.id()), "")
            .with_header(names::DLQ_REMOVED, position);
        if let Some(key) = found.key() {
            // To the dead letter's partition where the key decides it, so retention
            // tends to remove both together.
            marker = marker.with_key(key.clone());
        }
        self.client.publisher().publish(destination, marker).await?;
        Ok(true)
    }
}
