//! Configuration from URLs and builders: every setting parsed, bad settings rejected at
//! start-up naming the field, and secrets never in `Debug` or error messages. No broker.

use std::time::Duration;

use wharf_nats::{Auth, Mode, NatsClient, NatsConfig, Retention, Storage};

fn field_of(result: Result<NatsConfig, wharf::Error>) -> String {
    match result {
        Err(wharf::Error::Config { field, .. }) => field,
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(config) => panic!("expected a configuration error, got {config:?}"),
    }
}

#[test]
fn core_url_sets_subject_queue_group_and_servers() {
    let config: NatsConfig =
        "nats://a.example:4222,b.example:4223/orders.*?queue_group=billing&name=svc"
            .parse()
            .unwrap();
    assert_eq!(
        config.servers(),
        ["nats://a.example:4222", "nats://b.example:4223"]
    );
    assert_eq!(config.connection_name(), Some("svc"));
    let Mode::Core(core) = config.mode() else {
        panic!("expected Core mode: {config:?}");
    };
    assert_eq!(core.subject, "orders.*");
    assert_eq!(core.queue_group.as_deref(), Some("billing"));
}

#[test]
fn jetstream_url_sets_every_parameter() {
    let config: NatsConfig = "nats+jetstream://127.0.0.1:4222/ORDERS?durable=billing&subject=orders.>\
        &ack_wait=45s&max_deliver=6&max_ack_pending=64&batch=32&dead_letter_subject=dead.orders\
        &dead_letter_stream=DEAD&storage=memory&retention=workqueue&duplicate_window=5m&progress=false"
        .parse()
        .unwrap();
    let Mode::JetStream(js) = config.mode() else {
        panic!("expected JetStream mode: {config:?}");
    };
    assert_eq!(js.stream, "ORDERS");
    assert_eq!(js.durable, "billing");
    assert_eq!(js.subject, "orders.>");
    assert_eq!(js.ack_wait, Duration::from_secs(45));
    assert_eq!(js.max_deliver, Some(6));
    assert_eq!(js.max_ack_pending, 64);
    assert_eq!(js.batch, 32);
    assert_eq!(js.dead_letter_subject, "dead.orders");
    assert_eq!(js.dead_letter_stream, "DEAD");
    assert_eq!(js.storage, Storage::Memory);
    assert_eq!(js.retention, Retention::WorkQueue);
    assert_eq!(js.duplicate_window, Duration::from_secs(300));
    assert!(!js.progress);
}

#[test]
fn jetstream_defaults_match_the_builder() {
    let parsed: NatsConfig = "nats+jetstream://127.0.0.1:4222/ORDERS?durable=billing"
        .parse()
        .unwrap();
    let built = NatsConfig::jetstream("ORDERS", "billing").server("nats://127.0.0.1:4222");
    assert_eq!(parsed, built);
    let Mode::JetStream(js) = parsed.mode() else {
        unreachable!()
    };
    assert_eq!(js.subject, "ORDERS");
    assert_eq!(js.dead_letter_subject, "ORDERS.dlq");
    assert_eq!(js.ack_wait, Duration::from_secs(30));
    assert_eq!(js.max_deliver, None);
}

#[test]
fn invalid_settings_name_the_field() {
    let cases = [
        (
            "nats+jetstream://h:4222/S?durable=d&ack_wait=soon",
            "ack_wait",
        ),
        (
            "nats+jetstream://h:4222/S?durable=d&ack_wait=10ms",
            "ack_wait",
        ),
        ("nats+jetstream://h:4222/S", "durable"),
        ("nats+jetstream://h:4222/S?durable=a.b", "durable"),
        ("nats+jetstream://h:4222/S.x?durable=d", "stream"),
        (
            "nats+jetstream://h:4222/S?durable=d&max_deliver=0",
            "max_deliver",
        ),
        (
            "nats+jetstream://h:4222/S?durable=d&max_ack_pending=0",
            "max_ack_pending",
        ),
        ("nats+jetstream://h:4222/S?durable=d&batch=lots", "batch"),
        (
            "nats+jetstream://h:4222/S?durable=d&storage=tape",
            "storage",
        ),
        (
            "nats+jetstream://h:4222/S?durable=d&subject=orders.>&dead_letter_subject=orders.dlq",
            "dead_letter_subject",
        ),
        (
            "nats+jetstream://h:4222/S?durable=d&queue_group=g",
            "queue_group",
        ),
        ("nats://h:4222/orders..created", "subject"),
        ("nats://h:4222/orders.>.x", "subject"),
        ("nats://h:4222/orders?durable=d", "durable"),
        ("nats://h:4222/orders?tls=maybe", "tls"),
        ("nats://h:4222/orders?tls_cert_file=/c.pem", "tls_cert_file"),
        ("nats://h:4222/orders?colour=blue", "colour"),
        ("amqp://h:4222/orders", "url"),
        ("nats:///orders", "url"),
    ];
    for (url, field) in cases {
        assert_eq!(field_of(url.parse()), field, "{url}");
    }
}

#[test]
fn credentials_move_out_of_the_server_address() {
    let config: NatsConfig = "nats://app:p%40ss@127.0.0.1:4222/orders".parse().unwrap();
    assert_eq!(config.servers(), ["nats://127.0.0.1:4222"]);
    match config.auth() {
        Auth::UserPassword { user, password } => {
            assert_eq!(user, "app");
            assert_eq!(password.expose(), "p@ss");
        }
        other => panic!("expected user and password, got {other:?}"),
    }
    let config: NatsConfig = "nats://tok3n@127.0.0.1:4222/orders".parse().unwrap();
    assert!(matches!(config.auth(), Auth::Token(t) if t.expose() == "tok3n"));
}

#[test]
fn secrets_never_appear_in_debug() {
    for url in [
        "nats://app:hunter2-secret@127.0.0.1:4222/orders",
        "nats://hunter2-secret@127.0.0.1:4222/orders",
        "nats+jetstream://app:hunter2-secret@127.0.0.1:4222/ORDERS?durable=d",
    ] {
        let config: NatsConfig = url.parse().unwrap();
        let debug = format!("{config:?} {:?} {config:#?}", config.auth());
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("***"), "{debug}");
    }
    let built = NatsConfig::core("orders").token("hunter2-secret");
    assert!(!format!("{built:?}").contains("hunter2"));
}

#[test]
fn secrets_never_appear_in_errors() {
    let bad = [
        "nats://app:hunter2-secret@127.0.0.1:4222/orders?colour=blue",
        "nats://hunter2-secret@127.0.0.1:4222/bad..subject",
        "nats+jetstream://app:hunter2-secret@127.0.0.1:4222/S",
        "nats+jetstream://app:hunter2-secret@127.0.0.1:4222/S?durable=d&ack_wait=x",
        "smtp://app:hunter2-secret@127.0.0.1:4222/orders",
        "nats://app:hunter2-secret@[::1/orders",
    ];
    for url in bad {
        let err = url.parse::<NatsConfig>().expect_err(url);
        let text = format!("{err} {err:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[tokio::test]
async fn connection_errors_do_not_leak_secrets() {
    // Nothing listens on port 1: the connection fails, and the error must not carry the
    // password.
    let config = NatsConfig::core("orders")
        .server("nats://127.0.0.1:1")
        .user_password("app", "hunter2-secret");
    let err = NatsClient::connect(config)
        .await
        .expect_err("nothing listens on port 1");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(matches!(err, wharf::Error::Connection(_)), "{text}");
}

#[tokio::test]
async fn invalid_builder_settings_fail_before_connecting() {
    let config = NatsConfig::jetstream("ORDERS", "billing").max_ack_pending(0);
    match NatsClient::connect(config).await {
        Err(wharf::Error::Config { field, .. }) => assert_eq!(field, "max_ack_pending"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}
