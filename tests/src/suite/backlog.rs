//! The client's backlog of a group: what is published and not settled, then nothing
//! once a consumer settled it, the same on every broker that keeps messages.

use std::time::Duration;

use wharf::adapter::{Backlog, Client};
use wharf::{Consumer, Handler, HandlerError, Message};

use crate::factory::AdapterFactory;
use crate::support::{
    expect_ok, numbered, prepare, publish_all, publisher, skip, start, subscribe, unique_group,
    unique_topic, within,
};

/// Five messages published to a declared group are its backlog (on every partition
/// together) before anything consumes them; once a consumer acked them all, the
/// backlog is back to 0 and, where the broker keeps a settled position, it moved by
/// five.
pub async fn backlog_counts_what_is_not_settled<F: AdapterFactory>(f: &F) {
    if !f.capabilities().retains_before_subscribe {
        skip(
            f,
            "backlog_counts_what_is_not_settled",
            "the broker keeps nothing for a group that is not subscribed: no backlog",
        );
        return;
    }
    let topic = unique_topic("backlog");
    let group = unique_group("billing");
    prepare(f, &topic, &[&group]).await;
    let client = f.client();
    let look = |doing: &'static str| {
        let client = client.clone();
        let (topic, group) = (topic.clone(), group.clone());
        async move {
            let result = within(f.timeout(), doing, client.backlog(&topic, &group)).await;
            expect_ok(result, doing)
        }
    };
    let until = |want: u64, doing: &'static str| async move {
        let deadline = tokio::time::Instant::now() + f.timeout();
        loop {
            let backlog: Backlog = look(doing).await;
            if backlog.total() == want {
                return backlog;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{doing}: the backlog stayed at {} (want {want}): {backlog:?}",
                backlog.total()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    let messages: Vec<Message> = (0..5).map(|seq| numbered(&topic, seq)).collect();
    publish_all(&publisher(f).await, &f.destination(&topic), messages).await;
    let before = until(5, "reading the backlog of five published messages").await;

    let subscriber = subscribe(f, &topic, &group).await;
    let handler = |_: Message| async { Ok::<(), HandlerError>(()) };
    let running = start(Consumer::new(
        group.clone(),
        subscriber,
        handler.into_service(),
    ));
    until(0, "reading the backlog once the consumer took everything").await;
    running.stop(f.timeout()).await;
    // Stopped: what was delivered and not acked would be waiting again (RabbitMQ counts
    // only ready messages, and a prefetched message is not ready).
    let after = until(
        0,
        "reading the backlog after the consumer acked and stopped",
    )
    .await;
    if let (Some(a), Some(b)) = (before.settled(), after.settled()) {
        assert_eq!(
            b - a,
            5,
            "the settled position moved by the five acked messages"
        );
    }
}
