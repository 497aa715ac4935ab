//! The service that runs a handler: the innermost layer of every stack.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

use super::{FromMessage, Handler};
use crate::error::BoxError;
use crate::message::Message;
use crate::outcome::Outcome;

/// A [`Handler`] as a `tower::Service<Message, Response = Outcome, Error = BoxError>`.
///
/// Success is [`Outcome::Ack`]; a handler error (or an extraction failure such as a
/// payload that does not decode) is returned as the service's error, carrying its
/// classification (see [`classify`](crate::error::classify)). Layers outside turn errors
/// into outcomes; the runtime maps whatever error is left (transient ⇒ retry, permanent ⇒
/// dead letter).
///
/// `S` is the state its extractors see ([`State`](super::State)); `()` without one.
///
/// # Clone
///
/// The handler lives behind an `Arc`; clones share it and clone the state.
pub struct HandlerService<H, T, S = ()> {
    handler: Arc<H>,
    state: S,
    _input: PhantomData<fn() -> T>,
}

impl<H, T> HandlerService<H, T> {
    /// Wraps a handler.
    pub fn new(handler: H) -> Self {
        HandlerService::with_state(handler, ())
    }
}

impl<H, T, S> HandlerService<H, T, S> {
    /// Wraps a handler whose extractors see `state`.
    pub fn with_state(handler: H, state: S) -> Self {
        HandlerService {
            handler: Arc::new(handler),
            state,
            _input: PhantomData,
        }
    }

    /// The handler.
    pub fn get_ref(&self) -> &H {
        &self.handler
    }

    /// The state.
    pub fn state(&self) -> &S {
        &self.state
    }
}

impl<H, T, S: Clone> Clone for HandlerService<H, T, S> {
    fn clone(&self) -> Self {
        HandlerService {
            handler: self.handler.clone(),
            state: self.state.clone(),
            _input: PhantomData,
        }
    }
}

impl<H, T, S> fmt::Debug for HandlerService<H, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerService")
            .field("handler", &std::any::type_name::<H>())
            .field("state", &std::any::type_name::<S>())
            .finish()
    }
}

impl<H, T, S> Service<Message> for HandlerService<H, T, S>
where
    H: Handler<T>,
    T: FromMessage<S>,
{
    type Response = Outcome;
    type Error = BoxError;
    type Future = HandlerFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, message: Message) -> Self::Future {
        match T::from_message(&message, &self.state) {
            Err(e) => HandlerFuture {
                state: State::Rejected(Some(e.into())),
            },
            Ok(input) => {
                let handler = self.handler.clone();
                HandlerFuture {
                    state: State::Running(Box::pin(async move {
                        handler.handle(input).await.map_err(BoxError::from)
                    })),
                }
            }
        }
    }
}

/// Response future of [`HandlerService`].
///
/// The handler's own future is boxed once per message (its type cannot be named); a
/// message rejected by its extractor costs no allocation.
pub struct HandlerFuture {
    state: State,
}

type Running = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

enum State {
    /// The extractor failed; the error is returned on first poll.
    Rejected(Option<BoxError>),
    /// The handler is running.
    Running(Running),
}

impl Future for HandlerFuture {
    type Output = Result<Outcome, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Rejected(err) => Poll::Ready(Err(err
                .take()
                .expect("HandlerFuture polled after completion"))),
            State::Running(fut) => fut.as_mut().poll(cx).map_ok(|()| Outcome::Ack),
        }
    }
}

impl fmt::Debug for HandlerFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Rejected(_) => "rejected",
            State::Running(_) => "running",
        };
        f.debug_struct("HandlerFuture")
            .field("state", &state)
            .finish()
    }
}
