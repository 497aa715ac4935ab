//! `RetryPolicy::backoff(n)` is documented as `min(initial_delay × multiplierⁿ⁻¹, max_delay)`
//! and is a lower bound on the wait. Extreme but accepted settings must keep to it.
#![cfg(feature = "retry")]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use wharf_middleware::retry::RetryPolicy;

const YEAR: u64 = 365 * 24 * 3600;

/// A first delay past ~584 years (u64 nanoseconds) under an uncapped `max_delay` must not
/// come out *shorter* than `initial_delay`.
#[test]
fn huge_initial_delay_is_not_shortened_by_the_nanosecond_cast() {
    let initial = Duration::from_secs(1_000 * YEAR);
    let p = RetryPolicy::new()
        .initial_delay(initial)
        .max_delay(Duration::MAX)
        .jitter(0.0);
    let b = p.backoff(1);
    assert!(
        b >= initial,
        "backoff(1) = {b:?} is shorter than initial_delay {initial:?}"
    );
}

/// `0 × multiplierⁿ⁻¹` is 0 for any finite multiplier; a zero initial delay must not jump
/// to `max_delay` once the multiplier power overflows to infinity (0 × ∞ = NaN).
#[test]
fn zero_initial_delay_stays_zero_with_a_huge_multiplier() {
    let p = RetryPolicy::new()
        .initial_delay(Duration::ZERO)
        .multiplier(1e200)
        .jitter(0.0);
    assert_eq!(p.backoff(2), Duration::ZERO);
    assert_eq!(
        p.backoff(3),
        Duration::ZERO,
        "0 × 1e400 must be 0, not max_delay"
    );
}

/// Same with the default multiplier once 2ⁿ⁻¹ overflows f64 (n > 1024).
#[test]
fn zero_initial_delay_stays_zero_for_late_retries() {
    let p = RetryPolicy::new().initial_delay(Duration::ZERO).jitter(0.0);
    assert_eq!(p.backoff(2000), Duration::ZERO);
}
