use std::sync::Arc;

use ::metrics::{Counter, Gauge, Histogram, Label, Unit};
use wharf::{Origin, Outcome};

use crate::telemetry::names;

/// Label values of `wharf_messages_handled_total{outcome}`, indexed by [`outcome_index`].
pub(super) const OUTCOME_LABELS: [&str; 5] = ["ack", "retry", "dead_letter", "drop", "error"];

/// Index of the `error` label in [`OUTCOME_LABELS`].
pub(super) const ERROR_INDEX: usize = 4;

/// Index of `outcome`'s label in [`OUTCOME_LABELS`] (the label is `outcome.as_str()`).
pub(super) fn outcome_index(outcome: &Outcome) -> usize {
    match outcome {
        Outcome::Ack => 0,
        Outcome::Retry { .. } => 1,
        Outcome::DeadLetter(_) => 2,
        Outcome::Drop(_) => 3,
    }
}

/// Every handle the metrics layer records to for one `(consumer, source)` pair,
/// registered once with the recorder installed at the time.
pub(super) struct Handles {
    pub(super) consumer: Arc<str>,
    pub(super) source: Arc<str>,
    pub(super) received: Counter,
    pub(super) handled: [Counter; 5],
    pub(super) duration: Histogram,
    pub(super) in_flight: Gauge,
}

impl Handles {
    pub(super) fn register(consumer: Arc<str>, source: Arc<str>) -> Self {
        describe();
        let labels = || {
            vec![
                Label::new("consumer", consumer.clone()),
                Label::new("source", source.clone()),
            ]
        };
        let handled = OUTCOME_LABELS.map(|outcome| {
            let mut labels = labels();
            labels.push(Label::from_static_parts("outcome", outcome));
            ::metrics::counter!(names::HANDLED, labels)
        });
        Handles {
            received: ::metrics::counter!(names::RECEIVED, labels()),
            handled,
            duration: ::metrics::histogram!(names::DURATION, labels()),
            in_flight: ::metrics::gauge!(names::IN_FLIGHT, labels()),
            consumer,
            source,
        }
    }
}

/// Describes every wharf metric (units and help text) to the current recorder.
///
/// Cheap and idempotent for recorders; called whenever handles are registered, which is
/// rare (once per source per service).
fn describe() {
    ::metrics::describe_counter!(
        names::RECEIVED,
        Unit::Count,
        "Messages the consumer received (called its stack for)."
    );
    ::metrics::describe_counter!(
        names::HANDLED,
        Unit::Count,
        "Messages whose stack completed, by final outcome (ack, retry, dead_letter, drop, error)."
    );
    ::metrics::describe_histogram!(
        names::DURATION,
        Unit::Seconds,
        "Time from calling the stack to its completion, per message."
    );
    ::metrics::describe_gauge!(
        names::IN_FLIGHT,
        Unit::Count,
        "Messages called and not yet completed."
    );
    ::metrics::describe_counter!(
        names::RETRIES,
        Unit::Count,
        "Retries decided by the retry layer, by tier (in_process, redelivery)."
    );
    ::metrics::describe_counter!(
        names::DEAD_LETTERS,
        Unit::Count,
        "Dead letters published and confirmed, by reason."
    );
    ::metrics::describe_counter!(
        names::SETTLE_FAILURES,
        Unit::Count,
        "Failure paths that failed (a dead letter that could not be published), by reason."
    );
    ::metrics::describe_counter!(
        names::DUPLICATES,
        Unit::Count,
        "Duplicates skipped without running the handler, by kind (dedup, idempotency)."
    );
    ::metrics::describe_gauge!(
        names::BACKLOG,
        Unit::Count,
        "Messages the group has not settled at the broker, by partition (wharf::status::StatusMonitor)."
    );
    ::metrics::describe_gauge!(
        names::OLDEST_UNACKED_AGE,
        Unit::Seconds,
        "Age of the oldest message the group has not settled, where the broker tells (wharf::status::StatusMonitor)."
    );
    ::metrics::describe_gauge!(
        names::STATUS,
        Unit::Count,
        "The group's status verdict: 1 for the current verdict label (ok, slow, stalled, stopped, failing), 0 for the others."
    );
}

/// Most sources a service keeps handles for; messages from further sources are recorded
/// through handles registered per message (correct, only slower).
pub(super) const CACHE_CAPACITY: usize = 32;

/// Handles per (consumer, source), owned by one service instance: `call(&mut self)` looks them up
/// and adds to them without a lock.
///
/// Not `Clone`: a cloned service starts with an empty cache, so its handles come from
/// the recorder installed when *it* first runs.
#[derive(Default)]
pub(super) struct HandleCache {
    entries: Vec<Arc<Handles>>,
    /// Index of the entry the last message used: consumers usually read one source.
    last: usize,
}

impl HandleCache {
    /// The handles for `origin`'s consumer and source, registering them on first use.
    pub(super) fn get(&mut self, origin: &Origin) -> Arc<Handles> {
        let source = origin.source();
        let consumer = origin.consumer().unwrap_or(crate::telemetry::UNNAMED);
        if let Some(h) = self.entries.get(self.last) {
            if same(h, origin, consumer, source) {
                return h.clone();
            }
        }
        if let Some(i) = self
            .entries
            .iter()
            .position(|h| same(h, origin, consumer, source))
        {
            self.last = i;
            return self.entries[i].clone();
        }
        let shared = match origin.source_arc() {
            Some(arc) => arc.clone(),
            None => Arc::from(source),
        };
        let consumer = match origin.consumer_arc() {
            Some(arc) => arc.clone(),
            None => Arc::from(consumer),
        };
        let handles = Arc::new(Handles::register(consumer, shared));
        if self.entries.len() < CACHE_CAPACITY {
            self.last = self.entries.len();
            self.entries.push(handles.clone());
        }
        handles
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

fn same(cached: &Handles, origin: &Origin, consumer: &str, source: &str) -> bool {
    // The adapter usually shares one `Arc<str>` per source and the runtime one per
    // consumer: compare the pointers first.
    let same_source = origin
        .source_arc()
        .is_some_and(|a| Arc::ptr_eq(a, &cached.source))
        || *cached.source == *source;
    let same_consumer = origin
        .consumer_arc()
        .is_some_and(|a| Arc::ptr_eq(a, &cached.consumer))
        || *cached.consumer == *consumer;
    same_source && same_consumer
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf::{Failure, FailureReason};

    #[test]
    fn outcome_labels_are_the_outcomes_own_names() {
        let failure = Failure::new(FailureReason::Permanent, "x");
        for outcome in [
            Outcome::Ack,
            Outcome::RETRY_NOW,
            Outcome::DeadLetter(failure.clone()),
            Outcome::Drop(failure),
        ] {
            assert_eq!(OUTCOME_LABELS[outcome_index(&outcome)], outcome.as_str());
        }
        assert_eq!(OUTCOME_LABELS[ERROR_INDEX], "error");
    }

    #[test]
    fn cache_is_bounded_and_hits_by_name_or_pointer() {
        let mut cache = HandleCache::default();
        for i in 0..CACHE_CAPACITY + 5 {
            let h = cache.get(&Origin::new(format!("s{i}")).with_consumer("c"));
            assert_eq!(&*h.source, format!("s{i}"));
            assert_eq!(&*h.consumer, "c");
        }
        assert_eq!(cache.len(), CACHE_CAPACITY);
        // A different Arc with the same name hits the cached entry.
        let a = cache.get(&Origin::new("s3").with_consumer("c"));
        let b = cache.get(&Origin::new("s3").with_consumer("c"));
        assert!(Arc::ptr_eq(&a, &b));
        // Another consumer of the same source gets its own handles.
        let other = cache.get(&Origin::new("s3").with_consumer("d"));
        assert_eq!(&*other.consumer, "d");
        // A message that was never received has an empty source and no consumer.
        let empty = cache.get(&Origin::default());
        assert_eq!(&*empty.source, "");
        assert_eq!(&*empty.consumer, crate::telemetry::UNNAMED);
    }
}
