//! `wharf dlq stats`: dead letters counted by reason and by error, the way operators
//! triage (ServicePulse groups failed messages by exception type and call site): the
//! error's first line with every run of digits masked as `#`, so "order 17 not found"
//! and "order 4711 not found" are one group.

use std::collections::HashMap;
use std::fmt::Write as _;

use wharf::headers::names;
use wharf::Message;

use crate::letter::{cut, first_line};

/// Longest error signature shown.
const SIGNATURE: usize = 100;

/// The error's group: its first line, digits masked, cut to 100 characters.
pub fn signature(error: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in first_line(error).chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    cut(out.trim(), SIGNATURE)
}

/// `(group, count)` pairs, the largest first (ties by name).
pub fn count_by(letters: &[Message], group: impl Fn(&Message) -> String) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for letter in letters {
        *counts.entry(group(letter)).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}

/// The reason of `letter` (`-` when absent).
pub fn reason(letter: &Message) -> String {
    letter
        .headers()
        .get_str(names::DLQ_REASON)
        .unwrap_or("-")
        .to_owned()
}

/// The error signature of `letter`.
pub fn error(letter: &Message) -> String {
    signature(letter.headers().get_str(names::DLQ_ERROR).unwrap_or("-"))
}

/// The report: a count per reason, then a count per error signature.
pub fn report(letters: &[Message]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} dead letters", letters.len());
    let _ = writeln!(out, "\nby reason:");
    for (reason, n) in count_by(letters, reason) {
        let _ = writeln!(out, "{n:>8}  {reason}");
    }
    let _ = writeln!(out, "\nby error:");
    for (error, n) in count_by(letters, error) {
        let _ = writeln!(out, "{n:>8}  {error}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked_and_only_the_first_line_counts() {
        assert_eq!(
            signature("order 17 not found\nat line 3"),
            "order # not found"
        );
        assert_eq!(signature("order 4711 not found"), "order # not found");
        assert_eq!(signature("timeout after 30.5s"), "timeout after #.#s");
        assert_eq!(signature(""), "");
    }
}
