//! Competing consumers in one group share a topic; separate groups each get everything.

use std::collections::HashSet;

use futures_util::StreamExt;
use wharf::adapter::Acker;
use wharf::{Message, Outcome};
use wharf_memory::MemoryBroker;

#[tokio::test]
async fn members_of_a_group_share_and_groups_each_get_everything() {
    let broker = MemoryBroker::builder().prefetch(1).build();
    broker.declare_group("t", "g1");
    broker.declare_group("t", "g2");
    for i in 0..10 {
        broker
            .publish("t", Message::with_id(format!("m{i}"), "x"))
            .unwrap();
    }
    let mut a = broker.subscribe("t", "g1");
    let mut b = broker.subscribe("t", "g1");
    let mut c = broker.subscribe("t", "g2");
    let mut seen_a = HashSet::new();
    let mut seen_b = HashSet::new();
    for _ in 0..5 {
        for (sub, seen) in [(&mut a, &mut seen_a), (&mut b, &mut seen_b)] {
            let d = sub.next().await.unwrap().unwrap();
            let (m, acker) = d.into_parts();
            seen.insert(m.id().to_string());
            acker.settle(Outcome::Ack).await.unwrap();
        }
    }
    assert!(seen_a.is_disjoint(&seen_b));
    assert_eq!(seen_a.len() + seen_b.len(), 10);
    let mut seen_c = HashSet::new();
    for _ in 0..10 {
        let (m, acker) = c.next().await.unwrap().unwrap().into_parts();
        seen_c.insert(m.id().to_string());
        acker.settle(Outcome::Ack).await.unwrap();
    }
    assert_eq!(seen_c.len(), 10);
    assert_eq!(broker.pending("t", "g1"), 0);
    assert_eq!(broker.pending("t", "g2"), 0);
    // Every group settled everything: the topic no longer holds the messages.
    assert!(broker.messages("t").is_empty());
}

#[tokio::test]
async fn a_topic_without_groups_keeps_its_messages() {
    let broker = MemoryBroker::new();
    broker.publish("t.dlq", Message::new("a")).unwrap();
    broker.publish("t.dlq", Message::new("b")).unwrap();
    assert_eq!(broker.messages("t.dlq").len(), 2);
    // A group created later starts at the earliest retained message.
    let mut s = broker.subscribe("t.dlq", "replayer");
    let (m, _acker) = s.next().await.unwrap().unwrap().into_parts();
    assert_eq!(m.payload().as_ref(), b"a");
}
