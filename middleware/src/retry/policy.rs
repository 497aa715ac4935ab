use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use wharf::error::{classify, error_chain, ClassifiedError};
use wharf::{ErrorKind, Failure, FailureReason};

/// The predicate of [`RetryPolicy::retry_if`].
type Predicate = dyn Fn(&(dyn StdError + 'static)) -> bool + Send + Sync;

/// How many times, how soon and which failures the [`Retry`](super::Retry) layer retries.
///
/// A builder with defaults that suit most consumers:
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`max_attempts`](Self::max_attempts) | 5 | deliveries of a message (the broker's count), the first included |
/// | [`in_process_retries`](Self::in_process_retries) | 0 | extra calls within one delivery before asking for a redelivery |
/// | [`initial_delay`](Self::initial_delay) | 1 s | backoff before the first retry |
/// | [`multiplier`](Self::multiplier) | 2.0 | growth of the backoff from one retry to the next |
/// | [`max_delay`](Self::max_delay) | 5 min | cap on the backoff (jitter is added on top) |
/// | [`jitter`](Self::jitter) | 0.2 | up to this fraction of the backoff is *added* at random |
/// | [`retry_if`](Self::retry_if) | every error | which transient errors are retried at all |
///
/// # Backoff
///
/// Retry number `n` (1 for the first retry of a message, counted across both tiers)
/// waits `min(initial_delay × multiplierⁿ⁻¹, max_delay)` plus a random jitter between
/// zero and `jitter ×` that. Jitter only ever **lengthens** a delay: the backoff is a
/// lower bound, so a downstream service that asked for a pause gets at least that pause,
/// and retries of many messages that failed together still spread out. It is added after
/// the cap, so that messages that all reached the cap during an outage spread out too;
/// the longest possible wait is therefore `max_delay × (1 + jitter)`.
///
/// # Which errors
///
/// A permanent error (see [`wharf::error::classify`]) is never retried, whatever the
/// predicate says. A transient error is retried unless the predicate returns `false`; a
/// declined error is given up on at once, like a permanent one.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use wharf_middleware::retry::RetryPolicy;
///
/// #[derive(Debug)]
/// struct QuotaExceeded;
/// impl std::fmt::Display for QuotaExceeded {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("quota exceeded")
///     }
/// }
/// impl std::error::Error for QuotaExceeded {}
///
/// let policy = RetryPolicy::new()
///     .max_attempts(8)
///     .in_process_retries(2)
///     .initial_delay(Duration::from_millis(200))
///     .max_delay(Duration::from_secs(60))
///     .jitter(0.0)
///     // Retrying will not refill the quota today: give up on these at once.
///     .retry_if(|error| !error.is::<QuotaExceeded>());
///
/// assert_eq!(policy.backoff(1), Duration::from_millis(200));
/// assert_eq!(policy.backoff(3), Duration::from_millis(800));
/// assert_eq!(policy.backoff(20), Duration::from_secs(60));
/// ```
#[derive(Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    in_process_retries: u32,
    initial_delay: Duration,
    multiplier: f64,
    max_delay: Duration,
    jitter: f64,
    retry_if: Option<Arc<Predicate>>,
}

/// What the retry layer does with a failed try.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// Wait `delay`, then call the inner service again within this delivery.
    InProcess { delay: Duration },
    /// Settle `Retry { after: delay }`: the adapter redelivers the message.
    Redeliver { delay: Duration },
    /// Give up: a dead-letter outcome with this failure.
    GiveUp(Failure),
}

// ===== impl RetryPolicy =====

impl RetryPolicy {
    /// A policy with the defaults listed [above](Self).
    pub fn new() -> Self {
        RetryPolicy {
            max_attempts: 5,
            in_process_retries: 0,
            initial_delay: Duration::from_secs(1),
            multiplier: 2.0,
            max_delay: Duration::from_secs(5 * 60),
            jitter: 0.2,
            retry_if: None,
        }
    }

    /// How many **deliveries** of a message may fail before it is dead-lettered with
    /// reason `retries-exhausted`, the first delivery included (so 1 disables the
    /// redelivery tier). Default 5; 0 counts as 1.
    ///
    /// This is the attempt number the broker counts ([`Message::attempt`]: the broker's
    /// delivery count or the `wharf-attempt` header), so a crash or a restart does not
    /// reset it. In-process retries happen *within* a delivery and do not count here:
    /// the handler runs at most `max_attempts × (1 + in_process_retries)` times.
    ///
    /// [`Message::attempt`]: wharf::Message::attempt
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// How many times a failed call is retried **within one delivery** (waiting the
    /// backoff, then calling the inner service again with the same message) before the
    /// layer asks for a redelivery. Default 0: every retry is a redelivery.
    ///
    /// In-process retries keep the message's place: later messages with the same key
    /// wait behind it, so per-key order holds. The price is that the message holds its
    /// key lane and an in-flight slot while it waits (other keys are not blocked), and
    /// that the wait is lost if the process stops (the broker's attempt count is not).
    /// Use a few of them, with short delays, for blips you expect to pass in seconds;
    /// leave the long waits to redelivery, which holds nothing.
    pub fn in_process_retries(mut self, retries: u32) -> Self {
        self.in_process_retries = retries;
        self
    }

    /// Backoff before the first retry. Default 1 s.
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// Growth of the backoff from one retry to the next. Default 2.0; values below 1
    /// (and NaN) count as 1, a constant backoff.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier >= 1.0 { multiplier } else { 1.0 };
        self
    }

    /// Cap on the backoff, before jitter. Default 5 minutes.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Up to this fraction of the backoff is added at random, between 0 (no jitter) and 1
    /// (up to twice the backoff). Default 0.2. Jitter never shortens a delay. Values
    /// outside 0..=1 are clamped; NaN counts as 0.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        self
    }

    /// Retries a transient error only if `predicate` returns `true` for it. Default:
    /// every transient error is retried. Permanent errors are never retried, whatever
    /// the predicate says.
    ///
    /// The predicate sees the handler's own error: for a [`HandlerError`] (which travels
    /// as a [`ClassifiedError`]) the error it wraps, so `error.is::<MyError>()` works;
    /// for errors raised elsewhere (a tower layer) the error itself. Walk
    /// [`source()`](std::error::Error::source) to look deeper.
    ///
    /// An error the predicate declines is dead-lettered at once with its own reason code
    /// (`timeout`, `handler-panic`, a custom one) or `permanent`.
    ///
    /// [`HandlerError`]: wharf::HandlerError
    pub fn retry_if<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&(dyn StdError + 'static)) -> bool + Send + Sync + 'static,
    {
        self.retry_if = Some(Arc::new(predicate));
        self
    }

    /// The backoff before retry number `retry` (1-based, counted across both tiers),
    /// without jitter: `min(initial_delay × multiplier^(retry-1), max_delay)`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let max = self.max_delay;
        if self.initial_delay.is_zero() {
            // 0 × anything is 0 (and must not become 0 × ∞ = NaN).
            return Duration::ZERO;
        }
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        // In nanoseconds and rounded, so integer multipliers give exact durations.
        let nanos = (self.initial_delay.as_nanos() as f64 * self.multiplier.powi(exponent)).round();
        // Infinity (or NaN) counts as beyond the cap; compare before converting, so a
        // value beyond what `Duration` holds is never cut short.
        if nanos.is_nan() || nanos >= max.as_nanos() as f64 {
            return max;
        }
        if nanos < u64::MAX as f64 {
            // Exact for whole nanoseconds.
            Duration::from_nanos(nanos as u64).min(max)
        } else {
            Duration::try_from_secs_f64(nanos / 1e9)
                .unwrap_or(max)
                .min(max)
        }
    }

    /// The delay before retry number `retry`: the [`backoff`](Self::backoff) plus a
    /// random jitter of up to `jitter ×` the backoff. Never shorter than the backoff.
    pub fn delay(&self, retry: u32) -> Duration {
        let base = self.backoff(retry);
        if self.jitter == 0.0 || base.is_zero() {
            return base;
        }
        let fraction = rand::random::<f64>() * self.jitter;
        let extra = Duration::try_from_secs_f64(base.as_secs_f64() * fraction).unwrap_or_default();
        base.saturating_add(extra)
    }

    /// `true` if the policy would retry `error` (attempts permitting): it is transient
    /// and the [`retry_if`](Self::retry_if) predicate accepts it.
    pub fn is_retryable(&self, error: &(dyn StdError + 'static)) -> bool {
        classify(error).kind == ErrorKind::Transient && self.accepts(error)
    }

    fn accepts(&self, error: &(dyn StdError + 'static)) -> bool {
        let Some(predicate) = &self.retry_if else {
            return true;
        };
        let own: &(dyn StdError + 'static) = match error.downcast_ref::<ClassifiedError>() {
            Some(classified) => classified.inner(),
            None => error,
        };
        predicate(own)
    }

    pub(crate) fn has_in_process_tier(&self) -> bool {
        self.in_process_retries > 0
    }

    /// Decides what happens after a failed try.
    ///
    /// `attempt` is the delivery's attempt number (1-based, from the message); `tries`
    /// the calls made within this delivery so far, the failed one included (1-based).
    pub(crate) fn decide(
        &self,
        error: &(dyn StdError + 'static),
        attempt: u32,
        tries: u32,
    ) -> Decision {
        let class = classify(error);
        if class.kind == ErrorKind::Permanent {
            return Decision::GiveUp(Failure::new(class.reason, error_chain(error)));
        }
        if !self.accepts(error) {
            // Declined by the predicate: as final as a permanent error. Keep a specific
            // reason (timeout, handler-panic, custom); a plain error is `permanent`.
            let reason = match class.reason {
                FailureReason::RetriesExhausted => FailureReason::Permanent,
                other => other,
            };
            return Decision::GiveUp(Failure::new(reason, error_chain(error)));
        }
        let attempt = attempt.max(1);
        let tries = tries.max(1);
        // Retries of earlier deliveries: each spent its in-process retries, then asked
        // for a redelivery (a crash may have cut one short; the delay then errs longer).
        let retry = (attempt - 1)
            .saturating_mul(self.in_process_retries.saturating_add(1))
            .saturating_add(tries);
        if tries <= self.in_process_retries {
            return Decision::InProcess {
                delay: self.delay(retry),
            };
        }
        if attempt < self.max_attempts {
            return Decision::Redeliver {
                delay: self.delay(retry),
            };
        }
        let mut text = format!("retries exhausted after {attempt} attempts; last error");
        if class.reason != FailureReason::RetriesExhausted {
            text.push_str(&format!(" ({})", class.reason));
        }
        text.push_str(": ");
        text.push_str(&error_chain(error));
        Decision::GiveUp(Failure::new(FailureReason::RetriesExhausted, text))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::new()
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("in_process_retries", &self.in_process_retries)
            .field("initial_delay", &self.initial_delay)
            .field("multiplier", &self.multiplier)
            .field("max_delay", &self.max_delay)
            .field("jitter", &self.jitter)
            .field("retry_if", &self.retry_if.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf::{BoxError, HandlerError};

    #[derive(Debug)]
    struct Busy;
    impl fmt::Display for Busy {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("busy")
        }
    }
    impl StdError for Busy {}

    fn transient() -> BoxError {
        HandlerError::transient(Busy).into()
    }

    fn no_jitter() -> RetryPolicy {
        RetryPolicy::new()
            .initial_delay(Duration::from_millis(100))
            .multiplier(2.0)
            .max_delay(Duration::from_secs(1))
            .jitter(0.0)
    }

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let p = no_jitter();
        let delays: Vec<_> = (1..=8).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        assert_eq!(p.backoff(0), p.backoff(1), "retry 0 counts as the first");
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(1));
        for n in 1..=40 {
            assert_eq!(p.delay(n), p.backoff(n), "no jitter: delay is the backoff");
        }
    }

    #[test]
    fn extreme_settings_do_not_panic() {
        let p = RetryPolicy::new()
            .initial_delay(Duration::MAX)
            .max_delay(Duration::MAX)
            .multiplier(f64::MAX)
            .jitter(1.0);
        assert!(p.delay(1_000) >= p.backoff(1_000));
        let p = RetryPolicy::new().initial_delay(Duration::ZERO).jitter(1.0);
        assert_eq!(p.delay(3), Duration::ZERO);
        let p = RetryPolicy::new().multiplier(f64::NAN).jitter(f64::NAN);
        assert_eq!(
            p.backoff(10),
            Duration::from_secs(1),
            "NaN multiplier is constant"
        );
        assert_eq!(p.delay(10), Duration::from_secs(1), "NaN jitter is none");
    }

    #[test]
    fn jitter_only_lengthens_and_stays_within_its_fraction() {
        let p = no_jitter().jitter(0.5);
        let mut longer = 0;
        for n in 1..=8 {
            let base = p.backoff(n);
            for _ in 0..2_000 {
                let d = p.delay(n);
                assert!(
                    d >= base,
                    "retry {n}: {d:?} shorter than the backoff {base:?}"
                );
                assert!(
                    d <= base.mul_f64(1.5),
                    "retry {n}: {d:?} beyond +50% of {base:?}"
                );
                assert!(d <= Duration::from_millis(1_500), "cap × (1 + jitter)");
                if d > base {
                    longer += 1;
                }
            }
        }
        assert!(
            longer > 15_000,
            "jitter is actually applied ({longer} of 16000)"
        );
    }

    #[test]
    fn decisions_follow_the_tiers_then_give_up() {
        let p = no_jitter().max_attempts(3).in_process_retries(2);
        let e = transient();
        // Delivery 1: two in-process retries, then a redelivery.
        assert_eq!(
            p.decide(&*e, 1, 1),
            Decision::InProcess {
                delay: Duration::from_millis(100)
            }
        );
        assert_eq!(
            p.decide(&*e, 1, 2),
            Decision::InProcess {
                delay: Duration::from_millis(200)
            }
        );
        assert_eq!(
            p.decide(&*e, 1, 3),
            Decision::Redeliver {
                delay: Duration::from_millis(400)
            }
        );
        // Delivery 2 continues the schedule.
        assert_eq!(
            p.decide(&*e, 2, 1),
            Decision::InProcess {
                delay: Duration::from_millis(800)
            }
        );
        // Delivery 3 is the last: in-process retries still run, then it gives up.
        assert!(matches!(p.decide(&*e, 3, 2), Decision::InProcess { .. }));
        let Decision::GiveUp(failure) = p.decide(&*e, 3, 3) else {
            panic!("attempts are spent");
        };
        assert_eq!(failure.reason(), &FailureReason::RetriesExhausted);
        assert_eq!(
            failure.error(),
            "retries exhausted after 3 attempts; last error: busy"
        );
        // A message redelivered beyond the maximum gives up too.
        assert!(matches!(p.decide(&*e, 9, 3), Decision::GiveUp(_)));
    }

    #[test]
    fn exhausted_failure_names_the_last_reason() {
        let p = no_jitter().max_attempts(1);
        let e: BoxError =
            HandlerError::with_reason(ErrorKind::Transient, FailureReason::Timeout, Busy).into();
        let Decision::GiveUp(failure) = p.decide(&*e, 1, 1) else {
            panic!("one attempt allowed");
        };
        assert_eq!(failure.reason(), &FailureReason::RetriesExhausted);
        assert_eq!(
            failure.error(),
            "retries exhausted after 1 attempts; last error (timeout): busy"
        );
    }

    #[test]
    fn permanent_errors_are_never_retried_whatever_the_predicate() {
        let p = no_jitter().retry_if(|_| true);
        let e: BoxError = HandlerError::permanent(Busy).into();
        assert_eq!(
            p.decide(&*e, 1, 1),
            Decision::GiveUp(Failure::new(FailureReason::Permanent, "busy"))
        );
        let e: BoxError = HandlerError::decode(Busy).into();
        assert_eq!(
            p.decide(&*e, 1, 1),
            Decision::GiveUp(Failure::new(FailureReason::Decode, "busy"))
        );
        assert!(!p.is_retryable(&*e));
    }

    #[test]
    fn the_predicate_sees_the_handlers_own_error() {
        let p = no_jitter().retry_if(|e| !e.is::<Busy>());
        // Wrapped in a HandlerError: unwrapped for the predicate.
        assert!(!p.is_retryable(&*transient()));
        // Raised outside a HandlerError: seen as is.
        let raw: BoxError = Box::new(Busy);
        assert!(!p.is_retryable(&*raw));
        assert_eq!(
            p.decide(&*raw, 1, 1),
            Decision::GiveUp(Failure::new(FailureReason::Permanent, "busy"))
        );
        // A declined error keeps a specific reason.
        let timeout: BoxError =
            HandlerError::with_reason(ErrorKind::Transient, FailureReason::Timeout, Busy).into();
        assert_eq!(
            p.decide(&*timeout, 1, 1),
            Decision::GiveUp(Failure::new(FailureReason::Timeout, "busy"))
        );
        // Other errors are retried.
        let other: BoxError = HandlerError::transient("connection reset").into();
        assert!(p.is_retryable(&*other));
    }

    #[test]
    fn out_of_range_settings_are_clamped() {
        let p = RetryPolicy::new()
            .max_attempts(0)
            .multiplier(0.5)
            .jitter(7.0);
        assert_eq!(p.max_attempts, 1);
        assert_eq!(p.multiplier, 1.0);
        assert_eq!(p.jitter, 1.0);
        assert_eq!(RetryPolicy::new().jitter(-1.0).jitter, 0.0);
    }
}
