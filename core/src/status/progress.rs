//! [`Progress`]: a consumer's live settlement counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How many deliveries a [`Consumer`](crate::Consumer) has finished so far, read while it
/// runs ([`Consumer::progress`](crate::Consumer::progress)); the status monitor's view of
/// progress and of the outcome mix on every broker, RabbitMQ included (whose AMQP
/// interface does not report settlements).
///
/// Cheap to clone: clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    settled: AtomicU64,
    failed: AtomicU64,
}

impl Progress {
    /// Counts starting at zero.
    pub fn new() -> Self {
        Progress::default()
    }

    /// Deliveries settled for good: acked, dead-lettered or dropped.
    pub fn settled(&self) -> u64 {
        self.counts.settled.load(Ordering::Relaxed)
    }

    /// Handlings that failed: each retry (in process, in the lane or by redelivery), each
    /// dead letter and each drop. Settlements the broker did not take (a failed or timed
    /// out ack) count neither here nor in [`settled`](Self::settled).
    pub fn failed(&self) -> u64 {
        self.counts.failed.load(Ordering::Relaxed)
    }

    /// A delivery was settled for good (`failed`: as a dead letter or dropped).
    pub(crate) fn settled_one(&self, failed: bool) {
        self.counts.settled.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed_one();
        }
    }

    /// A handling failed and the message goes round again (a retry).
    pub(crate) fn failed_one(&self) {
        self.counts.failed.fetch_add(1, Ordering::Relaxed);
    }
}
