//! Extractors: what a handler takes as its argument.

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::codec::{Codec, JsonCodec};
use crate::error::HandlerError;
use crate::headers::Headers;
use crate::message::{Message, MessageId};

/// Builds a handler's argument from a message.
///
/// A failure is a [`HandlerError`]; for decoding it is permanent with reason `decode`,
/// so the message is dead-lettered instead of retried forever.
pub trait FromMessage: Sized + Send + 'static {
    /// Extracts the value.
    fn from_message(message: &Message) -> Result<Self, HandlerError>;
}

impl FromMessage for Message {
    fn from_message(message: &Message) -> Result<Self, HandlerError> {
        Ok(message.clone())
    }
}

/// The raw payload.
impl FromMessage for Bytes {
    fn from_message(message: &Message) -> Result<Self, HandlerError> {
        Ok(message.payload().clone())
    }
}

impl FromMessage for Headers {
    fn from_message(message: &Message) -> Result<Self, HandlerError> {
        Ok(message.headers().clone())
    }
}

impl FromMessage for MessageId {
    fn from_message(message: &Message) -> Result<Self, HandlerError> {
        Ok(message.id().clone())
    }
}

/// The payload decoded from JSON into `T`.
///
/// A payload that does not decode fails with a permanent error with reason `decode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + Send + 'static> FromMessage for Json<T> {
    fn from_message(message: &Message) -> Result<Self, HandlerError> {
        JsonCodec::decode(message.payload())
            .map(Json)
            .map_err(HandlerError::decode)
    }
}

macro_rules! tuple_from_message {
    ($($t:ident),+) => {
        impl<$($t: FromMessage),+> FromMessage for ($($t,)+) {
            fn from_message(message: &Message) -> Result<Self, HandlerError> {
                Ok(($($t::from_message(message)?,)+))
            }
        }
    };
}

tuple_from_message!(A, B);
tuple_from_message!(A, B, C);
tuple_from_message!(A, B, C, D);

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
        let (Json(order), id) = <(Json<Order>, MessageId)>::from_message(&ok).unwrap();
        assert_eq!(order, Order { id: 7 });
        assert_eq!(&id, ok.id());

        let bad = Message::new("{");
        let err = Json::<Order>::from_message(&bad).unwrap_err();
        assert!(err.is_permanent());
        assert_eq!(err.reason(), FailureReason::Decode);
    }
}
