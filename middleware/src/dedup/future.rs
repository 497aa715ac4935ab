//! The response future of [`Dedup`](super::Dedup).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use wharf::{BoxError, Outcome};

use super::store::{ClaimToken, DedupKey, DedupStore};

pin_project! {
    /// Response future of [`Dedup`](super::Dedup).
    ///
    /// While the inner service runs, the future holds the message's claim. Dropping it
    /// unfinished (a shutdown deadline aborting the handler) releases the claim, so the
    /// redelivery runs at once instead of waiting out the lease as a presumed duplicate.
    pub struct ResponseFuture<F, St: DedupStore> {
        claim: Option<ClaimGuard<St>>,
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // The message is claimed (or has no key): the inner service is handling it.
        Called { #[pin] fut: F },
        // Decided without the inner service: a duplicate. Taken on the first poll.
        Decided { outcome: Option<Outcome> },
    }
}

impl<F, St: DedupStore> ResponseFuture<F, St> {
    pub(crate) fn called(fut: F, claim: Option<ClaimGuard<St>>) -> Self {
        ResponseFuture {
            claim,
            state: State::Called { fut },
        }
    }

    pub(crate) fn decided(outcome: Outcome) -> Self {
        ResponseFuture {
            claim: None,
            state: State::Decided {
                outcome: Some(outcome),
            },
        }
    }
}

impl<F, St, E> Future for ResponseFuture<F, St>
where
    F: Future<Output = Result<Outcome, E>>,
    E: Into<BoxError>,
    St: DedupStore,
{
    type Output = Result<Outcome, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            StateProj::Called { fut } => {
                let result = ready!(fut.poll(cx)).map_err(Into::into);
                if let Some(claim) = this.claim.take() {
                    match result {
                        // Only a success is remembered: marking anything else would lose
                        // the redelivery of a message that was never handled.
                        Ok(Outcome::Ack) => claim.complete(),
                        _ => claim.release(),
                    }
                }
                Poll::Ready(result)
            }
            StateProj::Decided { outcome } => Poll::Ready(Ok(outcome
                .take()
                .expect("dedup::ResponseFuture polled after completion"))),
        }
    }
}

impl<F, St: DedupStore> fmt::Debug for ResponseFuture<F, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Called { .. } => "Called",
            State::Decided { .. } => "Decided",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("claim", &self.claim)
            .finish()
    }
}

/// A held claim: completed or released explicitly, released when dropped.
pub(crate) struct ClaimGuard<St: DedupStore> {
    store: St,
    key: DedupKey,
    token: ClaimToken,
    window: Duration,
    armed: bool,
}

impl<St: DedupStore> ClaimGuard<St> {
    pub(crate) fn new(store: St, key: DedupKey, token: ClaimToken, window: Duration) -> Self {
        ClaimGuard {
            store,
            key,
            token,
            window,
            armed: true,
        }
    }

    fn complete(mut self) {
        self.armed = false;
        self.store.complete(&self.key, self.token, self.window);
    }

    fn release(mut self) {
        self.armed = false;
        self.store.release(&self.key, self.token);
    }
}

impl<St: DedupStore> Drop for ClaimGuard<St> {
    fn drop(&mut self) {
        if self.armed {
            tracing::debug!(key = %self.key, "handler dropped unfinished; releasing its claim");
            self.store.release(&self.key, self.token);
        }
    }
}

impl<St: DedupStore> fmt::Debug for ClaimGuard<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimGuard")
            .field("key", &self.key)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}
