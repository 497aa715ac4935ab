//! Handlers are plain async fns of up to eight extractors, with shared state: each
//! extractor gets its part of the message (or of the state), the fn runs once, and an
//! extractor that fails (a payload that does not decode) rejects the message before the
//! fn runs, with a permanent `decode` error.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Deserialize;
use tower::ServiceExt as _;
use wharf::error::classify;
use wharf::{
    Attempt, FromRef, Handler, HandlerError, Headers, Json, Key, Message, MessageId, Origin,
    Outcome, State,
};

#[derive(Deserialize, Debug, PartialEq)]
struct Order {
    id: u64,
}

/// The application's state: a log the handler writes to, and a part of its own.
#[derive(Clone, Default)]
struct App {
    seen: Arc<Mutex<Vec<String>>>,
    limits: Limits,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Limits {
    max_attempts: u32,
}

impl FromRef<App> for Limits {
    fn from_ref(app: &App) -> Self {
        app.limits.clone()
    }
}

#[allow(clippy::too_many_arguments)]
async fn eight(
    Json(order): Json<Order>,
    id: MessageId,
    headers: Headers,
    origin: Origin,
    Attempt(attempt): Attempt,
    Key(key): Key,
    State(app): State<App>,
    State(limits): State<Limits>,
) -> Result<(), HandlerError> {
    app.seen.lock().unwrap().push(format!(
        "order {} id {} tenant {} from {} attempt {attempt}/{} key {}",
        order.id,
        id,
        headers.get_str("tenant").unwrap_or("-"),
        origin.source(),
        limits.max_attempts,
        String::from_utf8_lossy(key.as_deref().unwrap_or_default()),
    ));
    Ok(())
}

fn order(payload: &str) -> Message {
    Message::with_id("m-1", payload.to_owned())
        .with_key("customer-7")
        .with_header("tenant", "acme")
        .with_attempt(2)
        .with_origin(wharf::Origin::new("orders"))
}

#[tokio::test]
async fn eight_extractors_and_state_reach_the_handler() {
    let app = App {
        limits: Limits { max_attempts: 5 },
        ..App::default()
    };
    let service = eight.with_state(app.clone());
    let outcome = service.oneshot(order(r#"{"id": 42}"#)).await.unwrap();
    assert_eq!(outcome, Outcome::Ack);
    assert_eq!(
        *app.seen.lock().unwrap(),
        ["order 42 id m-1 tenant acme from orders attempt 2/5 key customer-7"]
    );
}

#[tokio::test]
async fn a_failing_extractor_rejects_before_the_handler_runs() {
    let app = App::default();
    let service = eight.with_state(app.clone());
    let error = service.oneshot(order("not json")).await.unwrap_err();
    let class = classify(&*error);
    assert_eq!(class.kind, wharf::ErrorKind::Permanent);
    assert_eq!(class.reason, wharf::FailureReason::Decode);
    assert!(app.seen.lock().unwrap().is_empty(), "the handler never ran");
}

#[tokio::test]
async fn closures_and_stateless_fns_need_no_state() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let calls = calls.clone();
        move |payload: Bytes, Attempt(attempt): Attempt| {
            let calls = calls.clone();
            async move {
                calls.lock().unwrap().push((payload, attempt));
                Ok::<(), HandlerError>(())
            }
        }
    };
    let outcome = handler
        .into_service()
        .oneshot(Message::new("hello"))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Ack);
    assert_eq!(*calls.lock().unwrap(), [(Bytes::from("hello"), 1)]);
}
