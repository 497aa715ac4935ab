//! Extractors: what a handler takes as its arguments.

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::codec::{Codec, JsonCodec};
use crate::error::HandlerError;
use crate::headers::Headers;
use crate::message::{Message, MessageId, Origin};

/// Builds one of a handler's arguments from a message and the handler's state.
///
/// `S` is the state given with [`Handler::with_state`](super::Handler::with_state) (`()`
/// without one); extractors that do not read it implement `FromMessage<S>` for every
/// `S`. A failure is a [`HandlerError`]; for decoding it is permanent with reason
/// `decode`, so the message is dead-lettered instead of retried forever.
///
/// ```
/// use wharf::{FromMessage, HandlerError, Message};
///
/// /// The tenant a message belongs to, from its `tenant` header.
/// struct Tenant(String);
///
/// impl<S> FromMessage<S> for Tenant {
///     fn from_message(message: &Message, _state: &S) -> Result<Self, HandlerError> {
///         message
///             .headers()
///             .get_str("tenant")
///             .map(|t| Tenant(t.to_owned()))
///             .ok_or_else(|| HandlerError::permanent("no `tenant` header"))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be extracted from a message with state `{S}`",
    label = "not an extractor for this handler's state",
    note = "extractors: `Message`, `Bytes`, `Json<T>`, `Headers`, `MessageId`, `Origin`, `Attempt`, `Key`, `State<T>` (needs `.with_state(..)` with a state `T` can be taken from: `T: FromRef<S>`), or a type implementing `FromMessage<S>`"
)]
pub trait FromMessage<S = ()>: Sized + Send + 'static {
    /// Extracts the value.
    fn from_message(message: &Message, state: &S) -> Result<Self, HandlerError>;
}

impl<S> FromMessage<S> for Message {
    fn from_message(message: &Message, _: &S) -> Result<Self, HandlerError> {
        Ok(message.clone())
    }
}

/// The raw payload.
impl<S> FromMessage<S> for Bytes {
    fn from_message(message: &Message, _: &S) -> Result<Self, HandlerError> {
        Ok(message.payload().clone())
    }
}

impl<S> FromMessage<S> for Headers {
    fn from_message(message: &Message, _: &S) -> Result<Self, HandlerError> {
        Ok(message.headers().clone())
    }
}

impl<S> FromMessage<S> for MessageId {
    fn from_message(message: &Message, _: &S) -> Result<Self, HandlerError> {
        Ok(message.id().clone())
    }
}

impl<S> FromMessage<S> for Origin {
    fn from_message(message: &Message, _: &S) -> Result<Self, HandlerError> {
        Ok(message.origin().clone())
    }
}

/// The delivery attempt, 1 on the first delivery (see [`Message::attempt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attempt(pub u32);

impl<S> FromMessage<S> for Attempt {
    fn from_message(message: &Message, _: &S) -> Result<Self, HandlerError> {
        Ok(Attempt(message.attempt()))
    }
}

/// The message's ordering key, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(pub Option<Bytes>);

impl<S> FromMessage<S> for Key {
    fn from_message(message: &Message, _: &S) -> Result<Self, HandlerError> {
        Ok(Key(message.key().cloned()))
    }
}

/// The payload decoded from JSON into `T`.
///
/// A payload that does not decode fails with a permanent error with reason `decode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + Send + 'static, S> FromMessage<S> for Json<T> {
    fn from_message(message: &Message, _: &S) -> Result<Self, HandlerError> {
        JsonCodec::decode(message.payload())
            .map(Json)
            .map_err(HandlerError::decode)
    }
}

/// The handler's state, or a part of it (see [`FromRef`]), given once with
/// [`Handler::with_state`](super::Handler::with_state) and cloned for each message.
///
/// ```
/// use std::sync::Arc;
/// use wharf::{Handler, HandlerError, Json, State};
/// # #[derive(serde::Deserialize)] struct Order { id: u64 }
///
/// #[derive(Clone)]
/// struct Db(Arc<Vec<u64>>);
///
/// async fn place_order(Json(order): Json<Order>, State(db): State<Db>) -> Result<(), HandlerError> {
///     let _known = db.0.contains(&order.id);
///     Ok(())
/// }
///
/// let service = place_order.with_state(Db(Arc::default()));
/// # let _ = service;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State<T>(pub T);

/// Takes a part of a handler's state, so `State<Part>` works under a larger state.
///
/// Every `Clone` type is a part of itself.
#[diagnostic::on_unimplemented(
    message = "`State<{Self}>` cannot be taken from the handler's state `{T}`",
    label = "this handler asks for `State<{Self}>`",
    note = "give the handler its state with `.with_state(state)` instead of `.into_service()`: a `{Self}`, or a larger state with `impl FromRef<LargerState> for {Self}`"
)]
pub trait FromRef<T> {
    /// The part of `input`.
    fn from_ref(input: &T) -> Self;
}

impl<T: Clone> FromRef<T> for T {
    fn from_ref(input: &T) -> Self {
        input.clone()
    }
}

impl<Outer, Inner> FromMessage<Outer> for State<Inner>
where
    Inner: FromRef<Outer> + Send + 'static,
{
    fn from_message(_: &Message, state: &Outer) -> Result<Self, HandlerError> {
        Ok(State(Inner::from_ref(state)))
    }
}

macro_rules! tuple_from_message {
    ($($t:ident),+) => {
        impl<S, $($t: FromMessage<S>),+> FromMessage<S> for ($($t,)+) {
            fn from_message(message: &Message, state: &S) -> Result<Self, HandlerError> {
                Ok(($($t::from_message(message, state)?,)+))
            }
        }
    };
}

tuple_from_message!(A);
tuple_from_message!(A, B);
tuple_from_message!(A, B, C);
tuple_from_message!(A, B, C, D);
tuple_from_message!(A, B, C, D, E);
tuple_from_message!(A, B, C, D, E, F);
tuple_from_message!(A, B, C, D, E, F, G);
tuple_from_message!(A, B, C, D, E, F, G, H);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::FailureReason;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Order {
        id: u32,
    }

    #[test]
    fn json_decodes_and_decode_failure_is_permanent() {
        let ok = Message::new(r#"{"id":7}"#);
        let (Json(order), id) = <(Json<Order>, MessageId)>::from_message(&ok, &()).unwrap();
        assert_eq!(order, Order { id: 7 });
        assert_eq!(&id, ok.id());

        let bad = Message::new("{");
        let err = Json::<Order>::from_message(&bad, &()).unwrap_err();
        assert!(err.is_permanent());
        assert_eq!(err.reason(), FailureReason::Decode);
    }

    #[derive(Clone)]
    struct App {
        name: &'static str,
        limit: Limit,
    }

    #[derive(Clone, Debug, PartialEq)]
    struct Limit(u32);

    impl FromRef<App> for Limit {
        fn from_ref(app: &App) -> Self {
            app.limit.clone()
        }
    }

    #[test]
    fn state_and_its_parts_are_extracted() {
        let app = App {
            name: "billing",
            limit: Limit(3),
        };
        let m = Message::new("x").with_key("k").with_attempt(2);
        let (State(whole), State(limit), Attempt(attempt), Key(key)) =
            <(State<App>, State<Limit>, Attempt, Key)>::from_message(&m, &app).unwrap();
        assert_eq!(whole.name, "billing");
        assert_eq!(limit, Limit(3));
        assert_eq!(attempt, 2);
        assert_eq!(key.as_deref(), Some(&b"k"[..]));
    }
}
