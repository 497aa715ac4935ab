//! Consumer groups: members of one group share, separate groups each get everything.

use std::collections::HashSet;

use wharf::{Consumer, Handler, HandlerError, Message, MessageId};

use crate::factory::AdapterFactory;
use crate::support::{
    eventually, missing, numbered, prepare, publish_all, publisher, random_pause, skip, start,
    stop_all, subscribe, unique_group, unique_topic, Log,
};

/// Three members of one group, 300 messages: each member gets a share, the shares are
/// disjoint, and together they are every message.
pub async fn competing_consumers_share<F: AdapterFactory>(f: &F) {
    const MEMBERS: usize = 3;
    const N: usize = 300;
    if !f.capabilities().competing_consumers {
        skip(
            f,
            "competing_consumers_share",
            "no competing consumers promised",
        );
        return;
    }
    let topic = unique_topic("competing");
    let group = unique_group("competing");
    prepare(f, &topic, &[&group]).await;

    let log: Log<(usize, MessageId)> = Log::new();
    let all: Log<MessageId> = Log::new();
    let mut subscribers = Vec::new();
    for _ in 0..MEMBERS {
        subscribers.push(subscribe(f, &topic, &group).await);
    }
    f.group_ready(&subscribers.iter().collect::<Vec<_>>())
        .await
        .unwrap_or_else(|e| panic!("the group's {MEMBERS} members never all got work: {e}"));
    let mut running = Vec::new();
    for (member, subscriber) in subscribers.into_iter().enumerate() {
        let (log, all) = (log.clone(), all.clone());
        let handler = move |m: Message| {
            let (log, all) = (log.clone(), all.clone());
            async move {
                // Slow enough that one member cannot drain the topic alone.
                random_pause(5).await;
                log.push((member, m.id().clone()));
                all.push(m.id().clone());
                Ok::<(), HandlerError>(())
            }
        };
        running.push(start(
            Consumer::new(
                format!("competing-{member}"),
                subscriber,
                handler.into_service(),
            )
            .max_in_flight(16),
        ));
    }

    let publisher = publisher(f).await;
    publish_all(
        &publisher,
        &f.destination(&topic),
        (0..N).map(|seq| numbered(&topic, seq)),
    )
    .await;
    let expected: Vec<MessageId> = (0..N)
        .map(|seq| numbered(&topic, seq).id().clone())
        .collect();
    eventually(
        f.timeout(),
        || all.distinct() >= N,
        || {
            format!(
                "the group handles all {N} messages: {}",
                missing(&expected, &all.counts())
            )
        },
    )
    .await;
    stop_all(running, f.timeout()).await;

    let entries = log.snapshot();
    let mut shares: Vec<HashSet<MessageId>> = vec![HashSet::new(); MEMBERS];
    for (member, id) in &entries {
        assert!(
            shares[*member].insert(id.clone()),
            "member {member} handled message {id} twice although nothing failed"
        );
    }
    for (member, share) in shares.iter().enumerate() {
        assert!(
            !share.is_empty(),
            "member {member} of the group received nothing: the group's messages are not \
             shared between its members (shares: {:?})",
            shares.iter().map(HashSet::len).collect::<Vec<_>>()
        );
        for (other, other_share) in shares.iter().enumerate().skip(member + 1) {
            let both: Vec<&MessageId> = share.intersection(other_share).collect();
            assert!(
                both.is_empty(),
                "members {member} and {other} of one group both received {both:?}: shares \
                 must be disjoint"
            );
        }
    }
    let union: HashSet<&MessageId> = shares.iter().flatten().collect();
    let foreign: Vec<&&MessageId> = union.iter().filter(|id| !expected.contains(id)).collect();
    assert!(
        foreign.is_empty(),
        "handled messages never published: {foreign:?}"
    );
    assert_eq!(union.len(), N, "the shares together are not every message");
}

/// Two groups on one topic, 100 messages: each group handles all 100, each once.
pub async fn groups_fan_out<F: AdapterFactory>(f: &F) {
    const N: usize = 100;
    if !f.capabilities().fan_out_groups {
        skip(
            f,
            "groups_fan_out",
            "separate groups do not each get every message",
        );
        return;
    }
    let topic = unique_topic("fan-out");
    let groups = [unique_group("fan-out-a"), unique_group("fan-out-b")];
    prepare(f, &topic, &[&groups[0], &groups[1]]).await;

    let logs: [Log<MessageId>; 2] = [Log::new(), Log::new()];
    let mut running = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let subscriber = subscribe(f, &topic, group).await;
        let log = logs[i].clone();
        let handler = move |m: Message| {
            let log = log.clone();
            async move {
                log.push(m.id().clone());
                Ok::<(), HandlerError>(())
            }
        };
        running.push(start(Consumer::new(
            format!("fan-out-{i}"),
            subscriber,
            handler.into_service(),
        )));
    }

    let publisher = publisher(f).await;
    publish_all(
        &publisher,
        &f.destination(&topic),
        (0..N).map(|seq| numbered(&topic, seq)),
    )
    .await;
    let expected: Vec<MessageId> = (0..N)
        .map(|seq| numbered(&topic, seq).id().clone())
        .collect();
    for (group, log) in groups.iter().zip(&logs) {
        eventually(
            f.timeout(),
            || log.distinct() >= N,
            || {
                format!(
                    "group `{group}` handles all {N} messages: {}",
                    missing(&expected, &log.counts())
                )
            },
        )
        .await;
    }
    stop_all(running, f.timeout()).await;

    for (group, log) in groups.iter().zip(&logs) {
        let counts = log.counts();
        let foreign: Vec<&MessageId> = counts.keys().filter(|id| !expected.contains(id)).collect();
        assert!(
            foreign.is_empty(),
            "group `{group}` handled messages never published: {foreign:?}"
        );
        let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "group `{group}` handled messages more than once although nothing failed: {twice:?}"
        );
    }
}
