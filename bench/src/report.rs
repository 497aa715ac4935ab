//! Medians and ratios.

use std::time::Duration;

use crate::{Sample, Settings, Variant};

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    let n = rates.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        rates[n / 2]
    } else {
        (rates[n / 2 - 1] + rates[n / 2]) / 2.0
    }
}

fn rate(s: &Sample) -> f64 {
    s.messages as f64 / s.elapsed.max(Duration::from_nanos(1)).as_secs_f64()
}

pub(crate) fn print(broker: &str, settings: &Settings, samples: &[Sample]) {
    println!(
        "broker {broker}: {} messages of {} B, {} rounds, in flight {}",
        settings.messages, settings.size, settings.rounds, settings.in_flight
    );
    let medians: Vec<(Variant, f64)> = settings
        .variants
        .iter()
        .map(|v| {
            let rates = samples
                .iter()
                .filter(|s| s.variant == *v)
                .map(rate)
                .collect();
            (*v, median(rates))
        })
        .collect();
    // The ratios are to the plain client, or in the `stores` scenario to the in-memory
    // store: the first variant of the run.
    let base = medians
        .first()
        .filter(|(v, m)| matches!(v, Variant::Raw | Variant::Idempotent(_)) && *m > 0.0);
    for (v, m) in &medians {
        let ratio = base.map_or_else(
            || "(plain client not run)".to_owned(),
            |(base_variant, base)| format!("ratio to {} {:.2}", base_variant.label(), m / base),
        );
        let each: Vec<String> = samples
            .iter()
            .filter(|s| s.variant == *v)
            .map(|s| format!("{:.0}k", rate(s) / 1000.0))
            .collect();
        println!(
            "  {:<26} {:>12.0} msg/s (median)   {ratio}   rounds: {}",
            v.label(),
            m,
            each.join(" ")
        );
    }
}
