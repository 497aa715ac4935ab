//! The backlog of a group: passive declares of its queue and its dead-letter queue.
//!
//! `queue.declare` with `passive` answers with the queue's *ready* messages and its
//! consumers; AMQP tells nothing of the messages delivered and unacked, nor of how many
//! were acked (the management plugin's HTTP API does), so those stay unknown and the
//! status verdict from outside cannot tell a slow consumer from a stalled one (the
//! in-process monitor counts settlements itself).

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use wharf::adapter::{Backlog, PartitionBacklog};
use wharf::Error;

use crate::error::RabbitError;
use crate::publisher::RabbitPublisher;

/// Ready messages and consumers of `queue`, from a passive declare on a channel of its
/// own (a missing queue closes the channel with NOT_FOUND). A passive declare counts as
/// a use of the queue: it restarts a `queue_expires` (`x-expires`) timer.
async fn depth(publisher: &RabbitPublisher, queue: &str) -> Result<(u32, u32), RabbitError> {
    let channel = publisher.side_channel().await?;
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    match declared {
        Ok(q) => {
            let _ = channel.close(200, "OK".into()).await;
            Ok((q.message_count(), q.consumer_count()))
        }
        Err(e) => {
            let doing = match e.to_string().contains("NOT_FOUND") {
                true => format!("queue `{queue}` does not exist (declare the group first)"),
                false => format!("looking up queue `{queue}`"),
            };
            Err(RabbitError::amqp(doing, e))
        }
    }
}

/// The backlog of queue `queue` and its dead-letter queue `dead_letter_queue` (which may
/// be missing: its count is then unknown).
pub(crate) async fn backlog(
    publisher: &RabbitPublisher,
    queue: &str,
    dead_letter_queue: &str,
) -> Result<Backlog, Error> {
    let (ready, consumers) = depth(publisher, queue).await.map_err(|e| {
        // A missing queue is not found; anything else is the broker or the connection.
        match e.to_string().contains("does not exist") {
            true => Error::Subscribe(Box::new(e)),
            false => Error::Connection(Box::new(e)),
        }
    })?;
    let mut backlog = Backlog::new(vec![PartitionBacklog::new(None, u64::from(ready))]);
    backlog.consumers = Some(u64::from(consumers));
    backlog.dead_letters = depth(publisher, dead_letter_queue)
        .await
        .ok()
        .map(|(ready, _)| u64::from(ready));
    Ok(backlog)
}
