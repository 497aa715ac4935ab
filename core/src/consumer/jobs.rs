//! The stack's futures in flight: one reusable slot per runner entry.
//!
//! `FuturesUnordered` allocates a task for every future pushed and moves the future
//! several times on the way in; for the recommended stack's 824-byte future that was
//! ≈ 340 instructions of `memcpy` plus an allocation and a free per message (callgrind,
//! in-memory drain). Here each slot is a box allocated once, the first time that many
//! jobs run at once, and reused for the life of the consumer together with its waker: a
//! future is moved once, into its slot, and nothing is allocated per message. The slot
//! count is bounded by the runner's entries (`max_in_flight`).
//!
//! Wakeups: every slot has its own waker, which queues the slot's index (once until it
//! is polled again) and wakes the runner's task. A future that completes on its first
//! poll (a handler with nothing to wait for) never touches the queue.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// A set of futures, each in the slot its runner entry names; see the module docs.
pub(crate) struct Jobs<F> {
    slots: Vec<Slot<F>>,
    /// Slots to poll before looking at the wake queue: new jobs and woken ones.
    due: VecDeque<usize>,
    woken: Arc<Woken>,
    /// Slots holding a future.
    len: usize,
}

struct Slot<F> {
    fut: Pin<Box<Option<F>>>,
    flag: Arc<SlotWaker>,
    waker: Waker,
}

/// What the slots' wakers share with the set.
struct Woken {
    queue: Mutex<Vec<usize>>,
    /// The task polling the set.
    runner: AtomicWaker,
}

struct SlotWaker {
    index: usize,
    /// In `Woken::queue` and not polled since.
    queued: AtomicBool,
    woken: Arc<Woken>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            lock(&self.woken.queue).push(self.index);
            self.woken.runner.wake();
        }
    }
}

impl<F: Future> Jobs<F> {
    pub(crate) fn new() -> Self {
        Jobs {
            slots: Vec::new(),
            due: VecDeque::new(),
            woken: Arc::new(Woken {
                queue: Mutex::new(Vec::new()),
                runner: AtomicWaker::new(),
            }),
            len: 0,
        }
    }

    /// Futures in the set.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Puts `fut` in slot `index` (which must be free) and schedules its first poll.
    pub(crate) fn insert(&mut self, index: usize, fut: F) {
        while self.slots.len() <= index {
            let flag = Arc::new(SlotWaker {
                index: self.slots.len(),
                queued: AtomicBool::new(false),
                woken: self.woken.clone(),
            });
            self.slots.push(Slot {
                fut: Box::pin(None),
                waker: Waker::from(flag.clone()),
                flag,
            });
        }
        let slot = &mut self.slots[index];
        debug_assert!(slot.fut.is_none(), "job slot {index} is taken");
        if slot.fut.is_none() {
            self.len += 1;
        }
        slot.fut.set(Some(fut));
        self.due.push_back(index);
    }

    /// Drops every future (the shutdown deadline).
    pub(crate) fn clear(&mut self) {
        for slot in &mut self.slots {
            slot.fut.set(None);
        }
        self.len = 0;
        self.due.clear();
        lock(&self.woken.queue).clear();
    }

    /// Polls due futures until one completes: `Ready(Some((slot, output)))`; `Ready(None)`
    /// when the set is empty; `Pending` when nothing is due (the task is woken when a
    /// future is).
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, F::Output)>> {
        // A future that wakes itself while polled (a `yield_now` loop) is due again at
        // once; past this many polls, yield to the scheduler instead.
        let mut polls_left = self.slots.len() + 1;
        loop {
            if let Some(index) = self.due.pop_front() {
                let slot = &mut self.slots[index];
                // Cleared before polling: a wake from now on queues the slot again.
                slot.flag.queued.store(false, Ordering::Release);
                let Some(fut) = slot.fut.as_mut().as_pin_mut() else {
                    // A stale wake of a slot that completed since.
                    continue;
                };
                if polls_left == 0 {
                    self.due.push_front(index);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                polls_left -= 1;
                if let Poll::Ready(output) = fut.poll(&mut Context::from_waker(&slot.waker)) {
                    slot.fut.set(None);
                    self.len -= 1;
                    return Poll::Ready(Some((index, output)));
                }
                continue;
            }
            if self.len == 0 {
                return Poll::Ready(None);
            }
            self.woken.runner.register(cx.waker());
            let mut queue = lock(&self.woken.queue);
            if queue.is_empty() {
                return Poll::Pending;
            }
            self.due.extend(queue.drain(..));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The queue is a plain list; a panic while it was held cannot leave it inconsistent.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::poll_fn;
    use std::sync::atomic::AtomicUsize;

    fn noop_cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    #[test]
    fn ready_futures_complete_in_insertion_order_and_slots_are_reused() {
        let mut jobs = Jobs::new();
        jobs.insert(0, std::future::ready("a"));
        jobs.insert(3, std::future::ready("b"));
        let mut cx = noop_cx();
        assert_eq!(jobs.poll_next(&mut cx), Poll::Ready(Some((0, "a"))));
        assert_eq!(jobs.poll_next(&mut cx), Poll::Ready(Some((3, "b"))));
        assert_eq!(jobs.poll_next(&mut cx), Poll::Ready(None));
        jobs.insert(0, std::future::ready("c"));
        assert_eq!(jobs.poll_next(&mut cx), Poll::Ready(Some((0, "c"))));
    }

    #[tokio::test]
    async fn a_woken_future_is_polled_again_and_others_are_not() {
        let mut jobs = Jobs::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = polls.clone();
        let mut rx = rx;
        jobs.insert(
            1,
            Box::pin(poll_fn(move |cx| {
                counted.fetch_add(1, Ordering::Relaxed);
                Pin::new(&mut rx).poll(cx).map(|r| r.unwrap_or(0))
            })) as Pin<Box<dyn Future<Output = u32> + Send>>,
        );
        jobs.insert(
            2,
            Box::pin(std::future::pending::<u32>()) as Pin<Box<dyn Future<Output = u32> + Send>>,
        );
        let mut cx = noop_cx();
        assert!(jobs.poll_next(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 1);
        // Nothing woke: nothing is polled.
        assert!(jobs.poll_next(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 1);
        tx.send(7).unwrap();
        assert_eq!(jobs.poll_next(&mut cx), Poll::Ready(Some((1, 7))));
        assert_eq!(polls.load(Ordering::Relaxed), 2);
        assert_eq!(jobs.len(), 1);
        jobs.clear();
        assert_eq!(jobs.len(), 0);
        assert_eq!(jobs.poll_next(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn a_future_that_keeps_waking_itself_yields() {
        let mut jobs = Jobs::new();
        jobs.insert(
            0,
            poll_fn(|cx: &mut Context<'_>| {
                cx.waker().wake_by_ref();
                Poll::<()>::Pending
            }),
        );
        let mut cx = noop_cx();
        // Returns (Pending) instead of polling it forever.
        assert!(jobs.poll_next(&mut cx).is_pending());
        assert!(jobs.poll_next(&mut cx).is_pending());
    }

    #[test]
    fn clearing_drops_the_futures() {
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Flag(dropped.clone());
        let mut jobs = Jobs::new();
        jobs.insert(0, async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        assert!(jobs.poll_next(&mut noop_cx()).is_pending());
        assert!(!dropped.load(Ordering::Relaxed));
        jobs.clear();
        assert!(dropped.load(Ordering::Relaxed));
    }
}
