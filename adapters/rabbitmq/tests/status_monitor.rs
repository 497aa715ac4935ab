//! In process, the status monitor tells a stalled RabbitMQ consumer from a slow one,
//! which the broker alone cannot (AMQP reports ready messages, not settlements): the
//! consumer's own progress says nothing was settled while messages kept arriving.

// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use wharf::status::{StatusMonitor, Verdict};
use wharf::{Consumer, Handler, HandlerError, Message, Publisher};
use wharf_rabbitmq::RabbitClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_hung_handler_reads_stalled_in_process() {
    let rabbit = RabbitClient::connect(common::base().prefetch(4))
        .await
        .unwrap();
    let source = common::unique("status");
    let subscriber = rabbit.subscriber(&source, "billing").await.unwrap();
    // Every message hangs in the handler: nothing is ever settled.
    let handler = |_: Message| async { std::future::pending::<Result<(), HandlerError>>().await };
    let consumer = Consumer::new("billing", subscriber, handler.into_service())
        .shutdown_timeout(Duration::from_millis(200));
    let mut monitor =
        StatusMonitor::new(rabbit.clone(), &source, "billing").progress(consumer.progress());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(consumer.run(async {
        let _ = stopped.await;
    }));
    let publisher = rabbit.publisher();
    let mut evaluation = None;
    for round in 0..4 {
        for n in 0..10 {
            publisher
                .publish(&source, Message::new(format!("o-{round}-{n}")))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (backlog, e) = monitor.sample().await.unwrap();
        assert_eq!(backlog.consumers, Some(1), "{backlog:?}");
        assert_eq!(backlog.dead_letters, Some(0), "{backlog:?}");
        evaluation = e;
    }
    let _ = stop.send(());
    let _ = running.await.unwrap();
    let evaluation = evaluation.unwrap().group;
    assert_eq!(evaluation.verdict, Verdict::Stalled, "{evaluation:?}");
    assert_eq!(evaluation.settled, Some(0));
}
