//! Reading a queue without consuming it: listing dead letters.

use wharf::adapter::DeadLetterReader;
use wharf::{Error, Message};

use crate::client::RabbitDeadLetters;
use crate::config::RabbitConfig;

/// Reads up to `max` messages of `queue` without removing them, oldest first: what
/// [`RabbitDeadLetters::list`](crate::RabbitDeadLetters) does, for a configuration at
/// hand.
///
/// The messages are fetched with `basic.get` and left unacked, then the channel is
/// closed, which puts them back. Meant for inspection (the dead letters in
/// `<queue>.dlq`), not for consuming: on a quorum queue each peek counts as a delivery
/// (`x-delivery-count`), and a consumer of the queue may receive them meanwhile.
pub async fn peek(config: &RabbitConfig, queue: &str, max: usize) -> Result<Vec<Message>, Error> {
    RabbitDeadLetters::new(config.clone())
        .list(queue, max)
        .await
}
