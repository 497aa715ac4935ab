//! The bounded claim table behind `MemoryDedupStore` and `MemoryIdempotencyStore`.
//!
//! Both in-memory stores need the same thing: a map from key to *in flight* (a claim with
//! a lease, held by one token) or *completed* (remembered until a deadline), bounded in
//! size, with expiry driven by tokio's clock so paused test time moves it. Compiled when
//! either feature is on.
//!
//! # Why not `moka`
//!
//! `moka` is the library to reach for a bounded TTL cache, and it was the first choice.
//! It does not fit a claim table:
//!
//! - **Eviction must never drop an in-flight claim.** Losing one lets a duplicate run
//!   concurrently with the original. moka evicts whatever its policy picks, and its
//!   TinyLFU admission may refuse to insert a new entry at all when full. Here only
//!   *completed* keys count against the capacity and are evicted (oldest first); in-flight
//!   claims are bounded by the consumers' own in-flight limits and by their lease.
//! - **Expiry must follow tokio's clock.** moka reads its own clock, so a retention
//!   window could not be tested under `tokio::time::pause`. Storing deadlines ourselves
//!   would leave moka only the bounding, which is the part that does not fit.
//! - **Transitions are per key and conditional** (release only your own claim, complete
//!   only if no live claim of another holder exists). Under one short mutex they are a
//!   few lines; `moka`'s `and_compute_with` can express them but costs more per message
//!   on the hot path (the overhead budget of the whole stack is about 1 µs).
//!
//! The table is a few `Mutex<HashMap>` shards plus, per shard, a queue of completed keys
//! in completion order (for expiry and eviction). All operations are amortised O(1).
//!
//! # Keys are 128-bit fingerprints
//!
//! The table does not keep the keys themselves: it keeps a 128-bit fingerprint of each,
//! two 64-bit foldhash hashes with independent random keys (per-hasher and shared seeds,
//! drawn once per process), so a key can compute its fingerprint once and keep it for
//! its claim, completion and release. A full table of completed ids then holds no
//! strings: no allocation or reference count per message, and evicting the oldest
//! completion does not read (or free) a string that left the cache long ago. Measured
//! with criterion, this took the dedup layer on a full 1 M-key table from about 1,290 to
//! 890 ns per message (see `BENCHMARKS.md`).
//!
//! The price is that two different keys with the same fingerprint would be taken for one
//! (a message skipped as a duplicate). By accident, with a million keys remembered and
//! the two halves behaving as independent 64-bit hashes, that happens with probability
//! about 2⁻⁸⁹ (n²/2¹²⁹) per window: never. (foldhash is not a cryptographic function, so
//! this is the estimate for well-mixed hashes, which is what it is built to give.) On
//! purpose, it needs the process's random keys; and a producer able to search for a
//! collision with a known id can simply send that id, which the table must treat as a
//! duplicate anyway.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

// foldhash: several times faster than SipHash on short keys, seeded per process (so
// producers cannot aim collisions at the fingerprints without knowing the seeds).
use foldhash::quality::SeedableRandomState;
use foldhash::SharedSeed;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableClaim {
    /// The caller holds the key with this token until it completes or releases it, or
    /// the lease runs out.
    Claimed(u64),
    /// Another holder's claim is live.
    InFlight,
    /// The key completed within its retention window.
    Completed,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    InFlight { token: u64, until: Instant },
    Completed { token: u64, until: Instant },
}

impl Slot {
    fn with_token(self, token: u64) -> Slot {
        match self {
            Slot::InFlight { until, .. } => Slot::InFlight { token, until },
            Slot::Completed { until, .. } => Slot::Completed { token, until },
        }
    }

    fn until(&self) -> Instant {
        match *self {
            Slot::InFlight { until, .. } | Slot::Completed { until, .. } => until,
        }
    }
}

/// The answer of a claim (`DedupStore::claim`, `IdempotencyStore::claim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the key until it completes or releases the claim, or the lease
    /// runs out.
    Claimed(ClaimToken),
    /// Another copy holds a live claim: retry later, never run both at once.
    InFlight,
    /// The key completed within the window (dedup) or retention (idempotency): a
    /// duplicate.
    Completed,
}

/// Identifies one claim, so only its holder can complete or release it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimToken(u64);

impl ClaimToken {
    /// A token with the given value (stores choose values that are unique per key, such as
    /// a counter or a random number).
    pub const fn new(value: u64) -> Self {
        ClaimToken(value)
    }

    /// The token's value.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// Below this many slots a shard never runs a full sweep.
const MIN_SWEEP: usize = 64;
/// Stores smaller than this use one shard, so their capacity is exact.
const SHARDING_THRESHOLD: usize = 4096;
/// At most this many shards.
const MAX_SHARDS: usize = 16; // a power of two
/// Stand-in for "forever" when a duration would overflow the clock (about 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// A key's 128-bit fingerprint (see the module docs).
pub(crate) type Fingerprint = u128;

/// The fingerprint of `key`: two foldhash hashes of it with independent random keys (per-
/// hasher seed *and* shared seed), drawn once per process (see the module docs).
pub(crate) fn fingerprint<K: Hash + ?Sized>(key: &K) -> Fingerprint {
    static SHARED: OnceLock<[SharedSeed; 2]> = OnceLock::new();
    static HASHERS: OnceLock<[SeedableRandomState; 2]> = OnceLock::new();
    let [low, high] = HASHERS.get_or_init(|| {
        // std's `RandomState` draws its keys from the OS once per thread and moves them
        // on for every instance: a fresh unpredictable value per call.
        let random = || std::hash::RandomState::new().hash_one(0u64);
        let shared = SHARED.get_or_init(|| {
            [
                SharedSeed::from_u64(random()),
                SharedSeed::from_u64(random()),
            ]
        });
        [
            SeedableRandomState::with_seed(random(), &shared[0]),
            SeedableRandomState::with_seed(random(), &shared[1]),
        ]
    });
    u128::from(low.hash_one(key)) | u128::from(high.hash_one(key)) << 64
}

/// A key that knows its [`fingerprint`] (and may keep it, to hash once per message).
pub(crate) trait Fingerprinted {
    fn fingerprint(&self) -> Fingerprint;
}

impl Fingerprinted for Fingerprint {
    fn fingerprint(&self) -> Fingerprint {
        *self
    }
}

impl<K: Hash + ?Sized> Fingerprinted for &K {
    fn fingerprint(&self) -> Fingerprint {
        fingerprint(*self)
    }
}

/// The map's hasher: a fingerprint is already a uniform hash, so its low 64 bits are the
/// bucket hash as they are (the shard is picked by the high bits).
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u128(&mut self, fingerprint: u128) {
        self.0 = fingerprint as u64;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only fingerprints are hashed here; fold anything else rather than panic.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
}

type Slots = HashMap<Fingerprint, Slot, BuildHasherDefault<PassThrough>>;

struct Shard {
    slots: Slots,
    /// Completed keys, oldest first, with the token of the claim that completed them and
    /// the end of their retention (so expiry is checked without a map lookup). Entries
    /// whose slot changed since (re-claimed, evicted) are stale and skipped.
    order: VecDeque<(Fingerprint, u64, Instant)>,
    /// Completed slots in `slots` (the ones the capacity bounds).
    completed: usize,
    /// Slot count at which the next full sweep (for abandoned in-flight claims) runs.
    sweep_at: usize,
}

/// A bounded map of claims; see the module docs.
pub(crate) struct ClaimTable {
    shards: Box<[Mutex<Shard>]>,
    capacity: usize,
    shard_capacity: usize,
    next_token: AtomicU64,
}

impl ClaimTable {
    /// A table remembering at most about `capacity` completed keys.
    pub(crate) fn new(capacity: usize) -> Self {
        let shards = if capacity < SHARDING_THRESHOLD {
            1
        } else {
            MAX_SHARDS
        };
        ClaimTable {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        slots: Slots::default(),
                        order: VecDeque::new(),
                        completed: 0,
                        sweep_at: MIN_SWEEP,
                    })
                })
                .collect(),
            capacity,
            shard_capacity: capacity.div_ceil(shards),
            next_token: AtomicU64::new(1),
        }
    }

    /// The capacity the table was built with.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keys held (in flight or completed), including expired ones not yet swept.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).slots.len()).sum()
    }

    /// Claims `key` for `lease` unless a live claim or a remembered completion exists.
    pub(crate) fn claim(
        &self,
        key: impl Fingerprinted,
        lease: Duration,
        now: Instant,
    ) -> TableClaim {
        let key = key.fingerprint();
        let mut guard = self.shard(key);
        let shard = &mut *guard;
        shard.maintain(now);
        let claimed = Slot::InFlight {
            token: 0,
            until: deadline(now, lease),
        };
        // One lookup: the common case (a new key) inserts through the entry.
        let token = match shard.slots.entry(key) {
            Entry::Occupied(mut occupied) => {
                let slot = occupied.get_mut();
                match *slot {
                    Slot::Completed { until, .. } if until > now => return TableClaim::Completed,
                    Slot::InFlight { until, .. } if until > now => return TableClaim::InFlight,
                    // Expired: the remembered completion is forgotten, or the holder of
                    // the claim is presumed dead (its lease ran out).
                    Slot::Completed { .. } => shard.completed -= 1,
                    Slot::InFlight { .. } => {}
                }
                let token = self.token();
                *slot = claimed.with_token(token);
                token
            }
            Entry::Vacant(vacant) => {
                let token = self.token();
                vacant.insert(claimed.with_token(token));
                token
            }
        };
        TableClaim::Claimed(token)
    }

    /// Records that the claim `token` on `key` succeeded; the key is remembered for
    /// `retain`.
    ///
    /// A holder whose lease ran out still records its success, unless another holder's
    /// claim is live (that holder will complete or release it itself).
    pub(crate) fn complete(
        &self,
        key: impl Fingerprinted,
        token: u64,
        retain: Duration,
        now: Instant,
    ) {
        let key = key.fingerprint();
        let mut guard = self.shard(key);
        let shard = &mut *guard;
        let remember = !(retain.is_zero() || self.shard_capacity == 0);
        let until = deadline(now, retain);
        let completed = Slot::Completed { token, until };
        match shard.slots.get_mut(&key) {
            Some(slot) => {
                match *slot {
                    Slot::InFlight { token: t, .. } if t == token => {}
                    Slot::InFlight { until, .. } if until > now => return,
                    Slot::Completed { until, .. } if until > now => return,
                    Slot::Completed { .. } => shard.completed -= 1,
                    Slot::InFlight { .. } => {}
                }
                if remember {
                    // The common case: this holder's claim becomes a completion in place.
                    *slot = completed;
                } else {
                    shard.slots.remove(&key);
                    return;
                }
            }
            None if remember => {
                shard.slots.insert(key, completed);
            }
            None => return,
        }
        shard.order.push_back((key, token, until));
        shard.completed += 1;
        while shard.completed > self.shard_capacity {
            shard.evict_oldest();
        }
        shard.maintain(now);
    }

    /// Gives up the claim `token` on `key`, so the next claim succeeds at once. Does
    /// nothing if the claim is no longer this token's.
    pub(crate) fn release(&self, key: impl Fingerprinted, token: u64) {
        let key = key.fingerprint();
        let mut shard = self.shard(key);
        if let Some(Slot::InFlight { token: t, .. }) = shard.slots.get(&key) {
            if *t == token {
                shard.slots.remove(&key);
            }
        }
    }

    fn shard(&self, key: Fingerprint) -> MutexGuard<'_, Shard> {
        if self.shards.len() == 1 {
            return lock(&self.shards[0]);
        }
        // The shard count is a power of two; the map's buckets use the low bits.
        let index = ((key >> 64) as usize) & (self.shards.len() - 1);
        lock(&self.shards[index])
    }

    fn token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }
}

impl Shard {
    /// Drops expired completions from the front of the queue and, when the map has
    /// doubled since the last time, sweeps abandoned claims out of it.
    fn maintain(&mut self, now: Instant) {
        while let Some(&(_, _, until)) = self.order.front() {
            if until > now {
                break;
            }
            if let Some((key, token, _)) = self.order.pop_front() {
                // Only if the completion is still this entry's (not re-claimed since).
                if matches!(self.slots.get(&key), Some(Slot::Completed { token: t, .. }) if *t == token)
                {
                    self.slots.remove(&key);
                    self.completed -= 1;
                }
            }
        }
        if self.slots.len() >= self.sweep_at {
            self.sweep(now);
        }
    }

    /// Removes every expired slot. A claim whose holder vanished without releasing it
    /// (a leaked future, a panic in a store call) is otherwise only removed when the
    /// same key is claimed again.
    fn sweep(&mut self, now: Instant) {
        let mut expired_completed = 0;
        self.slots.retain(|_, slot| {
            let keep = slot.until() > now;
            if !keep && matches!(slot, Slot::Completed { .. }) {
                expired_completed += 1;
            }
            keep
        });
        self.completed -= expired_completed;
        let slots = &self.slots;
        self.order.retain(
            |(key, token, _)| matches!(slots.get(key), Some(Slot::Completed { token: t, .. }) if t == token),
        );
        self.sweep_at = (self.slots.len() * 2).max(MIN_SWEEP);
    }

    /// Forgets the oldest remembered completion (the capacity is reached).
    fn evict_oldest(&mut self) {
        while let Some((key, token, _)) = self.order.pop_front() {
            match self.slots.remove(&key) {
                Some(Slot::Completed { token: t, .. }) if t == token => {
                    self.completed -= 1;
                    return;
                }
                // Stale entry: the slot belongs to a later claim; put it back.
                Some(other) => {
                    self.slots.insert(key, other);
                }
                None => {}
            }
        }
    }
}

impl fmt::Debug for ClaimTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimTable")
            .field("capacity", &self.capacity)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The table's invariants hold between statements that cannot panic; a poisoned lock
    // only means another thread panicked elsewhere while holding it.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn deadline(now: Instant, after: Duration) -> Instant {
    now.checked_add(after)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(60);
    const KEEP: Duration = Duration::from_secs(600);

    fn claimed(c: TableClaim) -> u64 {
        match c {
            TableClaim::Claimed(t) => t,
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    #[test]
    fn claim_complete_release_protocol() {
        let t = ClaimTable::new(10);
        let now = Instant::now();
        let token = claimed(t.claim("a", LEASE, now));
        assert_eq!(t.claim("a", LEASE, now), TableClaim::InFlight);
        t.release("a", token);
        let token = claimed(t.claim("a", LEASE, now));
        t.complete("a", token, KEEP, now);
        assert_eq!(t.claim("a", LEASE, now), TableClaim::Completed);
        // Other keys are independent.
        claimed(t.claim("b", LEASE, now));
    }

    #[test]
    fn an_expired_lease_lets_another_holder_in_and_fences_the_old_one() {
        let t = ClaimTable::new(10);
        let now = Instant::now();
        let old = claimed(t.claim("a", LEASE, now));
        let later = now + LEASE;
        let new = claimed(t.claim("a", LEASE, later));
        assert_ne!(old, new);
        // The old holder's release must not free the new holder's claim...
        t.release("a", old);
        assert_eq!(t.claim("a", LEASE, later), TableClaim::InFlight);
        // ...nor may its completion overwrite a live claim.
        t.complete("a", old, KEEP, later);
        assert_eq!(t.claim("a", LEASE, later), TableClaim::InFlight);
        t.complete("a", new, KEEP, later);
        assert_eq!(t.claim("a", LEASE, later), TableClaim::Completed);
    }

    #[test]
    fn a_late_completion_with_no_other_holder_is_recorded() {
        let t = ClaimTable::new(10);
        let now = Instant::now();
        let token = claimed(t.claim("a", LEASE, now));
        t.complete("a", token, KEEP, now + LEASE * 2);
        assert_eq!(t.claim("a", LEASE, now + LEASE * 2), TableClaim::Completed);
    }

    #[test]
    fn completions_expire_after_their_window() {
        let t = ClaimTable::new(10);
        let now = Instant::now();
        let token = claimed(t.claim("a", LEASE, now));
        t.complete("a", token, KEEP, now);
        let just_before = now + KEEP - Duration::from_millis(1);
        assert_eq!(t.claim("a", LEASE, just_before), TableClaim::Completed);
        claimed(t.claim("a", LEASE, now + KEEP));
    }

    #[test]
    fn capacity_evicts_the_oldest_completion_never_a_claim() {
        let t = ClaimTable::new(2);
        let now = Instant::now();
        let held = claimed(t.claim("held", LEASE, now));
        for key in ["a", "b", "c"] {
            let token = claimed(t.claim(key, LEASE, now));
            t.complete(key, token, KEEP, now);
        }
        assert_eq!(t.claim("held", LEASE, now), TableClaim::InFlight);
        assert_eq!(t.claim("b", LEASE, now), TableClaim::Completed);
        assert_eq!(t.claim("c", LEASE, now), TableClaim::Completed);
        // "a" was the oldest completion: forgotten.
        claimed(t.claim("a", LEASE, now));
        t.release("held", held);
    }

    #[test]
    fn zero_capacity_or_zero_window_remembers_nothing() {
        for (capacity, keep) in [(0, KEEP), (10, Duration::ZERO)] {
            let t = ClaimTable::new(capacity);
            let now = Instant::now();
            let token = claimed(t.claim("a", LEASE, now));
            t.complete("a", token, keep, now);
            claimed(t.claim("a", LEASE, now));
        }
    }

    #[test]
    fn abandoned_claims_do_not_accumulate() {
        let t = ClaimTable::new(100);
        let mut now = Instant::now();
        for round in 0..50u32 {
            now += LEASE;
            for i in 0..1000u32 {
                // Claimed and never completed nor released: only the lease frees them.
                claimed(t.claim(&(round * 1000 + i), LEASE, now));
            }
        }
        assert!(
            t.len() <= 4 * 1000,
            "abandoned claims accumulate: {}",
            t.len()
        );
    }

    #[test]
    fn re_claimed_keys_leave_no_stale_eviction_behind() {
        let t = ClaimTable::new(1);
        let mut now = Instant::now();
        // Complete "a", let it expire, claim and complete it again: the first queue
        // entry is stale and must not evict the second completion.
        let token = claimed(t.claim("a", LEASE, now));
        t.complete("a", token, KEEP, now);
        now += KEEP;
        let token = claimed(t.claim("a", LEASE, now));
        t.complete("a", token, KEEP, now);
        assert_eq!(t.claim("a", LEASE, now), TableClaim::Completed);
    }

    #[test]
    fn durations_that_overflow_the_clock_mean_forever() {
        let t = ClaimTable::new(10);
        let now = Instant::now();
        let token = claimed(t.claim("a", Duration::MAX, now));
        assert_eq!(t.claim("a", LEASE, now + KEEP), TableClaim::InFlight);
        t.complete("a", token, Duration::MAX, now);
        assert_eq!(t.claim("a", LEASE, now + KEEP), TableClaim::Completed);
    }
}
