//! Publishing with publisher confirms and `mandatory`.
//!
//! [`RabbitPublisher::publish`] returns only once the broker confirmed the message
//! (`basic.ack` in confirm mode). A message the broker returns as unroutable (no queue
//! bound for it: `mandatory` is always set) or refuses (`basic.nack`) is an error, and
//! the [`PublishError`] hands the message back. Messages are persistent
//! (`delivery_mode = 2`).
//!
//! # Destinations
//!
//! | destination | exchange | routing key |
//! |---|---|---|
//! | `orders`, when an exchange `orders` exists | `orders` | empty |
//! | `orders` otherwise, or `/queues/orders` | the default exchange | `orders`: straight to the queue |
//! | `/exchanges/events` | `events` | empty |
//! | `/exchanges/events/order.created` | `events` | `order.created` |
//!
//! The `/queues/...` and `/exchanges/...` forms follow RabbitMQ's AMQP 1.0 addresses. A
//! bare name is a *source*, as on every other broker: the exchange of that name when one
//! exists (what [`RabbitClient::declare`](crate::RabbitClient::declare) creates, with a
//! queue per group bound to it), otherwise the queue of that name. The publisher looks
//! each bare name up once (a passive `exchange.declare` on a channel of its own) and
//! remembers the answer (an exchange for good; "no exchange" for five seconds, so one
//! declared later is found). So `publish("orders", ..)` reaches every group subscribed to
//! `orders`, and the dead-letter layer's default destination `<queue>.dlq` reaches the
//! dead-letter queue this adapter declares.
//!
//! The message's key travels in the `wharf-key` header, never in the routing key: choose
//! the routing key with the destination. See [`message`](crate::message) for the whole
//! mapping.
//!
//! A connection failure drops the publisher's connection; the next publish reconnects.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};
use tokio::sync::Mutex;
use wharf::{Error, Message, PublishError, Publisher};

use crate::config::RabbitConfig;
use crate::error::{timeout, RabbitError};
use crate::message::to_properties;

/// How long a bare name found to be no exchange is taken for a queue before it is looked
/// up again.
const NOT_EXCHANGE_TTL: Duration = Duration::from_secs(5);

/// Bound on one publish and its confirmation.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Publishes to RabbitMQ and waits for the broker's confirmation.
///
/// Cheap to clone (clones share the connection); concurrent publishes are pipelined on
/// one confirm-mode channel.
#[derive(Clone)]
pub struct RabbitPublisher {
    shared: Arc<Shared>,
}

struct Shared {
    config: RabbitConfig,
    state: Mutex<Option<Link>>,
    /// Bare destination names looked up: `true` for an exchange (kept), `false` with
    /// when it was looked up (looked up again after [`NOT_EXCHANGE_TTL`], so an
    /// exchange declared later is found).
    exchanges: std::sync::Mutex<HashMap<String, Option<std::time::Instant>>>,
}

/// A connection and its confirm-mode channel.
struct Link {
    // Kept so the connection lives as long as the channel.
    connection: Connection,
    channel: Channel,
}

impl fmt::Debug for RabbitPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.shared.config;
        f.debug_struct("RabbitPublisher")
            .field("host", &config.host)
            .field("port", &config.port)
            .field("vhost", &config.vhost)
            .finish_non_exhaustive()
    }
}

impl RabbitPublisher {
    /// Connects (the configuration's connection part; queue settings are not used).
    pub async fn connect(config: &RabbitConfig) -> Result<Self, Error> {
        config.validate()?;
        let link = open(config)
            .await
            .map_err(|e| Error::Connection(Box::new(e)))?;
        Ok(RabbitPublisher {
            shared: Arc::new(Shared {
                config: config.clone(),
                state: Mutex::new(Some(link)),
                exchanges: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Closes the connection. Publishing afterwards reconnects.
    pub async fn close(&self) {
        if let Some(link) = self.shared.state.lock().await.take() {
            let _ = link.channel.close(200, "OK".into()).await;
            let _ = link.connection.close(200, "OK".into()).await;
        }
    }

    /// The confirm-mode channel (reconnecting if needed), and with `side` a new plain
    /// channel on the same connection.
    async fn link(&self, side: bool) -> Result<(Channel, Option<Channel>), RabbitError> {
        let mut state = self.shared.state.lock().await;
        if !state
            .as_ref()
            .is_some_and(|link| link.channel.status().connected())
        {
            *state = None;
            *state = Some(open(&self.shared.config).await?);
        }
        let link = state.as_ref().expect("connected above");
        let side = match side {
            true => Some(crate::connection::channel(&link.connection).await?),
            false => None,
        };
        Ok((link.channel.clone(), side))
    }

    /// A new plain channel on the publisher's connection (reconnecting if needed), for
    /// a look that may close it (a passive declare of something missing).
    pub(crate) async fn side_channel(&self) -> Result<Channel, RabbitError> {
        let (_, side) = self.link(true).await?;
        Ok(side.expect("asked for a side channel"))
    }

    /// Whether bare name `name` is an exchange (looked up once, then remembered).
    async fn is_exchange(&self, name: &str) -> Result<bool, RabbitError> {
        match self.exchanges().get(name) {
            Some(None) => return Ok(true),
            Some(Some(at)) if at.elapsed() < NOT_EXCHANGE_TTL => return Ok(false),
            _ => {}
        }
        // A passive declare of a missing exchange closes its channel: use one of its own.
        let channel = self.side_channel().await?;
        let found = channel
            .exchange_declare(
                name.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        let is_exchange = match found {
            Ok(()) => {
                let _ = channel.close(200, "OK".into()).await;
                true
            }
            Err(e) if e.to_string().contains("NOT_FOUND") => false,
            Err(e) => {
                return Err(RabbitError::amqp(
                    format!("looking up exchange `{name}`"),
                    e,
                ))
            }
        };
        let remembered = (!is_exchange).then(std::time::Instant::now);
        self.exchanges().insert(name.to_owned(), remembered);
        Ok(is_exchange)
    }

    fn exchanges(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<std::time::Instant>>> {
        self.shared
            .exchanges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    async fn try_publish(&self, destination: &str, message: &Message) -> Result<(), RabbitError> {
        let (mut exchange, mut routing_key) = parse_destination(destination)?;
        if !destination.starts_with('/') && self.is_exchange(destination).await? {
            (exchange, routing_key) = (destination, "");
        }
        let (channel, _) = self.link(false).await?;
        let result = publish_confirmed(&channel, exchange, routing_key, message).await;
        if result.is_err() && !channel.status().connected() {
            let mut state = self.shared.state.lock().await;
            if state
                .as_ref()
                .is_some_and(|l| l.channel.id() == channel.id() && !l.channel.status().connected())
            {
                *state = None;
            }
        }
        result
    }
}

#[async_trait]
impl Publisher for RabbitPublisher {
    async fn publish(&self, destination: &str, message: Message) -> Result<(), PublishError> {
        match self.try_publish(destination, &message).await {
            Ok(()) => Ok(()),
            Err(e) => Err(PublishError::new(destination, message, e)),
        }
    }
}

/// Opens a connection and a confirm-mode channel.
async fn open(config: &RabbitConfig) -> Result<Link, RabbitError> {
    let connection = crate::connection::connect(config, "publisher").await?;
    let channel = crate::connection::confirm_channel(&connection).await?;
    Ok(Link {
        connection,
        channel,
    })
}

/// Splits a destination into exchange and routing key (see the [module docs](self)).
pub(crate) fn parse_destination(destination: &str) -> Result<(&str, &str), RabbitError> {
    let (exchange, key) = if let Some(queue) = destination.strip_prefix("/queues/") {
        ("", queue)
    } else if let Some(rest) = destination.strip_prefix("/exchanges/") {
        rest.split_once('/').unwrap_or((rest, ""))
    } else if destination.starts_with('/') {
        return Err(RabbitError::Destination(
            destination.to_owned(),
            "expected a queue name, `/queues/<queue>` or `/exchanges/<exchange>[/<routing key>]`",
        ));
    } else {
        ("", destination)
    };
    if exchange.len() > 255 || key.len() > 255 {
        return Err(RabbitError::Destination(
            destination.to_owned(),
            "exchange names and routing keys are at most 255 bytes",
        ));
    }
    if exchange.is_empty() && key.is_empty() {
        return Err(RabbitError::Destination(
            destination.to_owned(),
            "names no queue or exchange",
        ));
    }
    Ok((exchange, key))
}

/// Publishes `message` (mandatory, persistent) and waits for the broker's confirmation.
pub(crate) async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    message: &Message,
) -> Result<(), RabbitError> {
    let properties = to_properties(message)?;
    publish_confirmed_with(channel, exchange, routing_key, message, properties).await
}

/// [`publish_confirmed`] with the AMQP properties given (a retry or dead-letter copy
/// keeps its original's: see `message::copy_properties`).
pub(crate) async fn publish_confirmed_with(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    message: &Message,
    properties: BasicProperties,
) -> Result<(), RabbitError> {
    let doing = || format!("publishing to exchange `{exchange}` with routing key `{routing_key}`");
    let confirmation = timeout(PUBLISH_TIMEOUT, "publishing", async {
        let confirm = channel
            .basic_publish(
                ShortString::from(exchange),
                ShortString::from(routing_key),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                message.payload(),
                properties,
            )
            .await
            .map_err(|e| RabbitError::amqp(doing(), e))?;
        confirm.await.map_err(|e| RabbitError::amqp(doing(), e))
    })
    .await?;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            Err(RabbitError::Unroutable {
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
                code: returned.reply_code,
                text: returned.reply_text.to_string(),
            })
        }
        Confirmation::Nack(None) | Confirmation::NotRequested => Err(RabbitError::Nacked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        assert_eq!(parse_destination("orders").unwrap(), ("", "orders"));
        assert_eq!(parse_destination("/queues/orders").unwrap(), ("", "orders"));
        assert_eq!(
            parse_destination("/exchanges/events").unwrap(),
            ("events", "")
        );
        assert_eq!(
            parse_destination("/exchanges/events/order.created/x").unwrap(),
            ("events", "order.created/x")
        );
        assert!(parse_destination("/topics/x").is_err());
        assert!(parse_destination("").is_err());
    }
}
