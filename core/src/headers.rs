//! Message headers: an ordered list of name/value pairs, cheap to clone.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

/// Header names wharf itself reads and writes. They are the same on every broker.
pub mod names {
    /// Id set by wharf publishers when the broker has no native message id.
    pub const MESSAGE_ID: &str = "wharf-message-id";
    /// Attempt number carried on redelivered copies (retry queues, retry topics).
    pub const ATTEMPT: &str = "wharf-attempt";
    /// Business key read by the idempotency layer.
    pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// Why a message was dead-lettered (`retries-exhausted`, `permanent`, `decode`, ...).
    pub const DLQ_REASON: &str = "wharf-dlq-reason";
    /// Error text of the last failure, truncated to a bound.
    pub const DLQ_ERROR: &str = "wharf-dlq-error";
    /// Source (queue, topic, subject) the dead letter came from.
    pub const DLQ_SOURCE: &str = "wharf-dlq-source";
    /// Partition the dead letter came from, where the broker has partitions.
    pub const DLQ_PARTITION: &str = "wharf-dlq-partition";
    /// Offset or sequence the dead letter had at its source.
    pub const DLQ_OFFSET: &str = "wharf-dlq-offset";
    /// Name of the consumer that gave up on the message.
    pub const DLQ_CONSUMER: &str = "wharf-dlq-consumer";
    /// Attempts made before giving up.
    pub const DLQ_ATTEMPTS: &str = "wharf-dlq-attempts";
    /// When the consumer gave up, RFC 3339.
    pub const DLQ_FAILED_AT: &str = "wharf-dlq-failed-at";
    /// On a replayed dead letter (`wharf dlq replay`): when it was replayed, RFC 3339.
    pub const REPLAYED_AT: &str = "wharf-replayed-at";
    /// On a replayed dead letter: how many times it was replayed (the replay's loop guard
    /// reads it).
    pub const REPLAY_COUNT: &str = "wharf-replay-count";
    /// Set when a dead-letter copy was cut to fit the destination's size limit: what
    /// was cut, `error` (the `wharf-dlq-error` text) and/or `headers=<n>` (that many of
    /// the original's own headers, largest first). See [`fit`](crate::adapter::dead_letter::fit).
    pub const DLQ_TRIMMED: &str = "wharf-dlq-trimmed";
    /// On a Kafka dead-letter topic: a marker record saying the dead letter with this id
    /// was removed (Kafka cannot delete one record); readers skip both.
    pub const DLQ_REMOVED: &str = "wharf-dlq-removed";
}

/// An ordered list of header name/value pairs.
///
/// Names are case-sensitive (Kafka, AMQP and NATS all preserve case). Values are raw
/// bytes; [`Headers::get_str`] reads them as UTF-8.
///
/// # Clone
///
/// Cloning is a reference-count increment: the entries live behind an `Arc` and are copied
/// only when a clone is modified. An empty `Headers` allocates nothing.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Option<Arc<Entries>>,
}

type Entries = Vec<(Cow<'static, str>, Bytes)>;

impl Headers {
    /// An empty header list.
    pub const fn new() -> Self {
        Headers { entries: None }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.len())
    }

    /// `true` if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first value stored under `name`.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The first value stored under `name`, if it is valid UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// `true` if a value is stored under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`, replacing every value stored under it.
    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Bytes>) {
        let name = name.into();
        let value = value.into();
        let entries = self.entries_mut();
        if let Some(pos) = entries.iter().position(|(n, _)| *n == name) {
            entries[pos].1 = value;
            let mut i = pos + 1;
            while i < entries.len() {
                if entries[i].0 == name {
                    entries.remove(i);
                } else {
                    i += 1;
                }
            }
        } else {
            entries.push((name, value));
        }
    }

    /// Adds a value under `name`, keeping any values already stored under it.
    pub fn append(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Bytes>) {
        self.entries_mut().push((name.into(), value.into()));
    }

    /// Removes every value stored under `name`; returns the first one.
    pub fn remove(&mut self, name: &str) -> Option<Bytes> {
        if !self.contains(name) {
            return None;
        }
        let entries = self.entries_mut();
        let mut first = None;
        entries.retain(|(n, v)| {
            if n == name {
                if first.is_none() {
                    first = Some(v.clone());
                }
                false
            } else {
                true
            }
        });
        first
    }

    /// Iterates over the entries in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Bytes)> + '_ {
        self.entries
            .as_deref()
            .map(|e| e.as_slice())
            .unwrap_or(&[])
            .iter()
            .map(|(n, v)| (n.as_ref(), v))
    }

    fn entries_mut(&mut self) -> &mut Entries {
        Arc::make_mut(self.entries.get_or_insert_with(Default::default))
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in self.iter() {
            match std::str::from_utf8(value) {
                Ok(s) => map.entry(&name, &s),
                Err(_) => map.entry(&name, &format_args!("<{} bytes>", value.len())),
            };
        }
        map.finish()
    }
}

impl<N, V> FromIterator<(N, V)> for Headers
where
    N: Into<Cow<'static, str>>,
    V: Into<Bytes>,
{
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let entries: Vec<_> = iter
            .into_iter()
            .map(|(n, v)| (n.into(), v.into()))
            .collect();
        if entries.is_empty() {
            Headers::new()
        } else {
            Headers {
                entries: Some(Arc::new(entries)),
            }
        }
    }
}

impl<N, V> Extend<(N, V)> for Headers
where
    N: Into<Cow<'static, str>>,
    V: Into<Bytes>,
{
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, iter: I) {
        let entries = self.entries_mut();
        entries.extend(iter.into_iter().map(|(n, v)| (n.into(), v.into())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_replaces_every_value_and_append_keeps_them() {
        let mut h = Headers::new();
        h.append("a", "1");
        h.append("a", "2");
        h.append("b", "3");
        assert_eq!(h.len(), 3);
        h.insert("a", "x");
        assert_eq!(h.len(), 2);
        assert_eq!(h.get_str("a"), Some("x"));
        assert_eq!(h.remove("b").as_deref(), Some(&b"3"[..]));
        assert!(!h.contains("b"));
    }

    #[test]
    fn clones_are_independent() {
        let mut a: Headers = [("k", "v")].into_iter().collect();
        let b = a.clone();
        a.insert("k", "changed");
        assert_eq!(b.get_str("k"), Some("v"));
        assert_eq!(a.get_str("k"), Some("changed"));
    }

    #[test]
    fn names_are_case_sensitive() {
        let h: Headers = [("Trace", "1")].into_iter().collect();
        assert!(h.get("trace").is_none());
    }
}
