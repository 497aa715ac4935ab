//! The backlog of a group: per partition, the high watermark less the group's committed
//! offset (its lag), the members of the group, and the records on its dead-letter topic.
//!
//! Joins no group: a consumer carrying the group's id asks for its committed offsets
//! (OffsetFetch) and the group's description (DescribeGroups), and the partitions'
//! watermarks (ListOffsets). Kafka does not tell which records are in flight nor how old
//! the first unconsumed one is (that would take reading it), so those stay unknown.
//!
//! A group that never committed and has no members (a new group, or a misspelled one)
//! has the whole topic as its backlog, position 0 and no members: it reads `stopped`.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;
use wharf::adapter::{Backlog, PartitionBacklog};
use wharf::Error;

use crate::client::fetch_watermarks;
use crate::config::{validate_topic, KafkaConfig};
use crate::error;

/// How long one look waits for the broker.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The backlog of `group` on `topic` (see the module docs).
pub(crate) async fn backlog(
    config: &KafkaConfig,
    topic: &str,
    group: &str,
) -> Result<Backlog, Error> {
    validate_topic("source", topic)?;
    if group.is_empty() {
        return Err(Error::config("group", "must not be empty"));
    }
    let mut client: ClientConfig = config.client_config();
    client
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = client.create().map_err(|e| config.creation_error(e))?;
    let (topic, group) = (topic.to_owned(), group.to_owned());
    let dead_letter_topic = config.dead_letter_topic_for(&topic);
    tokio::task::spawn_blocking(move || look(&consumer, &topic, &group, &dead_letter_topic))
        .await
        .map_err(|e| error::connection("reading the backlog", e))?
}

fn look(
    consumer: &BaseConsumer,
    topic: &str,
    group: &str,
    dead_letter_topic: &str,
) -> Result<Backlog, Error> {
    let partitions = partitions(consumer, topic)?;
    if partitions.is_empty() {
        return Err(error::subscribe(
            format!("topic `{topic}`"),
            "does not exist",
        ));
    }
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, TIMEOUT)
        .map_err(|e| error::connection(format!("fetching group `{group}`'s offsets"), e))?;
    let mut out = Vec::with_capacity(partitions.len());
    for p in partitions {
        let (low, high) = fetch_watermarks(consumer, topic, p)?;
        // The committed offset, raw: records that retention deleted below it are not
        // progress. Nothing committed yet: the group would start at the oldest record
        // kept (with `auto.offset.reset=earliest`, wharf's default).
        let committed = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) if o >= 0 => Some(o),
            _ => None,
        };
        let from = committed.map_or(low, |c| c.max(low));
        let mut partition = PartitionBacklog::new(Some(p), (high - from).max(0) as u64);
        // 0 before the first commit: a group hung on its first records has a position
        // that does not move (stalled), and retention deleting records is no progress.
        partition.settled = Some(committed.map_or(0, |c| c as u64));
        out.push(partition);
    }
    let mut backlog = Backlog::new(out);
    backlog.consumers = members(consumer, group);
    backlog.dead_letters = records(consumer, dead_letter_topic);
    Ok(backlog)
}

/// The partitions of `topic` (none when it does not exist).
fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, Error> {
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(|e| error::connection("fetching metadata", e))?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}

/// Members of `group`: the group's member list, zero for an empty group, unknown when
/// the broker does not describe it (a group of the KIP-848 protocol may list no members
/// through the classic DescribeGroups).
fn members(consumer: &BaseConsumer, group: &str) -> Option<u64> {
    let groups = consumer.fetch_group_list(Some(group), TIMEOUT).ok()?;
    let g = groups.groups().iter().find(|g| g.name() == group)?;
    match (g.members().len(), g.state()) {
        (0, "Empty" | "Dead") => Some(0),
        (0, _) => None,
        (n, _) => Some(n as u64),
    }
}

/// Records kept in `topic` over all partitions; unknown when it cannot be read. The
/// markers `wharf dlq replay`/`purge` write count too (Kafka cannot delete a record).
fn records(consumer: &BaseConsumer, topic: &str) -> Option<u64> {
    let mut total = 0;
    for p in partitions(consumer, topic).ok()? {
        let (low, high) = fetch_watermarks(consumer, topic, p).ok()?;
        total += (high - low).max(0) as u64;
    }
    Some(total)
}
