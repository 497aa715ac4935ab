//! `wharf dlq replay`: dead letters back to their source, one at a time, each removed
//! from the dead-letter destination only after its republish is confirmed.
//!
//! The copy keeps the message id, key, payload and the application's headers; it loses
//! the `wharf-dlq-*` headers, the attempt count (`wharf-attempt`, and RabbitMQ's
//! `x-delivery-count` and `x-death` records), so the consumer starts again at attempt 1;
//! it gains `wharf-replayed-at` (RFC 3339) and `wharf-replay-count` (one more than the
//! dead letter's). A dead letter already replayed `--max-replays` times (default 3) is
//! skipped: a message that fails every time stops coming back.
//!
//! A crash (or Ctrl-C) between a republish and its removal leaves that dead letter in
//! place: running the command again replays it once more. So a replay is at least once,
//! never lost, and a consumer with the deduplication layer sees the same id twice and
//! handles it once.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use indicatif::{ProgressBar, ProgressStyle};
use wharf::adapter::DeadLetterReader;
use wharf::headers::{names, Headers};
use wharf::{Message, Publisher};

use crate::letter::replay_count;

/// What `replay` does besides the filters.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Republish here instead of each dead letter's source (`--to`).
    pub to: Option<String>,
    /// Only say what would happen (`--dry-run`).
    pub dry_run: bool,
    /// At most this many replays (`--limit`).
    pub limit: Option<usize>,
    /// At most this many republishes a second (`--rate`).
    pub rate: Option<f64>,
    /// Skip dead letters replayed this many times already (`--max-replays`).
    pub max_replays: u32,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            to: None,
            dry_run: false,
            limit: None,
            rate: None,
            max_replays: 3,
        }
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Republished and removed from the dead-letter destination.
    pub replayed: usize,
    /// Left in place by the loop guard (`--max-replays`).
    pub skipped: usize,
    /// Not republished (left in place), or republished but not removed (named in the
    /// output: they will be replayed again next time).
    pub failed: usize,
    /// With `--dry-run`: would be replayed.
    pub would_replay: usize,
}

impl ReplaySummary {
    /// The summary line.
    pub fn line(&self, dry_run: bool) -> String {
        if dry_run {
            format!(
                "dry run: would replay {}, would skip {} (replayed too often); nothing was changed",
                self.would_replay, self.skipped
            )
        } else {
            format!(
                "replayed {}, skipped {} (replayed too often), failed {}",
                self.replayed, self.skipped, self.failed
            )
        }
    }
}

/// The copy of `letter` that goes back to its source: see the [module docs](self).
pub fn replay_copy(letter: &Message, count: u32, now: SystemTime) -> Message {
    let mut headers = Headers::new();
    for (name, value) in letter.headers().iter() {
        if keeps(name) {
            headers.append(name.to_owned(), value.clone());
        }
    }
    headers.insert(
        names::REPLAYED_AT,
        humantime::format_rfc3339_millis(now).to_string(),
    );
    headers.insert(names::REPLAY_COUNT, count.to_string());
    let mut copy =
        Message::with_id(letter.id().clone(), letter.payload().clone()).with_headers(headers);
    if let Some(key) = letter.key() {
        copy = copy.with_key(key.clone());
    }
    copy
}

/// Whether a replay keeps header `name`: not the dead-letter headers, not the attempt
/// count (wharf's or the broker's).
fn keeps(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !(lower.starts_with("wharf-dlq-")
        || lower == names::ATTEMPT
        || lower == names::REPLAYED_AT
        || lower == names::REPLAY_COUNT
        || lower == "x-delivery-count"
        || lower == "x-death"
        || lower.starts_with("x-first-death-")
        || lower.starts_with("x-last-death-"))
}

/// Where `letter` goes back to: `--to`, else its `wharf-dlq-source`, else `source`.
pub fn target<'a>(letter: &'a Message, options: &'a ReplayOptions, source: &'a str) -> &'a str {
    options
        .to
        .as_deref()
        .or_else(|| letter.headers().get_str(names::DLQ_SOURCE))
        .unwrap_or(source)
}

/// Replays `letters` (already filtered, oldest first) from `destination`, writing one
/// line per dead letter to `out` and drawing a progress bar on a terminal.
pub async fn replay<R, P>(
    reader: &R,
    publisher: &P,
    destination: &str,
    source: &str,
    letters: &[Message],
    options: &ReplayOptions,
    out: &mut dyn Write,
) -> ReplaySummary
where
    R: DeadLetterReader,
    P: Publisher,
{
    let mut summary = ReplaySummary::default();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let total = options
        .limit
        .map_or(letters.len(), |l| l.min(letters.len()));
    let bar = if options.dry_run || total < 20 {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };
    let pause = options
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(1.0 / r));
    let mut next = tokio::time::Instant::now();
    for letter in letters.iter().take(total) {
        let id = letter.id();
        let count = replay_count(letter);
        if count >= options.max_replays {
            summary.skipped += 1;
            let _ = writeln!(
                out,
                "skip {id}: replayed {count} times already (--max-replays {})",
                options.max_replays
            );
            bar.inc(1);
            continue;
        }
        let to = target(letter, options, source);
        if options.dry_run {
            summary.would_replay += 1;
            *reasons.entry(crate::stats::reason(letter)).or_default() += 1;
            let _ = writeln!(out, "would replay {id} -> {to}");
            continue;
        }
        if let Some(pause) = pause {
            tokio::time::sleep_until(next).await;
            next = tokio::time::Instant::now() + pause;
        }
        let copy = replay_copy(letter, count + 1, SystemTime::now());
        if let Err(e) = publisher.publish(to, copy).await {
            summary.failed += 1;
            let _ = writeln!(
                out,
                "failed {id}: republishing to {to}: {e} (left in place)"
            );
            bar.inc(1);
            continue;
        }
        match reader.remove(destination, letter).await {
            Ok(_) => {
                summary.replayed += 1;
                let _ = writeln!(out, "replayed {id} -> {to}");
            }
            Err(e) => {
                summary.failed += 1;
                let _ = writeln!(
                    out,
                    "failed {id}: republished to {to} but not removed from {destination}: {e} (a later replay sends it again)"
                );
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if options.dry_run {
        let _ = writeln!(out, "\nby reason:");
        for (reason, n) in &reasons {
            let _ = writeln!(out, "{n:>8}  {reason}");
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use wharf::headers::names;
    use wharf::Message;

    use super::*;

    #[test]
    fn the_copy_keeps_the_message_and_drops_the_failure() {
        let letter = Message::with_id("order-17", "{}")
            .with_key("customer-7")
            .with_header("tenant", "acme")
            .with_header(names::ATTEMPT, "5")
            .with_header(names::DLQ_REASON, "permanent")
            .with_header(names::DLQ_SOURCE, "orders")
            .with_header("x-delivery-count", "20")
            .with_header("x-death", "…")
            .with_header("x-first-death-queue", "orders")
            .with_header(names::REPLAY_COUNT, "1");
        let copy = replay_copy(&letter, 2, UNIX_EPOCH);
        assert_eq!(copy.id().as_str(), "order-17");
        assert_eq!(copy.key().map(|k| &k[..]), Some(&b"customer-7"[..]));
        assert_eq!(copy.payload(), letter.payload());
        let names: Vec<&str> = copy.headers().iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["tenant", names::REPLAYED_AT, names::REPLAY_COUNT]);
        assert_eq!(copy.headers().get_str(names::REPLAY_COUNT), Some("2"));
        assert_eq!(
            copy.headers().get_str(names::REPLAYED_AT),
            Some("1970-01-01T00:00:00.000Z")
        );
    }

    #[test]
    fn the_target_is_to_then_the_source_header_then_the_source() {
        let with_source = Message::new("p").with_header(names::DLQ_SOURCE, "orders.v2");
        let bare = Message::new("p");
        let plain = ReplayOptions::default();
        let to = ReplayOptions {
            to: Some("orders.retry".into()),
            ..ReplayOptions::default()
        };
        assert_eq!(target(&with_source, &to, "orders"), "orders.retry");
        assert_eq!(target(&with_source, &plain, "orders"), "orders.v2");
        assert_eq!(target(&bare, &plain, "orders"), "orders");
    }
}
