//! The poll loop behind [`Consumer::run`](super::Consumer::run).

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use slab::Slab;
use tokio::time::Sleep;
use tower::Service;

use super::job::{final_outcome, Entry, Finished, Handling, RetryTimer, Settle, Settling};
use super::jobs::Jobs;
use super::lanes::{DeliveryOrder, Lanes};
use super::Summary;
use crate::adapter::{Acker, Delivery, Lease, Subscriber};
use crate::error::{error_chain, BoxError, Error};
use crate::message::{Message, Stamp};
use crate::outcome::Outcome;

/// How many steps the loop takes before yielding to the scheduler, so a consumer whose
/// source is always ready (the in-memory broker) does not starve other tasks.
const BUDGET: usize = 128;

pub(super) struct Limits {
    pub(super) max_in_flight: usize,
    pub(super) ordering: DeliveryOrder,
    pub(super) shutdown_timeout: Duration,
    pub(super) settle_timeout: Duration,
    /// Also says whether the adapter leaves `Retry` to the runtime (`retry_in_lane`).
    pub(super) settling: Settling,
    /// The broker delivers again what is handed back (settled `Retry` while stopping).
    /// Where it cannot (Core NATS), in-lane retries go on while draining, until the
    /// shutdown deadline.
    pub(super) hand_back_on_stop: bool,
    /// The consumer's name (and the counters layers report to), stamped on every
    /// message's origin before the stack sees it (layers read it there: metrics labels,
    /// dedup keys, dead-letter headers).
    pub(super) stamp: Arc<Stamp>,
    /// Stop once nothing arrived for this long and nothing is in flight.
    pub(super) stop_when_idle: Option<Duration>,
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

type AckFuture<S> = <<S as Subscriber>::Acker as Acker>::Future;

pub(super) struct Runner<S, Svc>
where
    S: Subscriber,
    Svc: Service<Message>,
{
    subscriber: S,
    service: Svc,
    /// Deliveries handed to the stack and not yet settled: their ackers.
    entries: Slab<Entry<S::Acker>>,
    /// The stack's futures, one per entry, in the entry's slot.
    handling: Jobs<Handling<ErrInto<Svc::Future>>>,
    /// Settlements that did not complete on their first poll.
    settling: FuturesUnordered<Settle<AckFuture<S>>>,
    lanes: Lanes<Delivery<S::Acker>>,
    /// Lane successors whose lane was released, with their lane key.
    runnable: VecDeque<(Delivery<S::Acker>, Bytes)>,
    /// In-lane retries waiting out their delay (their entries stay in `entries`, their
    /// lanes stay held).
    retry_timers: FuturesUnordered<RetryTimer>,
    /// In-lane retries whose delay is over, to run again before anything new.
    retry_due: VecDeque<usize>,
    limits: Limits,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// With `stop_when_idle`: the next idle check, and `summary.received` at the last.
    idle: Option<(Pin<Box<Sleep>>, u64)>,
    phase: Phase,
    source_done: bool,
    pub(super) summary: Summary,
    pub(super) error: Option<Error>,
    /// The subscriber's last item, when it was an error: a stream that ends right after
    /// one ended because of it (a client that cannot go on), and the run returns it.
    last_source_error: Option<Error>,
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
            entries: Slab::new(),
            handling: Jobs::new(),
            settling: FuturesUnordered::new(),
            lanes: Lanes::new(),
            runnable: VecDeque::new(),
            retry_timers: FuturesUnordered::new(),
            retry_due: VecDeque::new(),
            idle: limits
                .stop_when_idle
                .map(|idle| (Box::pin(tokio::time::sleep(idle)), 0)),
            limits,
            shutdown,
            phase: Phase::Running,
            source_done: false,
            last_source_error: None,
            summary: Summary::default(),
            error: None,
        }
    }

    pub(super) fn into_subscriber(self) -> S {
        self.subscriber
    }

    /// Received but unsettled deliveries: the quantity bounded by `max_in_flight`.
    fn outstanding(&self) -> usize {
        self.entries.len() + self.settling.len() + self.runnable.len() + self.lanes.waiting()
    }

    /// Drives the consumer until it has stopped and settled everything it received.
    pub(super) fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut budget = BUDGET;
        loop {
            let mut progressed = false;

            // 1. Collect finished work: handled messages start settling; settled ones
            //    free their lanes.
            while let Poll::Ready(Some((slot, result))) = self.handling.poll_next(cx) {
                let entry = &self.entries[slot];
                let outcome = final_outcome(result, &entry.id, entry.attempt, self.limits.settling);
                self.handled(slot, outcome, cx);
                progressed = true;
            }
            while let Poll::Ready(Some(slot)) = self.retry_timers.poll_next_unpin(cx) {
                self.retry_due.push_back(slot);
                progressed = true;
            }
            while let Poll::Ready(Some(done)) = self.settling.poll_next_unpin(cx) {
                self.finished(done);
                progressed = true;
            }

            // 2. Phase changes: shutdown requested, source ended, deadlines.
            self.poll_phase(cx);
            if self.stopping() && self.outstanding() == 0 {
                return Poll::Ready(());
            }

            // 3. Start work: waiting lane successors first, then new deliveries.
            if self.can_dispatch() {
                match self.service.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        if let Some(slot) = self.retry_due.pop_front() {
                            self.rerun(slot, cx);
                            progressed = true;
                        } else if let Some((delivery, key)) = self.runnable.pop_front() {
                            self.dispatch(delivery, Some(key), cx);
                            progressed = true;
                        } else {
                            match Pin::new(&mut self.subscriber).poll_next(cx) {
                                Poll::Ready(Some(Ok(delivery))) => {
                                    self.last_source_error = None;
                                    self.summary.received += 1;
                                    self.admit(delivery, cx);
                                    progressed = true;
                                }
                                Poll::Ready(Some(Err(e))) => {
                                    self.summary.source_errors += 1;
                                    tracing::warn!(error = %error_chain(&e), "subscriber reported an error");
                                    self.last_source_error = Some(e);
                                    progressed = true;
                                }
                                Poll::Ready(None) => {
                                    if let Some(e) = self.last_source_error.take() {
                                        tracing::error!(error = %error_chain(&e), "the subscriber ended after this error; draining, then stopping with it");
                                        self.error = Some(e);
                                    } else {
                                        tracing::info!("subscriber closed; draining");
                                    }
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
            _ if !self.runnable.is_empty() || !self.retry_due.is_empty() => true,
            Phase::Running => !self.source_done && self.outstanding() < self.limits.max_in_flight,
            Phase::Draining { .. } => false,
        }
    }

    fn poll_phase(&mut self, cx: &mut Context<'_>) {
        if let Phase::Running = self.phase {
            let requested = self.shutdown.as_mut().poll(cx).is_ready() || self.idle_now(cx);
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
                if self.limits.hand_back_on_stop {
                    self.release_retries(cx);
                }
            }
        }
        if let Phase::Draining { deadline } = &mut self.phase {
            if deadline.as_mut().poll(cx).is_ready() {
                // `sleep` caps a huge timeout (`Duration::MAX`: never abandon) instead of
                // overflowing the clock.
                let mut deadline = Box::pin(tokio::time::sleep(self.limits.settle_timeout));
                // Register the new timer with this task.
                let _ = deadline.as_mut().poll(cx);
                self.phase = Phase::Aborted { deadline };
                self.abort(cx);
            }
        }
        if let Phase::Aborted { deadline } = &mut self.phase {
            if deadline.as_mut().poll(cx).is_ready() && !self.settling.is_empty() {
                tracing::error!(
                    unsettled = self.settling.len(),
                    "settlements did not finish before the settle timeout; dropping them (the broker redelivers unsettled messages)"
                );
                self.summary.abandoned += self.settling.len() as u64;
                self.settling = FuturesUnordered::new();
            }
        }
    }

    /// With `stop_when_idle`: whether a check is due and found nothing received since the
    /// last one and nothing in flight; re-arms the check otherwise.
    fn idle_now(&mut self, cx: &mut Context<'_>) -> bool {
        if self.idle.is_none() {
            return false;
        }
        let (received, outstanding) = (self.summary.received, self.outstanding());
        let (Some(every), Some((timer, seen))) = (self.limits.stop_when_idle, &mut self.idle)
        else {
            return false;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        if received == *seen && outstanding == 0 {
            tracing::info!(idle = ?every, "nothing received for the idle time; stopping");
            return true;
        }
        *seen = received;
        // `sleep` caps a huge duration instead of overflowing the clock.
        timer.set(tokio::time::sleep(every));
        // Registers the re-armed timer with this task.
        let _ = timer.as_mut().poll(cx);
        false
    }

    /// Shutdown deadline: every unfinished handler future is dropped and its delivery
    /// settled `Retry` (never `DeadLetter`), as are deliveries that never started.
    fn abort(&mut self, cx: &mut Context<'_>) {
        self.handling.clear();
        // Released when draining began; nothing is left here, but no slot may outlive
        // the entries drained below.
        self.retry_timers = FuturesUnordered::new();
        self.retry_due.clear();
        let mut interrupted = 0u64;
        let entries: Vec<_> = self.entries.drain().collect();
        for entry in entries {
            self.settle(entry, Outcome::RETRY_NOW, cx);
            interrupted += 1;
        }
        let waiting: Vec<_> = self
            .runnable
            .drain(..)
            .chain(self.lanes.drain_waiting())
            .collect();
        for (delivery, key) in waiting {
            let (message, acker) = delivery.into_parts();
            let entry = Entry {
                id: message.id().clone(),
                attempt: message.attempt(),
                key: Some(key),
                acker,
                message: None,
            };
            self.settle(entry, Outcome::RETRY_NOW, cx);
            interrupted += 1;
        }
        self.summary.interrupted += interrupted;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "shutdown deadline passed; unfinished messages settled as retry"
            );
        }
    }

    /// A new delivery: run it now, or queue it behind its key's lane.
    fn admit(&mut self, delivery: Delivery<S::Acker>, cx: &mut Context<'_>) {
        match self.limits.ordering.lane_of(delivery.message()) {
            None => self.dispatch(delivery, None, cx),
            Some(key) => {
                if let Some(delivery) = self.lanes.claim(&key, delivery) {
                    self.dispatch(delivery, Some(key), cx);
                }
            }
        }
    }

    /// Calls the (ready) service and tracks the delivery, which holds lane `key`.
    fn dispatch(&mut self, delivery: Delivery<S::Acker>, key: Option<Bytes>, cx: &mut Context<'_>) {
        let (mut message, acker) = delivery.into_parts();
        message.stamp_consumer(&self.limits.stamp);
        let entry = Entry {
            id: message.id().clone(),
            attempt: message.attempt(),
            key,
            acker,
            message: self.limits.settling.retry_in_lane.then(|| message.clone()),
        };
        if revoked(&entry.acker) {
            // Taken away while it waited behind its lane: the new owner delivers it.
            self.give_up_revoked(entry, cx);
            return;
        }
        let slot = self.entries.insert(entry);
        self.call(slot, message, cx);
    }

    /// A delivery whose lease was revoked: nothing more of it runs here. Settled `Retry`
    /// (the adapter ignores it; the new owner delivers the message again), which frees
    /// its lane for what waits behind it.
    fn give_up_revoked(&mut self, entry: Entry<S::Acker>, cx: &mut Context<'_>) {
        tracing::debug!(message_id = %entry.id, "the delivery's lease was revoked; left to the new owner");
        self.summary.revoked += 1;
        self.settle(entry, Outcome::RETRY_NOW, cx);
    }

    /// Runs an in-lane retry: the kept message again, its attempt raised by one, still
    /// holding its lane.
    fn rerun(&mut self, slot: usize, cx: &mut Context<'_>) {
        if revoked(&self.entries[slot].acker) {
            let entry = self.entries.remove(slot);
            self.give_up_revoked(entry, cx);
            return;
        }
        let entry = &mut self.entries[slot];
        let Some(kept) = entry.message.take() else {
            // Only entries with a kept message are ever scheduled for a rerun.
            debug_assert!(false, "in-lane retry without a kept message");
            return;
        };
        let attempt = kept.attempt().saturating_add(1);
        let message = kept.with_attempt(attempt);
        entry.attempt = attempt;
        entry.message = Some(message.clone());
        self.call(slot, message, cx);
    }

    fn call(&mut self, slot: usize, message: Message, cx: &mut Context<'_>) {
        // A panic in `call` itself (before any future exists) is caught too: the
        // delivery is retried and the consumer keeps running.
        let service = &mut self.service;
        match std::panic::catch_unwind(AssertUnwindSafe(|| service.call(message))) {
            Ok(fut) => self.handling.insert(slot, Handling::new(ErrInto { fut })),
            Err(panic) => {
                let entry = &self.entries[slot];
                let outcome =
                    final_outcome(Err(panic), &entry.id, entry.attempt, self.limits.settling);
                self.handled(slot, outcome, cx);
            }
        }
    }

    /// The stack is done with the delivery in `slot`: retry it in its lane (adapters with
    /// `retry_in_lane`, while running) or settle it.
    fn handled(&mut self, slot: usize, outcome: Outcome, cx: &mut Context<'_>) {
        if let Outcome::Retry { after } = outcome {
            let entry = &self.entries[slot];
            if revoked(&entry.acker) {
                let entry = self.entries.remove(slot);
                self.give_up_revoked(entry, cx);
                return;
            }
            self.limits.stamp.progress.failed_one();
            let retry_here = !self.stopping() || !self.limits.hand_back_on_stop;
            if retry_here && entry.message.is_some() {
                self.summary.retried_in_lane += 1;
                let timer = RetryTimer::new(slot, after, entry.acker.lease());
                self.retry_timers.push(timer);
                return;
            }
        }
        let entry = self.entries.remove(slot);
        self.settle(entry, outcome, cx);
    }

    /// Stopping: in-lane retries still waiting are settled `Retry` at once, which for
    /// these adapters means "leave it for the broker to deliver again".
    fn release_retries(&mut self, cx: &mut Context<'_>) {
        let slots: Vec<usize> = std::mem::take(&mut self.retry_timers)
            .into_iter()
            .map(|timer| timer.slot)
            .chain(self.retry_due.drain(..))
            .collect();
        if !slots.is_empty() {
            tracing::info!(
                waiting = slots.len(),
                "stopping: in-lane retries left for the broker to redeliver"
            );
        }
        for slot in slots {
            let entry = self.entries.remove(slot);
            self.settle(entry, Outcome::RETRY_NOW, cx);
        }
    }

    /// Starts settling; a settlement that completes on its first poll (no I/O, as in
    /// memory) is finished at once without being queued.
    fn settle(&mut self, entry: Entry<S::Acker>, outcome: Outcome, cx: &mut Context<'_>) {
        let Entry { id, key, acker, .. } = entry;
        let fut = acker.settle(outcome.clone());
        let mut settle = Settle::new(id, key, outcome, fut, self.limits.settle_timeout);
        match Pin::new(&mut settle).poll(cx) {
            Poll::Ready(done) => self.finished(done),
            Poll::Pending => self.settling.push(settle),
        }
    }

    fn finished(&mut self, done: Finished) {
        // Progress counts what the broker took: a settlement that failed or timed out is
        // redelivered, and counted when it is settled for good.
        let progress = done.settled.is_ok().then_some(&self.limits.stamp.progress);
        match &done.outcome {
            Outcome::Ack => {
                self.summary.acked += 1;
                if let Some(p) = progress {
                    p.settled_one(false);
                }
            }
            // Counted as a failure in `handled` (the stack's verdict); retries the
            // runtime settles itself (shutdown, revoked leases) are not failures.
            Outcome::Retry { .. } => self.summary.retried += 1,
            Outcome::DeadLetter(_) => {
                self.summary.dead_lettered += 1;
                if let Some(p) = progress {
                    p.settled_one(true);
                }
            }
            Outcome::Drop(_) => {
                self.summary.dropped += 1;
                if let Some(p) = progress {
                    p.settled_one(true);
                }
            }
        }
        if done.timed_out {
            self.summary.abandoned += 1;
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
            if self.stopping() && matches!(done.outcome, Outcome::Retry { .. }) {
                // The lane's head was handed back for a later (re)delivery: nothing
                // behind it may run in this process, or it would overtake the head.
                // They are handed back too, in order.
                self.hand_back_lane(&key);
            } else if let Some(next) = self.lanes.release(&key) {
                self.runnable.push_back((next, key));
            }
        }
    }

    /// Settles everything waiting in `key`'s lane `Retry` at once, unhandled, and frees
    /// the lane.
    fn hand_back_lane(&mut self, key: &Bytes) {
        let waiting = self.lanes.close(key);
        if waiting.is_empty() {
            return;
        }
        tracing::debug!(
            waiting = waiting.len(),
            "stopping: a lane's head was handed back; handing back the messages behind it unhandled"
        );
        self.summary.interrupted += waiting.len() as u64;
        for delivery in waiting {
            let (message, acker) = delivery.into_parts();
            let id = message.id().clone();
            // Queued rather than polled here (`finished` has no context); the run
            // loop polls them with the other settlements.
            let fut = acker.settle(Outcome::RETRY_NOW);
            self.settling.push(Settle::new(
                id,
                None,
                Outcome::RETRY_NOW,
                fut,
                self.limits.settle_timeout,
            ));
        }
    }
}

/// Whether the delivery settled by `acker` was taken away from this consumer.
fn revoked<A: Acker>(acker: &A) -> bool {
    acker.lease().is_some_and(Lease::is_revoked)
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
