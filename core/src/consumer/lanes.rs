//! Key lanes: messages with the same key run one after another.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
// Seeded per process (keys come from producers), and several times faster than SipHash
// on short keys: a claim and a release per keyed message.
use foldhash::fast::RandomState;

use crate::message::Message;

/// Which messages must run one after another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeliveryOrder {
    /// Messages with the same key run one after another; different keys and keyless
    /// messages run in parallel. The default.
    #[default]
    PerKey,
    /// Everything runs in parallel, up to the in-flight bound.
    Unordered,
    /// One message at a time, in delivery order.
    Sequential,
}

impl DeliveryOrder {
    /// `per-key`, `unordered` or `sequential`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOrder::PerKey => "per-key",
            DeliveryOrder::Unordered => "unordered",
            DeliveryOrder::Sequential => "sequential",
        }
    }

    /// The lane a message belongs to; `None` runs without a lane.
    pub(crate) fn lane_of(self, message: &Message) -> Option<Bytes> {
        match self {
            DeliveryOrder::PerKey => message.key().cloned(),
            DeliveryOrder::Unordered => None,
            DeliveryOrder::Sequential => Some(Bytes::new()),
        }
    }
}

/// Busy lanes and what waits in them.
///
/// A key is present while a message of that key is in flight; its queue holds the
/// messages received meanwhile, in delivery order.
#[derive(Debug)]
pub(crate) struct Lanes<T> {
    busy: HashMap<Bytes, VecDeque<T>, RandomState>,
    waiting: usize,
}

impl<T> Lanes<T> {
    pub(crate) fn new() -> Self {
        Lanes {
            busy: HashMap::default(),
            waiting: 0,
        }
    }

    /// Claims `key`'s lane for `item`. Returns the item back if the lane is free (run
    /// it now); otherwise queues it behind the message in flight.
    pub(crate) fn claim(&mut self, key: &Bytes, item: T) -> Option<T> {
        match self.busy.get_mut(key) {
            Some(queue) => {
                queue.push_back(item);
                self.waiting += 1;
                None
            }
            None => {
                self.busy.insert(key.clone(), VecDeque::new());
                Some(item)
            }
        }
    }

    /// The message in `key`'s lane finished: returns the next one to run (the lane
    /// stays claimed for it), or frees the lane.
    pub(crate) fn release(&mut self, key: &Bytes) -> Option<T> {
        let queue = self.busy.get_mut(key)?;
        match queue.pop_front() {
            Some(next) => {
                self.waiting -= 1;
                Some(next)
            }
            None => {
                self.busy.remove(key);
                None
            }
        }
    }

    /// Frees `key`'s lane and returns everything that waited in it, in order.
    pub(crate) fn close(&mut self, key: &Bytes) -> VecDeque<T> {
        let queue = self.busy.remove(key).unwrap_or_default();
        self.waiting -= queue.len();
        queue
    }

    /// Messages waiting behind a busy lane.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting
    }

    /// Takes every waiting message, with its lane key (shutdown deadline).
    pub(crate) fn drain_waiting(&mut self) -> Vec<(T, Bytes)> {
        self.waiting = 0;
        self.busy
            .iter_mut()
            .flat_map(|(key, q)| q.drain(..).map(move |item| (item, key.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_queues_in_order_and_frees_when_empty() {
        let mut lanes = Lanes::new();
        let k = Bytes::from_static(b"k");
        assert_eq!(lanes.claim(&k, 1), Some(1));
        assert_eq!(lanes.claim(&k, 2), None);
        assert_eq!(lanes.claim(&k, 3), None);
        assert_eq!(lanes.claim(&Bytes::from_static(b"other"), 9), Some(9));
        assert_eq!(lanes.waiting(), 2);
        assert_eq!(lanes.release(&k), Some(2));
        assert_eq!(lanes.release(&k), Some(3));
        assert_eq!(lanes.release(&k), None);
        // Free again: the next claim runs at once.
        assert_eq!(lanes.claim(&k, 4), Some(4));
    }
}
