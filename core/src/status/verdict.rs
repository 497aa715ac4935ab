//! The verdict rules: a window of [`Observation`]s in, a [`Verdict`] with its reason out.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::adapter::{Backlog, PartitionBacklog};

/// What a consumer group's backlog says about it over a window; see the
/// [module docs](super) for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The backlog reached zero in the window, or is shrinking: keeping up.
    Ok,
    /// Progress, and a backlog that ended higher and rose in three intervals of four:
    /// messages arrive faster than they are handled (scale out, or look at the handler's
    /// latency).
    Slow,
    /// Messages are delivered but none is settled while a backlog waits: a poison
    /// message or a hung handler.
    Stalled,
    /// No progress and nothing delivered while a backlog waits, or no member attached:
    /// the consumer is down.
    Stopped,
    /// Failures (retries, dead letters, drops) at least half as many as settled
    /// messages, or failures and no progress: a business outage (a dependency down, a
    /// bad deploy).
    Failing,
}

impl Verdict {
    /// Every verdict.
    pub const ALL: [Verdict; 5] = [
        Verdict::Ok,
        Verdict::Slow,
        Verdict::Stalled,
        Verdict::Stopped,
        Verdict::Failing,
    ];

    /// The verdict's name: `ok`, `slow`, `stalled`, `stopped`, `failing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Slow => "slow",
            Verdict::Stalled => "stalled",
            Verdict::Stopped => "stopped",
            Verdict::Failing => "failing",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One look at a consumer group (or one of its partitions): the inputs of the rules.
/// Counts that only grow (`settled`, `failed`, `dead_letters`) are compared between
/// the first and the last observation of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// When it was taken.
    pub at: SystemTime,
    /// Messages not settled yet.
    pub backlog: u64,
    /// Of those, delivered and unsettled, where known.
    pub unsettled: Option<u64>,
    /// Messages settled so far (a position or a count), where known.
    pub settled: Option<u64>,
    /// Handlings that failed so far (retries and dead letters), where known.
    pub failed: Option<u64>,
    /// Members attached, where known.
    pub consumers: Option<u64>,
}

impl Observation {
    /// The observation of a whole group in `backlog`; `failed` counts its dead letters
    /// where the broker tells.
    pub fn of_group(backlog: &Backlog) -> Self {
        Observation {
            at: backlog.taken_at,
            backlog: backlog.total(),
            unsettled: backlog.unsettled(),
            settled: backlog.settled(),
            failed: backlog.dead_letters,
            consumers: backlog.consumers,
        }
    }

    /// The observation of one partition of `backlog`: its own backlog and position,
    /// the group's members; no failures (dead letters are counted for the group, not
    /// per partition).
    pub fn of_partition(backlog: &Backlog, partition: &PartitionBacklog) -> Self {
        Observation {
            at: backlog.taken_at,
            backlog: partition.backlog,
            unsettled: partition.unsettled,
            settled: partition.settled,
            failed: None,
            consumers: backlog.consumers,
        }
    }
}

/// A verdict, why, and the figures behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in one line an operator can act on.
    pub reason: String,
    /// The backlog at the last observation.
    pub backlog: u64,
    /// Messages settled during the window, where known.
    pub settled: Option<u64>,
    /// Failed handlings during the window, where known.
    pub failed: Option<u64>,
    /// The span of the window the verdict covers.
    #[serde(rename = "window_seconds", serialize_with = "seconds")]
    pub window: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Growth of a count between two observations: `None` where either does not know it,
/// or where it went down (a reset offset, a recreated consumer, a purged destination:
/// the two looks do not measure the same thing).
fn growth(first: Option<u64>, last: Option<u64>) -> Option<u64> {
    last?.checked_sub(first?)
}

/// The verdict over `window` (observations oldest first); `None` with fewer than two.
///
/// The rules, first match wins:
///
/// 1. **stopped**: a backlog waits and no member is attached; or no progress over the
///    window, a backlog throughout, and nothing delivered (`unsettled` is 0).
/// 2. **failing** (without progress): no progress, a backlog throughout, something
///    delivered (or the broker cannot tell), and failures in the window: every message
///    fails (retried with backoff, or dead-lettered).
/// 3. **stalled**: no progress over the window and a backlog throughout (something is
///    delivered and not settled, or the broker cannot tell).
/// 4. **failing**: failures in the window at least half as many as settled messages;
///    where progress is unknown, failures in every interval of the window.
/// 5. **slow**: the backlog ended above where it started and rose in at least three
///    intervals of four (after Burrow's "lag increasing in every interval", with room
///    for a dip in a long window); where progress is unknown, also a backlog that waits
///    throughout and does not shrink (a hung consumer with nothing new arriving).
/// 6. **ok**: anything else: the backlog reached zero, shrank, or went up and down (a
///    backlog sampled between commits is rarely zero even when the consumer keeps up).
///
/// Where progress is unknown (RabbitMQ seen from outside), rule 3 cannot be told from
/// rule 5: the verdict is `slow` and the reason says it may be stalled.
pub fn evaluate(window: &[Observation]) -> Option<Evaluation> {
    let (first, last) = match window {
        [first, .., last] => (first, last),
        _ => return None,
    };
    let span = last.at.duration_since(first.at).unwrap_or_default();
    let settled = growth(first.settled, last.settled);
    let failed = growth(first.failed, last.failed).filter(|f| *f > 0);
    let waiting_throughout = window.iter().all(|o| o.backlog > 0);
    let verdict = |verdict, reason: String| {
        Some(Evaluation {
            verdict,
            reason,
            backlog: last.backlog,
            settled,
            failed,
            window: span,
        })
    };
    let secs = span.as_secs_f64();

    if last.backlog > 0 && last.consumers == Some(0) {
        return verdict(
            Verdict::Stopped,
            format!("{} waiting and no consumer attached", last.backlog),
        );
    }
    if waiting_throughout && settled == Some(0) {
        if last.unsettled == Some(0) {
            // Nothing delivered to anyone: dead letters at a shared destination are
            // another group's, not this one's.
            return verdict(
                Verdict::Stopped,
                format!(
                    "no progress for {secs:.0}s, {} waiting, nothing delivered: the consumer is down",
                    last.backlog
                ),
            );
        }
        if let Some(failed) = failed {
            return verdict(
                Verdict::Failing,
                format!(
                    "no progress for {secs:.0}s and {failed} failed handlings (retries, dead letters): every message fails"
                ),
            );
        }
        return match last.unsettled {
            Some(n) => verdict(
                Verdict::Stalled,
                format!(
                    "no progress for {secs:.0}s while {n} delivered messages stay unsettled ({} waiting): a poison message or a hung handler",
                    last.backlog
                ),
            ),
            None => verdict(
                Verdict::Stalled,
                format!(
                    "no progress for {secs:.0}s with {} waiting: a poison message, a hung handler or a consumer that is down",
                    last.backlog
                ),
            ),
        };
    }
    if let Some(failed) = failed {
        let failing = match settled {
            Some(settled) => failed.saturating_mul(2) >= settled,
            None => window
                .windows(2)
                .all(|pair| growth(pair[0].failed, pair[1].failed).unwrap_or(0) > 0),
        };
        if failing {
            let of = settled.map_or(String::new(), |s| format!(" against {s} settled"));
            return verdict(
                Verdict::Failing,
                format!("{failed} failed handlings (retries, dead letters) in {secs:.0}s{of}"),
            );
        }
    }
    if window.iter().any(|o| o.backlog == 0) {
        return verdict(Verdict::Ok, "the backlog reached 0".to_owned());
    }
    let intervals = window.len() - 1;
    let rises = window
        .windows(2)
        .filter(|pair| pair[1].backlog > pair[0].backlog)
        .count();
    let growing = last.backlog > first.backlog && rises * 4 >= intervals * 3;
    match (growing, settled) {
        (true, Some(s)) => verdict(
            Verdict::Slow,
            format!(
                "{s} settled in {secs:.0}s but the backlog grew from {} to {}: messages arrive faster than they are handled",
                first.backlog, last.backlog
            ),
        ),
        (_, None) if growing || last.backlog >= first.backlog => verdict(
            Verdict::Slow,
            format!(
                "the backlog went from {} to {} (no settlement count over the window: slow or stalled)",
                first.backlog, last.backlog
            ),
        ),
        _ if last.backlog < first.backlog => verdict(
            Verdict::Ok,
            format!(
                "catching up: the backlog shrank from {} to {}",
                first.backlog, last.backlog
            ),
        ),
        _ => verdict(
            Verdict::Ok,
            format!(
                "keeping up: the backlog went up and down ({} to {})",
                first.backlog, last.backlog
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (backlog, unsettled, settled, failed, consumers).
    type Point = (u64, Option<u64>, Option<u64>, Option<u64>, Option<u64>);

    /// Observations one second apart.
    fn window(points: &[Point]) -> Vec<Observation> {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        points
            .iter()
            .enumerate()
            .map(
                |(i, &(backlog, unsettled, settled, failed, consumers))| Observation {
                    at: start + Duration::from_secs(i as u64),
                    backlog,
                    unsettled,
                    settled,
                    failed,
                    consumers,
                },
            )
            .collect()
    }

    fn verdict(points: &[Point]) -> Verdict {
        evaluate(&window(points)).unwrap().verdict
    }

    #[test]
    fn fewer_than_two_observations_give_no_verdict() {
        assert_eq!(evaluate(&[]), None);
        assert_eq!(evaluate(&window(&[(5, None, None, None, None)])), None);
    }

    #[test]
    fn ok_when_the_backlog_reaches_zero_or_shrinks() {
        let e = evaluate(&window(&[
            (10, Some(2), Some(0), Some(0), None),
            (0, Some(0), Some(10), Some(0), None),
            (3, Some(3), Some(10), Some(0), None),
        ]))
        .unwrap();
        assert_eq!(e.verdict, Verdict::Ok);
        assert_eq!(e.settled, Some(10));
        assert_eq!(e.window, Duration::from_secs(2));
        assert_eq!(
            verdict(&[
                (100, None, Some(0), None, None),
                (40, None, Some(90), None, None)
            ]),
            Verdict::Ok
        );
    }

    #[test]
    fn a_backlog_that_goes_up_and_down_is_ok() {
        let e = evaluate(&window(&[
            (3, None, Some(0), None, Some(1)),
            (5, None, Some(20), None, Some(1)),
            (2, None, Some(40), None, Some(1)),
            (4, None, Some(60), None, Some(1)),
        ]))
        .unwrap();
        assert_eq!(e.verdict, Verdict::Ok, "{}", e.reason);
        // Growing overall but shrinking once: not slow either.
        assert_eq!(
            verdict(&[
                (10, None, Some(0), None, None),
                (30, None, Some(5), None, None),
                (20, None, Some(9), None, None),
                (40, None, Some(12), None, None),
            ]),
            Verdict::Ok
        );
    }

    #[test]
    fn a_long_window_growing_with_one_dip_is_slow() {
        let mut points: Vec<Point> = (0..9u64)
            .map(|i| (100 + 1000 * i, None, Some(10 * i), None, Some(1)))
            .collect();
        points[5].0 = 3_000; // one dip, below the look before it
        let e = evaluate(&window(&points)).unwrap();
        assert_eq!(e.verdict, Verdict::Slow, "{}", e.reason);
    }

    #[test]
    fn without_progress_counts_a_backlog_that_waits_and_does_not_shrink_is_slow_or_stalled() {
        // RabbitMQ from outside, a hung consumer, nothing new arriving: flat.
        let e = evaluate(&window(&[
            (7, None, None, Some(0), Some(1)),
            (7, None, None, Some(0), Some(1)),
            (7, None, None, Some(0), Some(1)),
        ]))
        .unwrap();
        assert_eq!(e.verdict, Verdict::Slow);
        assert!(e.reason.contains("slow or stalled"), "{}", e.reason);
    }

    #[test]
    fn nothing_delivered_is_stopped_even_with_dead_letters_at_a_shared_destination() {
        // JetStream, no member left; another group dead-letters into the shared stream.
        let e = evaluate(&window(&[
            (30, Some(0), Some(100), Some(5), None),
            (40, Some(0), Some(100), Some(50), None),
        ]))
        .unwrap();
        assert_eq!(e.verdict, Verdict::Stopped, "{}", e.reason);
    }

    #[test]
    fn no_progress_with_failures_is_failing_not_stalled() {
        // A dependency down: every message retried with backoff, none settled.
        let e = evaluate(&window(&[
            (50, Some(8), Some(100), Some(10), Some(1)),
            (60, Some(8), Some(100), Some(25), Some(1)),
        ]))
        .unwrap();
        assert_eq!(e.verdict, Verdict::Failing, "{}", e.reason);
        assert!(e.reason.contains("every message fails"), "{}", e.reason);
    }

    #[test]
    fn a_count_that_went_backwards_measures_nothing() {
        // The committed offset was reset: no progress figure, so no "stalled" from it.
        let e = evaluate(&window(&[
            (10, None, Some(500), None, Some(1)),
            (8, None, Some(20), None, Some(1)),
        ]))
        .unwrap();
        assert_eq!(e.settled, None);
        assert_eq!(e.verdict, Verdict::Ok, "{}", e.reason);
    }

    #[test]
    fn slow_when_progress_does_not_shrink_the_backlog() {
        let e = evaluate(&window(&[
            (100, Some(8), Some(0), Some(0), Some(1)),
            (150, Some(8), Some(20), Some(0), Some(1)),
        ]))
        .unwrap();
        assert_eq!(e.verdict, Verdict::Slow);
        assert!(e.reason.contains("grew from 100 to 150"), "{}", e.reason);
    }

    #[test]
    fn stalled_when_delivered_messages_never_settle() {
        let e = evaluate(&window(&[
            (10, Some(4), Some(7), None, None),
            (12, Some(4), Some(7), None, None),
            (15, Some(4), Some(7), None, None),
        ]))
        .unwrap();
        assert_eq!(e.verdict, Verdict::Stalled);
        assert!(e.reason.contains("4 delivered"), "{}", e.reason);
    }

    #[test]
    fn stopped_when_nothing_is_delivered_or_no_member_is_attached() {
        assert_eq!(
            verdict(&[
                (10, Some(0), Some(7), None, None),
                (12, Some(0), Some(7), None, None)
            ]),
            Verdict::Stopped
        );
        // A member count of zero wins even with progress (the last member just left).
        assert_eq!(
            verdict(&[
                (10, None, Some(7), None, Some(1)),
                (12, None, Some(9), None, Some(0))
            ]),
            Verdict::Stopped
        );
    }

    #[test]
    fn failing_when_most_handlings_fail_even_with_an_empty_backlog() {
        let e = evaluate(&window(&[
            (0, Some(0), Some(100), Some(3), None),
            (0, Some(0), Some(140), Some(30), None),
        ]))
        .unwrap();
        assert_eq!(e.verdict, Verdict::Failing);
        assert_eq!((e.settled, e.failed), (Some(40), Some(27)));
        // A few failures among many successes are not an outage.
        assert_eq!(
            verdict(&[
                (0, None, Some(100), Some(3), None),
                (0, None, Some(200), Some(5), None)
            ]),
            Verdict::Ok
        );
    }

    #[test]
    fn without_progress_counts_failing_needs_failures_in_every_interval() {
        // RabbitMQ from outside: dead letters growing all along.
        assert_eq!(
            verdict(&[
                (5, None, None, Some(1), Some(1)),
                (5, None, None, Some(4), Some(1)),
                (6, None, None, Some(9), Some(1)),
            ]),
            Verdict::Failing
        );
        // One burst of dead letters is not.
        assert_eq!(
            verdict(&[
                (5, None, None, Some(1), Some(1)),
                (5, None, None, Some(4), Some(1)),
                (4, None, None, Some(4), Some(1)),
            ]),
            Verdict::Ok
        );
    }

    #[test]
    fn without_progress_counts_a_growing_backlog_is_slow_or_stalled() {
        let e = evaluate(&window(&[
            (5, None, None, Some(0), Some(1)),
            (9, None, None, Some(0), Some(1)),
        ]))
        .unwrap();
        assert_eq!(e.verdict, Verdict::Slow);
        assert!(e.reason.contains("slow or stalled"), "{}", e.reason);
    }
}
