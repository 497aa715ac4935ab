//! # wharf
//!
//! A message-bus-agnostic consumer framework. Write a handler once; run it on RabbitMQ,
//! Kafka, NATS or in memory; put retry, deduplication, dead-lettering, timeouts, metrics
//! and tracing between the broker and the handler as tower layers.
//!
//! This crate holds the contract everything else builds on:
//!
//! - [`Message`] (id, key, [`Headers`], payload, [`Origin`], attempt) and
//!   [`Outcome`] (ack, retry after a delay, dead-letter, drop);
//! - [`Handler`] and [`HandlerError`]: handlers say what went wrong (transient or
//!   permanent), never what to do about it;
//! - the [`Consumer`] runtime that settles each delivery exactly once, and [`App`] for
//!   several consumers under one shutdown with one catalog;
//! - [`Publisher`], to publish with the broker's confirmation;
//! - for adapter writers, under [`adapter`]: the [`Client`](adapter::Client) surface
//!   every adapter offers, a subscriber of deliveries, an acker per delivery, the
//!   broker's [`Capabilities`](adapter::Capabilities), the dead-letter reader, and the
//!   shared pieces (URL parsing, [`Secret`](adapter::secret::Secret), the dead-letter
//!   header set).
//!
//! The root holds what handler writers use; [`metric_names`] is the one place metric
//! names live.
//!
//! The stack between broker and handler is a `tower::Service<Message, Response =
//! Outcome, Error = BoxError>`: layers rewrite the outcome, none of them acks. See
//! `wharf-middleware` for the layers and `wharf-memory` for the in-memory broker and the
//! test harness.
//!
//! ```
//! use wharf::{Handler, HandlerError, Json, Message, Outcome};
//! use tower::{Service, ServiceExt};
//!
//! #[derive(serde::Deserialize)]
//! struct Greeting { name: String }
//!
//! async fn greet(Json(g): Json<Greeting>) -> Result<(), HandlerError> {
//!     println!("hello, {}", g.name);
//!     Ok(())
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut svc = greet.into_service();
//! let out = svc.ready().await?.call(Message::new(r#"{"name":"wharf"}"#)).await?;
//! assert_eq!(out, Outcome::Ack);
//!
//! // A payload that does not decode is a permanent `decode` error, never a stall:
//! let err = svc.ready().await?.call(Message::new("not json")).await.unwrap_err();
//! assert_eq!(wharf::error::classify(&*err).reason, wharf::FailureReason::Decode);
//! # Ok::<(), wharf::BoxError>(()) }).unwrap();
//! ```

pub mod adapter;
pub mod app;
pub mod codec;
pub mod consumer;
pub mod error;
pub mod handler;
pub mod headers;
pub mod message;
pub mod metric_names;
pub mod outcome;
pub mod shutdown;
pub mod status;

pub use adapter::Publisher;
pub use app::{App, AppReport, CatalogEntry};
pub use consumer::{Consumer, DeliveryOrder, Summary};
pub use error::{BoxError, Error, ErrorKind, HandlerError, PublishError, ResultExt};
pub use handler::{Attempt, FromMessage, FromRef, Handler, HandlerService, Json, Key, State};
pub use headers::Headers;
pub use message::{Message, MessageId, Origin};
pub use outcome::{Failure, FailureReason, Outcome};

/// Re-exported so adapters and layers name the same `Service` trait.
pub use tower;
