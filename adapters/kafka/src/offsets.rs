//! Which offsets may be committed: the contiguous watermark of settled offsets.
//!
//! Kafka commits a position per partition, not a set of messages: committing offset `n`
//! says "everything below `n` is done". With several keys of one partition in flight at
//! once, messages settle out of order, so each partition keeps the offsets handed to the
//! runtime, in order, and the watermark moves only over a settled prefix: offsets 5, 6, 7
//! handed out, 6 and 7 settled, the watermark stays at 5 until 5 settles, then jumps to 8.
//! A crash re-reads from the last committed watermark, nothing is skipped; the settled
//! offsets above it travel in the commit's metadata (the offset map, `offset_map.rs`), so the
//! next owner settles those without handing them out again, and only what was really
//! unsettled runs twice (at-least-once; the dedup layer absorbs that).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use wharf::adapter::Lease;

/// A moved watermark is stored with librdkafka once it is this many offsets past the last
/// one stored, or when nothing of the partition is in flight...
pub(crate) const STORE_EVERY: i64 = 64;
/// ...and the driver stores every watermark left behind this often.
pub(crate) const STORE_AFTER: Duration = Duration::from_millis(100);

/// Offsets of one partition handed out and not yet below the watermark.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// In offset order; `true` once settled.
    pending: VecDeque<(i64, bool)>,
    /// Every offset below it is settled (or was never handed out in this assignment).
    watermark: Option<i64>,
    /// The watermark last stored with librdkafka.
    stored: Option<i64>,
    /// The first offset handed out in this assignment: the position before any
    /// watermark (everything below it was committed, or does not exist).
    base: Option<i64>,
    /// Offsets above the committed one that were settled before the last restart (from
    /// the commit's offset map, `offset_map.rs`): settled without being handed out.
    skip: VecDeque<(i64, i64)>,
    /// Offsets above the watermark were settled since the last store: the stored offset
    /// map is behind.
    map_dirty: bool,
}

/// What [`Tracker::register`] says of a fetched offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registered {
    /// New: hand it out.
    Handed,
    /// Handed out already in this assignment (a re-read): not again.
    Reread,
    /// Settled before the last restart (the commit's offset map says so): recorded as
    /// settled, not handed out.
    Settled,
}

impl Registered {
    /// Whether the record is handed out.
    #[cfg(test)]
    pub(crate) fn handed(self) -> bool {
        self == Registered::Handed
    }
}

impl Tracker {
    /// A tracker for an assignment whose committed offset map says `skip` (ranges
    /// `[start, end)`, ascending) were settled before the restart.
    pub(crate) fn with_skip(skip: Vec<(i64, i64)>) -> Self {
        Tracker {
            skip: skip.into(),
            ..Tracker::default()
        }
    }

    /// Records `offset` as fetched: handed out, a re-read, or settled before the last
    /// restart (then recorded as settled, which may move the watermark).
    pub(crate) fn register(&mut self, offset: i64) -> Registered {
        let newest = self
            .pending
            .back()
            .map(|&(o, _)| o)
            .or(self.watermark.map(|w| w - 1));
        if newest.is_some_and(|newest| offset <= newest) {
            return Registered::Reread;
        }
        self.base.get_or_insert(offset);
        while self.skip.front().is_some_and(|&(_, end)| end <= offset) {
            self.skip.pop_front();
        }
        if self.skip.front().is_some_and(|&(start, _)| start <= offset) {
            self.pending.push_back((offset, true));
            self.advance();
            return Registered::Settled;
        }
        self.pending.push_back((offset, false));
        Registered::Handed
    }

    /// Marks `offset` settled. Returns the new watermark if it moved.
    pub(crate) fn settle(&mut self, offset: i64) -> Option<i64> {
        let i = self
            .pending
            .binary_search_by_key(&offset, |&(o, _)| o)
            .ok()?;
        if self.pending[i].1 {
            return None;
        }
        self.pending[i].1 = true;
        if i != 0 {
            self.map_dirty = true;
            return None;
        }
        self.advance()
    }

    /// Drops the settled prefix; returns the new watermark if it moved.
    fn advance(&mut self) -> Option<i64> {
        let mut next = None;
        while let Some(&(o, true)) = self.pending.front() {
            next = Some(o + 1);
            self.pending.pop_front();
        }
        if next.is_some() {
            self.watermark = next;
        }
        next
    }

    /// The offset to commit: the watermark, or before any, the first offset handed out.
    pub(crate) fn position(&self) -> Option<i64> {
        self.watermark.or(self.base)
    }

    /// The offset map to store with a commit of `committed`: the offsets above it known
    /// to be settled (handed out and settled, and those settled before the last restart
    /// not read yet); `None` when too long to store.
    pub(crate) fn offset_map(&self, committed: i64) -> Option<String> {
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        for &(offset, settled) in &self.pending {
            if !settled {
                continue;
            }
            match ranges.last_mut() {
                Some((_, end)) if *end == offset => *end += 1,
                _ => ranges.push((offset, offset + 1)),
            }
        }
        ranges.extend(self.skip.iter().copied());
        ranges.sort_unstable();
        crate::offset_map::encode(committed, &ranges)
    }

    /// Whether the moved watermark `watermark` should be stored with librdkafka now.
    ///
    /// Storing goes through a topic lookup in librdkafka and was a tenth of the adapter's
    /// per-message cost when done on every settlement (callgrind). So a settlement stores
    /// the watermark once it is [`STORE_EVERY`] offsets past the last store, or when
    /// nothing of the partition is in flight any more (the end of a burst); the driver
    /// stores what is left behind every [`STORE_AFTER`], revokes commit the tracker's
    /// watermark itself, and `close` stores every watermark before its commit. A store
    /// left for later only matters after a crash, which then re-reads at most that many
    /// settled messages (as the commit interval already allows).
    pub(crate) fn store_due(&self, watermark: i64) -> bool {
        match self.stored {
            None => true,
            Some(stored) => self.pending.is_empty() || watermark - stored >= STORE_EVERY,
        }
    }

    /// Records that `position`, with the offset map of the moment, was stored.
    pub(crate) fn stored(&mut self, position: i64) {
        self.stored = Some(position);
        self.map_dirty = false;
    }

    /// The position to store, if the watermark moved past the last one stored or
    /// offsets above it were settled since (the offset map is behind).
    pub(crate) fn unstored(&self) -> Option<i64> {
        if self.map_dirty {
            return self.position();
        }
        let watermark = self.watermark?;
        match self.stored {
            Some(stored) if stored >= watermark => None,
            _ => Some(watermark),
        }
    }

    /// Offsets handed out and not yet below the watermark (settled ones waiting behind
    /// an unsettled one included): what a stuck offset makes pile up.
    pub(crate) fn uncommitted(&self) -> usize {
        self.pending.len()
    }

    /// Offsets handed out and not settled.
    pub(crate) fn unsettled(&self) -> usize {
        self.pending.iter().filter(|(_, settled)| !settled).count()
    }

    /// The watermark: every offset below it is settled.
    #[cfg(test)]
    pub(crate) fn watermark(&self) -> Option<i64> {
        self.watermark
    }
}

/// One assigned partition, shared by the subscriber and the ackers of its messages.
#[derive(Debug)]
pub(crate) struct PartitionState {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    /// Revoked when the partition is revoked (or lost): its remaining settlements are
    /// ignored, its buffered messages are not handed out, and the runtime runs nothing
    /// more of its deliveries (waiting in-lane retries are cancelled); the new owner
    /// reads them again from the committed watermark.
    pub(crate) lease: Lease,
    /// Paused because its uncommitted window reached `max_uncommitted`; resumed by the
    /// driver once half of it is committable.
    pub(crate) window_paused: AtomicBool,
    tracker: Mutex<Tracker>,
}

impl PartitionState {
    pub(crate) fn new(topic: Arc<str>, partition: i32, tracker: Tracker) -> Self {
        PartitionState {
            topic,
            partition,
            lease: Lease::new(),
            window_paused: AtomicBool::new(false),
            tracker: Mutex::new(tracker),
        }
    }

    pub(crate) fn is_revoked(&self) -> bool {
        self.lease.is_revoked()
    }

    /// The tracker, locked. Settling stores the new watermark while holding it, so stores
    /// reach librdkafka in order.
    pub(crate) fn tracker(&self) -> MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the partition revoked; returns its tracker, locked, for the final store.
    pub(crate) fn revoke(&self) -> MutexGuard<'_, Tracker> {
        let tracker = self.tracker();
        self.lease.revoke();
        tracker
    }
}

/// Partition states by topic, indexed by partition number (`None`: not assigned).
type PartitionsByTopic =
    HashMap<Arc<str>, Vec<Option<Arc<PartitionState>>>, foldhash::fast::RandomState>;

/// The partitions assigned to one consumer, by topic and partition number.
#[derive(Debug, Default)]
pub(crate) struct Assignment {
    partitions: Mutex<PartitionsByTopic>,
}

impl Assignment {
    fn lock(&self) -> MutexGuard<'_, PartitionsByTopic> {
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state of an assigned partition.
    pub(crate) fn get(&self, topic: &str, partition: i32) -> Option<Arc<PartitionState>> {
        let map = self.lock();
        map.get(topic)?
            .get(usize::try_from(partition).ok()?)?
            .clone()
    }

    /// Adds a newly assigned partition with a fresh tracker (the tests' shorthand: no
    /// offset map).
    #[cfg(test)]
    pub(crate) fn assign(&self, topic: &str, partition: i32) {
        self.assign_with_skip(topic, partition, Vec::new());
    }

    /// Adds a newly assigned partition with a fresh tracker, which settles without
    /// handing out the offsets in `skip` (from the commit's offset map: settled before
    /// the restart).
    ///
    /// The group only ever assigns a partition this member does not hold (eager
    /// assignment revokes everything first; incremental assignment lists only new
    /// partitions), so a state still present is stale: it is revoked and replaced. Keeping
    /// it would keep its tracker, which refuses every offset at or below the newest one it
    /// saw, and the new assignment re-reads from the committed offset: those records
    /// would be skipped.
    pub(crate) fn assign_with_skip(&self, topic: &str, partition: i32, skip: Vec<(i64, i64)>) {
        let Ok(index) = usize::try_from(partition) else {
            return;
        };
        let mut map = self.lock();
        let topic_arc = map
            .get_key_value(topic)
            .map_or_else(|| Arc::<str>::from(topic), |(k, _)| k.clone());
        let slots = map.entry(topic_arc.clone()).or_default();
        if slots.len() <= index {
            slots.resize(index + 1, None);
        }
        let fresh = Arc::new(PartitionState::new(
            topic_arc,
            partition,
            Tracker::with_skip(skip),
        ));
        if let Some(stale) = slots[index].replace(fresh) {
            drop(stale.revoke());
        }
    }

    /// Removes a partition and returns its state (to be revoked by the caller).
    pub(crate) fn remove(&self, topic: &str, partition: i32) -> Option<Arc<PartitionState>> {
        let mut map = self.lock();
        map.get_mut(topic)?
            .get_mut(usize::try_from(partition).ok()?)?
            .take()
    }

    /// Every assigned partition.
    pub(crate) fn all(&self) -> Vec<Arc<PartitionState>> {
        self.lock()
            .values()
            .flat_map(|slots| slots.iter().flatten().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_coalesced_but_never_skip_the_end_of_a_burst() {
        let mut t = Tracker::default();
        for o in 0..200 {
            assert!(t.register(o).handed());
        }
        // The first watermark is stored at once.
        let w = t.settle(0).expect("moved");
        assert!(t.store_due(w));
        t.stored(w);
        // Then only every STORE_EVERY offsets while the partition has work in flight.
        let mut stores = 0;
        for o in 1..150 {
            let w = t.settle(o).expect("moved");
            if t.store_due(w) {
                t.stored(w);
                stores += 1;
            }
        }
        assert_eq!(stores, 149 / STORE_EVERY as usize);
        // What was left behind is reported for the periodic flush and `close`.
        assert_eq!(t.unstored(), Some(150));
        // The last settlement of a burst (nothing left in flight) is stored at once.
        for o in 150..199 {
            t.settle(o);
        }
        let w = t.settle(199).expect("moved");
        assert!(t.store_due(w));
        t.stored(w);
        assert_eq!(t.unstored(), None);
    }

    #[test]
    fn offsets_settled_before_a_restart_are_not_handed_out_again() {
        // Committed 10; the commit's map says 12, 13 and 20 were settled.
        let mut t = Tracker::with_skip(vec![(12, 14), (20, 21)]);
        assert_eq!(t.register(10), Registered::Handed);
        assert_eq!(t.register(11), Registered::Handed);
        assert_eq!(t.register(12), Registered::Settled);
        assert_eq!(t.register(13), Registered::Settled);
        assert_eq!(t.register(14), Registered::Handed);
        assert_eq!(t.settle(10), Some(11));
        assert_eq!(
            t.settle(11),
            Some(14),
            "12 and 13 were settled: passed over"
        );
        // 20 is not read yet: the map keeps it.
        let map = t.offset_map(14).unwrap();
        assert_eq!(crate::offset_map::decode(&map, 14), Some(vec![(20, 21)]));
    }

    #[test]
    fn the_offset_map_follows_settlements_above_the_watermark() {
        let mut t = Tracker::default();
        for o in 0..10 {
            t.register(o);
        }
        assert_eq!(t.unstored(), None);
        t.settle(3);
        t.settle(4);
        t.settle(7);
        assert_eq!(
            t.unstored(),
            Some(0),
            "the map is behind: the position is stored again with it"
        );
        let map = t.offset_map(0).unwrap();
        assert_eq!(
            crate::offset_map::decode(&map, 0),
            Some(vec![(3, 5), (7, 8)])
        );
        t.stored(0);
        assert_eq!(t.unstored(), None);
    }

    #[test]
    fn a_map_too_fragmented_for_the_broker_is_not_made() {
        // Offset 0 stuck, every other offset after it settled: two runs per offset,
        // past what a commit's metadata may hold. The store then commits the plain
        // watermark (and counts it).
        let mut t = Tracker::default();
        for o in 0..20_000 {
            t.register(o);
        }
        for o in (2..20_000).step_by(2) {
            t.settle(o);
        }
        assert_eq!(t.position(), Some(0));
        assert_eq!(t.offset_map(0), None);
        // A few settled offsets fit.
        let mut t = Tracker::default();
        for o in 0..100 {
            t.register(o);
        }
        t.settle(50);
        assert!(t.offset_map(0).is_some_and(|m| !m.is_empty()));
    }

    #[test]
    fn watermark_moves_only_over_a_settled_prefix() {
        let mut t = Tracker::default();
        for o in 5..=8 {
            assert!(t.register(o).handed());
        }
        assert_eq!(t.settle(6), None);
        assert_eq!(t.settle(7), None);
        assert_eq!(t.watermark(), None);
        assert_eq!(t.settle(5), Some(8));
        assert_eq!(t.unsettled(), 1);
        assert_eq!(t.settle(8), Some(9));
        assert_eq!(t.watermark(), Some(9));
    }

    #[test]
    fn gaps_in_offsets_do_not_hold_the_watermark() {
        // Compaction and transaction markers leave gaps: the watermark follows the
        // offsets handed out, not every integer.
        let mut t = Tracker::default();
        for o in [10, 13, 20] {
            t.register(o);
        }
        t.settle(13);
        assert_eq!(t.settle(10), Some(14));
        assert_eq!(t.settle(20), Some(21));
    }

    #[test]
    fn rereads_are_refused_and_unknown_settles_ignored() {
        let mut t = Tracker::default();
        assert!(t.register(1).handed());
        assert!(t.register(2).handed());
        assert!(
            !t.register(2).handed(),
            "an in-flight offset is not handed out twice"
        );
        assert_eq!(t.settle(1), Some(2));
        assert_eq!(t.settle(2), Some(3));
        assert!(!t.register(0).handed(), "below the watermark: already done");
        assert!(!t.register(2).handed());
        assert_eq!(t.settle(99), None);
        assert!(t.register(3).handed());
    }

    #[test]
    fn settling_twice_is_harmless() {
        let mut t = Tracker::default();
        t.register(1);
        t.register(2);
        assert_eq!(t.settle(2), None);
        assert_eq!(t.settle(2), None);
        assert_eq!(t.settle(1), Some(3));
        assert_eq!(t.settle(1), None);
    }

    #[test]
    fn reassigning_a_revoked_partition_starts_a_fresh_tracker() {
        let a = Assignment::default();
        a.assign("t", 2);
        let old = a.get("t", 2).unwrap();
        old.tracker().register(7);
        let removed = a.remove("t", 2).unwrap();
        drop(removed.revoke());
        assert!(old.is_revoked());
        assert!(a.get("t", 2).is_none());
        a.assign("t", 2);
        let new = a.get("t", 2).unwrap();
        assert!(!Arc::ptr_eq(&old, &new));
        assert!(new.tracker().register(0).handed());
        assert_eq!(a.all().len(), 1);
    }

    #[test]
    fn an_assignment_never_inherits_a_stale_tracker() {
        // A state left for a partition the group now assigns (before: kept, so its
        // tracker refused the re-read of every offset up to the newest it had seen,
        // and those records were skipped).
        let a = Assignment::default();
        a.assign("t", 0);
        let stale = a.get("t", 0).unwrap();
        assert!(stale.tracker().register(5).handed());
        a.assign("t", 0);
        let fresh = a.get("t", 0).unwrap();
        assert!(!Arc::ptr_eq(&stale, &fresh));
        assert!(
            stale.is_revoked(),
            "the stale state's settlements are ignored"
        );
        assert!(
            fresh.tracker().register(0).handed(),
            "the new assignment reads from the committed offset"
        );
    }

    #[test]
    fn a_record_of_an_unassigned_partition_finds_no_state() {
        // The driver skips such a record; it never creates a tracker for it.
        let a = Assignment::default();
        assert!(a.get("t", 1).is_none());
        a.assign("t", 0);
        assert!(a.get("t", 1).is_none());
        assert!(a.get("u", 0).is_none());
    }
}
