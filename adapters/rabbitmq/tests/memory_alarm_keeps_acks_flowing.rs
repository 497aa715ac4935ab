//! A memory alarm blocks copies, never acks (issue 13, item 12).
//!
//! During a memory or disk alarm RabbitMQ blocks every connection that publishes: it
//! stops reading that connection's socket. The subscriber publishes retry copies and
//! dead letters; were they published on the consuming connection, the first dead letter
//! during an alarm would stop every ack after it, and with them every delivery past the
//! prefetch. The test publishes a poison message and 40 good ones, raises a memory alarm
//! (`vm_memory_high_watermark 0`), then consumes with a prefetch of 5:
//!
//! - the poison's dead letter cannot be published while the alarm lasts;
//! - all 40 good messages are handled and acked anyway (before: at most the prefetch);
//! - once the alarm clears, the dead letter lands in `<queue>.dlq`.
//!
//! Raises a broker-wide alarm, so it lives in its own test binary (cargo runs test
//! binaries one after another). The alarm is cleared by a guard, even when the test
//! fails.

// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wharf::{Consumer, Handler, HandlerError, Message, Publisher};
use wharf_rabbitmq::{inspect, RabbitPublisher, RabbitSubscriber};

const GOOD: usize = 40;

/// Clears the memory alarm when dropped.
struct Alarm;

impl Alarm {
    async fn raise() -> Alarm {
        common::rabbitmqctl(&["set_vm_memory_high_watermark", "0"]).await;
        Alarm
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        let out = std::process::Command::new("rabbitmqctl")
            .args(["set_vm_memory_high_watermark", "0.4"])
            .stdin(std::process::Stdio::null())
            .output();
        if !out.is_ok_and(|o| o.status.success()) {
            eprintln!("clearing the memory alarm failed; run `rabbitmqctl set_vm_memory_high_watermark 0.4`");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_memory_alarm_blocks_copies_never_acks() {
    let queue = common::unique("alarm");
    let config = common::base().queue(&queue).prefetch(5);
    let subscriber = RabbitSubscriber::connect(&config).await.unwrap();
    let publisher = RabbitPublisher::connect(&config).await.unwrap();
    publisher
        .publish(
            &queue,
            Message::with_id(format!("{queue}-poison"), "poison"),
        )
        .await
        .unwrap();
    for i in 0..GOOD {
        publisher
            .publish(&queue, Message::with_id(format!("{queue}-{i}"), "good"))
            .await
            .unwrap();
    }
    drop(publisher);

    let alarm = Alarm::raise().await;
    let good = Arc::new(AtomicUsize::new(0));
    let handler = {
        let good = good.clone();
        move |m: Message| {
            let good = good.clone();
            async move {
                if &m.payload()[..] == b"poison" {
                    return Err(HandlerError::permanent("never valid"));
                }
                good.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = tokio::spawn(
        Consumer::new("alarm", subscriber, handler.into_service())
            .shutdown_timeout(Duration::from_secs(30))
            .run(async move {
                let _ = stopped.await;
            }),
    );

    // Every good message is handled while the alarm blocks the dead letter.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while good.load(Ordering::SeqCst) < GOOD {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {GOOD} good messages handled during the alarm (acks blocked with the copy?)",
            good.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dlq = format!("{queue}.dlq");
    assert!(
        inspect::peek(&config, &dlq, 10).await.unwrap().is_empty(),
        "the dead letter cannot land during the alarm"
    );

    drop(alarm);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let letters = inspect::peek(&config, &dlq, 10).await.unwrap();
        if letters.len() == 1 {
            assert_eq!(&letters[0].payload()[..], b"poison");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead letter did not land after the alarm cleared"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop.send(());
    let summary = consumer.await.unwrap().unwrap();
    assert_eq!(summary.acked, GOOD as u64, "{summary:?}");
    assert_eq!(summary.dead_lettered, 1, "{summary:?}");
}
