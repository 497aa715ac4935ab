//! Configuration: URL parsing, validation naming the field, and the password never
//! printed. Needs no broker.

// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use wharf::Error;
use wharf_rabbitmq::{QueueType, RabbitConfig, RabbitPublisher, RabbitSubscriber};

fn field_of(e: Error) -> String {
    match e {
        Error::Config { field, .. } => field,
        other => panic!("expected a configuration error, got {other}"),
    }
}

#[test]
fn a_full_url_parses_into_every_field() {
    let c = RabbitConfig::from_url(
        "amqp://app:p%40ss@rabbit.internal:5673/prod%2Forders?queue=orders&prefetch=32\
         &queue_type=classic&exchange=events&binding_key=order.*&consumer_tag=billing\
         &declare=false&retry_tiers=10s,1s,10m&queue_expires=1h&heartbeat=30\
         &connect_timeout=5s&reconnect_min=50ms&reconnect_max=2s&connection_name=billing",
    )
    .unwrap();
    let built = RabbitConfig::new()
        .host("rabbit.internal")
        .port(5673)
        .vhost("prod/orders")
        .credentials("app", "p@ss")
        .queue("orders")
        .prefetch(32)
        .queue_type(QueueType::Classic)
        .exchange("events")
        .binding_key("order.*")
        .consumer_tag("billing")
        .declare(false)
        .retry_tiers([600, 1, 10].map(Duration::from_secs))
        .queue_expires(Duration::from_secs(3600))
        .heartbeat(30)
        .connect_timeout(Duration::from_secs(5))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_secs(2))
        .connection_name("billing");
    assert_eq!(c, built);
    assert_eq!(c.username(), "app");
    assert_eq!(c.queue_kind(), QueueType::Classic);
}

#[test]
fn defaults_are_the_local_broker_with_a_quorum_queue() {
    let c = RabbitConfig::from_url("amqp://localhost").unwrap();
    assert_eq!(c, RabbitConfig::new().host("localhost"));
    assert_eq!(c.username(), "guest");
    assert_eq!(c.queue_kind(), QueueType::Quorum);
    let defaults = format!("{:?}", RabbitConfig::new());
    assert!(
        defaults.contains(&format!("prefetch: {}", RabbitConfig::DEFAULT_PREFETCH)),
        "{defaults}"
    );
    assert!(defaults.contains("declare: true"), "{defaults}");
    assert_eq!(
        RabbitConfig::from_url("amqp://h/%2f").unwrap(),
        RabbitConfig::new().host("h")
    );
    assert_eq!(
        "amqp://h".parse::<RabbitConfig>().unwrap(),
        RabbitConfig::new().host("h")
    );
}

#[test]
fn invalid_settings_name_their_field() {
    let cases = [
        ("http://localhost/?queue=q", "url"),
        ("amqp://localhost/?queue=q&prefetch=0", "prefetch"),
        ("amqp://localhost/?queue=q&prefetch=many", "prefetch"),
        ("amqp://localhost/?queue=q&queue_type=stream", "queue_type"),
        ("amqp://localhost/?queue=q&retry_tiers=soon", "retry_tiers"),
        ("amqp://localhost/?queue=q&retry_tiers=0s", "retry_tiers"),
        ("amqp://localhost/?queue=q&declare=maybe", "declare"),
        (
            "amqp://localhost/?queue=q&queue_expires=1s",
            "queue_expires",
        ),
        ("amqp://localhost/?queue=q&frobnicate=1", "frobnicate"),
        ("amqp://localhost/?queue=", "queue"),
        ("amqp://localhost/?exchange=", "exchange"),
    ];
    for (url, field) in cases {
        let e = RabbitConfig::from_url(url).expect_err(url);
        assert_eq!(field_of(e), field, "{url}");
    }
    let long = "q".repeat(250);
    let e = RabbitConfig::from_url(&format!("amqp://localhost/?queue={long}")).unwrap_err();
    assert_eq!(field_of(e), "queue", "derived names must fit 255 bytes");
}

#[cfg(not(feature = "tls"))]
#[test]
fn amqps_without_the_tls_feature_is_a_config_error() {
    let e = RabbitConfig::from_url("amqps://localhost/?queue=q").unwrap_err();
    assert!(e.to_string().contains("`tls` feature"), "{e}");
    assert_eq!(field_of(e), "url");
}

#[test]
fn setters_are_validated_before_connecting() {
    let e = RabbitConfig::new()
        .queue("q")
        .prefetch(0)
        .validate()
        .unwrap_err();
    assert_eq!(field_of(e), "prefetch");
    let c = RabbitConfig::new()
        .host("h")
        .credentials("u", "p")
        .queue("q")
        .retry_tiers([Duration::from_secs(5), Duration::from_secs(1)]);
    c.validate().unwrap();
    assert_eq!(
        c,
        RabbitConfig::new()
            .host("h")
            .credentials("u", "p")
            .queue("q")
            .retry_tiers([Duration::from_secs(1), Duration::from_secs(5)]),
        "tiers are kept sorted"
    );
}

#[test]
fn the_password_never_appears_in_debug_or_errors() {
    const SECRET: &str = "hunter2-very-secret";
    let url = format!("amqp://app:{SECRET}@localhost:5672/%2f?queue=orders");
    let c = RabbitConfig::from_url(&url).unwrap();
    let debug = format!("{c:?} {:?}", c.clone().queue("other"));
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");

    // Errors from URLs that carry the password do not quote it either.
    for bad in [
        format!("amqp://app:{SECRET}@localhost/?queue=q&prefetch=0"),
        format!("amqp://app:{SECRET}@localhost/?queue=q&bogus=1"),
        format!("amqp://app:{SECRET}@/?queue=q"),
        format!("amqp://app:{SECRET}@localhost:99999/?queue=q"),
        format!("amqp://app:{SECRET}@h1,h2/?queue=q"),
    ] {
        let e = RabbitConfig::from_url(&bad).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains(SECRET), "{text}");
    }
}

/// Connecting to a port nobody listens on fails with the host named and the password not.
#[tokio::test]
async fn connection_errors_do_not_print_the_password() {
    const SECRET: &str = "hunter2-very-secret";
    let c = RabbitConfig::from_url(&format!(
        "amqp://app:{SECRET}@127.0.0.1:1/%2f?queue=orders&connect_timeout=2s"
    ))
    .unwrap();
    let e = RabbitSubscriber::connect(&c).await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
    let e = RabbitPublisher::connect(&c).await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(!text.contains(SECRET), "{text}");
}

/// A setter's bad value fails every connecting call before any connection is tried.
#[tokio::test]
async fn connecting_with_a_bad_setting_names_the_field() {
    let bad = RabbitConfig::new().host("127.0.0.1").port(1).prefetch(0);
    let e = wharf_rabbitmq::RabbitClient::connect(bad.clone())
        .await
        .unwrap_err();
    assert_eq!(field_of(e), "prefetch");
    let e = RabbitPublisher::connect(&bad).await.unwrap_err();
    assert_eq!(field_of(e), "prefetch");
    let e = RabbitSubscriber::connect(&bad.queue("q"))
        .await
        .unwrap_err();
    assert_eq!(field_of(e), "prefetch");
}
