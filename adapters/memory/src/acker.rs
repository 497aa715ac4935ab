//! Settling in-memory deliveries.

use std::future::{ready, Ready};
use std::sync::Arc;

use wharf::adapter::Acker;
use wharf::{BoxError, Outcome};

use crate::topic::{GroupIndex, Settled, Topic, Wake};

/// Settles one in-memory delivery.
///
/// Dropping it unsettled puts the message back at the front of its group's queue (the
/// attempt count goes up on the redelivery), so a crashed or cancelled consumer loses
/// nothing.
#[derive(Debug)]
pub struct MemoryAcker {
    topic: Arc<Topic>,
    group: GroupIndex,
    offset: u64,
    settled: bool,
}

impl MemoryAcker {
    pub(crate) fn new(topic: Arc<Topic>, group: GroupIndex, offset: u64) -> Self {
        MemoryAcker {
            topic,
            group,
            offset,
            settled: false,
        }
    }

    fn apply(&mut self, outcome: Outcome) {
        self.settled = true;
        let mut wake = Wake::default();
        let next = self.topic.lock().settle(
            &self.topic.name,
            self.group,
            self.offset,
            outcome,
            &mut wake,
        );
        match next {
            Settled::Done => {}
            Settled::RetryAfter(delay) => self.schedule(delay),
            Settled::DeadLetter(copy) => {
                // Before the waiters wake, so whoever sees the group idle finds the dead
                // letter on `<topic>.dlq`. Also kept in the group's `native_dead_letters`,
                // so a refused publish (an injected fault) loses nothing.
                if let Some(dlq) = self.topic.dead_letter_topic() {
                    if dlq.publish(copy).is_err() {
                        tracing::warn!(topic = %dlq.name, "native dead letter refused (injected fault)");
                    }
                }
            }
        }
        wake.wake();
    }

    /// Redelivers after `delay` on tokio's clock (so `tokio::time::pause` skips it).
    fn schedule(&self, delay: std::time::Duration) {
        let topic = self.topic.clone();
        let (group, offset) = (self.group, self.offset);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                // If the runtime shuts down before the timer fires, the task is dropped
                // unrun: the guard then redelivers at once, so the message is never stuck
                // in the delayed state (the rule for a dropped acker).
                let guard = RedeliverOnDrop {
                    topic,
                    group,
                    offset,
                };
                handle.spawn(async move {
                    tokio::time::sleep(delay).await;
                    drop(guard);
                });
            }
            Err(_) => {
                tracing::warn!(
                    "settled outside a tokio runtime; redelivering without the requested delay"
                );
                topic.redeliver_now(group, offset);
            }
        }
    }
}

/// Moves a delayed message back to the ready queue when dropped: after its delay, or when
/// the timer task is dropped with its runtime.
struct RedeliverOnDrop {
    topic: Arc<Topic>,
    group: GroupIndex,
    offset: u64,
}

impl Drop for RedeliverOnDrop {
    fn drop(&mut self) {
        self.topic.redeliver_now(self.group, self.offset);
    }
}

impl Acker for MemoryAcker {
    type Future = Ready<Result<(), BoxError>>;

    fn settle(mut self, outcome: Outcome) -> Self::Future {
        self.apply(outcome);
        ready(Ok(()))
    }
}

impl Drop for MemoryAcker {
    fn drop(&mut self) {
        if !self.settled {
            self.apply(Outcome::RETRY_NOW);
        }
    }
}

// Used by `Debug` of `MemoryAcker`.
impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic").field("name", &self.name).finish()
    }
}
