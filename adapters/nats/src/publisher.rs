//! Publishing: JetStream with the broker's acknowledgement, or Core NATS with a flush.
//!
//! - **JetStream** ([`NatsPublisher::jetstream`]): `publish` returns once the stream
//!   stored the message (the PubAck). The message id goes into `Nats-Msg-Id`, so a
//!   publish retried within the stream's duplicate window (default 2 minutes) is stored
//!   once (the second PubAck says `duplicate` and counts as success; see
//!   [`NatsPublisher::broker_dedup`] to turn that off). A subject no stream
//!   captures fails with "no responders" and hands the message back.
//! - **Core NATS** ([`NatsPublisher::core`]): there is no broker confirmation. `publish`
//!   writes the message and flushes the connection (a PING/PONG round trip), so it
//!   returns once the server has read the message; whether any subscriber received it
//!   is unknown. Messages published while nobody subscribes are gone.
//!
//! The destination is a subject (no wildcards). Keys travel in `wharf-key`; header
//! values are UTF-8 text on one line (see [`message`](crate::message)).

use async_nats::jetstream::Context as JetStream;
use async_nats::Client;
use async_trait::async_trait;
use wharf::{Message, PublishError, Publisher};

use crate::config::validate_subject;
use crate::error::NatsError;
use crate::message::to_headers;

#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // one per publisher, never moved in a hot path
enum Kind {
    Core,
    JetStream(JetStream),
}

/// Publishes to NATS; see the [module docs](self).
#[derive(Clone)]
pub struct NatsPublisher {
    client: Client,
    kind: Kind,
    broker_dedup: bool,
}

impl std::fmt::Debug for NatsPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Core => "core",
            Kind::JetStream(_) => "jetstream",
        };
        f.debug_struct("NatsPublisher")
            .field("kind", &kind)
            .field("broker_dedup", &self.broker_dedup)
            .finish()
    }
}

impl NatsPublisher {
    /// A Core NATS publisher on `client`.
    pub fn core(client: Client) -> Self {
        NatsPublisher {
            client,
            kind: Kind::Core,
            broker_dedup: true,
        }
    }

    /// A JetStream publisher on `client`.
    pub fn jetstream(client: Client) -> Self {
        let js = async_nats::jetstream::new(client.clone());
        NatsPublisher {
            client,
            kind: Kind::JetStream(js),
            broker_dedup: true,
        }
    }

    /// Whether the message id goes into `Nats-Msg-Id` (the default), so that JetStream
    /// stores a message published twice within the duplicate window once. Turn it off to
    /// publish the same id again on purpose (replaying a dead letter into its source
    /// stream, say): the id then travels in `wharf-message-id` and the broker stores every
    /// copy. Receivers read either header.
    pub fn broker_dedup(mut self, on: bool) -> Self {
        self.broker_dedup = on;
        self
    }

    /// `true` for a JetStream publisher.
    pub fn is_jetstream(&self) -> bool {
        matches!(self.kind, Kind::JetStream(_))
    }
}

/// The largest message the server takes, as `wharf::adapter::dead_letter::encoded_len` counts it:
/// the server's `max_payload` (headers and payload together; 1 MiB by default) less room
/// for the `NATS/1.0` header block and the ids the adapter adds.
pub(crate) fn max_message_bytes(client: &Client) -> usize {
    const FRAMING: usize = 256;
    client.server_info().max_payload.saturating_sub(FRAMING)
}

#[async_trait]
impl Publisher for NatsPublisher {
    /// The server's `max_payload` less the header framing.
    fn max_message_bytes(&self) -> Option<usize> {
        Some(max_message_bytes(&self.client))
    }

    async fn publish(&self, destination: &str, message: Message) -> Result<(), PublishError> {
        if let Err(e) = validate_subject("destination", destination, false) {
            return Err(PublishError::new(destination, message, e));
        }
        let headers = match to_headers(&message, self.broker_dedup) {
            Ok(h) => h,
            Err(e) => return Err(PublishError::new(destination, message, e)),
        };
        let payload = message.payload().clone();
        let subject = destination.to_owned();
        let result: Result<(), NatsError> = match &self.kind {
            Kind::JetStream(js) => match js.publish_with_headers(subject, headers, payload).await {
                Err(e) => Err(NatsError::client("publishing", e)),
                Ok(ack) => ack
                    .await
                    .map(|_| ())
                    .map_err(|e| NatsError::client("waiting for the stream's acknowledgement", e)),
            },
            Kind::Core => match self
                .client
                .publish_with_headers(subject, headers, payload)
                .await
            {
                Err(e) => Err(NatsError::client("publishing", e)),
                Ok(()) => self
                    .client
                    .flush()
                    .await
                    .map_err(|e| NatsError::client("flushing", e)),
            },
        };
        result.map_err(|e| PublishError::new(destination, message, e))
    }
}
