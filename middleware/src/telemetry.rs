//! Counters that layers other than the metrics layer record (retries, dead letters,
//! duplicates). Through the `metrics` facade when the `metrics` feature is on; nothing
//! otherwise.
//!
//! Metric names and labels are the ones in `docs/architecture.md`; keep them in one place.
#![allow(dead_code)]

/// Metric names, shared with adapters through `wharf::metric_names`.
pub(crate) mod names {
    #[allow(unused_imports)]
    pub(crate) use wharf::metric_names::{
        BACKLOG, DEAD_LETTERS, DUPLICATES, HANDLER_DURATION as DURATION,
        MESSAGES_HANDLED as HANDLED, MESSAGES_IN_FLIGHT as IN_FLIGHT,
        MESSAGES_RECEIVED as RECEIVED, OLDEST_UNACKED_AGE, RETRIES, SETTLE_FAILURES, STATUS,
    };
}

/// The `consumer` of a message whose stack runs outside a [`Consumer`](wharf::Consumer)
/// (called directly, as in a unit test): never an empty label.
pub const UNNAMED: &str = "unnamed";

/// The consumer handling `message`, as the runtime stamped it on its origin
/// ([`UNNAMED`] when no runtime did).
pub(crate) fn consumer_of(message: &wharf::Message) -> &str {
    message.origin().consumer().unwrap_or(UNNAMED)
}

/// [`consumer_of`] as a shared string, for keys that outlive the message.
pub(crate) fn consumer_arc_of(message: &wharf::Message) -> std::sync::Arc<str> {
    static UNNAMED_ARC: std::sync::OnceLock<std::sync::Arc<str>> = std::sync::OnceLock::new();
    match message.origin().consumer_arc() {
        Some(consumer) => consumer.clone(),
        None => UNNAMED_ARC
            .get_or_init(|| std::sync::Arc::from(UNNAMED))
            .clone(),
    }
}

/// A retry was decided. `tier` is `in_process` or `redelivery`.
pub(crate) fn retry(consumer: &str, source: &str, tier: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(names::RETRIES, "consumer" => consumer.to_owned(), "source" => source.to_owned(), "tier" => tier).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (consumer, source, tier);
}

/// A dead letter was published and confirmed.
pub(crate) fn dead_letter(consumer: &str, source: &str, reason: &str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(names::DEAD_LETTERS, "consumer" => consumer.to_owned(), "source" => source.to_owned(), "reason" => reason.to_owned()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (consumer, source, reason);
}

/// A failure path failed (`reason`: `dead_letter_publish`).
pub(crate) fn settle_failure(consumer: &str, source: &str, reason: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(names::SETTLE_FAILURES, "consumer" => consumer.to_owned(), "source" => source.to_owned(), "reason" => reason).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (consumer, source, reason);
}

/// A duplicate was skipped (`kind`: `dedup` or `idempotency`).
pub(crate) fn duplicate(consumer: &str, source: &str, kind: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(names::DUPLICATES, "consumer" => consumer.to_owned(), "source" => source.to_owned(), "kind" => kind).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (consumer, source, kind);
}
