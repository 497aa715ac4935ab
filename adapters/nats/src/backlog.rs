//! The backlog of a JetStream group: its durable consumer's info, the first unacked
//! message's age, and the dead-letter stream's size.
//!
//! Core NATS keeps nothing for a subscriber that is not there, so it has no backlog.

use std::time::{Duration, SystemTime};

use wharf::adapter::{Backlog, PartitionBacklog};
use wharf::Error;

use crate::client::NatsClient;
use crate::error;

/// The backlog of group `group` on subject `source` (see [`NatsClient::backlog`]).
pub(crate) async fn backlog(
    client: &NatsClient,
    source: &str,
    group: &str,
) -> Result<Backlog, Error> {
    if !client.is_jetstream() {
        return Err(Error::config(
            "url",
            "NATS Core keeps no backlog (nothing is stored for a subscriber): use nats+jetstream://",
        ));
    }
    let js = client.jetstream_source(source, group);
    let what = || format!("reading durable `{}` of stream `{}`", js.durable, js.stream);
    // Missing stream or durable: not found; anything else: the server or the connection.
    let failed = |e: &dyn std::fmt::Display| {
        let text = e.to_string();
        match text.contains("not found") {
            true => error::subscribe(what(), text),
            false => error::connection(what(), text),
        }
    };
    let stream = client
        .jetstream()
        .get_stream(&js.stream)
        .await
        .map_err(|e| failed(&e))?;
    let info = stream
        .consumer_info(&js.durable)
        .await
        .map_err(|e| failed(&e))?;
    let unsettled = info.num_ack_pending as u64;
    let mut partition = PartitionBacklog::new(None, info.num_pending + unsettled);
    partition.unsettled = Some(unsettled);
    // A position that grows with every ack, in order or not: the last delivered
    // sequence less what is delivered and unacked. (The ack floor would stand still
    // behind one message waiting out a retry delay while the others are acked.)
    partition.settled = Some(info.delivered.stream_sequence.saturating_sub(unsettled));
    if partition.backlog > 0 {
        // Everything up to the ack floor is acked: the next sequence is the oldest
        // message not settled (unless it was deleted, and then the age is unknown).
        if let Ok(first) = stream
            .get_raw_message(info.ack_floor.stream_sequence + 1)
            .await
        {
            let published = SystemTime::UNIX_EPOCH
                + Duration::from_nanos(first.time.unix_timestamp_nanos().max(0) as u64);
            partition.oldest_age = Some(
                SystemTime::now()
                    .duration_since(published)
                    .unwrap_or_default(),
            );
        }
    }
    let mut backlog = Backlog::new(vec![partition]);
    backlog.dead_letters = match client.jetstream().get_stream(&js.dead_letter_stream).await {
        Ok(dlq) => Some(dlq.cached_info().state.messages),
        Err(_) => None,
    };
    Ok(backlog)
}
