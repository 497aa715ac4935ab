//! A scripted adapter for runtime tests: deliveries come from a channel, settlements are
//! recorded.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::mpsc;
use wharf::adapter::{Acker, Capabilities, Delivery, Subscriber};
use wharf::{BoxError, Error, Message, MessageId, Outcome};

#[derive(Clone, Default)]
pub struct Settlements(Arc<Mutex<Vec<(MessageId, Outcome)>>>);

impl Settlements {
    pub fn all(&self) -> Vec<(MessageId, Outcome)> {
        self.0.lock().unwrap().clone()
    }
    pub fn of(&self, id: &str) -> Vec<Outcome> {
        self.all()
            .into_iter()
            .filter(|(i, _)| i.as_str() == id)
            .map(|(_, o)| o)
            .collect()
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

pub struct TestAcker {
    id: MessageId,
    log: Settlements,
    dropped_unsettled: Arc<AtomicUsize>,
    settled: bool,
    lazy: bool,
}

impl Acker for TestAcker {
    type Future = Pin<Box<dyn std::future::Future<Output = Result<(), BoxError>> + Send>>;

    /// A message whose id starts with `hang-settle` gets a settlement that never
    /// finishes (a client's ack future lost with its connection), and is not recorded.
    fn settle(mut self, outcome: Outcome) -> Self::Future {
        self.settled = true;
        let (id, log) = (self.id.clone(), self.log.clone());
        if id.as_str().starts_with("hang-settle") {
            return Box::pin(std::future::pending());
        }
        if self.lazy {
            // Like a network nack: nothing happens unless the future is driven.
            Box::pin(async move {
                tokio::task::yield_now().await;
                log.0.lock().unwrap().push((id, outcome));
                Ok(())
            })
        } else {
            log.0.lock().unwrap().push((id, outcome));
            Box::pin(std::future::ready(Ok(())))
        }
    }
}

impl Drop for TestAcker {
    fn drop(&mut self) {
        if !self.settled {
            self.dropped_unsettled.fetch_add(1, AtomicOrdering::SeqCst);
        }
    }
}

pub struct TestSubscriber {
    rx: mpsc::UnboundedReceiver<Message>,
    /// A `fail-and-end` message was seen: the stream has ended.
    ended: bool,
    log: Settlements,
    pulled: Arc<AtomicUsize>,
    dropped_unsettled: Arc<AtomicUsize>,
    caps: Capabilities,
    lazy: bool,
}

/// The test's end of a scripted adapter.
pub struct Script {
    pub tx: mpsc::UnboundedSender<Message>,
    pub settlements: Settlements,
    pub pulled: Arc<AtomicUsize>,
    pub dropped_unsettled: Arc<AtomicUsize>,
}

impl Script {
    pub fn send(&self, id: &str, key: Option<&str>) {
        let mut m = Message::with_id(id, id.to_owned());
        if let Some(k) = key {
            m = m.with_key(k.to_owned());
        }
        self.tx.send(m).unwrap();
    }
    pub fn pulled(&self) -> usize {
        self.pulled.load(AtomicOrdering::SeqCst)
    }
}

pub fn scripted(native_dead_letter: bool) -> (TestSubscriber, Script) {
    scripted_with(native_dead_letter, false)
}

/// An adapter that leaves `Retry` to the runtime (`Capabilities::retry_in_lane`), like
/// Kafka.
pub fn scripted_in_lane() -> (TestSubscriber, Script) {
    let (mut sub, script) = scripted_with(true, false);
    sub.caps.retry_in_lane = true;
    (sub, script)
}

/// An at-most-once adapter like Core NATS: no redelivery, no native dead letters, retries
/// run in the message's lane by the runtime.
pub fn scripted_at_most_once() -> (TestSubscriber, Script) {
    let (mut sub, script) = scripted_with(false, false);
    sub.caps.retry_in_lane = true;
    (sub, script)
}

/// `lazy`: settlements take effect only when their future is polled to completion.
pub fn scripted_with(native_dead_letter: bool, lazy: bool) -> (TestSubscriber, Script) {
    let (tx, rx) = mpsc::unbounded_channel();
    let log = Settlements::default();
    let pulled = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut caps = Capabilities::default();
    caps.acknowledgements = true;
    caps.native_dead_letter = native_dead_letter;
    (
        TestSubscriber {
            rx,
            ended: false,
            log: log.clone(),
            pulled: pulled.clone(),
            dropped_unsettled: dropped.clone(),
            caps,
            lazy,
        },
        Script {
            tx,
            settlements: log,
            pulled,
            dropped_unsettled: dropped,
        },
    )
}

impl Stream for TestSubscriber {
    type Item = Result<Delivery<TestAcker>, Error>;

    /// A message with id `fail-and-end` makes the stream yield an error and then end
    /// (an adapter whose client cannot go on).
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(m)) if m.id().as_str() == "fail-and-end" => {
                self.ended = true;
                Poll::Ready(Some(Err(Error::Subscribe("the client is fenced".into()))))
            }
            Poll::Ready(Some(m)) => {
                self.pulled.fetch_add(1, AtomicOrdering::SeqCst);
                let acker = TestAcker {
                    id: m.id().clone(),
                    log: self.log.clone(),
                    dropped_unsettled: self.dropped_unsettled.clone(),
                    settled: false,
                    lazy: self.lazy,
                };
                Poll::Ready(Some(Ok(Delivery::new(m, acker))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Subscriber for TestSubscriber {
    type Acker = TestAcker;

    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    async fn close(self) -> Result<(), Error> {
        Ok(())
    }
}
