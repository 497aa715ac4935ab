//! [`Backlog`]: what a consumer group has not settled yet, as the broker tells it.

use std::time::{Duration, SystemTime};

use serde::Serialize;

/// One look at a consumer group's backlog.
///
/// Every client answers [`Client::backlog`](super::Client::backlog) with the same
/// shape; what each broker can tell differs, and a field the broker cannot fill is
/// `None`, never a guess:
///
/// | | backlog | unsettled | settled position | consumers | dead letters | oldest age |
/// |---|---|---|---|---|---|---|
/// | memory | waiting + unsettled | yes (in flight or waiting to retry) | settled offsets | — | `<source>.dlq` messages (every group's) | — |
/// | RabbitMQ | ready messages of `<source>.<group>` | — (AMQP does not tell) | — | queue consumers | `<queue>.dlq` depth | — |
/// | Kafka | high watermark − committed offset, per partition | — | committed offset (0 before the first commit) | group members | dead-letter topic's records (every group's, replay markers too) | — |
/// | JetStream | `num_pending` + `num_ack_pending` | `num_ack_pending` | last delivered sequence − `num_ack_pending` | — | dead-letter stream's messages (every group's) | first unacked message's age |
/// | NATS Core | keeps no backlog: an error | | | | | |
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backlog {
    /// When the broker was asked.
    #[serde(with = "rfc3339")]
    pub taken_at: SystemTime,
    /// Per partition; one entry with `partition: None` where the broker has none.
    pub partitions: Vec<PartitionBacklog>,
    /// Members of the group attached right now, where the broker tells.
    pub consumers: Option<u64>,
    /// Messages kept at the group's dead-letter destination, where the broker tells.
    /// Its growth between two looks is the dead letters written in between (on Kafka
    /// and JetStream the destination is shared by every group of the source).
    pub dead_letters: Option<u64>,
}

/// One partition's share of a [`Backlog`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionBacklog {
    /// The partition, where the broker has partitions.
    pub partition: Option<i32>,
    /// Messages the group has not settled: waiting, plus delivered and unsettled where
    /// the broker counts those.
    pub backlog: u64,
    /// Of those, delivered to a member and not settled yet, where the broker tells.
    pub unsettled: Option<u64>,
    /// A position that grows as the group settles messages (Kafka's committed offset,
    /// JetStream's last delivered sequence less the unacked count, the memory broker's
    /// settled offset), where the broker keeps one. Its growth between two looks is the progress made in between.
    pub settled: Option<u64>,
    /// How long the oldest message not yet settled has existed, where the broker tells.
    #[serde(rename = "oldest_age_seconds", with = "seconds")]
    pub oldest_age: Option<Duration>,
}

impl Backlog {
    /// A look taken now.
    pub fn new(partitions: Vec<PartitionBacklog>) -> Self {
        Backlog {
            taken_at: SystemTime::now(),
            partitions,
            consumers: None,
            dead_letters: None,
        }
    }

    /// The backlog over all partitions.
    pub fn total(&self) -> u64 {
        self.partitions.iter().map(|p| p.backlog).sum()
    }

    /// Delivered and unsettled over all partitions, if every partition tells.
    pub fn unsettled(&self) -> Option<u64> {
        self.partitions.iter().map(|p| p.unsettled).sum()
    }

    /// The settled positions summed over all partitions, if every partition tells:
    /// grows by the messages settled.
    pub fn settled(&self) -> Option<u64> {
        self.partitions.iter().map(|p| p.settled).sum()
    }

    /// The oldest unsettled message's age over all partitions, where any tells.
    pub fn oldest_age(&self) -> Option<Duration> {
        self.partitions.iter().filter_map(|p| p.oldest_age).max()
    }
}

impl PartitionBacklog {
    /// `backlog` messages in `partition`; the rest unknown.
    pub fn new(partition: Option<i32>, backlog: u64) -> Self {
        PartitionBacklog {
            partition,
            backlog,
            unsettled: None,
            settled: None,
            oldest_age: None,
        }
    }
}

mod rfc3339 {
    use std::time::SystemTime;

    pub(super) fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }
}

mod seconds {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_partitions_and_unknown_stays_unknown() {
        let mut a = PartitionBacklog::new(Some(0), 3);
        a.settled = Some(10);
        a.unsettled = Some(1);
        a.oldest_age = Some(Duration::from_secs(2));
        let mut b = PartitionBacklog::new(Some(1), 4);
        b.settled = Some(5);
        b.oldest_age = Some(Duration::from_secs(7));
        let backlog = Backlog::new(vec![a, b]);
        assert_eq!(backlog.total(), 7);
        assert_eq!(backlog.settled(), Some(15));
        assert_eq!(backlog.unsettled(), None, "partition 1 does not tell");
        assert_eq!(backlog.oldest_age(), Some(Duration::from_secs(7)));
        let json = serde_json::to_value(&backlog).unwrap();
        assert_eq!(json["partitions"][1]["oldest_age_seconds"], 7.0);
        assert!(json["taken_at"].as_str().unwrap().ends_with('Z'));
    }
}
