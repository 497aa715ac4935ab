//! Handlers: application code that processes one message.
//!
//! A handler is an async function (or a type implementing [`Handler`]) that takes one
//! *extractor* — the whole [`Message`](crate::Message), the raw payload as [`Bytes`](bytes::Bytes), a
//! serde type as [`Json<T>`], or a tuple of these — and returns
//! `Result<(), HandlerError>`. It says what went wrong, never what to do about it: the
//! stack decides whether to retry, dead-letter or ack, and the runtime settles.
//!
//! ```
//! use serde::Deserialize;
//! use wharf::{HandlerError, Json, Message, ResultExt};
//!
//! #[derive(Deserialize)]
//! struct Order { id: u64, amount: i64 }
//!
//! // A typed handler: the payload is decoded before the call; a payload that does not
//! // decode never reaches it and is dead-lettered with reason `decode`.
//! async fn place_order(Json(order): Json<Order>) -> Result<(), HandlerError> {
//!     if order.amount < 0 {
//!         return Err(HandlerError::permanent(format!("order {} has a negative amount", order.id)));
//!     }
//!     Ok(())
//! }
//!
//! // A raw handler over the whole message.
//! async fn audit(msg: Message) -> Result<(), HandlerError> {
//!     let _text = std::str::from_utf8(msg.payload()).permanent()?;
//!     Ok(())
//! }
//!
//! // Either becomes a tower `Service<Message, Response = Outcome>`:
//! use wharf::Handler;
//! let orders = place_order.into_service();
//! let audits = audit.into_service();
//! # let _ = (orders, audits);
//! ```
//!
//! A type can be a handler too, which is how handlers that hold clients or pools are
//! usually written:
//!
//! ```
//! use wharf::{Handler, HandlerError, Json};
//! # #[derive(serde::Deserialize)] struct Order { id: u64 }
//!
//! struct PlaceOrder { db: std::sync::Arc<Vec<u64>> }
//!
//! impl Handler<Json<Order>> for PlaceOrder {
//!     async fn handle(&self, Json(order): Json<Order>) -> Result<(), HandlerError> {
//!         let _known = self.db.contains(&order.id);
//!         Ok(())
//!     }
//! }
//! # let _svc = PlaceOrder { db: Default::default() }.into_service();
//! ```

mod extract;
mod service;

pub use extract::{FromMessage, Json};
pub use service::{HandlerFuture, HandlerService};

use std::future::Future;

use crate::error::HandlerError;

/// Processes one message, extracted as `T`.
///
/// Implemented for every `Fn(T) -> impl Future<Output = Result<(), HandlerError>>` that is
/// `Send + Sync + 'static`, and by types that write `impl Handler<T> for MyType` with an
/// `async fn handle`. `T` is any [`FromMessage`] extractor; it exists so one type can be
/// several handlers, and you rarely need to name it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a wharf handler for `{T}`",
    label = "not a handler",
    note = "a handler is an async fn or closure taking one extractor (`Message`, `Bytes`, `Json<T>`, `Headers`, or a tuple of them) and returning `Result<(), wharf::HandlerError>`; it must be `Send + Sync + 'static`"
)]
pub trait Handler<T>: Send + Sync + 'static {
    /// Handles one message.
    fn handle(&self, input: T) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Wraps the handler in a [`HandlerService`], the innermost service of a stack.
    fn into_service(self) -> HandlerService<Self, T>
    where
        Self: Sized,
        T: FromMessage,
    {
        HandlerService::new(self)
    }
}

impl<F, Fut, T> Handler<T> for F
where
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send,
{
    fn handle(&self, input: T) -> impl Future<Output = Result<(), HandlerError>> + Send {
        self(input)
    }
}
