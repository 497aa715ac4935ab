//! What an operator reads of a dead letter: its fields from the `wharf-dlq-*` headers, a
//! table row, a JSON object, and `show`'s whole view with the payload as text, pretty
//! JSON or hex.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};
use wharf::headers::names;
use wharf::Message;

/// Longest error text a table row shows (the full text is in `--json` and `show`).
const ERROR_COLUMN: usize = 60;

/// The fields `list` shows, read from a dead letter's headers (`-` when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// The message id.
    pub id: String,
    /// `wharf-dlq-reason`.
    pub reason: String,
    /// `wharf-dlq-attempts`.
    pub attempts: String,
    /// `wharf-dlq-source`.
    pub source: String,
    /// `wharf-dlq-consumer`.
    pub consumer: String,
    /// `wharf-dlq-failed-at`.
    pub failed_at: String,
    /// `wharf-dlq-error`, first line.
    pub error: String,
    /// `wharf-replay-count` (0 when never replayed).
    pub replays: u32,
}

impl Fields {
    /// The fields of `letter`.
    pub fn of(letter: &Message) -> Fields {
        let h = letter.headers();
        let text = |name: &str| h.get_str(name).unwrap_or("-").to_owned();
        Fields {
            id: letter.id().as_str().to_owned(),
            reason: text(names::DLQ_REASON),
            attempts: text(names::DLQ_ATTEMPTS),
            source: text(names::DLQ_SOURCE),
            consumer: text(names::DLQ_CONSUMER),
            failed_at: text(names::DLQ_FAILED_AT),
            error: first_line(h.get_str(names::DLQ_ERROR).unwrap_or("-")).to_owned(),
            replays: replay_count(letter),
        }
    }
}

/// How many times `letter` was replayed before (`wharf-replay-count`; 0 when absent or
/// not a number).
pub fn replay_count(letter: &Message) -> u32 {
    letter
        .headers()
        .get_str(names::REPLAY_COUNT)
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The first line of `text`.
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// `text` cut to `max` characters, with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `list`'s table: a header line and one row per dead letter, columns as wide as their
/// widest cell (the error cut to 60 characters).
pub fn table(letters: &[Message]) -> String {
    let header = [
        "ID",
        "REASON",
        "ATTEMPTS",
        "SOURCE",
        "CONSUMER",
        "FAILED AT",
        "REPLAYS",
        "ERROR",
    ];
    let rows: Vec<Vec<String>> = letters
        .iter()
        .map(|m| {
            let f = Fields::of(m);
            vec![
                f.id,
                f.reason,
                f.attempts,
                f.source,
                f.consumer,
                f.failed_at,
                f.replays.to_string(),
                cut(&f.error, ERROR_COLUMN),
            ]
        })
        .collect();
    crate::table::render(&header, &rows)
}

/// A dead letter as JSON: its fields, key, every header and the payload's size.
pub fn to_json(letter: &Message) -> Value {
    let f = Fields::of(letter);
    let h = letter.headers();
    let mut headers = Map::new();
    for (name, value) in h.iter() {
        headers.insert(
            name.to_owned(),
            Value::String(String::from_utf8_lossy(value).into_owned()),
        );
    }
    json!({
        "id": f.id,
        "key": letter.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        "reason": h.get_str(names::DLQ_REASON),
        "attempts": h.get_str(names::DLQ_ATTEMPTS).and_then(|n| n.parse::<u64>().ok()),
        "source": h.get_str(names::DLQ_SOURCE),
        "consumer": h.get_str(names::DLQ_CONSUMER),
        "failed_at": h.get_str(names::DLQ_FAILED_AT),
        "error": h.get_str(names::DLQ_ERROR),
        "replays": f.replays,
        "payload_bytes": letter.payload().len(),
        "headers": headers,
    })
}

/// `show`'s view: id, key, every header (sorted by name) and the payload.
pub fn show(letter: &Message) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "id: {}", letter.id());
    if let Some(key) = letter.key() {
        let _ = writeln!(out, "key: {}", String::from_utf8_lossy(key));
    }
    let mut headers: Vec<_> = letter.headers().iter().collect();
    headers.sort_by(|a, b| a.0.cmp(b.0));
    let _ = writeln!(out, "headers:");
    for (name, value) in headers {
        let _ = writeln!(out, "  {name}: {}", String::from_utf8_lossy(value));
    }
    let (kind, text) = payload(letter.payload());
    let _ = writeln!(out, "payload ({} bytes, {kind}):", letter.payload().len());
    out.push_str(&text);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// The payload as it is shown, and what it is: pretty JSON (`json`), the text as it is
/// (`text`), or a hex dump, 16 bytes a line with offsets and the printable characters
/// (`binary`).
pub fn payload(bytes: &[u8]) -> (&'static str, String) {
    match std::str::from_utf8(bytes) {
        Ok(text) => match serde_json::from_str::<Value>(text) {
            Ok(value) => (
                "json",
                serde_json::to_string_pretty(&value).unwrap_or_else(|_| text.to_owned()),
            ),
            Err(_) => ("text", text.to_owned()),
        },
        Err(_) => ("binary", hex(bytes)),
    }
}

/// A hex dump of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (line, chunk) in bytes.chunks(16).enumerate() {
        let _ = write!(out, "{:08x}  ", line * 16);
        for i in 0..16 {
            match chunk.get(i) {
                Some(b) => {
                    let _ = write!(out, "{b:02x} ");
                }
                None => out.push_str("   "),
            }
        }
        out.push(' ');
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    out
}
