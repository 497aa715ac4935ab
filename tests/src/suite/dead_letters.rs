//! The client's dead-letter reader: list, read and remove, the same on every broker.

use std::collections::BTreeSet;
use std::time::Duration;

use wharf::adapter::{Client, DeadLetterReader, Subscriber};
use wharf::headers::names;
use wharf::{Consumer, Handler, HandlerError, Message, MessageId};

use crate::factory::AdapterFactory;
use crate::support::{
    expect_ok, numbered, prepare, publish_all, publisher, skip, start, subscribe, unique_group,
    unique_topic, within,
};

/// Three messages the handler refuses for good are dead-lettered through the adapter's
/// native path. Then, through the client's [`DeadLetterReader`] only: the subscriber's
/// [`describe`](Subscriber::describe) names the reader's destination for the topic and
/// group; `list` returns the three with their `wharf-dlq-*` headers; `read` finds one by
/// id; a dead letter of the same message by another consumer is not taken for it;
/// `remove` deletes exactly that dead letter (a second `remove` finds nothing, `read` no
/// longer finds it, `list` returns the other two).
pub async fn dead_letters_read_and_removed<F: AdapterFactory>(f: &F) {
    let caps = f.capabilities();
    if !caps.native_dead_letter {
        skip(
            f,
            "dead_letters_read_and_removed",
            "no native dead-letter path: the broker keeps no dead letters of its own",
        );
        return;
    }
    let topic = unique_topic("dlq-reader");
    let group = unique_group("refuser");
    prepare(f, &topic, &[&group]).await;
    let subscriber = subscribe(f, &topic, &group).await;

    let reader = f.client().dead_letters();
    let destination = reader.destination(&topic, &group);
    assert_eq!(
        subscriber.describe().dead_letters.as_deref(),
        Some(destination.as_str()),
        "the subscriber's description names where its dead letters go, as the reader does"
    );
    assert!(
        !subscriber.describe().broker.is_empty(),
        "the subscriber names its broker"
    );

    let refused = |_: Message| async { Err::<(), _>(HandlerError::permanent("refused for good")) };
    let running = start(Consumer::new(
        group.clone(),
        subscriber,
        refused.into_service(),
    ));
    let messages: Vec<Message> = (0..3).map(|seq| numbered(&topic, seq)).collect();
    let ids: BTreeSet<MessageId> = messages.iter().map(|m| m.id().clone()).collect();
    publish_all(&publisher(f).await, &f.destination(&topic), messages).await;

    let list = |max| {
        let doing = format!("listing the dead letters at `{destination}`");
        let reader = reader.clone();
        let destination = destination.clone();
        async move {
            expect_ok(
                within(f.timeout(), &doing, reader.list(&destination, max)).await,
                &doing,
            )
        }
    };
    let deadline = tokio::time::Instant::now() + f.timeout();
    let letters = loop {
        let letters = list(100).await;
        if letters.len() >= 3 || tokio::time::Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    running.stop(f.timeout()).await;
    let listed: BTreeSet<MessageId> = letters.iter().map(|m| m.id().clone()).collect();
    assert_eq!(
        listed, ids,
        "the three refused messages are listed, once each"
    );
    for letter in &letters {
        let h = letter.headers();
        assert_eq!(
            h.get_str(names::DLQ_REASON),
            Some("permanent"),
            "{letter:?}"
        );
        assert!(h
            .get_str(names::DLQ_ERROR)
            .is_some_and(|e| e.contains("refused")));
        assert!(h.get_str(names::DLQ_CONSUMER).is_some(), "{letter:?}");
    }
    assert_eq!(list(2).await.len(), 2, "`list` returns at most `max`");

    let target = ids.iter().nth(1).cloned().expect("three ids");
    let doing = "reading one dead letter by id";
    let found = expect_ok(
        within(f.timeout(), doing, reader.read(&destination, &target)).await,
        doing,
    );
    let letter = found.expect("`read` finds a listed dead letter");
    assert_eq!(*letter.id(), target);

    // The same message given up on by another consumer is another dead letter: not it.
    let mut other = letter.clone();
    other
        .headers_mut()
        .insert(names::DLQ_CONSUMER, "someone-else".to_owned());
    let doing = "removing a dead letter that is not there";
    let found = expect_ok(
        within(f.timeout(), doing, reader.remove(&destination, &other)).await,
        doing,
    );
    assert!(
        !found,
        "another consumer's dead letter of the message is not this one"
    );
    assert_eq!(list(100).await.len(), 3, "nothing was removed");

    let doing = "removing one dead letter";
    let removed = expect_ok(
        within(f.timeout(), doing, reader.remove(&destination, &letter)).await,
        doing,
    );
    assert!(removed, "`remove` finds the dead letter it removes");
    let again = expect_ok(
        within(f.timeout(), doing, reader.remove(&destination, &letter)).await,
        doing,
    );
    assert!(!again, "a removed dead letter is not found again");
    let doing = "reading a removed dead letter";
    let gone = expect_ok(
        within(f.timeout(), doing, reader.read(&destination, &target)).await,
        doing,
    );
    assert!(gone.is_none(), "a removed dead letter cannot be read");
    let left: BTreeSet<MessageId> = list(100).await.iter().map(|m| m.id().clone()).collect();
    let expected: BTreeSet<MessageId> = ids.iter().filter(|id| **id != target).cloned().collect();
    assert_eq!(left, expected, "exactly the removed one is gone");
}
