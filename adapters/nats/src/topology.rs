//! Declaring JetStream streams and durable pull consumers (create, or bind if they exist).
//!
//! For a [`JetStreamSource`] the adapter makes sure three things exist:
//!
//! 1. the stream `stream`, capturing `subject`, with the configured storage, retention
//!    and deduplication window;
//! 2. the dead-letter stream `dead_letter_stream`, capturing `dead_letter_subject`
//!    (a separate stream, because a dead letter keeps its `Nats-Msg-Id` and the source
//!    stream's deduplication window would discard it);
//! 3. the durable pull consumer `durable` on `stream`: explicit acks, deliver all,
//!    `ack_wait`, `max_deliver`, `max_ack_pending`, and no `backoff` (redelivery delays
//!    are chosen per message with `Nak(delay)`).
//!
//! What exists already is bound as it is: an existing stream or consumer keeps its
//! configuration (change it with the `nats` CLI, or delete it and let the adapter
//! create it again). Core NATS has no topology.

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::Context;
use wharf::Error;

use crate::config::{JetStreamSource, Retention, Storage};
use crate::error;

fn storage(s: Storage) -> StorageType {
    match s {
        Storage::File => StorageType::File,
        Storage::Memory => StorageType::Memory,
    }
}

/// Creates or binds the stream, the dead-letter stream and the durable consumer.
pub(crate) async fn declare(js: &Context, source: &JetStreamSource) -> Result<PullConsumer, Error> {
    let stream = js
        .get_or_create_stream(stream::Config {
            name: source.stream.clone(),
            subjects: vec![source.subject.clone()],
            retention: match source.retention {
                Retention::Limits => RetentionPolicy::Limits,
                Retention::Interest => RetentionPolicy::Interest,
                Retention::WorkQueue => RetentionPolicy::WorkQueue,
            },
            storage: storage(source.storage),
            duplicate_window: source.duplicate_window,
            ..Default::default()
        })
        .await
        .map_err(|e| {
            error::subscribe(format!("creating or binding stream `{}`", source.stream), e)
        })?;
    js.get_or_create_stream(stream::Config {
        name: source.dead_letter_stream.clone(),
        subjects: vec![source.dead_letter_subject.clone()],
        storage: storage(source.storage),
        duplicate_window: source.duplicate_window,
        ..Default::default()
    })
    .await
    .map_err(|e| {
        error::subscribe(
            format!(
                "creating or binding dead-letter stream `{}`",
                source.dead_letter_stream
            ),
            e,
        )
    })?;
    stream
        .get_or_create_consumer(
            &source.durable,
            pull::Config {
                durable_name: Some(source.durable.clone()),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                ack_wait: source.ack_wait,
                max_deliver: source.max_deliver.map_or(-1, i64::from),
                max_ack_pending: i64::from(source.max_ack_pending),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| {
            error::subscribe(
                format!(
                    "creating or binding durable consumer `{}` on stream `{}`",
                    source.durable, source.stream
                ),
                e,
            )
        })
}

/// Deletes a stream; `Ok(false)` if it did not exist.
pub(crate) async fn delete_stream(js: &Context, name: &str) -> Result<bool, Error> {
    match js.delete_stream(name).await {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                async_nats::jetstream::context::DeleteStreamErrorKind::JetStream(ref js)
                    if js.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(error::connection(format!("deleting stream `{name}`"), e)),
    }
}

/// Every message in stream `name` (only those on `subject` when given), oldest first
/// (messages deleted meanwhile are skipped). Each message's offset is its sequence.
pub(crate) async fn read_stream(
    js: &Context,
    name: &str,
    subject: Option<&str>,
) -> Result<Vec<wharf::Message>, Error> {
    let what = || format!("reading stream `{name}`");
    let mut stream = js
        .get_stream(name)
        .await
        .map_err(|e| error::connection(what(), e))?;
    let state = stream
        .info()
        .await
        .map_err(|e| error::connection(what(), e))?
        .state
        .clone();
    let mut out = Vec::new();
    if state.messages == 0 {
        return Ok(out);
    }
    for seq in state.first_sequence..=state.last_sequence {
        match stream.get_raw_message(seq).await {
            Ok(raw) if subject.is_some_and(|s| s != raw.subject.as_str()) => {}
            Ok(raw) => {
                let origin = wharf::Origin::new(name.to_owned()).with_offset(raw.sequence);
                out.push(crate::message::from_nats(
                    raw.payload,
                    Some(&raw.headers),
                    origin,
                    1,
                    || wharf::MessageId::from_position(name, ':', &[seq]),
                ));
            }
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound => {}
            Err(e) => return Err(error::connection(what(), e)),
        }
    }
    Ok(out)
}

/// Deletes message `sequence` of stream `name`; `Ok(false)` if it was not there.
pub(crate) async fn delete_message(js: &Context, name: &str, sequence: u64) -> Result<bool, Error> {
    let what = || format!("deleting message {sequence} of stream `{name}`");
    let stream = js
        .get_stream(name)
        .await
        .map_err(|e| error::connection(what(), e))?;
    match stream.delete_message(sequence).await {
        Ok(deleted) => Ok(deleted),
        Err(e) if e.to_string().contains("no message found") => Ok(false),
        Err(e) => Err(error::connection(what(), e)),
    }
}

/// Checks that stream `stream` captures `subject`: where the stream's name is derived from
/// the subject (the client surface), an existing stream that does not is another
/// source's (two subjects mapping to one name) or made by hand, and binding it would
/// publish into nothing.
pub(crate) async fn check_captures(js: &Context, stream: &str, subject: &str) -> Result<(), Error> {
    let what = || format!("reading stream `{stream}`");
    let mut handle = js
        .get_stream(stream)
        .await
        .map_err(|e| error::connection(what(), e))?;
    let info = handle
        .info()
        .await
        .map_err(|e| error::connection(what(), e))?;
    let captured = info
        .config
        .subjects
        .iter()
        .any(|p| p == subject || crate::config::subject_matches(p, subject));
    if captured {
        return Ok(());
    }
    Err(Error::config(
        "source",
        format!(
            "stream `{stream}` exists and does not capture subject `{subject}` (it captures \
             {:?}): another source maps to the same stream name (`.`, `*`, `>`, `/`, `\\` \
             and whitespace become `_`), or the stream was made by hand",
            info.config.subjects
        ),
    ))
}
