//! The `match` over the enabled adapters that every method of the `Any*` enums is.

/// `match $value { $Enum::V($x) => $body, .. }` for every enabled adapter `V`.
macro_rules! each {
    ($value:expr, $enum:ident, $x:ident => $body:expr) => {
        match $value {
            $enum::Memory($x) => $body,
            #[cfg(feature = "rabbitmq")]
            $enum::RabbitMq($x) => $body,
            #[cfg(feature = "kafka")]
            $enum::Kafka($x) => $body,
            #[cfg(feature = "nats")]
            $enum::Nats($x) => $body,
        }
    };
}

/// Like [`each`], wrapping each arm's value in the same variant of `$out`.
macro_rules! each_into {
    ($value:expr, $enum:ident, $out:ident, $x:ident => $body:expr) => {
        match $value {
            $enum::Memory($x) => $out::Memory($body),
            #[cfg(feature = "rabbitmq")]
            $enum::RabbitMq($x) => $out::RabbitMq($body),
            #[cfg(feature = "kafka")]
            $enum::Kafka($x) => $out::Kafka($body),
            #[cfg(feature = "nats")]
            $enum::Nats($x) => $out::Nats($body),
        }
    };
}

/// Like [`each_into`] for arms that return a `Result` (or a `Poll` of one).
macro_rules! each_try_into {
    ($value:expr, $enum:ident, $out:ident, $x:ident => $body:expr) => {
        match $value {
            $enum::Memory($x) => $body.map($out::Memory),
            #[cfg(feature = "rabbitmq")]
            $enum::RabbitMq($x) => $body.map($out::RabbitMq),
            #[cfg(feature = "kafka")]
            $enum::Kafka($x) => $body.map($out::Kafka),
            #[cfg(feature = "nats")]
            $enum::Nats($x) => $body.map($out::Nats),
        }
    };
}

pub(crate) use {each, each_into, each_try_into};
