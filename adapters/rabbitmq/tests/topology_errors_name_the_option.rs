//! A topology the broker refuses fails at start-up with the option to set (issue 13,
//! item 13): a work queue that exists with another queue type names `queue_type`; a
//! missing queue with `declare=false` says the whole topology must exist. Before, the
//! error was the broker's `PRECONDITION_FAILED … x-queue-type` (or `NOT_FOUND`) alone.

#![allow(clippy::unwrap_used)]

mod common;

use wharf_rabbitmq::lapin::options::QueueDeclareOptions;
use wharf_rabbitmq::lapin::types::FieldTable;
use wharf_rabbitmq::lapin::{Connection, ConnectionProperties};
use wharf_rabbitmq::{QueueType, RabbitSubscriber};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_queue_of_another_type_names_queue_type() {
    let queue = common::unique("other-type");
    // A classic queue, declared by someone else.
    let connection = Connection::connect(&common::url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), 180_000i32.into());
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .unwrap();

    let config = common::base().queue(&queue);
    assert_eq!(config.queue_kind(), QueueType::Quorum);
    let e = RabbitSubscriber::connect(&config).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("`queue_type`"), "{text}");
    assert!(text.contains(&queue), "{text}");
    let _ = channel
        .queue_delete(queue.as_str().into(), Default::default())
        .await;
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn declare_false_without_the_topology_says_what_must_exist() {
    let queue = common::unique("absent");
    let config = common::base().queue(&queue).declare(false);
    let e = RabbitSubscriber::connect(&config).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("declare=false"), "{text}");
    assert!(text.contains(".dlq"), "{text}");
}
