//! Reading a queue without consuming it: listing dead letters.

use std::sync::Arc;

use lapin::options::BasicGetOptions;
use wharf::{Error, Message};

use crate::config::RabbitConfig;
use crate::error::RabbitError;
use crate::message::from_amqp;

/// Reads up to `max` messages of `queue` without removing them, oldest first.
///
/// The messages are fetched with `basic.get` and left unacked, then the channel is
/// closed, which puts them back. Meant for inspection (the dead letters in
/// `<queue>.dlq`), not for consuming: on a quorum queue each peek counts as a delivery
/// (`x-delivery-count`), and a consumer of the queue may receive them meanwhile.
pub async fn peek(config: &RabbitConfig, queue: &str, max: usize) -> Result<Vec<Message>, Error> {
    let connection = crate::connection::connect(config, "peek")
        .await
        .map_err(|e| Error::Connection(Box::new(e)))?;
    let result = async {
        let channel = crate::connection::channel(&connection).await?;
        let source: Arc<str> = queue.into();
        let mut out = Vec::new();
        while out.len() < max {
            let got = channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: false })
                .await
                .map_err(|e| RabbitError::amqp(format!("reading queue `{queue}`"), e))?;
            let Some(got) = got else { break };
            let d = got.delivery;
            out.push(from_amqp(&d.properties, d.data, d.redelivered, &source));
        }
        let _ = channel.close(200, "OK".into()).await;
        Ok::<_, RabbitError>(out)
    }
    .await;
    let _ = connection.close(200, "OK".into()).await;
    result.map_err(|e| Error::Subscribe(Box::new(e)))
}
