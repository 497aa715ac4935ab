//! tower layers for wharf.
//!
//! Every layer is a `tower::Layer` over a `Service<Message, Response = Outcome>` whose
//! error converts into [`BoxError`](wharf::BoxError). Layers **rewrite the outcome**;
//! none of them settles the delivery (the consumer runtime does that exactly once), so
//! they compose with each other and with any other tower layer in any order that makes
//! sense. Each layer lives in its own module and behind its own Cargo feature (`full`
//! enables all, and is the default).
//!
//! | layer | what it does |
//! |---|---|
//! | [`dead_letter`] | publishes dead-letter outcomes (and permanent errors) with diagnostic headers, then acks; a failed publish retries the delivery |

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "dead-letter")]
#[cfg_attr(docsrs, doc(cfg(feature = "dead-letter")))]
pub mod dead_letter;
