//! Which dead letters a command acts on: `--reason`, `--consumer`, `--since`, `--until`,
//! `--key`, all of which must match.

use std::time::{Duration, SystemTime};

use wharf::headers::names;
use wharf::Message;

use crate::exit::Failure;

/// The filters of a command; an empty filter matches every dead letter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `wharf-dlq-reason` equals this (`permanent`, `decode`, `retries-exhausted`, ...).
    pub reason: Option<String>,
    /// `wharf-dlq-consumer` equals this.
    pub consumer: Option<String>,
    /// Failed at or after this moment (`wharf-dlq-failed-at`).
    pub since: Option<SystemTime>,
    /// Failed before this moment.
    pub until: Option<SystemTime>,
    /// The message key equals this (as UTF-8 text).
    pub key: Option<String>,
}

impl Filter {
    /// Whether `letter` passes every filter set. A dead letter without a
    /// `wharf-dlq-failed-at` passes no time filter.
    pub fn matches(&self, letter: &Message) -> bool {
        let h = letter.headers();
        if let Some(reason) = &self.reason {
            if h.get_str(names::DLQ_REASON) != Some(reason.as_str()) {
                return false;
            }
        }
        if let Some(consumer) = &self.consumer {
            if h.get_str(names::DLQ_CONSUMER) != Some(consumer.as_str()) {
                return false;
            }
        }
        if let Some(key) = &self.key {
            if letter.key().map(|k| &k[..]) != Some(key.as_bytes()) {
                return false;
            }
        }
        if self.since.is_some() || self.until.is_some() {
            let Some(at) = failed_at(letter) else {
                return false;
            };
            if self.since.is_some_and(|since| at < since)
                || self.until.is_some_and(|until| at >= until)
            {
                return false;
            }
        }
        true
    }
}

/// When `letter` was given up on (`wharf-dlq-failed-at`), if it says.
pub fn failed_at(letter: &Message) -> Option<SystemTime> {
    let text = letter.headers().get_str(names::DLQ_FAILED_AT)?;
    humantime::parse_rfc3339_weak(text).ok()
}

/// A `--since`/`--until` value: an RFC 3339 time (`2026-12-03T06:00:00Z`) or a duration
/// before `now` (`90m`, `2h`, `7days`).
pub fn parse_time(option: &str, value: &str, now: SystemTime) -> Result<SystemTime, Failure> {
    if let Ok(at) = humantime::parse_rfc3339_weak(value) {
        return Ok(at);
    }
    let ago: Duration = humantime::parse_duration(value).map_err(|_| {
        Failure::Usage(format!(
            "`--{option}`: `{value}` is neither an RFC 3339 time (2026-12-03T06:00:00Z) nor a duration ago (90m, 2h, 7days)"
        ))
    })?;
    // `SystemTime` goes before 1970 on Unix; no dead letter does.
    now.checked_sub(ago)
        .filter(|at| *at >= std::time::UNIX_EPOCH)
        .ok_or_else(|| Failure::Usage(format!("`--{option}`: `{value}` reaches before 1970")))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use wharf::headers::names;
    use wharf::Message;

    use super::*;

    fn letter(reason: &str, consumer: &str, key: &str, failed_at: &str) -> Message {
        Message::with_id("m", "p")
            .with_key(key.to_owned())
            .with_header(names::DLQ_REASON, reason.to_owned())
            .with_header(names::DLQ_CONSUMER, consumer.to_owned())
            .with_header(names::DLQ_FAILED_AT, failed_at.to_owned())
    }

    #[test]
    fn every_filter_set_must_match() {
        let m = letter(
            "permanent",
            "billing",
            "customer-7",
            "2026-12-03T06:00:00.000Z",
        );
        let at = |s: &str| humantime::parse_rfc3339_weak(s).unwrap();
        assert!(Filter::default().matches(&m));
        let pass = Filter {
            reason: Some("permanent".into()),
            consumer: Some("billing".into()),
            key: Some("customer-7".into()),
            since: Some(at("2026-12-03T06:00:00Z")),
            until: Some(at("2026-12-03T06:00:01Z")),
        };
        assert!(pass.matches(&m));
        for fail in [
            Filter {
                reason: Some("decode".into()),
                ..pass.clone()
            },
            Filter {
                consumer: Some("shipping".into()),
                ..pass.clone()
            },
            Filter {
                key: Some("customer-8".into()),
                ..pass.clone()
            },
            Filter {
                since: Some(at("2026-12-03T06:00:00.001Z")),
                ..pass.clone()
            },
            // `until` is exclusive.
            Filter {
                until: Some(at("2026-12-03T06:00:00Z")),
                ..pass.clone()
            },
        ] {
            assert!(!fail.matches(&m), "{fail:?}");
        }
        // Without a failed-at header, no time filter passes.
        let undated = Message::with_id("m", "p");
        assert!(!Filter {
            since: Some(UNIX_EPOCH),
            ..Filter::default()
        }
        .matches(&undated));
    }

    #[test]
    fn times_are_rfc3339_or_a_duration_ago() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            parse_time("since", "2h", now).unwrap(),
            now - Duration::from_secs(7200)
        );
        assert_eq!(
            parse_time("since", "1970-01-01T00:00:10Z", now).unwrap(),
            UNIX_EPOCH + Duration::from_secs(10)
        );
        let err = parse_time("until", "yesterday", now).unwrap_err();
        assert_eq!(err.code(), 2);
        assert!(err.to_string().contains("--until"), "{err}");
        assert!(parse_time("since", "100years", now).is_err(), "before 1970");
    }
}
