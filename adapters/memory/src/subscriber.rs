//! Subscribing to an in-memory topic as a member of a consumer group.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use wharf::adapter::Description;
use wharf::adapter::{Capabilities, Delivery, Subscriber};
use wharf::Error;

use crate::acker::MemoryAcker;
use crate::topic::{GroupIndex, Topic};

/// A member of a consumer group on an in-memory topic.
///
/// Members of one group share the messages; each group gets every message. Up to
/// `prefetch` messages are taken per lock; messages taken but not handed out go back to
/// the group when the subscriber closes or is dropped.
#[derive(Debug)]
pub struct MemorySubscriber {
    topic: Arc<Topic>,
    group: GroupIndex,
    id: u64,
    prefetch: usize,
    buffer: VecDeque<(wharf::Message, u64)>,
}

impl MemorySubscriber {
    pub(crate) fn new(topic: Arc<Topic>, group: GroupIndex, id: u64, prefetch: usize) -> Self {
        MemorySubscriber {
            topic,
            group,
            id,
            prefetch: prefetch.max(1),
            buffer: VecDeque::new(),
        }
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic.name
    }

    fn deliver(&self, message: wharf::Message, offset: u64) -> Delivery<MemoryAcker> {
        Delivery::new(
            message,
            MemoryAcker::new(self.topic.clone(), self.group, offset),
        )
    }

    fn give_back(&mut self) {
        // Wrapping each buffered message in an acker and dropping it requeues it.
        let buffered: Vec<_> = self.buffer.drain(..).collect();
        for (message, offset) in buffered {
            drop(self.deliver(message, offset));
        }
        self.topic.lock().stop_waiting(self.group, self.id);
    }
}

/// The in-memory broker's promises.
pub(crate) fn capabilities() -> Capabilities {
    let mut c = Capabilities::default();
    c.acknowledgements = true;
    c.persistent = false;
    c.redelivers_unacked = true;
    c.ordered_per_key = true;
    c.competing_consumers = true;
    c.fan_out_groups = true;
    c.native_delay = true;
    c.broker_attempt_count = true;
    c.native_dead_letter = true;
    c.retains_before_subscribe = true;
    c
}

impl Stream for MemorySubscriber {
    type Item = Result<Delivery<MemoryAcker>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some((message, offset)) = this.buffer.pop_front() {
            return Poll::Ready(Some(Ok(this.deliver(message, offset))));
        }
        {
            let mut st = this.topic.lock();
            let buffer = &mut this.buffer;
            let taken = st.take(&this.topic.name, this.group, this.prefetch, &mut |t| {
                buffer.push_back((t.message, t.offset));
            });
            if taken == 0 {
                st.wait(this.group, this.id, cx.waker());
                return Poll::Pending;
            }
        }
        let (message, offset) = this
            .buffer
            .pop_front()
            .expect("take returned at least one message");
        Poll::Ready(Some(Ok(this.deliver(message, offset))))
    }
}

impl Subscriber for MemorySubscriber {
    type Acker = MemoryAcker;

    fn capabilities(&self) -> Capabilities {
        capabilities()
    }

    fn describe(&self) -> Description {
        let group = self.topic.lock().group_name(self.group);
        Description::new("memory", &*self.topic.name)
            .group(&*group)
            .dead_letters(crate::broker::dead_letter_topic(&self.topic.name))
    }

    async fn close(mut self) -> Result<(), Error> {
        self.give_back();
        Ok(())
    }
}

impl Drop for MemorySubscriber {
    fn drop(&mut self) {
        if !self.buffer.is_empty() {
            self.give_back();
        } else {
            self.topic.lock().stop_waiting(self.group, self.id);
        }
    }
}
