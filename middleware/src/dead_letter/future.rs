use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use wharf::error::{classify, error_chain};
use wharf::{BoxError, ErrorKind, Failure, Message, Outcome, PublishError, Publisher};

use super::layer::Config;
use wharf::adapter::dead_letter::{dead_letter_message, fit};

type Publishing = Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send>>;

/// What is recorded once the dead letter is confirmed.
struct Published {
    /// The message's origin: its consumer (labels, and the runtime's count of dead
    /// letters) and source.
    origin: wharf::Origin,
    source: String,
    reason: String,
    attempt: u32,
}

pin_project! {
    /// Response future of [`DeadLetter`](super::DeadLetter).
    pub struct ResponseFuture<F> {
        message: Option<Message>,
        publisher: Arc<dyn Publisher>,
        config: Arc<Config>,
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // The inner service is handling the message.
        Called { #[pin] fut: F },
        // The dead letter is being published; the outcome waits for the confirmation.
        Publishing { fut: Publishing, published: Published },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        fut: F,
        message: Message,
        publisher: Arc<dyn Publisher>,
        config: Arc<Config>,
    ) -> Self {
        ResponseFuture {
            message: Some(message),
            publisher,
            config,
            state: State::Called { fut },
        }
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Outcome, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Outcome, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { fut } => {
                    let failure = match fut.poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(Outcome::DeadLetter(failure))) => failure,
                        Poll::Ready(Ok(other)) => return Poll::Ready(Ok(other)),
                        Poll::Ready(Err(e)) => {
                            let e: BoxError = e.into();
                            let class = classify(&*e);
                            if class.kind == ErrorKind::Transient {
                                return Poll::Ready(Err(e));
                            }
                            Failure::new(class.reason, error_chain(&*e))
                        }
                    };
                    let message = this
                        .message
                        .take()
                        .expect("the message is kept until the outcome is known");
                    let destination = this.config.destination.resolve(&message);
                    let mut letter = dead_letter_message(
                        &message,
                        &failure,
                        crate::telemetry::consumer_of(&message),
                        this.config.max_error_len,
                    );
                    if let Some(limit) = this.publisher.max_message_bytes() {
                        if !fit(&mut letter, limit) {
                            tracing::error!(
                                message_id = %message.id(),
                                limit,
                                size = wharf::adapter::dead_letter::encoded_len(&letter),
                                %destination,
                                "the dead letter exceeds the destination's size limit even with its error text and own headers cut; raise the limit"
                            );
                        }
                    }
                    tracing::warn!(
                        message_id = %message.id(),
                        reason = %failure.reason(),
                        error = %failure.error(),
                        %destination,
                        "dead-lettering message"
                    );
                    let publisher = this.publisher.clone();
                    let fut: Publishing =
                        Box::pin(async move { publisher.publish(&destination, letter).await });
                    let published = Published {
                        origin: message.origin().clone(),
                        source: message.origin().source().to_owned(),
                        reason: failure.reason().as_str().to_owned(),
                        attempt: message.attempt(),
                    };
                    this.state.set(State::Publishing { fut, published });
                }
                StateProj::Publishing { fut, published } => {
                    return match fut.as_mut().poll(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(Ok(())) => {
                            published.origin.count_dead_letter();
                            crate::telemetry::dead_letter(
                                published
                                    .origin
                                    .consumer()
                                    .unwrap_or(crate::telemetry::UNNAMED),
                                &published.source,
                                &published.reason,
                            );
                            Poll::Ready(Ok(Outcome::Ack))
                        }
                        Poll::Ready(Err(e)) => {
                            let after = this.config.publish_failure_backoff(published.attempt);
                            crate::telemetry::settle_failure(
                                published
                                    .origin
                                    .consumer()
                                    .unwrap_or(crate::telemetry::UNNAMED),
                                &published.source,
                                "dead_letter_publish",
                            );
                            tracing::error!(
                                message_id = %e.message().id(),
                                destination = e.destination(),
                                attempt = published.attempt,
                                retry_after = ?after,
                                error = %error_chain(&e),
                                "publishing the dead letter failed; the message will be redelivered"
                            );
                            Poll::Ready(Ok(Outcome::Retry { after }))
                        }
                    };
                }
            }
        }
    }
}
