use std::fmt;

use bytes::Bytes;
use wharf::headers::names;
use wharf::Headers;

/// The length of a version-`00` `traceparent` value.
const LEN: usize = 55;

/// A W3C trace id: 16 bytes, never all zero.
///
/// Displays as 32 lowercase hex digits, as in `traceparent`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(u128);

impl TraceId {
    /// The trace id with these big-endian bytes; `None` if they are all zero (invalid).
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        Self::from_u128(u128::from_be_bytes(bytes))
    }

    /// The trace id with this value; `None` for zero (invalid).
    pub fn from_u128(value: u128) -> Option<Self> {
        (value != 0).then_some(TraceId(value))
    }

    /// A random trace id.
    pub fn random() -> Self {
        loop {
            if let Some(id) = Self::from_u128(rand::random()) {
                return id;
            }
        }
    }

    /// The id as big-endian bytes (the order of its hex digits).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The id as an integer.
    pub fn to_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

/// A W3C span id (`parent-id` in `traceparent`): 8 bytes, never all zero.
///
/// Displays as 16 lowercase hex digits, as in `traceparent`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(u64);

impl SpanId {
    /// The span id with these big-endian bytes; `None` if they are all zero (invalid).
    pub fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        Self::from_u64(u64::from_be_bytes(bytes))
    }

    /// The span id with this value; `None` for zero (invalid).
    pub fn from_u64(value: u64) -> Option<Self> {
        (value != 0).then_some(SpanId(value))
    }

    /// A random span id.
    pub fn random() -> Self {
        loop {
            if let Some(id) = Self::from_u64(rand::random()) {
                return id;
            }
        }
    }

    /// The id as big-endian bytes (the order of its hex digits).
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// The id as an integer.
    pub fn to_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// A W3C trace context: the trace a piece of work belongs to, the span doing it, and
/// the trace flags — what the [`traceparent`] header carries.
///
/// Written into a message's headers (with [`inject`](TraceContext::inject), or the
/// [`Display`](fmt::Display) form `00-<trace-id>-<span-id>-<flags>`), it tells whoever
/// consumes the message that their work is a child of [`span_id`](TraceContext::span_id)
/// in trace [`trace_id`](TraceContext::trace_id).
///
/// ```
/// use wharf::Message;
/// use wharf_middleware::trace::TraceContext;
///
/// let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let ctx = TraceContext::parse(incoming).expect("valid traceparent");
/// assert_eq!(ctx.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!(ctx.is_sampled());
///
/// // Work done on behalf of `ctx` gets a span of its own in the same trace.
/// let child = ctx.child();
/// assert_eq!(child.trace_id(), ctx.trace_id());
/// assert_ne!(child.span_id(), ctx.span_id());
///
/// // Propagate it on a message you publish.
/// let mut msg = Message::new("payload");
/// child.inject(msg.headers_mut());
/// assert_eq!(TraceContext::from_headers(msg.headers()), Some(child));
///
/// // Invalid values are rejected, never repaired.
/// assert!(TraceContext::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
/// ```
///
/// [`traceparent`]: https://www.w3.org/TR/trace-context/#traceparent-header
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: TraceId,
    span_id: SpanId,
    flags: u8,
}

impl TraceContext {
    /// The `sampled` trace flag: the caller may have recorded its span.
    pub const SAMPLED: u8 = 0x01;

    /// A context from its parts.
    pub fn new(trace_id: TraceId, span_id: SpanId, flags: u8) -> Self {
        TraceContext {
            trace_id,
            span_id,
            flags,
        }
    }

    /// A new trace: random trace and span ids, flags `sampled` (wharf makes no sampling
    /// decision, so it lets downstream tracers record).
    pub fn new_root() -> Self {
        TraceContext::new(TraceId::random(), SpanId::random(), Self::SAMPLED)
    }

    /// A child in the same trace: the same trace id and flags, a fresh random span id.
    pub fn child(&self) -> Self {
        TraceContext::new(self.trace_id, SpanId::random(), self.flags)
    }

    /// Parses a `traceparent` value, strictly as the W3C Trace Context spec requires.
    ///
    /// - Version `00`: exactly `00-<32 hex>-<16 hex>-<2 hex>`, lowercase hex only, 55
    ///   characters and nothing after.
    /// - A higher version (`01` to `fe`): the first 55 characters are read as version
    ///   `00`, and anything after them must start with `-`; only the `sampled` flag is
    ///   kept, since the meaning of the other bits may have changed. The result is a
    ///   version-`00` context (the highest version wharf knows).
    /// - Version `ff`, uppercase hex, wrong lengths, an all-zero trace id or span id:
    ///   `None` (the caller starts a new trace).
    pub fn parse(value: &str) -> Option<Self> {
        let b = value.as_bytes();
        if b.len() < LEN {
            return None;
        }
        let version = hex_u8(&b[0..2])?;
        if version == 0xff {
            return None;
        }
        if version == 0x00 && b.len() != LEN {
            return None;
        }
        if b.len() > LEN && b[LEN] != b'-' {
            return None;
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let trace_id = TraceId::from_u128(hex_u128(&b[3..35])?)?;
        let span_id = SpanId::from_u64(hex_u64(&b[36..52])?)?;
        let mut flags = hex_u8(&b[53..55])?;
        if version != 0x00 {
            flags &= Self::SAMPLED;
        }
        Some(TraceContext::new(trace_id, span_id, flags))
    }

    /// The context in `headers`' `traceparent`, if there is exactly one and it is valid.
    ///
    /// Several `traceparent` values make the context ambiguous; like an invalid one they
    /// yield `None`.
    pub fn from_headers(headers: &Headers) -> Option<Self> {
        let mut values = headers
            .iter()
            .filter(|(name, _)| *name == names::TRACEPARENT)
            .map(|(_, value)| value);
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        Self::parse(std::str::from_utf8(value).ok()?)
    }

    /// Sets `headers`' `traceparent` to this context, replacing any value there.
    pub fn inject(&self, headers: &mut Headers) {
        headers.insert(names::TRACEPARENT, Bytes::copy_from_slice(&self.encode()));
    }

    /// The trace this context belongs to.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The span this context names: the `parent-id` of whoever receives it.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The trace flags (bit `0x01`: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// `true` if the `sampled` flag is set.
    pub fn is_sampled(&self) -> bool {
        self.flags & Self::SAMPLED != 0
    }

    /// The version-`00` `traceparent` value, as ASCII.
    fn encode(&self) -> [u8; LEN] {
        let mut out = [b'-'; LEN];
        let trace = self.trace_id.to_u128();
        write_hex(&mut out[0..2], 0);
        write_hex(&mut out[3..19], (trace >> 64) as u64);
        write_hex(&mut out[19..35], trace as u64);
        write_hex(&mut out[36..52], self.span_id.to_u64());
        write_hex(&mut out[53..55], u64::from(self.flags));
        out
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoded = self.encode();
        f.write_str(std::str::from_utf8(&encoded).expect("a traceparent is ASCII"))
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("trace_id", &format_args!("{}", self.trace_id))
            .field("span_id", &format_args!("{}", self.span_id))
            .field("flags", &format_args!("{:02x}", self.flags))
            .finish()
    }
}

/// The value of each lowercase hex digit; [`NOT_HEX`] for every other byte.
static HEX_VALUES: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Marks a byte that is not a lowercase hex digit (its high bits are set, a digit's
/// never are).
const NOT_HEX: u8 = 0xff;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Up to 16 lowercase hex digits as a number; `None` if any byte is not one.
fn hex_u64(digits: &[u8]) -> Option<u64> {
    debug_assert!(digits.len() <= 16);
    let mut value = 0u64;
    let mut seen = 0u8;
    for &c in digits {
        let v = HEX_VALUES[usize::from(c)];
        seen |= v;
        value = value << 4 | u64::from(v & 0x0f);
    }
    (seen & 0xf0 == 0).then_some(value)
}

/// 32 lowercase hex digits as a number.
fn hex_u128(digits: &[u8]) -> Option<u128> {
    let (high, low) = digits.split_at(16);
    Some(u128::from(hex_u64(high)?) << 64 | u128::from(hex_u64(low)?))
}

fn hex_u8(digits: &[u8]) -> Option<u8> {
    // Two digits fit in a u8.
    hex_u64(digits).map(|v| v as u8)
}

/// Writes `value`'s low `out.len()` nibbles as lowercase hex, most significant first.
fn write_hex(out: &mut [u8], value: u64) {
    // Two digits per step from a 256-entry table: this runs for every message.
    let bytes = value.to_be_bytes();
    let bytes = &bytes[bytes.len() - out.len() / 2..];
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
    }
}

/// `HEX_PAIRS[b]` is `b` as two lowercase hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut table = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = [HEX_DIGITS[b >> 4], HEX_DIGITS[b & 0x0f]];
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_displays_the_spec_example() {
        let ctx = TraceContext::parse(VALID).expect("valid");
        assert_eq!(ctx.trace_id().to_u128(), 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(ctx.span_id().to_u64(), 0x00f067aa0ba902b7);
        assert_eq!(ctx.flags(), 0x01);
        assert!(ctx.is_sampled());
        assert_eq!(ctx.to_string(), VALID);
    }

    #[test]
    fn keeps_leading_zeros_and_every_flag_of_version_00() {
        let v = "00-00000000000000000000000000000001-0000000000000001-ff";
        let ctx = TraceContext::parse(v).expect("valid");
        assert_eq!(ctx.flags(), 0xff);
        assert_eq!(ctx.to_string(), v);
        let unsampled = TraceContext::parse(&format!("{}00", &VALID[..53])).expect("valid");
        assert!(!unsampled.is_sampled());
    }

    #[test]
    fn rejects_all_zero_ids() {
        assert_eq!(
            TraceContext::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            None
        );
    }

    #[test]
    fn rejects_wrong_lengths_and_separators() {
        for bad in [
            "",
            "00",
            // trace id one digit short / long
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47361-00f067aa0ba902b7-01",
            // span id one digit short / long
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b71-01",
            // flags one digit / three digits
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
            // version one digit
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // other separators
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7.01",
            // surrounding whitespace is not part of the format
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rejects_non_lowercase_hex() {
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn version_00_allows_nothing_after_the_flags() {
        assert_eq!(TraceContext::parse(&format!("{VALID}-extra")), None);
        assert_eq!(TraceContext::parse(&format!("{VALID}-")), None);
    }

    #[test]
    fn version_ff_is_invalid() {
        assert_eq!(TraceContext::parse(&format!("ff{}", &VALID[2..])), None);
    }

    #[test]
    fn future_versions_are_read_as_00_and_keep_only_the_sampled_flag() {
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
        let ctx = TraceContext::parse(future).expect("a future version parses");
        assert_eq!(ctx.flags(), 0x01);
        assert_eq!(
            ctx.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        // Extra fields after a dash are allowed (and ignored) for future versions...
        let extended = format!("{future}-what-the-future-will-be-like");
        assert_eq!(TraceContext::parse(&extended), Some(ctx));
        // ...but the flags must still be followed by a dash or the end.
        let glued = format!("{future}.what-the-future-will-not-be-like");
        assert_eq!(TraceContext::parse(&glued), None);
        // And a future version too short to hold the version-00 fields is invalid.
        assert_eq!(TraceContext::parse(&future[..54]), None);
        // The version-00 rules on the fields still apply.
        assert_eq!(
            TraceContext::parse("cc-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
    }

    #[test]
    fn child_keeps_trace_and_flags_with_a_new_span() {
        let ctx = TraceContext::parse(VALID).expect("valid");
        let child = ctx.child();
        assert_eq!(child.trace_id(), ctx.trace_id());
        assert_eq!(child.flags(), ctx.flags());
        assert_ne!(child.span_id(), ctx.span_id());
    }

    #[test]
    fn roots_are_valid_distinct_and_sampled() {
        let a = TraceContext::new_root();
        let b = TraceContext::new_root();
        assert_ne!(a.trace_id(), b.trace_id());
        assert!(a.is_sampled());
        assert_eq!(TraceContext::parse(&a.to_string()), Some(a));
    }

    #[test]
    fn headers_round_trip_and_reject_duplicates_and_non_utf8() {
        let ctx = TraceContext::parse(VALID).expect("valid");
        let mut headers = Headers::new();
        headers.insert(
            names::TRACEPARENT,
            "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-00",
        );
        ctx.inject(&mut headers);
        assert_eq!(headers.get_str(names::TRACEPARENT), Some(VALID));
        assert_eq!(TraceContext::from_headers(&headers), Some(ctx));

        headers.append(names::TRACEPARENT, VALID);
        assert_eq!(TraceContext::from_headers(&headers), None, "two values");

        let mut binary = Headers::new();
        binary.insert(names::TRACEPARENT, vec![0xff; LEN]);
        assert_eq!(TraceContext::from_headers(&binary), None);
        assert_eq!(TraceContext::from_headers(&Headers::new()), None);
    }

    #[test]
    fn only_lowercase_hex_digits_are_digits() {
        for c in 0..=255u8 {
            let expected = match c {
                b'0'..=b'9' => Some(u64::from(c - b'0')),
                b'a'..=b'f' => Some(u64::from(c - b'a' + 10)),
                _ => None,
            };
            assert_eq!(hex_u64(&[c]), expected, "byte {c:#04x}");
        }
    }

    #[test]
    fn random_contexts_round_trip_through_the_header_format() {
        for flags in 0..=255u8 {
            let ctx = TraceContext::new(TraceId::random(), SpanId::random(), flags);
            let text = ctx.to_string();
            assert_eq!(text.len(), LEN);
            assert_eq!(TraceContext::parse(&text), Some(ctx), "{text}");
        }
    }

    #[test]
    fn ids_from_bytes_reject_zero() {
        assert_eq!(TraceId::from_bytes([0; 16]), None);
        assert_eq!(SpanId::from_bytes([0; 8]), None);
        let id = TraceId::from_bytes([1; 16]).expect("non-zero");
        assert_eq!(TraceId::from_bytes(id.to_bytes()), Some(id));
        assert_eq!(
            SpanId::from_bytes([0, 0, 0, 0, 0, 0, 0, 1]).map(SpanId::to_u64),
            Some(1)
        );
    }
}
