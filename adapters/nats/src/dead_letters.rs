//! [`NatsDeadLetters`]: reading and removing dead letters kept in JetStream streams.

use async_nats::jetstream::context::GetStreamByNameErrorKind;
use async_trait::async_trait;
use wharf::adapter::dead_letter::same_letter;
use wharf::adapter::DeadLetterReader;
use wharf::{Error, Message};

use crate::client::{stream_name, NatsClient};
use crate::{error, topology};

/// Reads and removes dead letters on NATS. A destination is the **subject** dead letters
/// are published to: `<stream>.dlq` on JetStream (kept by the stream `<stream>_dlq` the
/// adapter declares), `<subject>.dlq` on Core NATS, where they are kept only when a
/// JetStream stream captures that subject (Core NATS itself stores nothing: reading
/// such a destination is an error saying so).
///
/// The reader finds the stream that captures the subject, reads its messages on that
/// subject by sequence (one get per sequence from the stream's first to its last, so a
/// large dead-letter stream is slow to read; no consumer is created) and removes one by
/// deleting its sequence (JetStream never reuses one).
#[derive(Clone, Debug)]
pub struct NatsDeadLetters {
    pub(crate) client: NatsClient,
}

impl NatsDeadLetters {
    /// The stream that keeps messages published to `subject`.
    async fn stream_of(&self, subject: &str) -> Result<String, Error> {
        match self.client.jetstream().stream_by_subject(subject).await {
            Ok(stream) => Ok(stream),
            Err(e) if e.kind() == GetStreamByNameErrorKind::NotFound => Err(error::subscribe(
                format!("dead-letter subject `{subject}`"),
                "no JetStream stream captures it, so nothing keeps its dead letters (Core \
                 NATS stores nothing: add a stream that captures the subject, or use \
                 `nats+jetstream://`)",
            )),
            Err(e) => Err(error::connection(
                format!("finding the stream of `{subject}`"),
                e,
            )),
        }
    }

    async fn read(&self, subject: &str) -> Result<(String, Vec<Message>), Error> {
        let stream = self.stream_of(subject).await?;
        let messages =
            topology::read_stream(self.client.jetstream(), &stream, Some(subject)).await?;
        Ok((stream, messages))
    }
}

#[async_trait]
impl DeadLetterReader for NatsDeadLetters {
    fn destination(&self, source: &str, _group: &str) -> String {
        match self.client.is_jetstream() {
            true => format!("{}.dlq", stream_name(source)),
            false => format!("{source}.dlq"),
        }
    }

    async fn list(&self, destination: &str, max: usize) -> Result<Vec<Message>, Error> {
        let (_, mut messages) = self.read(destination).await?;
        messages.truncate(max);
        Ok(messages)
    }

    async fn remove(&self, destination: &str, letter: &Message) -> Result<bool, Error> {
        let (stream, messages) = self.read(destination).await?;
        // The letter's sequence, if it is still this dead letter there.
        let Some(sequence) = messages
            .iter()
            .find(|m| same_letter(m, letter))
            .and_then(|m| m.origin().offset())
        else {
            return Ok(false);
        };
        topology::delete_message(self.client.jetstream(), &stream, sequence).await
    }
}
