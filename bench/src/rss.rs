//! Memory under backlog: the process's peak resident set while wharf (recommended
//! stack) drains a large backlog, which must be bounded by the in-flight limit and the
//! subscriber's prefetch, not by the backlog.
//!
//! The peak is read from `VmHWM` in `/proc/self/status` after resetting it (writing `5`
//! to `/proc/self/clear_refs`) once the backlog is in place, so publishing does not
//! count. On the in-memory broker the backlog itself lives in the process: the number
//! that matters there is the growth over the resident set before draining.

use std::sync::Arc;

use crate::{Settings, Variant};

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn reset_peak() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("could not reset the peak RSS ({e}); the peak includes publishing");
    }
}

fn report(broker: &str, settings: &Settings, before: f64) {
    let (now, peak) = rss_mib();
    println!(
        "{broker}: drained {} messages of {} B with the recommended stack, in flight {}: RSS before draining {before:.1} MiB, peak while draining {peak:.1} MiB (growth {:.1} MiB), after {now:.1} MiB",
        settings.messages,
        settings.size,
        settings.in_flight,
        peak - before
    );
}

/// The in-memory broker.
pub(crate) async fn memory(settings: &Settings) {
    let topic = "bench";
    let broker = crate::memory::backlog(settings, topic);
    let subscriber = broker.subscribe(topic, "bench");
    measure("memory", settings, subscriber, Arc::new(broker.clone())).await;
}

/// NATS JetStream: the backlog lives in the server.
pub(crate) async fn nats(settings: &Settings) {
    let (subscriber, publisher, cleanup) = crate::nats::prepared(settings, "rss").await;
    measure("nats (JetStream)", settings, subscriber, publisher).await;
    cleanup.await;
}

/// Drains `subscriber` with the recommended stack and reports the resident set before and
/// at its peak during the drain.
async fn measure<S: wharf::adapter::Subscriber>(
    broker: &str,
    settings: &Settings,
    subscriber: S,
    publisher: Arc<dyn wharf::Publisher>,
) {
    let (before, _) = rss_mib();
    reset_peak();
    crate::drain::with_wharf(
        Variant::Recommended,
        settings,
        subscriber,
        publisher,
        Arc::default(),
    )
    .await;
    report(broker, settings, before);
}
