//! The names of the metrics wharf records, one set for every broker.
//!
//! The middleware records most of them (`wharf-middleware`'s `metrics` module documents
//! labels and meaning); the status monitor records [`BACKLOG`], [`OLDEST_UNACKED_AGE`] and [`STATUS`]. Keeping the names here lets every
//! crate use the same strings without depending on the middleware.

/// Deliveries the stack received (labels `consumer`, `source`).
pub const MESSAGES_RECEIVED: &str = "wharf_messages_received_total";
/// Deliveries finished, by final outcome (labels `consumer`, `source`, `outcome`).
pub const MESSAGES_HANDLED: &str = "wharf_messages_handled_total";
/// Time from the stack receiving a delivery to its outcome, in seconds.
pub const HANDLER_DURATION: &str = "wharf_handler_duration_seconds";
/// Deliveries currently inside the stack.
pub const MESSAGES_IN_FLIGHT: &str = "wharf_messages_in_flight";
/// Retries decided by the retry layer (label `tier`: `in_process` or `redelivery`).
pub const RETRIES: &str = "wharf_retries_total";
/// Dead letters published and confirmed (label `reason`).
pub const DEAD_LETTERS: &str = "wharf_dead_letters_total";
/// Settlements whose failure path itself failed: a dead letter or retry copy that could
/// not be published (labels `consumer`, `source`, `reason`: `dead_letter_publish`, or
/// `retry_publish` for a Kafka retry-topic copy). The
/// delivery is redelivered with backoff; a counter that keeps rising means the
/// destination is missing, full or refuses the copy.
pub const SETTLE_FAILURES: &str = "wharf_settle_failures_total";
/// Duplicates skipped (label `kind`: `dedup` or `idempotency`).
pub const DUPLICATES: &str = "wharf_duplicates_total";
/// Messages the group has not settled at the broker (label `partition` where the broker
/// has partitions), sampled by [`StatusMonitor`](crate::status::StatusMonitor).
pub const BACKLOG: &str = "wharf_backlog";
/// How long the oldest unsettled message of the group has existed, in seconds, where
/// the broker tells (JetStream); sampled with [`BACKLOG`].
pub const OLDEST_UNACKED_AGE: &str = "wharf_oldest_unacked_age_seconds";
/// The group's [`Verdict`](crate::status::Verdict): label `verdict` (`ok`, `slow`,
/// `stalled`, `stopped`, `failing`) is 1 for the current one and 0 for the others.
pub const STATUS: &str = "wharf_status";

/// Every name above, for tools that check dashboards and alert rules against them.
pub const ALL: &[&str] = &[
    MESSAGES_RECEIVED,
    MESSAGES_HANDLED,
    HANDLER_DURATION,
    MESSAGES_IN_FLIGHT,
    RETRIES,
    DEAD_LETTERS,
    SETTLE_FAILURES,
    DUPLICATES,
    BACKLOG,
    OLDEST_UNACKED_AGE,
    STATUS,
];
