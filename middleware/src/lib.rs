//! tower layers for wharf.
//!
//! Every layer is a `tower::Layer` over a `Service<Message, Response = Outcome>` whose
//! error converts into [`BoxError`](wharf::BoxError). Layers **rewrite the outcome**;
//! none of them settles the delivery (the consumer runtime does that exactly once), so
//! they compose with each other and with any other tower layer. Each layer lives in its
//! own module and behind its own Cargo feature (`full` enables all, and is the default).
//!
//! | layer | what it does |
//! |---|---|
//! | [`dead_letter`] | publishes dead-letter outcomes (and permanent errors) with diagnostic headers, then acks; a failed publish retries the delivery |
//! | [`retry`] | retries transient failures in-process or by redelivery, then dead-letters with `retries-exhausted` |
//! | [`dedup`] | skips transport duplicates by message id: claim → run → complete on ack, release otherwise |
//! | [`idempotency`] | the same protocol keyed by a business key, in a durable shared store |
//! | [`timeout`] | bounds each attempt; a timeout is a transient failure |
//! | [`catch_panic`] | a panicking handler is a transient failure; the consumer keeps running |
//! | [`metrics`] | counters, gauges and histograms through the `metrics` facade |
//! | [`trace`] | a span per message; W3C `traceparent` read and propagated |
//! | [`stack`] | the recommended stack, in the only order that is right |

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "dedup", feature = "idempotency"))]
mod claims;
mod telemetry;
pub use telemetry::UNNAMED;
#[cfg(test)]
mod test_support;

#[cfg(feature = "catch-panic")]
#[cfg_attr(docsrs, doc(cfg(feature = "catch-panic")))]
pub mod catch_panic;
#[cfg(feature = "dead-letter")]
#[cfg_attr(docsrs, doc(cfg(feature = "dead-letter")))]
pub mod dead_letter;
#[cfg(feature = "dedup")]
#[cfg_attr(docsrs, doc(cfg(feature = "dedup")))]
pub mod dedup;
#[cfg(feature = "idempotency")]
#[cfg_attr(docsrs, doc(cfg(feature = "idempotency")))]
pub mod idempotency;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub mod retry;
#[cfg(feature = "stack")]
#[cfg_attr(docsrs, doc(cfg(feature = "stack")))]
pub mod stack;
#[cfg(feature = "timeout")]
#[cfg_attr(docsrs, doc(cfg(feature = "timeout")))]
pub mod timeout;
#[cfg(feature = "trace")]
#[cfg_attr(docsrs, doc(cfg(feature = "trace")))]
pub mod trace;
