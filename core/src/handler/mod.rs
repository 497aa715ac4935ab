//! Handlers: application code that processes one message.
//!
//! A handler is an async function (or a type implementing [`Handler`]) that takes up to
//! eight *extractors* — the whole [`Message`](crate::Message), the raw payload as
//! [`Bytes`](bytes::Bytes), a serde type as [`Json<T>`], [`Headers`](crate::Headers),
//! the [`MessageId`](crate::MessageId), [`Origin`](crate::Origin), [`Attempt`], [`Key`],
//! shared [`State`] — and returns `Result<(), HandlerError>`. It says what went wrong,
//! never what to do about it: the stack decides whether to retry, dead-letter or ack,
//! and the runtime settles.
//!
//! ```
//! use serde::Deserialize;
//! use wharf::{Attempt, HandlerError, Json, Message, ResultExt};
//!
//! #[derive(Deserialize)]
//! struct Order { id: u64, amount: i64 }
//!
//! // A typed handler: the payload is decoded before the call; a payload that does not
//! // decode never reaches it and is dead-lettered with reason `decode`.
//! async fn place_order(Json(order): Json<Order>, Attempt(attempt): Attempt) -> Result<(), HandlerError> {
//!     if order.amount < 0 {
//!         return Err(HandlerError::permanent(format!("order {} has a negative amount", order.id)));
//!     }
//!     let _first_try = attempt == 1;
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
//! # State
//!
//! Clients, pools and configuration reach a handler as [`State`], given once with
//! [`Handler::with_state`] (as axum's `Router::with_state`) and cloned for each
//! message; [`FromRef`] takes a part of a larger state. A handler that asks for a
//! `State` its service was not given does not compile.
//!
//! ```
//! use std::sync::Arc;
//! use wharf::{Handler, HandlerError, Json, State};
//! # #[derive(serde::Deserialize)] struct Order { id: u64 }
//!
//! #[derive(Clone)]
//! struct Db { known: Arc<Vec<u64>> }
//!
//! async fn place_order(Json(order): Json<Order>, State(db): State<Db>) -> Result<(), HandlerError> {
//!     let _known = db.known.contains(&order.id);
//!     Ok(())
//! }
//!
//! let service = place_order.with_state(Db { known: Arc::default() });
//! # let _ = service;
//! ```
//!
//! A type can be a handler too, for handlers that are easier to write as a struct:
//!
//! ```
//! use wharf::{Handler, HandlerError, Json, Message};
//! # #[derive(serde::Deserialize)] struct Order { id: u64 }
//!
//! struct PlaceOrder { db: std::sync::Arc<Vec<u64>> }
//!
//! impl Handler<(Json<Order>, Message)> for PlaceOrder {
//!     async fn handle(&self, (Json(order), _msg): (Json<Order>, Message)) -> Result<(), HandlerError> {
//!         let _known = self.db.contains(&order.id);
//!         Ok(())
//!     }
//! }
//! # let _svc = PlaceOrder { db: Default::default() }.into_service();
//! ```

mod extract;
mod service;

pub use extract::{Attempt, FromMessage, FromRef, Json, Key, State};
pub use service::{HandlerFuture, HandlerService};

use std::future::Future;

use crate::error::HandlerError;

/// Processes one message, taken apart into `T`.
///
/// Implemented for every async fn or closure of up to eight [extractor](FromMessage)
/// arguments returning `Result<(), HandlerError>` that is `Send + Sync + 'static` (`T`
/// is then the tuple of its argument types: `(Message,)`, `(Json<Order>, State<Db>)`),
/// and by types that write `impl Handler<T> for MyType` with an `async fn handle`.
/// `T` exists so one type can be several handlers; you rarely need to name it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a wharf handler",
    label = "not a handler",
    note = "a handler is an async fn or closure taking up to eight extractors (`Message`, `Bytes`, `Json<T>`, `Headers`, `MessageId`, `Origin`, `Attempt`, `Key`, `State<S>`) and returning `Result<(), wharf::HandlerError>`; it must be `Send + Sync + 'static`"
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

    /// Wraps the handler in a [`HandlerService`] that gives its extractors `state` (see
    /// [`State`]); cloned for each message, so keep it cheap to clone (`Arc` inside).
    fn with_state<S>(self, state: S) -> HandlerService<Self, T, S>
    where
        Self: Sized,
        T: FromMessage<S>,
        S: Clone + Send + Sync + 'static,
    {
        HandlerService::with_state(self, state)
    }
}

macro_rules! fn_handler {
    ($($t:ident),+) => {
        impl<F, Fut, $($t),+> Handler<($($t,)+)> for F
        where
            F: Fn($($t),+) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<(), HandlerError>> + Send,
        {
            #[allow(non_snake_case)]
            fn handle(&self, ($($t,)+): ($($t,)+)) -> impl Future<Output = Result<(), HandlerError>> + Send {
                self($($t),+)
            }
        }
    };
}

fn_handler!(T1);
fn_handler!(T1, T2);
fn_handler!(T1, T2, T3);
fn_handler!(T1, T2, T3, T4);
fn_handler!(T1, T2, T3, T4, T5);
fn_handler!(T1, T2, T3, T4, T5, T6);
fn_handler!(T1, T2, T3, T4, T5, T6, T7);
fn_handler!(T1, T2, T3, T4, T5, T6, T7, T8);
