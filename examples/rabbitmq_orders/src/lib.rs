//! Holds the `rabbitmq_orders` example: a typed handler with the recommended stack on
//! RabbitMQ. Run it with `cargo run --example rabbitmq_orders` against a local broker
//! (`WHARF_RABBITMQ_URL`, default `amqp://guest:guest@127.0.0.1:5672/%2f`).
