//! Consumer status: a verdict that tells a slow consumer from a stalled one, one that is
//! down, and a business outage, from the backlog the broker reports.
//!
//! A growing backlog alone does not say what to do. Following Burrow's evaluation
//! rules (LinkedIn's Kafka lag checker), wharf looks at a window of samples of the
//! group's [`Backlog`](crate::adapter::Backlog) (and, in process, the consumer's own
//! [`Progress`]) and gives one [`Verdict`]:
//!
//! | verdict | the window shows | usually means | first thing to do |
//! |---|---|---|---|
//! | `ok` | the backlog reached 0, or shrank | keeping up | nothing |
//! | `slow` | progress, and a backlog that ended higher and rose in 3 intervals of 4 | arrivals outpace handling | scale out, check handler latency |
//! | `stalled` | no progress, messages delivered and unsettled | a poison message or a hung handler | look at the oldest in-flight message, the handler's logs |
//! | `stopped` | no progress, nothing delivered, or no member attached | the consumer is down | restart it, check its deployment |
//! | `failing` | failures (retries, dead letters, drops) at least half as many as settled messages, or failures and no progress | a dependency down, a bad deploy | look at `wharf dlq stats`, the error signatures |
//!
//! [`evaluate`] applies the rules (documented on it) to a window of
//! [`Observation`]s; [`evaluate_group`] adds each partition's verdict (a partition
//! stalled or stopped makes the group's); [`StatusMonitor`] samples a group through its client on an
//! interval, records the metrics and keeps the latest [`Evaluation`]; `wharf status`
//! (the CLI) samples from outside the consumer and prints the verdict per partition.
//!
//! Metrics the monitor records (labels `consumer`, `source`):
//! [`wharf_backlog`](crate::metric_names::BACKLOG) (plus `partition` where the broker
//! has partitions), [`wharf_oldest_unacked_age_seconds`](crate::metric_names::OLDEST_UNACKED_AGE)
//! where the broker tells, and [`wharf_status`](crate::metric_names::STATUS) (label
//! `verdict`: 1 for the current verdict, 0 for the others).

mod group;
mod monitor;
mod progress;
mod verdict;

pub use group::{evaluate_group, GroupEvaluation, PartitionEvaluation};
pub use monitor::{StatusHandle, StatusMonitor, FAILED_LOOKS, LOOK_TIMEOUT};
pub use progress::Progress;
pub use verdict::{evaluate, Evaluation, Observation, Verdict};
