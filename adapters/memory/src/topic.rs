//! A topic: an append-only log plus the delivery state of each consumer group.
//!
//! Every group has a cursor into the log and a window of *slots* for the offsets it has
//! delivered but not yet fully settled. A settled prefix of the window is dropped; the
//! log itself is trimmed below the lowest offset any group still needs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::Duration;

use wharf::adapter::dead_letter::{dead_letter_message, DEFAULT_MAX_ERROR_LEN};
use wharf::{Message, Origin, Outcome};

use crate::inspect::{DeliveryRecord, NativeDeadLetter};

/// Identifies a group within its topic.
pub(crate) type GroupIndex = usize;

pub(crate) struct Topic {
    pub(crate) name: Arc<str>,
    state: Mutex<TopicState>,
    /// `<name>.dlq`, where native dead letters of this topic's groups are published; set
    /// when the first member subscribes.
    dead_letter_topic: OnceLock<Arc<Topic>>,
}

pub(crate) struct TopicState {
    /// Offset of `log[0]`.
    base: u64,
    log: VecDeque<Message>,
    groups: Vec<Group>,
    group_index: HashMap<Arc<str>, GroupIndex>,
    history: bool,
    retain_acked: bool,
    /// Publishes to fail before succeeding again (fault injection).
    fail_publishes: u32,
}

struct Group {
    name: Arc<str>,
    /// Offset of `slots[0]`; everything below is settled.
    low: u64,
    slots: VecDeque<Slot>,
    /// Offsets due for redelivery, in the order they became due.
    ready: VecDeque<u64>,
    /// Subscribers waiting for a message, by subscriber id.
    waiters: Vec<(u64, Waker)>,
    /// Tasks waiting for the group to become idle, by registration id.
    idle_waiters: Vec<(u64, Waker)>,
    next_subscriber: u64,
    records: BTreeMap<u64, DeliveryRecord>,
    dead_letters: Vec<NativeDeadLetter>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    attempt: u32,
    state: SlotState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    InFlight,
    Delayed,
    Ready,
    Settled,
}

/// Wakers collected under the lock, woken after it is released.
#[derive(Default)]
pub(crate) struct Wake(Vec<Waker>);

impl Wake {
    fn extend_waiters(&mut self, waiters: &mut Vec<(u64, Waker)>) {
        self.0.extend(waiters.drain(..).map(|(_, w)| w));
    }

    pub(crate) fn wake(self) {
        for w in self.0 {
            w.wake();
        }
    }
}

/// What the acker does after a settlement.
pub(crate) enum Settled {
    /// Nothing more.
    Done,
    /// Schedule the redelivery after this delay.
    RetryAfter(Duration),
    /// Publish this copy to the dead-letter topic.
    DeadLetter(Message),
}

/// What `take` hands a subscriber.
pub(crate) struct Taken {
    pub(crate) message: Message,
    pub(crate) offset: u64,
}

impl Topic {
    pub(crate) fn new(name: Arc<str>, history: bool, retain_acked: bool) -> Self {
        Topic {
            name,
            state: Mutex::new(TopicState {
                base: 0,
                log: VecDeque::new(),
                groups: Vec::new(),
                group_index: HashMap::new(),
                history,
                retain_acked,
                fail_publishes: 0,
            }),
            dead_letter_topic: OnceLock::new(),
        }
    }

    /// Sets the topic native dead letters go to (once; later calls change nothing).
    pub(crate) fn set_dead_letter_topic(&self, topic: impl FnOnce() -> Arc<Topic>) {
        self.dead_letter_topic.get_or_init(topic);
    }

    /// The topic native dead letters go to, once a member subscribed.
    pub(crate) fn dead_letter_topic(&self) -> Option<&Arc<Topic>> {
        self.dead_letter_topic.get()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, TopicState> {
        // A panic while holding the lock leaves consistent state (every mutation is a
        // few field writes), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a message; wakes every waiting subscriber. `Err` when a fault was injected.
    pub(crate) fn publish(&self, message: Message) -> Result<u64, ()> {
        let mut wake = Wake::default();
        let offset = {
            let mut st = self.lock();
            if st.fail_publishes > 0 {
                st.fail_publishes -= 1;
                return Err(());
            }
            let offset = st.base + st.log.len() as u64;
            st.log.push_back(message);
            for g in &mut st.groups {
                wake.extend_waiters(&mut g.waiters);
            }
            offset
        };
        wake.wake();
        Ok(offset)
    }

    /// Makes the next `n` publishes fail.
    pub(crate) fn fail_publishes(&self, n: u32) {
        self.lock().fail_publishes = n;
    }

    /// Moves a delayed message back to the ready queue.
    pub(crate) fn redeliver_now(&self, group: GroupIndex, offset: u64) {
        let mut wake = Wake::default();
        {
            let mut st = self.lock();
            let g = &mut st.groups[group];
            if let Some(slot) = g.slot_mut(offset) {
                if slot.state == SlotState::Delayed {
                    slot.state = SlotState::Ready;
                    g.ready.push_back(offset);
                    wake.extend_waiters(&mut g.waiters);
                }
            }
        }
        wake.wake();
    }
}

impl TopicState {
    /// The group's index, creating it at the earliest retained offset if new.
    pub(crate) fn group(&mut self, name: &str) -> GroupIndex {
        if let Some(&i) = self.group_index.get(name) {
            return i;
        }
        let i = self.groups.len();
        self.groups.push(Group {
            name: name.into(),
            low: self.base,
            slots: VecDeque::new(),
            ready: VecDeque::new(),
            waiters: Vec::new(),
            idle_waiters: Vec::new(),
            next_subscriber: 0,
            records: BTreeMap::new(),
            dead_letters: Vec::new(),
        });
        self.group_index.insert(name.into(), i);
        i
    }

    pub(crate) fn group_name(&self, group: GroupIndex) -> Arc<str> {
        self.groups[group].name.clone()
    }

    pub(crate) fn find_group(&self, name: &str) -> Option<GroupIndex> {
        self.group_index.get(name).copied()
    }

    pub(crate) fn new_subscriber_id(&mut self, group: GroupIndex) -> u64 {
        let g = &mut self.groups[group];
        g.next_subscriber += 1;
        g.next_subscriber
    }

    fn end(&self) -> u64 {
        self.base + self.log.len() as u64
    }

    /// Takes up to `max` messages for `group`: due redeliveries first, then new ones.
    pub(crate) fn take(
        &mut self,
        topic: &Arc<str>,
        group: GroupIndex,
        max: usize,
        out: &mut impl FnMut(Taken),
    ) -> usize {
        let end = self.end();
        let history = self.history;
        let base = self.base;
        let g = &mut self.groups[group];
        let mut n = 0;
        while n < max {
            let (offset, attempt) = if let Some(offset) = g.ready.pop_front() {
                let slot = g
                    .slot_mut(offset)
                    .expect("a ready offset lies in the group's window");
                slot.attempt += 1;
                slot.state = SlotState::InFlight;
                (offset, slot.attempt)
            } else {
                let next = g.low + g.slots.len() as u64;
                if next >= end {
                    break;
                }
                g.slots.push_back(Slot {
                    attempt: 1,
                    state: SlotState::InFlight,
                });
                (next, 1)
            };
            let stored = &self.log[(offset - base) as usize];
            let message = stored
                .clone()
                .with_origin(Origin::new(topic.clone()).with_offset(offset))
                .with_attempt(attempt);
            if history {
                let record = g
                    .records
                    .entry(offset)
                    .or_insert_with(|| DeliveryRecord::new(message.clone()));
                record.deliveries = attempt;
            }
            out(Taken { message, offset });
            n += 1;
        }
        n
    }

    /// Registers a subscriber's waker, replacing its earlier one.
    pub(crate) fn wait(&mut self, group: GroupIndex, subscriber: u64, waker: &Waker) {
        let waiters = &mut self.groups[group].waiters;
        match waiters.iter_mut().find(|(id, _)| *id == subscriber) {
            Some((_, w)) => w.clone_from(waker),
            None => waiters.push((subscriber, waker.clone())),
        }
    }

    pub(crate) fn stop_waiting(&mut self, group: GroupIndex, subscriber: u64) {
        self.groups[group]
            .waiters
            .retain(|(id, _)| *id != subscriber);
    }

    /// Applies a settlement. Returns what the acker does next: schedule a delayed retry,
    /// or publish a native dead letter.
    pub(crate) fn settle(
        &mut self,
        topic: &Arc<str>,
        group: GroupIndex,
        offset: u64,
        outcome: Outcome,
        wake: &mut Wake,
    ) -> Settled {
        let history = self.history;
        let g = &mut self.groups[group];
        let Some(slot) = g.slot_mut(offset) else {
            return Settled::Done;
        };
        if slot.state != SlotState::InFlight {
            return Settled::Done;
        }
        let mut next = Settled::Done;
        match &outcome {
            Outcome::Ack | Outcome::Drop(_) => slot.state = SlotState::Settled,
            Outcome::DeadLetter(failure) => {
                slot.state = SlotState::Settled;
                let attempts = slot.attempt;
                let message = self.log[(offset - self.base) as usize].clone();
                let delivered = message
                    .clone()
                    .with_origin(Origin::new(topic.clone()).with_offset(offset))
                    .with_attempt(attempts);
                next = Settled::DeadLetter(dead_letter_message(
                    &delivered,
                    failure,
                    &g.name,
                    DEFAULT_MAX_ERROR_LEN,
                ));
                g.dead_letters.push(NativeDeadLetter {
                    message,
                    failure: failure.clone(),
                    attempts,
                });
            }
            Outcome::Retry { after } if after.is_zero() => {
                slot.state = SlotState::Ready;
                g.ready.push_back(offset);
                wake.extend_waiters(&mut g.waiters);
            }
            Outcome::Retry { after } => {
                slot.state = SlotState::Delayed;
                next = Settled::RetryAfter(*after);
            }
        }
        if history {
            if let Some(r) = g.records.get_mut(&offset) {
                r.outcomes.push(outcome);
            }
        }
        while g
            .slots
            .front()
            .is_some_and(|s| s.state == SlotState::Settled)
        {
            g.slots.pop_front();
            g.low += 1;
        }
        let end = self.base + self.log.len() as u64;
        if g.slots.is_empty() && g.low == end {
            wake.extend_waiters(&mut g.idle_waiters);
        }
        self.trim();
        next
    }

    /// Drops log entries every group has settled.
    fn trim(&mut self) {
        if self.retain_acked || self.groups.is_empty() {
            return;
        }
        let keep_from = self.groups.iter().map(|g| g.low).min().unwrap_or(self.base);
        while self.base < keep_from {
            self.log.pop_front();
            self.base += 1;
        }
    }

    /// `true` when the group has settled every message published so far.
    pub(crate) fn is_idle(&self, group: GroupIndex) -> bool {
        let g = &self.groups[group];
        g.slots.is_empty() && g.low == self.end()
    }

    /// Registers the waker of idle-waiter `id` (from [`new_subscriber_id`](Self::new_subscriber_id)),
    /// replacing its earlier one. (Comparing wakers with `will_wake` is not enough: the
    /// same task may present a different waker on each poll.)
    pub(crate) fn wait_idle(&mut self, group: GroupIndex, id: u64, waker: &Waker) {
        let waiters = &mut self.groups[group].idle_waiters;
        match waiters.iter_mut().find(|(i, _)| *i == id) {
            Some((_, w)) => w.clone_from(waker),
            None => waiters.push((id, waker.clone())),
        }
    }

    pub(crate) fn stop_waiting_idle(&mut self, group: GroupIndex, id: u64) {
        self.groups[group].idle_waiters.retain(|(i, _)| *i != id);
    }

    /// Messages published and not yet settled by `group`.
    pub(crate) fn pending(&self, group: GroupIndex) -> u64 {
        let g = &self.groups[group];
        let fresh = self.end() - (g.low + g.slots.len() as u64);
        self.unsettled(group) + fresh
    }

    /// Offsets `group` has settled: everything below its window, and the settled slots
    /// in it. Grows by one per settled message.
    pub(crate) fn settled(&self, group: GroupIndex) -> u64 {
        let g = &self.groups[group];
        let in_window = g
            .slots
            .iter()
            .filter(|s| s.state == SlotState::Settled)
            .count() as u64;
        g.low + in_window
    }

    /// Messages handed out and not settled by `group`: in flight, or waiting out a
    /// retry delay to be delivered again.
    pub(crate) fn unsettled(&self, group: GroupIndex) -> u64 {
        self.groups[group]
            .slots
            .iter()
            .filter(|s| s.state != SlotState::Settled)
            .count() as u64
    }

    /// Messages in the log.
    pub(crate) fn len(&self) -> usize {
        self.log.len()
    }

    /// Messages currently delivered and unsettled by `group`.
    pub(crate) fn in_flight(&self, group: GroupIndex) -> u64 {
        self.groups[group]
            .slots
            .iter()
            .filter(|s| s.state == SlotState::InFlight)
            .count() as u64
    }

    pub(crate) fn messages(&self) -> Vec<Message> {
        self.log.iter().cloned().collect()
    }

    /// Removes up to `max` retained messages `matches` picks; how many. Only a topic
    /// no group reads can lose messages this way (a group's offsets would shift):
    /// `Err` otherwise.
    pub(crate) fn remove(
        &mut self,
        mut matches: impl FnMut(&Message) -> bool,
        max: usize,
    ) -> Result<usize, ()> {
        if !self.groups.is_empty() {
            return Err(());
        }
        let mut removed = 0;
        self.log.retain(|m| {
            let gone = removed < max && matches(m);
            removed += usize::from(gone);
            !gone
        });
        Ok(removed)
    }

    pub(crate) fn records(&self, group: GroupIndex) -> Vec<DeliveryRecord> {
        self.groups[group].records.values().cloned().collect()
    }

    pub(crate) fn dead_letters(&self, group: GroupIndex) -> Vec<NativeDeadLetter> {
        self.groups[group].dead_letters.clone()
    }

    pub(crate) fn history_enabled(&self) -> bool {
        self.history
    }
}

impl Group {
    fn slot_mut(&mut self, offset: u64) -> Option<&mut Slot> {
        let i = offset.checked_sub(self.low)?;
        self.slots.get_mut(i as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake as TaskWake;

    struct Noop;
    impl TaskWake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    #[test]
    fn a_waiter_polled_many_times_is_registered_once() {
        // A task may present a different waker on every poll (`will_wake` is not
        // reliable), so registrations are keyed by id: polling an idle future a thousand
        // times must not grow the list.
        let topic = Topic::new("t".into(), false, false);
        let mut st = topic.lock();
        let g = st.group("g");
        let id = st.new_subscriber_id(g);
        for _ in 0..1000 {
            let waker = Waker::from(Arc::new(Noop));
            st.wait_idle(g, id, &waker);
            st.wait(g, id, &waker);
        }
        assert_eq!(st.groups[g].idle_waiters.len(), 1);
        assert_eq!(st.groups[g].waiters.len(), 1);
        st.stop_waiting_idle(g, id);
        st.stop_waiting(g, id);
        assert!(st.groups[g].idle_waiters.is_empty());
        assert!(st.groups[g].waiters.is_empty());
    }
}
