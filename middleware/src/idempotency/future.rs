//! The response future of [`Idempotency`](super::Idempotency).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tower::Service;
use wharf::error::error_chain;
use wharf::{BoxError, Message, Outcome};

use super::error::StoreError;
use super::layer::Config;
use super::store::{Claim, ClaimToken, IdempotencyKey, IdempotencyStore};

type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

pin_project! {
    /// Response future of [`Idempotency`](super::Idempotency).
    ///
    /// Claims the key, runs the inner service only once the claim is granted, then
    /// completes or releases the claim *before* answering, so the outcome is never settled
    /// ahead of the store.
    ///
    /// Dropping it unfinished (a shutdown deadline aborting the handler) hands the pending
    /// release — or, if the handler had already succeeded, the pending completion — to a
    /// task on the current tokio runtime, so the redelivery does not wait out the lease.
    /// This is best effort: without a runtime, or if the store fails, the lease frees the
    /// key. A claim whose store call was still in progress when the future was dropped is
    /// likewise freed by its lease.
    pub struct ResponseFuture<S: Service<Message>> {
        config: Arc<Config>,
        claim: Option<Held>,
        #[pin]
        state: State<S>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S: Service<Message>> {
        // The store decides whether the message may run. The service made ready by
        // `poll_ready` and the message wait here; the handler never runs without a claim.
        Claiming {
            fut: StoreFuture<Claim>,
            store: Arc<dyn IdempotencyStore>,
            key: Option<IdempotencyKey>,
            service: Option<S>,
            message: Option<Message>,
        },
        // The claim is held (or the message has no key): the inner service handles it.
        Called { #[pin] fut: S::Future },
        // The claim is being completed (after `Ack`) or released; the result waits for it.
        Finishing {
            fut: StoreFuture<()>,
            result: Option<Result<Outcome, BoxError>>,
        },
        // Decided without the inner service. Taken on the first poll.
        Decided { result: Option<Result<Outcome, BoxError>> },
    }
}

impl<S: Service<Message>> ResponseFuture<S> {
    pub(crate) fn claiming(
        store: Arc<dyn IdempotencyStore>,
        key: IdempotencyKey,
        service: S,
        message: Message,
        config: Arc<Config>,
    ) -> Self {
        let fut: StoreFuture<Claim> = {
            let (store, key, lease) = (store.clone(), key.clone(), config.lease);
            Box::pin(async move { store.claim(&key, lease).await })
        };
        ResponseFuture {
            config,
            claim: None,
            state: State::Claiming {
                fut,
                store,
                key: Some(key),
                service: Some(service),
                message: Some(message),
            },
        }
    }

    pub(crate) fn called(fut: S::Future, config: Arc<Config>) -> Self {
        ResponseFuture {
            config,
            claim: None,
            state: State::Called { fut },
        }
    }

    pub(crate) fn decided(result: Result<Outcome, BoxError>, config: Arc<Config>) -> Self {
        ResponseFuture {
            config,
            claim: None,
            state: State::Decided {
                result: Some(result),
            },
        }
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<Message, Response = Outcome>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Outcome, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Claiming {
                    fut,
                    store,
                    key,
                    service,
                    message,
                } => {
                    let claim = ready!(fut.as_mut().poll(cx));
                    let message = message.take().expect("the message waits for the claim");
                    let key = key.take().expect("the key waits for the claim");
                    match claim {
                        Ok(Claim::Claimed(token)) => {
                            *this.claim =
                                Some(Held::new(store.clone(), key, token, this.config.retention));
                            let mut service = service
                                .take()
                                .expect("the ready service waits for the claim");
                            let fut = service.call(message);
                            this.state.set(State::Called { fut });
                        }
                        Ok(Claim::Completed) => {
                            tracing::debug!(
                                message_id = %message.id(),
                                %key,
                                "idempotency key already handled; acked without handling"
                            );
                            crate::telemetry::duplicate(
                                crate::telemetry::consumer_of(&message),
                                message.origin().source(),
                                "idempotency",
                            );
                            return Poll::Ready(Ok(Outcome::Ack));
                        }
                        Ok(Claim::InFlight) => {
                            let after = this.config.retry_in_flight_after;
                            tracing::debug!(
                                message_id = %message.id(),
                                %key,
                                ?after,
                                "idempotency key is being handled elsewhere; retrying later"
                            );
                            return Poll::Ready(Ok(Outcome::Retry { after }));
                        }
                        Err(e) => {
                            tracing::warn!(
                                message_id = %message.id(),
                                %key,
                                error = %error_chain(&*e),
                                "idempotency store failed; the message is not handled"
                            );
                            return Poll::Ready(Err(StoreError::new(e).into()));
                        }
                    }
                }
                StateProj::Called { fut } => {
                    let result = ready!(fut.poll(cx)).map_err(Into::into);
                    let Some(held) = this.claim.as_mut() else {
                        return Poll::Ready(result);
                    };
                    // Only a success is remembered: marking anything else would lose the
                    // redelivery of a message that was never handled.
                    let finish = if matches!(result, Ok(Outcome::Ack)) {
                        Finish::Complete
                    } else {
                        Finish::Release
                    };
                    let fut = held.finish(finish);
                    this.state.set(State::Finishing {
                        fut,
                        result: Some(result),
                    });
                }
                StateProj::Finishing { fut, result } => {
                    let done = ready!(fut.as_mut().poll(cx));
                    let mut held = this
                        .claim
                        .take()
                        .expect("a finishing future holds its claim");
                    held.armed = false;
                    if let Err(e) = done {
                        // Either way the outcome stands. After a success the work is done
                        // (retrying could only run it again); the claim keeps duplicates
                        // out until its lease runs out. After a failure the redelivery is
                        // retried as "in flight" until then.
                        tracing::error!(
                            key = %held.key,
                            action = held.pending.as_str(),
                            error = %error_chain(&*e),
                            "idempotency store failed; the claim will expire with its lease"
                        );
                    }
                    return Poll::Ready(result.take().expect("the result waits for the store"));
                }
                StateProj::Decided { result } => {
                    return Poll::Ready(
                        result
                            .take()
                            .expect("idempotency::ResponseFuture polled after completion"),
                    );
                }
            }
        }
    }
}

impl<S: Service<Message>> fmt::Debug for ResponseFuture<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Claiming { .. } => "Claiming",
            State::Called { .. } => "Called",
            State::Finishing { .. } => "Finishing",
            State::Decided { .. } => "Decided",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("claim", &self.claim)
            .finish()
    }
}

/// How a claim ends.
#[derive(Debug, Clone, Copy)]
enum Finish {
    Complete,
    Release,
}

impl Finish {
    fn as_str(self) -> &'static str {
        match self {
            Finish::Complete => "complete",
            Finish::Release => "release",
        }
    }
}

/// A granted claim. If dropped while armed, its pending action runs on a spawned task.
struct Held {
    store: Arc<dyn IdempotencyStore>,
    key: IdempotencyKey,
    token: ClaimToken,
    retention: Duration,
    /// What dropping the claim does: release while the handler runs; whatever is being
    /// done once it finished.
    pending: Finish,
    armed: bool,
}

impl Held {
    fn new(
        store: Arc<dyn IdempotencyStore>,
        key: IdempotencyKey,
        token: ClaimToken,
        retention: Duration,
    ) -> Self {
        Held {
            store,
            key,
            token,
            retention,
            pending: Finish::Release,
            armed: true,
        }
    }

    /// The store call that ends the claim with `finish`.
    fn finish(&mut self, finish: Finish) -> StoreFuture<()> {
        self.pending = finish;
        let (store, key, token, retention) = (
            self.store.clone(),
            self.key.clone(),
            self.token,
            self.retention,
        );
        Box::pin(async move {
            match finish {
                Finish::Complete => store.complete(&key, token, retention).await,
                Finish::Release => store.release(&key, token).await,
            }
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let pending = self.pending;
        let key = self.key.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                tracing::debug!(%key, action = pending.as_str(), "handler dropped unfinished; finishing its claim");
                let fut = self.finish(pending);
                runtime.spawn(async move {
                    if let Err(e) = fut.await {
                        tracing::warn!(
                            %key,
                            action = pending.as_str(),
                            error = %error_chain(&*e),
                            "idempotency store failed; the claim will expire with its lease"
                        );
                    }
                });
            }
            Err(_) => {
                tracing::warn!(
                    %key,
                    action = pending.as_str(),
                    "handler dropped outside a tokio runtime; the claim will expire with its lease"
                );
            }
        }
    }
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Held")
            .field("key", &self.key)
            .field("token", &self.token)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}
