//! The poll loop behind [`Consumer::run`](super::Consumer::run).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use tokio::time::{Instant, Sleep};
use tower::Service;

use super::job::{Finished, Job, Settling};
use super::lanes::{Lanes, Ordering};
use super::Summary;
use crate::adapter::{Delivery, Subscriber};
use crate::error::{error_chain, BoxError, Error};
use crate::message::Message;
use crate::outcome::Outcome;

/// How many steps the loop takes before yielding to the scheduler, so a consumer whose
/// source is always ready (the in-memory broker) does not starve other tasks.
const BUDGET: usize = 128;

pub(super) struct Limits {
    pub(super) max_in_flight: usize,
    pub(super) ordering: Ordering,
    pub(super) shutdown_timeout: Duration,
    pub(super) settle_timeout: Duration,
    pub(super) settling: Settling,
}

enum Phase {
    /// Pulling and handling.
    Running,
    /// No more pulls; in-flight work finishes until the deadline.
    Draining { deadline: Pin<Box<Sleep>> },
    /// Deadline passed: unfinished work was settled as `Retry`; waiting for those
    /// settlements until the settle deadline.
    Aborted { deadline: Pin<Box<Sleep>> },
}

pub(super) struct Runner<S, Svc>
where
    S: Subscriber,
    Svc: Service<Message>,
{
    subscriber: S,
    service: Svc,
    jobs: FuturesUnordered<Job<ErrInto<Svc::Future>, S::Acker>>,
    lanes: Lanes<Delivery<S::Acker>>,
    runnable: VecDeque<Delivery<S::Acker>>,
    limits: Limits,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    phase: Phase,
    source_done: bool,
    pub(super) summary: Summary,
    pub(super) error: Option<Error>,
}

impl<S, Svc> Runner<S, Svc>
where
    S: Subscriber,
    Svc: Service<Message, Response = Outcome>,
    Svc::Error: Into<BoxError>,
    Svc::Future: Send + 'static,
{
    pub(super) fn new(
        subscriber: S,
        service: Svc,
        limits: Limits,
        shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Self {
        Runner {
            subscriber,
            service,
            jobs: FuturesUnordered::new(),
            lanes: Lanes::new(),
            runnable: VecDeque::new(),
            limits,
            shutdown,
            phase: Phase::Running,
            source_done: false,
            summary: Summary::default(),
            error: None,
        }
    }

    pub(super) fn into_subscriber(self) -> S {
        self.subscriber
    }

    /// Received but unsettled deliveries: the quantity bounded by `max_in_flight`.
    fn outstanding(&self) -> usize {
        self.jobs.len() + self.runnable.len() + self.lanes.waiting()
    }

    /// Drives the consumer until it has stopped and settled everything it received.
    pub(super) fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut budget = BUDGET;
        loop {
            let mut progressed = false;

            // 1. Collect finished jobs; free their lanes.
            while let Poll::Ready(Some(done)) = self.jobs.poll_next_unpin(cx) {
                self.finished(done);
                progressed = true;
            }

            // 2. Phase changes: shutdown requested, source ended, deadlines.
            self.poll_phase(cx);
            if let Phase::Aborted { .. } = self.phase {
                if self.jobs.is_empty() {
                    return Poll::Ready(());
                }
            } else if self.stopping() && self.outstanding() == 0 {
                return Poll::Ready(());
            }

            // 3. Start work: waiting lane successors first, then new deliveries.
            if self.can_dispatch() {
                match self.service.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        if let Some(delivery) = self.runnable.pop_front() {
                            self.dispatch(delivery);
                            progressed = true;
                        } else {
                            match Pin::new(&mut self.subscriber).poll_next(cx) {
                                Poll::Ready(Some(Ok(delivery))) => {
                                    self.summary.received += 1;
                                    self.admit(delivery);
                                    progressed = true;
                                }
                                Poll::Ready(Some(Err(e))) => {
                                    self.summary.source_errors += 1;
                                    tracing::warn!(error = %error_chain(&e), "subscriber reported an error");
                                    progressed = true;
                                }
                                Poll::Ready(None) => {
                                    tracing::info!("subscriber closed; draining");
                                    self.source_done = true;
                                    progressed = true;
                                }
                                Poll::Pending => {}
                            }
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        let e: BoxError = e.into();
                        tracing::error!(error = %error_chain(&*e), "service stack failed in poll_ready; stopping");
                        self.error = Some(Error::Service(e));
                        self.source_done = true;
                        progressed = true;
                    }
                    Poll::Pending => {}
                }
            }

            if !progressed {
                return Poll::Pending;
            }
            budget -= 1;
            if budget == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }

    fn stopping(&self) -> bool {
        !matches!(self.phase, Phase::Running) || self.source_done
    }

    fn can_dispatch(&self) -> bool {
        match self.phase {
            Phase::Aborted { .. } => false,
            _ if self.error.is_some() => false,
            _ if !self.runnable.is_empty() => true,
            Phase::Running => {
                !self.source_done && self.outstanding() < self.limits.max_in_flight
            }
            Phase::Draining { .. } => false,
        }
    }

    fn poll_phase(&mut self, cx: &mut Context<'_>) {
        if let Phase::Running = self.phase {
            let requested = self.shutdown.as_mut().poll(cx).is_ready();
            if requested || self.source_done {
                if requested {
                    tracing::info!(
                        in_flight = self.outstanding(),
                        timeout = ?self.limits.shutdown_timeout,
                        "shutdown requested; draining in-flight messages"
                    );
                }
                self.phase = Phase::Draining {
                    deadline: Box::pin(tokio::time::sleep(self.limits.shutdown_timeout)),
                };
            }
        }
        if let Phase::Draining { deadline } = &mut self.phase {
            if deadline.as_mut().poll(cx).is_ready() {
                self.abort();
                let mut deadline =
                    Box::pin(tokio::time::sleep_until(Instant::now() + self.limits.settle_timeout));
                // Register the new timer with this task.
                let _ = deadline.as_mut().poll(cx);
                self.phase = Phase::Aborted { deadline };
            }
        }
        if let Phase::Aborted { deadline } = &mut self.phase {
            if deadline.as_mut().poll(cx).is_ready() && !self.jobs.is_empty() {
                tracing::error!(
                    unsettled = self.jobs.len(),
                    "settlements did not finish before the settle timeout; dropping them (the broker redelivers unsettled messages)"
                );
                self.summary.abandoned += self.jobs.len() as u64;
                self.jobs = FuturesUnordered::new();
            }
        }
    }

    /// Shutdown deadline: unfinished handlers are dropped and settled `Retry`, as are
    /// deliveries that never started.
    fn abort(&mut self) {
        let mut aborted = 0u64;
        for job in Pin::new(&mut self.jobs).iter_pin_mut() {
            job.abort();
            aborted += 1;
        }
        let waiting: Vec<_> = self
            .runnable
            .drain(..)
            .chain(self.lanes.drain_waiting())
            .collect();
        for delivery in waiting {
            let (message, acker) = delivery.into_parts();
            let key = self.limits.ordering.lane_of(&message);
            self.jobs.push(Job::settle_only(
                message.id().clone(),
                key,
                acker,
                self.limits.settling,
                Outcome::RETRY_NOW,
            ));
            aborted += 1;
        }
        self.summary.interrupted += aborted;
        tracing::warn!(
            interrupted = aborted,
            "shutdown deadline passed; unfinished messages settled as retry"
        );
    }

    /// A new delivery: run it now, or queue it behind its key's lane.
    fn admit(&mut self, delivery: Delivery<S::Acker>) {
        match self.limits.ordering.lane_of(delivery.message()) {
            None => self.dispatch(delivery),
            Some(key) => {
                if let Some(delivery) = self.lanes.claim(&key, delivery) {
                    self.dispatch(delivery);
                }
            }
        }
    }

    /// Calls the (ready) service and tracks the job.
    fn dispatch(&mut self, delivery: Delivery<S::Acker>) {
        let (message, acker) = delivery.into_parts();
        let id = message.id().clone();
        let key = self.limits.ordering.lane_of(&message);
        let fut = self.service.call(message);
        self.jobs.push(Job::handling(
            id,
            key,
            acker,
            self.limits.settling,
            ErrInto { fut },
        ));
    }

    fn finished(&mut self, done: Finished) {
        match &done.outcome {
            Outcome::Ack => self.summary.acked += 1,
            Outcome::Retry { .. } => self.summary.retried += 1,
            Outcome::DeadLetter(_) => self.summary.dead_lettered += 1,
            Outcome::Drop(_) => self.summary.dropped += 1,
        }
        if let Err(e) = &done.settled {
            self.summary.settle_failures += 1;
            tracing::warn!(
                message_id = %done.id,
                outcome = done.outcome.as_str(),
                error = %error_chain(&**e),
                "settling failed; the broker will redeliver the message"
            );
        }
        if let Some(key) = done.key {
            if let Some(next) = self.lanes.release(&key) {
                self.runnable.push_back(next);
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// Converts the service's error into a [`BoxError`].
    pub(super) struct ErrInto<F> {
        #[pin]
        fut: F,
    }
}

impl<F, E> Future for ErrInto<F>
where
    F: Future<Output = Result<Outcome, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Outcome, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().fut.poll(cx).map_err(Into::into)
    }
}

