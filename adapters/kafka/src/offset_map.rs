//! The offsets settled above the committed one, carried in the commit's metadata, so a
//! restart skips them instead of handling them again.
//!
//! Kafka commits one position per partition: everything below it is done. With records
//! settling out of order (key lanes), a crash with one early record in flight re-reads
//! everything after it, settled or not. Like Confluent's Parallel Consumer, wharf stores
//! with each commit the offsets above it that are settled, and on assignment reads them
//! back and settles those records without handing them out again: after a crash only
//! what was really unsettled runs again.
//!
//! The text is `wharf1:<committed>:<runs>`: `<committed>` the offset it was written for
//! (a commit made by someone else, or a reset, does not match and the map is ignored),
//! `<runs>` the lengths of alternating runs above it, starting with offsets not settled
//! (possibly 0), then settled, then not settled…, as LEB128 varints in unpadded
//! URL-safe base64. A map longer than [`MAX_LEN`] is not stored (the broker's
//! `offset.metadata.max.bytes` is 4096 by default): the plain committed offset is, and
//! the fallback is counted in `wharf_kafka_offset_map_overflows_total`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Longest map stored; the broker refuses a commit whose metadata is longer than its
/// `offset.metadata.max.bytes` (4096 by default).
pub(crate) const MAX_LEN: usize = 4000;

/// Counter of maps too long to store (label `topic`).
pub(crate) const OVERFLOWS: &str = "wharf_kafka_offset_map_overflows_total";

const PREFIX: &str = "wharf1:";

/// Ranges `[start, end)` of settled offsets, ascending and disjoint.
pub(crate) type Ranges = Vec<(i64, i64)>;

/// The map of the settled `ranges` (`[start, end)`, sorted by start; they may touch or
/// overlap) above `committed`, for a commit of `committed` (the first offset not
/// settled: anything at or below it is left out): empty when nothing above is settled,
/// `None` when it would be longer than [`MAX_LEN`].
pub(crate) fn encode(committed: i64, ranges: &[(i64, i64)]) -> Option<String> {
    let mut bytes = Vec::new();
    let mut described = committed; // offsets below it are described
    let mut open: Option<(i64, i64)> = None; // the settled run being extended
    let emit = |bytes: &mut Vec<u8>, described: &mut i64, (start, end): (i64, i64)| {
        varint(bytes, (start - *described) as u64);
        varint(bytes, (end - start) as u64);
        *described = end;
    };
    for &(start, end) in ranges {
        let start = start.max(committed + 1);
        if end <= start {
            continue;
        }
        open = match open {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some(run) => {
                emit(&mut bytes, &mut described, run);
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    match open {
        Some(run) => emit(&mut bytes, &mut described, run),
        None => return Some(String::new()),
    }
    let text = format!("{PREFIX}{committed}:{}", URL_SAFE_NO_PAD.encode(&bytes));
    (text.len() <= MAX_LEN).then_some(text)
}

/// The settled ranges `metadata` describes above `committed`; `None` when it is not a
/// map of wharf's for that offset (empty, another writer's, a different position).
pub(crate) fn decode(metadata: &str, committed: i64) -> Option<Ranges> {
    let rest = metadata.strip_prefix(PREFIX)?;
    let (at, runs) = rest.split_once(':')?;
    if at.parse::<i64>().ok()? != committed {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(runs).ok()?;
    let mut input = bytes.as_slice();
    let mut ranges = Vec::new();
    let mut at = committed;
    while !input.is_empty() {
        let gap = read_varint(&mut input)?;
        let len = read_varint(&mut input)?;
        let start = at.checked_add(i64::try_from(gap).ok()?)?;
        let end = start.checked_add(i64::try_from(len).ok()?)?;
        if len == 0 {
            return None;
        }
        ranges.push((start, end));
        at = end;
    }
    Some(ranges)
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(ranges: &Ranges) -> Vec<i64> {
        ranges.iter().flat_map(|&(s, e)| s..e).collect()
    }

    /// Single offsets as ranges.
    fn singles(offsets: &[i64]) -> Ranges {
        offsets.iter().map(|&o| (o, o + 1)).collect()
    }

    #[test]
    fn settled_offsets_round_trip() {
        let settled = [11, 12, 13, 20, 21, 40];
        let map = encode(10, &singles(&settled)).unwrap();
        assert!(map.starts_with("wharf1:10:"), "{map}");
        let ranges = decode(&map, 10).unwrap();
        assert_eq!(ranges, vec![(11, 14), (20, 22), (40, 41)]);
        assert_eq!(offsets(&ranges), settled);
    }

    #[test]
    fn nothing_settled_above_is_an_empty_map() {
        assert_eq!(encode(10, &[]).as_deref(), Some(""));
        assert_eq!(
            encode(10, &singles(&[3, 9, 10])).as_deref(),
            Some(""),
            "offsets at or below the committed one are not above it"
        );
        assert_eq!(decode("", 10), None);
    }

    #[test]
    fn a_map_for_another_position_or_writer_is_ignored() {
        let map = encode(10, &singles(&[12])).unwrap();
        assert_eq!(decode(&map, 11), None, "committed by someone else since");
        assert_eq!(decode("app metadata", 10), None);
        assert_eq!(decode("wharf1:10:!!!", 10), None, "not base64");
        assert_eq!(decode("wharf1:10:gA", 10), None, "a varint cut short");
    }

    #[test]
    fn overlapping_and_touching_ranges_merge() {
        let map = encode(0, &[(2, 5), (3, 4), (5, 7), (9, 10)]).unwrap();
        assert_eq!(decode(&map, 0).unwrap(), vec![(2, 7), (9, 10)]);
    }

    #[test]
    fn a_long_settled_run_stays_small() {
        let map = encode(0, &[(1, 600_000), (500_000, 1_000_001)]).unwrap();
        assert!(map.len() < 40, "{map}");
        assert_eq!(decode(&map, 0).unwrap(), vec![(1, 1_000_001)]);
    }

    #[test]
    fn a_map_too_long_for_the_broker_is_not_made() {
        // Every other offset settled: two runs per offset.
        let sparse: Vec<i64> = (1..20_000).map(|i| i * 2).collect();
        assert_eq!(encode(0, &singles(&sparse)), None);
    }
}
