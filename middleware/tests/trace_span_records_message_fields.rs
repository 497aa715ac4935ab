//! Each message runs inside a `wharf.message` span carrying its id, source, offset,
//! attempt, consumer and trace ids, with the outcome recorded at completion; events from
//! the handler are emitted inside it.
#![cfg(feature = "trace")]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{service_fn, ServiceBuilder};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;
use wharf::headers::names::TRACEPARENT;
use wharf::{BoxError, HandlerError, Message, Outcome};
use wharf_memory::Harness;
use wharf_middleware::trace::{TraceContext, TraceLayer};

type Fields = HashMap<String, String>;

#[derive(Default)]
struct Captured {
    /// Every `wharf.message` span: its fields, in creation order.
    spans: Vec<Fields>,
    /// Every event: its `message` and the `message_id` of the span it was emitted in.
    events: Vec<(String, Option<String>)>,
    index: HashMap<u64, usize>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Captured>>);

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        if attrs.metadata().name() != "wharf.message" {
            return;
        }
        let mut fields = Fields::new();
        attrs.record(&mut Collect(&mut fields));
        let mut c = self.0.lock().unwrap();
        let i = c.spans.len();
        c.spans.push(fields);
        c.index.insert(id.into_u64(), i);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut c = self.0.lock().unwrap();
        if let Some(&i) = c.index.get(&id.into_u64()) {
            values.record(&mut Collect(&mut c.spans[i]));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Collect(&mut fields));
        let mut c = self.0.lock().unwrap();
        let span = ctx
            .event_span(event)
            .and_then(|s| c.index.get(&s.id().into_u64()).copied());
        let message_id = span.and_then(|i| c.spans[i].get("message_id").cloned());
        let text = fields.remove("message").unwrap_or_default();
        c.events.push((text, message_id));
    }
}

#[tokio::test(start_paused = true)]
async fn span_carries_message_fields_trace_ids_and_outcome() {
    let capture = Capture::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));

    // `flaky` asks for a redelivery once; `bad` fails; the rest ack.
    let handler = service_fn(|msg: Message| async move {
        tracing::info!("handling");
        match msg.payload().as_ref() {
            b"flaky" if msg.attempt() == 1 => Ok(Outcome::retry_after(Duration::from_secs(1))),
            b"bad" => Err::<_, BoxError>(HandlerError::transient("db down").into()),
            _ => Ok(Outcome::Ack),
        }
    });
    let stack = ServiceBuilder::new()
        .layer(TraceLayer::new())
        .service(handler);
    let mut harness = Harness::new(stack)
        .topic("parcels")
        .consumer_name("shipping");

    let incoming = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .expect("valid");
    let mut traced = Message::new("ok");
    incoming.inject(traced.headers_mut());
    let traced = harness.publish(traced);
    let flaky = harness.publish(Message::new("flaky"));
    harness.run_until_idle().await;
    drop(_default);

    let c = capture.0.lock().unwrap();
    let spans_of = |id: &wharf::MessageId| -> Vec<&Fields> {
        c.spans
            .iter()
            .filter(|f| f.get("message_id").map(String::as_str) == Some(id.as_str()))
            .collect()
    };

    let t = spans_of(&traced);
    assert_eq!(t.len(), 1, "{:?}", c.spans);
    let t = t[0];
    assert_eq!(t["source"], "parcels");
    assert_eq!(t["consumer"], "shipping");
    assert_eq!(t["attempt"], "1");
    assert!(t.contains_key("offset"), "{t:?}");
    assert!(
        !t.contains_key("partition"),
        "the memory broker has no partitions"
    );
    assert_eq!(t["trace_id"], incoming.trace_id().to_string());
    assert_eq!(t["parent_span_id"], incoming.span_id().to_string());
    assert_ne!(t["span_id"], incoming.span_id().to_string());
    assert_eq!(t["outcome"], "ack");

    let f = spans_of(&flaky);
    assert_eq!(f.len(), 2, "one span per delivery");
    assert_eq!(
        (f[0]["attempt"].as_str(), f[0]["outcome"].as_str()),
        ("1", "retry")
    );
    assert_eq!(
        (f[1]["attempt"].as_str(), f[1]["outcome"].as_str()),
        ("2", "ack")
    );
    assert!(!f[0].contains_key("parent_span_id"), "no incoming context");
    assert_eq!(f[0]["trace_id"].len(), 32);

    // The handler's events were emitted inside the message's span.
    let handling: Vec<_> = c
        .events
        .iter()
        .filter(|(text, _)| text == "handling")
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(handling.len(), 3);
    assert!(handling.contains(&Some(traced.to_string())), "{handling:?}");
    assert!(handling.iter().all(Option::is_some), "{handling:?}");
}

#[tokio::test(start_paused = true)]
async fn errors_are_recorded_as_outcome_error_with_their_text() {
    let capture = Capture::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));

    let seen = Arc::new(Mutex::new(None));
    let handler = {
        let seen = seen.clone();
        service_fn(move |msg: Message| {
            *seen.lock().unwrap() = msg.headers().get_str(TRACEPARENT).map(str::to_owned);
            async move { Err::<Outcome, BoxError>(HandlerError::permanent("no such customer").into()) }
        })
    };
    let stack = ServiceBuilder::new()
        .layer(TraceLayer::new())
        .service(handler);
    let mut harness = Harness::new(stack).consumer_name("billing");
    let id = harness.publish(Message::new("x"));
    harness.run_until_idle().await;
    drop(_default);

    let c = capture.0.lock().unwrap();
    let span = c
        .spans
        .iter()
        .find(|f| f.get("message_id").map(String::as_str) == Some(id.as_str()))
        .expect("a span for the message");
    assert_eq!(span["outcome"], "error");
    assert_eq!(span["error"], "no such customer");
    // The handler saw a traceparent naming this span as the parent.
    let seen = seen.lock().unwrap().clone().expect("a traceparent");
    let ctx = TraceContext::parse(&seen).expect("valid");
    assert_eq!(span["span_id"], ctx.span_id().to_string());
    assert_eq!(span["trace_id"], ctx.trace_id().to_string());
}
