//! What is particular to NATS behind the client surface: subjects whose stream names
//! collide are refused, and groups must be real names.

mod support;

use wharf_nats::{stream_name, NatsConfig};

/// `a.b` and `a_b` both map to stream `a_b`: the second source is refused with an error
/// that names the stream and both subjects, instead of binding a stream that does not
/// capture it (its messages would reach no stream).
#[tokio::test]
#[ignore = "needs nats"]
async fn sources_whose_stream_names_collide_are_refused() {
    let _ticket = support::Ticket::take().await;
    let nats = support::connect(NatsConfig::jetstream("unused", "unused")).await;
    let dotted = format!("{}.a", support::unique("collide"));
    let underscored = dotted.replace('.', "_");
    assert_eq!(stream_name(&dotted), stream_name(&underscored));
    nats.declare(&dotted, &["g"])
        .await
        .expect("the first source declares");
    let err = nats
        .declare(&underscored, &["g"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("`{}`", stream_name(&dotted))) && err.contains(&underscored),
        "{err}"
    );
    let err = nats
        .subscriber(&underscored, "g")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not capture"), "{err}");
    nats.delete_stream(&stream_name(&dotted)).await.unwrap();
    nats.delete_stream(&format!("{}_dlq", stream_name(&dotted)))
        .await
        .unwrap();
}

/// An empty group would be no queue group at all (every member gets everything).
#[tokio::test]
#[ignore = "needs nats"]
async fn an_empty_group_is_refused() {
    let _ticket = support::Ticket::take().await;
    let nats = support::connect(NatsConfig::core("unused")).await;
    let err = nats.subscriber("orders", "").await.unwrap_err().to_string();
    assert!(err.contains("`group`"), "{err}");
}
