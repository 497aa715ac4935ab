//! Codecs turn payload bytes into typed values and back.
//!
//! A decode failure is a *permanent* error: the same bytes will never decode on a retry,
//! so the message goes to the dead-letter destination with reason `decode` instead of
//! stalling the stream.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::BoxError;

/// Encodes and decodes typed payloads.
pub trait Codec: Send + Sync + 'static {
    /// Decodes a payload.
    fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError>;
    /// Encodes a value into a payload.
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, EncodeError>;
}

/// JSON through `serde_json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
        serde_json::from_slice(payload).map_err(|e| DecodeError::new(std::any::type_name::<T>(), e))
    }

    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, EncodeError> {
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| EncodeError(Box::new(e)))
    }
}

/// A payload could not be decoded into the handler's type.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode payload as {type_name}: {source}")]
pub struct DecodeError {
    type_name: &'static str,
    #[source]
    source: BoxError,
}

impl DecodeError {
    /// A decode error for `type_name` caused by `source`.
    pub fn new(type_name: &'static str, source: impl Into<BoxError>) -> Self {
        DecodeError {
            type_name,
            source: source.into(),
        }
    }

    /// The type the payload was to be decoded into.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}

/// A value could not be encoded into a payload.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode payload: {0}")]
pub struct EncodeError(#[source] BoxError);

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Order {
        #[allow(dead_code)]
        id: u32,
    }

    #[test]
    fn decode_error_names_the_type() {
        let err = JsonCodec::decode::<Order>(b"not json").unwrap_err();
        assert!(err.to_string().contains("Order"), "{err}");
    }
}
